"""Soak test: many sequential small jobs through the real handler in one process, printing
resident memory, open file descriptors and leftover job temp dirs as it goes. Flat columns
mean no leak. Every fifth job is a bad one, so failure paths are soaked too.

    .venv/bin/python scripts/soak.py --jobs 200   (make soak)
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import tempfile
import time
from pathlib import Path

import psutil
import soundfile

ROOT = Path(__file__).resolve().parent.parent
for name, value in {"MODELS_DIR": str(ROOT / "models"), "MODEL": "base", "COMPUTE_TYPE": "int8",
                    "HF_HUB_OFFLINE": "1", "WARM_UP": "false"}.items():
    os.environ.setdefault(name, value)

import handler  # noqa: E402 (after the environment above)


def leftovers() -> int:
    return len(list(Path(tempfile.gettempdir()).glob("whisperx-job-*")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--every", type=int, default=20)
    args = parser.parse_args()

    audio, rate = soundfile.read(ROOT / "samples" / "sample.wav", start=16000 * 7,
                                 stop=16000 * 10)
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        soundfile.write(tmp.name, audio, rate)
        payload = base64.b64encode(Path(tmp.name).read_bytes()).decode()
    good = {"audio_base64": payload, "language": "en", "diarization": False,
            "align_output": False}
    bad = {"audio_base64": base64.b64encode(b"not audio" * 100).decode()}

    proc = psutil.Process()
    print(f"{'jobs':>5} {'rss_mb':>8} {'fds':>5} {'tmp_dirs':>8} {'failed':>6} {'s/job':>6}")
    failed, start = 0, time.perf_counter()
    for i in range(1, args.jobs + 1):
        result = handler.handler({"id": f"soak-{i}", "input": bad if i % 5 == 0 else good})
        failed += "error" in result
        if i % args.every == 0 or i == 1:
            print(f"{i:>5} {proc.memory_info().rss / 2**20:>8.0f} {proc.num_fds():>5} "
                  f"{leftovers():>8} {failed:>6} {(time.perf_counter() - start) / i:>6.2f}",
                  flush=True)
    expected_failures = args.jobs // 5
    if failed != expected_failures:
        sys.exit(f"expected {expected_failures} failed jobs (the bad ones), got {failed}")


if __name__ == "__main__":
    main()
