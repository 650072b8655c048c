"""`make stream-bench`: what streaming (STREAM_RESULTS=true) costs and gives, measured by
iterating the real generator handler in-process (runpod's local API runs the whole job before
its /stream answers, so it can't show when elements arrive).

For each length, on real speech (scripts/bench.py's Russian prompts, looped): one warm-up
job (models loaded, not timed), then the same job streamed and plain, alternating, `--repeats`
times. Prints the time to the first segments against the whole streamed job (target <= 10 %)
and the streamed job's total time against the plain one's (target within 3 %). One process,
one run: compare the ratios, not the seconds, on a shared machine.

    .venv/bin/python scripts/stream_bench.py                       # 10 and 60 min
    .venv/bin/python scripts/stream_bench.py --lengths 10 --beam-size 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "scripts")]

from bench import speech_wav  # noqa: E402  (scripts/bench.py: its audio, cached)


def streamed(job: dict[str, Any]) -> dict[str, float]:
    import handler

    start = time.perf_counter()
    first = None
    elements = batches = 0
    for element in handler.stream_handler({"id": "bench-stream", "input": job}):
        elements += 1
        if element["type"] == "segments" and not element["final"]:
            batches += 1
            first = first or time.perf_counter() - start
        if element["type"] == "result":
            assert "error" not in element["output"], element["output"]["error"]
    return {"total": time.perf_counter() - start, "first": first or float("nan"),
            "elements": elements, "batches": batches}


def plain(job: dict[str, Any]) -> float:
    import handler

    start = time.perf_counter()
    output = handler.handler({"id": "bench-plain", "input": job})
    assert "error" not in output, output["error"]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", default="10,60", help="minutes, comma-separated")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--beam-size", type=int, default=None,
                        help="beam_size (and best_of) for every job: 1 makes long runs on CPU "
                        "shorter")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="batch_size for every job (default 32: a 10-min file is ~2 "
                        "batches, so the first segments wait for half the decoding)")
    parser.add_argument("--no-diarization", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("MODELS_DIR", str(ROOT / "models"))
    os.environ.setdefault("MODEL", "base")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["WARM_UP"] = "false"
    os.environ["STREAM_RESULTS"] = "true"
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    os.environ.setdefault("COMPUTE_TYPE", "float16" if device == "cuda" else "int8")
    extra: dict[str, Any] = {"language": "ru"}  # the audio's language: no detection cost
    if args.beam_size:
        extra |= {"beam_size": args.beam_size, "best_of": args.beam_size}
    if args.batch_size:
        extra["batch_size"] = args.batch_size
    if args.no_diarization:
        extra["diarization"] = False
    print(f"device {device}, model {os.environ['MODEL']}, job options {extra}")
    print("| minutes | streamed job s | first segments s | first / job | plain job s | "
          "streamed / plain | batches streamed |")
    print("|---|---|---|---|---|---|---|")
    for minutes in (float(m) for m in args.lengths.split(",")):
        audio = speech_wav(minutes)
        os.environ["LOCAL_INPUT_DIR"] = str(audio.parent)
        job = {"audio_file": audio.name} | extra
        warm = speech_wav(0.5)
        plain({"audio_file": warm.name} | extra)  # models loaded before anything is timed
        runs, plains = [], []
        for _ in range(args.repeats):
            plains.append(plain(job))
            runs.append(streamed(job))
        total = statistics.median(r["total"] for r in runs)
        first = statistics.median(r["first"] for r in runs)
        base = statistics.median(plains)
        print(f"| {minutes:g} | {total:.1f} | {first:.1f} | {first / total:.1%} | {base:.1f} | "
              f"{total / base:.3f} | {runs[-1]['batches']} |", flush=True)


if __name__ == "__main__":
    main()
