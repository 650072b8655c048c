"""Cost of the VAD pass and of language detection vs audio length (real speech, base model).

    .venv/bin/python scripts/language_cost.py [--minutes 2 10 40] [--old]

The audio is samples/sample.wav repeated to each length. Language detection runs on the
job's first VAD windows, so its time should not grow with the length; the VAD pass does
(once per job). --old also times faster-whisper's detect_language(vad_filter=True) over the
whole file, which is what the worker used before.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import soundfile

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("MODELS_DIR", str(ROOT / "models"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import asr  # noqa: E402 (after the environment above)
import job_options  # noqa: E402 (after the environment above)
import rp_schema  # noqa: E402 (after the environment above)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, nargs="+", default=[2, 10, 40])
    parser.add_argument("--old", action="store_true")
    args = parser.parse_args()
    sample, _ = soundfile.read(ROOT / "samples" / "sample.wav", dtype="float32")
    loaded = asr.load_whisper(str(ROOT / "models" / "base"), "int8", "cpu")
    vad = asr.load_vad("cpu")
    job = rp_schema.resolve({"audio_file": "x"}, {}).values
    print("| minutes | VAD pass s | language s | windows used | language | old detect s |")
    print("|---|---|---|---|---|---|")
    for minutes in args.minutes:
        n = int(minutes * 60 * 16000)
        audio = np.resize(sample, n)
        start = time.perf_counter()
        windows = asr.find_speech(vad, audio, n / 16000, job_options.vad_options(job))
        vad_s = time.perf_counter() - start
        start = time.perf_counter()
        language = asr.detect_language(loaded, audio, windows,
                                       job_options.build(job, []).language, [])
        lang_s = time.perf_counter() - start
        old = ""
        if args.old:
            start = time.perf_counter()
            loaded.model.detect_language(audio, vad_filter=True, language_detection_segments=3)
            old = f"{time.perf_counter() - start:.2f}"
        print(f"| {minutes:g} | {vad_s:.2f} | {lang_s:.2f} | {language.windows} | "
              f"{language.code} ({language.probability:.2f}) | {old} |", flush=True)


if __name__ == "__main__":
    main()
