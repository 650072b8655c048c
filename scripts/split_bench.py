"""What `whisperx-client --split` costs and changes: one long file transcribed as one job and
as chunks cut at pauses (the client's own cut and merge: client/splitter.py, client/split.py),
in one run, in-process through the worker's handler (base model, CPU; models warmed first).

Two files of real voices: an English one (Debian's recorded prompts of one speaker, with their
transcripts: WER) and a two-voice conversation (scripts/conversations.py, heldout voices, turns
exact from the mixing: DER). Prints the overhead (sum of chunk job times / whole job time),
WER and DER whole vs merged, and a wall-time table for a 3-hour file on 1, 4 and 16 workers
from the measured per-minute chunk cost and RunPod start times. Timings on a shared machine
are noisy: the ratios are measured within one run.

    .venv/bin/python scripts/split_bench.py            # ~6-9 min on 2 cores
"""

from __future__ import annotations

import argparse
import gzip
import math
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("MODELS_DIR", str(ROOT / "models"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("CONTAINER_LOG", str(ROOT / ".cache" / "bench-container-log.txt"))

import numpy as np  # noqa: E402
import soundfile  # noqa: E402

import conversations  # noqa: E402

RATE = 16000
EN_SOUNDS = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
EN_TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
# RunPod start times (RunPod's blog, "Introducing FlashBoot: 1-Second Serverless Cold-Start",
# measured on their Whisper endpoint: 95 % of FlashBoot starts under 2.3 s; 42 s without it,
# loading the Whisper models into VRAM). Our image bakes its models, so a cold start is of
# that order; pulling an uncached image to a new host takes longer and is not counted here.
WARM_START_S = 2.3
COLD_START_S = 42.0
LONG_MINUTES = 180
LONG_CHUNK_MINUTES = 10
BASE = {"model": "base", "compute_type": "int8"}


def english_file(seconds: float, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Allison's prompts (full sentences, no digits) with 0.4-1.5 s pauses: audio and text."""
    with gzip.open(EN_TRANSCRIPTS, "rt", encoding="utf-8") as f:
        entries = sorted(line.split(":", 1) for line in f if re.match(r"^[\w-]+: ", line))
    pieces, texts, length = [], [], 0.0
    usable = [(EN_SOUNDS / f"{n}.wav", t.strip()) for n, t in entries
              if (EN_SOUNDS / f"{n}.wav").is_file() and len(t.split()) >= 5
              and not re.search(r"[\d\[\]<>]", t)]
    for wav, text in usable:
        if length >= seconds:
            break
        audio = conversations._read(wav, "wav")
        pause = rng.uniform(0.4, 1.5)
        pieces += [audio, rng.normal(0, 1e-3, int(pause * RATE)).astype("float32")]
        texts.append(text)
        length += len(audio) / RATE + pause
    return np.concatenate(pieces), " ".join(texts)


def run(path: Path, params: dict) -> tuple[dict, float]:
    import ctranslate2

    import handler

    ctranslate2.set_random_seed(0)
    os.environ["LOCAL_INPUT_DIR"] = str(path.parent)
    start = time.perf_counter()
    out = handler.handler({"id": "bench", "input": {"audio_file": path.name, **BASE, **params}})
    assert "error" not in out, out["error"]
    return out, time.perf_counter() - start


def whole_and_split(audio: np.ndarray, params: dict, minutes: float, tmp: Path, name: str
                    ) -> dict:
    from client import split, splitter

    path = tmp / f"{name}.wav"
    soundfile.write(path, audio, RATE)
    whole, whole_s = run(path, params)
    start = time.perf_counter()
    speech = splitter.find_speech(audio)
    chunks = split.plan(speech, len(audio) / RATE, minutes * 60)
    cut_s = time.perf_counter() - start
    results, times = [], []
    for c in chunks:
        piece = tmp / f"{name}-{c.index:03d}.flac"
        splitter.encode(audio[round(c.start * RATE):round(c.end * RATE)], piece, "flac")
        out, seconds = run(piece, split.chunk_params(params))
        results.append(out)
        times.append(seconds)
    threshold = float(splitter.job_input(params).speaker_match_threshold)
    merged = split.merge(chunks, results, threshold, duration=len(audio) / RATE,
                         keep_embeddings=False,
                         max_speakers=params.get("num_speakers") or params.get("max_speakers")
                         ).result
    return {"whole": whole, "whole_s": whole_s, "merged": merged, "chunk_s": times,
            "results": results,
            "chunks": chunks, "cut_s": cut_s, "minutes": len(audio) / RATE / 60}


def wer(reference: str, hypothesis: str) -> float:
    import jiwer

    def norm(text: str) -> str:
        return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())

    return jiwer.wer(norm(reference), norm(hypothesis))


def der(reference, rows, within: tuple[float, float] | None = None) -> dict:  # noqa: ANN001
    """pyannote's DER (collar 0) with its parts in seconds: missed speech, false alarm,
    confusion (the wrong speaker), total reference speech; `within` a stretch of the file."""
    from pyannote.core import Annotation, Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    hypothesis = Annotation()
    for i, (a, b, speaker) in enumerate(rows):
        if speaker and b > a:
            hypothesis[Segment(a, b), i] = speaker
    uem = Timeline([Segment(*within)]) if within else None
    parts = DiarizationErrorRate(collar=0.0, skip_overlap=False)(
        reference, hypothesis, uem=uem, detailed=True)
    return {"der": parts["diarization error rate"], "missed": parts["missed detection"],
            "false_alarm": parts["false alarm"], "confusion": parts["confusion"],
            "total": parts["total"]}


def where_errors_sit(reference, whole: list, merged: list, chunks: list) -> None:  # noqa: ANN001
    """The segments' DER parts whole vs merged per chunk and within 3 s of each cut: errors
    from cutting sit at the cuts; a wrongly linked speaker shows as a chunk's confusion."""
    def row(name: str, within: tuple[float, float]) -> None:
        w, m = der(reference, whole, within), der(reference, merged, within)
        print(f"| {name} | {w['total']:.1f} | " + " | ".join(
            f"{w[k]:.1f} / {m[k]:.1f}" for k in ("missed", "false_alarm", "confusion")) + " |")

    print("where the segments' errors sit (seconds, whole / merged):")
    print("| stretch | speech s | missed | false alarm | wrong speaker |")
    print("|---|---|---|---|---|")
    for c in chunks:
        row(f"chunk {c.index} {c.start:.1f}-{c.end:.1f}", (c.start, c.end))
    for c in chunks[1:]:
        row(f"cut at {c.start:.1f} ±3 s", (c.start - 3, c.start + 3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--english-seconds", type=float, default=240)
    parser.add_argument("--conversation-seconds", type=float, default=150)
    parser.add_argument("--split", type=float, default=1.0, metavar="MINUTES",
                        help="chunk length (default 1 min: several chunks of a short file)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        warm = tmp / "warm.wav"
        soundfile.write(warm, soundfile.read(ROOT / "samples" / "sample.wav",
                                             dtype="float32")[0][: 12 * RATE], RATE)
        run(warm, {"diarization": True})  # models loaded before anything is timed
        audio, text = english_file(args.english_seconds, rng)
        en = whole_and_split(audio, {"language": "en", "diarization": False}, args.split, tmp,
                             "english")
        mix = conversations.conversation("long-turns-2", 1, "heldout",
                                         args.conversation_seconds)
        # the mixer's voices speak different languages: both jobs detect each window's own
        # (multilingual), so the DER compares cuts and speakers, not which language a job
        # happened to detect for the whole of its audio (docs/scale-out.md)
        conv = whole_and_split(mix.audio, {"diarization": True, "multilingual": True},
                               args.split, tmp, "conv")
    reference = mix.reference()

    def turns(r: dict) -> list:
        return [(t["start"], t["end"], t["speaker"]) for t in r.get("speaker_turns") or []]

    def said(r: dict) -> list:
        return [(s["start"], s["end"], s.get("speaker")) for s in r["segments"]]

    rows = []
    for name, r in (("english (WER)", en), ("conversation (DER)", conv)):
        rows.append((name, r["minutes"], len(r["chunks"]), r["whole_s"], sum(r["chunk_s"]),
                     sum(r["chunk_s"]) / r["whole_s"]))
    print(f"split_bench: base int8 on CPU ({os.cpu_count()} cores, shared: timings noisy), "
          f"--split {args.split:g} min")
    print("| file | audio min | chunks | whole job s | sum of chunk jobs s | overhead |")
    print("|---|---|---|---|---|---|")
    for name, minutes, n, w, s, ratio in rows:
        print(f"| {name} | {minutes:.1f} | {n} | {w:.1f} | {s:.1f} | {ratio:.3f} |")
    total = (en["whole_s"] + conv["whole_s"], sum(en["chunk_s"]) + sum(conv["chunk_s"]))
    print(f"overhead, both files: {total[1] / total[0]:.3f} (target <= 1.15)")
    w_whole = wer(text, en["whole"]["transcription"])
    w_split = wer(text, " ".join(s["text"].strip() for s in en["merged"]["segments"]))
    print(f"WER whole {w_whole:.4f}  merged {w_split:.4f}  difference {w_split - w_whole:+.4f} "
          "(target <= +0.01)")
    for kind, rows_of in (("speaker_turns", turns), ("segments", said)):
        d_whole = der(reference, rows_of(conv["whole"]))
        d_split = der(reference, rows_of(conv["merged"]))
        print(f"DER ({kind}) whole {d_whole['der']:.4f}  merged {d_split['der']:.4f}  "
              f"difference {d_split['der'] - d_whole['der']:+.4f} (target <= +0.03)")
        for part in ("missed", "false_alarm", "confusion"):
            print(f"  {part}: whole {d_whole[part] / d_whole['total']:.4f}  merged "
                  f"{d_split[part] / d_split['total']:.4f}")
    where_errors_sit(reference, said(conv["whole"]), said(conv["merged"]), conv["chunks"])
    print("languages: whole", conv["whole"]["detected_language"], " chunks",
          [r["detected_language"] for r in conv["results"]])
    speakers = (len(conv["whole"].get("speakers") or []), len(conv["merged"].get("speakers")
                                                                or []))
    print(f"speakers: reference {len(reference.labels())}, whole {speakers[0]}, "
          f"merged {speakers[1]}")
    print(f"client cut (Silero VAD + plan) {1000 * (en['cut_s'] + conv['cut_s']) / (en['minutes'] + conv['minutes']):.0f} ms per audio minute")  # noqa: E501

    # a 3-hour file: the measured CPU cost per audio minute of the diarized chunks
    per_min = sum(conv["chunk_s"]) / conv["minutes"]
    whole_per_min = conv["whole_s"] / conv["minutes"]
    cut_per_min = (en["cut_s"] + conv["cut_s"]) / (en["minutes"] + conv["minutes"])
    n = math.ceil(LONG_MINUTES / LONG_CHUNK_MINUTES)
    chunk_s = per_min * LONG_CHUNK_MINUTES
    print(f"\n3-hour file, {LONG_CHUNK_MINUTES}-min chunks ({n}), diarized, at this run's CPU "
          f"cost ({per_min:.1f} s per audio min split, {whole_per_min:.1f} whole; a GPU "
          f"divides both); start: FlashBoot {WARM_START_S} s, cold {COLD_START_S} s (RunPod)")
    print("| workers | whole file, one job | split, warm starts | split, cold starts |")
    print("|---|---|---|---|")
    prep = cut_per_min * LONG_MINUTES
    for workers in (1, 4, 16):
        waves = math.ceil(n / workers)
        whole = (f"{(COLD_START_S + whole_per_min * LONG_MINUTES) / 60:.0f} min"
                 if workers == 1 else "-")
        warm_wall = prep + WARM_START_S + waves * chunk_s
        cold_wall = prep + COLD_START_S + waves * chunk_s
        print(f"| {workers} | {whole} | {warm_wall / 60:.0f} min | {cold_wall / 60:.0f} min |")


if __name__ == "__main__":
    main()
