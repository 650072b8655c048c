"""Response size per audio minute (bytes of `json.dumps(result)` / minutes) of a diarized job
with word timestamps, on pyannote's 30 s sample and on a ~10-minute English recording built
from real speech (pyannote's two-speaker call alternating with runs of Debian's recorded
English prompts, 0.5 s pauses). Also prints the share of the bytes that `tokens` lists take.

    .venv/bin/python scripts/response_size.py            # both files
    .venv/bin/python scripts/response_size.py --only sample
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import soundfile
from scipy.signal import resample_poly

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "sample.wav"
SOUNDS = Path("/usr/share/asterisk/sounds/en")
CACHE = Path(os.environ.get("TMPDIR", "/tmp")) / "whisperx-response-size"
RATE = 16000
JOB = {"language": "en", "diarization": True, "word_timestamps": True, "model": "base",
       "compute_type": "int8"}


def ten_minutes() -> Path:
    """pyannote's call (30 s), then ~30 s of English prompts, repeated to 10 minutes."""
    path = CACHE / "english-10min.wav"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    call, _ = soundfile.read(SAMPLE, dtype="float32")
    prompts = iter(sorted(SOUNDS.glob("*.wav")))
    gap = np.zeros(RATE // 2, dtype=np.float32)
    parts: list[np.ndarray] = []
    total = 0
    while total < 600 * RATE:
        parts += [call, gap]
        run = 0
        while run < 30 * RATE:
            audio, rate = soundfile.read(next(prompts), dtype="float32")
            if rate != RATE:  # some prompts are 8 kHz
                audio = resample_poly(audio, RATE, rate).astype(np.float32)
            parts += [audio, gap]
            run += len(audio) + len(gap)
        total = sum(len(p) for p in parts)
    soundfile.write(path, np.concatenate(parts)[: 600 * RATE], RATE, subtype="PCM_16")
    return path


def measure(path: Path) -> dict:
    import ctranslate2

    import handler

    ctranslate2.set_random_seed(0)  # temperature fallback samples: same draw on every run
    os.environ["LOCAL_INPUT_DIR"] = str(path.parent)
    result = handler.handler({"id": "size", "input": {"audio_file": path.name} | JOB})
    assert "error" not in result, result["error"]
    size = len(json.dumps(result))
    tokens = sum(len(json.dumps(s["tokens"])) for s in result["segments"])
    minutes = result["duration"] / 60
    return {"file": path.name, "minutes": round(minutes, 2),
            "segments": len(result["segments"]), "bytes": size,
            "bytes_per_min": round(size / minutes), "tokens_share": round(tokens / size, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("sample", "10min"))
    args = parser.parse_args()
    os.environ.setdefault("MODELS_DIR", str(ROOT / "models"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    files = {"sample": SAMPLE, "10min": None}
    for name in files:
        if args.only in (None, name):
            print(json.dumps(measure(files[name] or ten_minutes())), flush=True)


if __name__ == "__main__":
    main()
