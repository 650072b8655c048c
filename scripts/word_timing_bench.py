"""Word boundary error of the worker's Whisper word timings (the fallback used without a
wav2vec2 model) against faster-whisper's own `word_timestamps=True`, same model, same audio.

References: pyannote's real two-speaker recording, whose STM gives each utterance's start and
end, i.e. the start of its first word and the end of its last. For each utterance, the words
whose middle falls inside it are taken; the error is |first start - utterance start| and
|last end - utterance end|, averaged over all edges.

    .venv/bin/python scripts/word_timing_bench.py   # prints both errors and their ratio
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("MODELS_DIR", str(ROOT / "models"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("CONTAINER_LOG", str(ROOT / ".cache" / "bench-container-log.txt"))

SAMPLE = ROOT / "samples" / "sample.wav"


def utterances() -> list[tuple[float, float]]:
    from importlib.resources import files

    stm = files("pyannote.audio") / "sample" / "sample.stm"
    return [(float(f[3]), float(f[4])) for f in (line.split() for line in
                                                  stm.read_text().splitlines()) if len(f) > 4]


def edge_errors(words: list[tuple[float, float]], refs: list[tuple[float, float]]
                ) -> list[float]:
    errors = []
    for start, end in refs:
        inside = [w for w in words if start <= (w[0] + w[1]) / 2 <= end]
        if inside:
            errors += [abs(inside[0][0] - start), abs(inside[-1][1] - end)]
        else:  # no word for this utterance: count its length as the error of both edges
            errors += [end - start, end - start]
    return errors


def worker_words() -> list[tuple[float, float]]:
    import handler

    os.environ["LOCAL_INPUT_DIR"] = str(SAMPLE.parent)
    out = handler.handler({"id": "bench", "input": {
        "audio_file": SAMPLE.name, "model": "base", "compute_type": "int8", "language": "en",
        "diarization": False, "debug": True}})
    assert "error" not in out, out["error"]
    assert out["debug_info"]["alignment"]["method"] == "whisper", out["debug_info"]["alignment"]
    return [(w["start"], w["end"]) for s in out["segments"] for w in s["words"]]


def faster_whisper_words() -> list[tuple[float, float]]:
    from faster_whisper import WhisperModel

    model = WhisperModel(str(ROOT / "models" / "base"), device="cpu", compute_type="int8")
    segments, _ = model.transcribe(str(SAMPLE), language="en", word_timestamps=True,
                                   beam_size=5)
    return [(w.start, w.end) for s in segments for w in s.words]


def main() -> None:
    refs = utterances()
    ours = edge_errors(worker_words(), refs)
    theirs = edge_errors(faster_whisper_words(), refs)
    mean_ours, mean_theirs = sum(ours) / len(ours), sum(theirs) / len(theirs)
    print(f"utterance edges: {len(ours)} (pyannote sample STM, base int8, CPU)")
    print(f"worker (Whisper timings + VAD clip): mean boundary error {mean_ours:.3f} s")
    print(f"faster-whisper word_timestamps=True: mean boundary error {mean_theirs:.3f} s")
    print(f"ratio worker / faster-whisper: {mean_ours / mean_theirs:.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()
