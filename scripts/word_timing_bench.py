"""Word boundary error of the worker's Whisper word timings (the fallback used without a
wav2vec2 model) against faster-whisper's own `word_timestamps=True`, same model, same audio.

Two sets of real speech with exact edges:
- read speech in five languages: Debian's recorded prompts (the diarization dev set's voices,
  its `heldout` prompts), one recording per voice, prompts 0.3-2.5 s apart; each prompt's
  speech (35 dB under its loudest, as the dev set measures it) gives one utterance;
- pyannote's real two-speaker telephone call, whose STM gives each utterance's start and end.
An utterance's edges are the start of its first word and the end of its last. For each one,
the words whose middle falls inside it are taken; the error is |first start - utterance start|
and |last end - utterance end|, averaged over all edges.

    .venv/bin/python scripts/word_timing_bench.py   # prints both errors and their ratio
"""

from __future__ import annotations

import os
import sys
import tempfile
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
os.environ.setdefault("MODELS_DIR", str(ROOT / "models"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("CONTAINER_LOG", str(ROOT / ".cache" / "bench-container-log.txt"))

SAMPLE = ROOT / "samples" / "sample.wav"
Edges = list[tuple[float, float]]


def sample_utterances() -> Edges:
    from importlib.resources import files

    stm = files("pyannote.audio") / "sample" / "sample.stm"
    return [(float(f[3]), float(f[4])) for f in (line.split() for line in
                                                  stm.read_text().splitlines()) if len(f) > 4]


def read_speech(voice: str, out: Path, prompts: int = 14) -> tuple[Path, Edges]:
    """One voice's held-out prompts in a row, with pauses; the wav and each prompt's edges."""
    import numpy as np
    import soundfile

    import conversations

    rate = conversations.RATE
    rng = np.random.default_rng(zlib.crc32(f"word-timing/{voice}".encode()))
    files = conversations.prompts(voice, "heldout")
    pieces, edges, t = [np.zeros(rate // 2, "float32")], [], 0.5
    for i in rng.permutation(len(files))[:prompts]:
        audio, spans = conversations._utterance(files[i], conversations.VOICES[voice][1])
        if not spans or len(audio) > 8 * rate:  # an empty or a long menu prompt
            continue
        edges.append((t + spans[0][0], t + spans[-1][1]))
        gap = rng.uniform(0.3, 2.5)
        pieces += [audio, np.zeros(int(gap * rate), "float32")]
        t += len(audio) / rate + gap
    track = np.concatenate(pieces)
    track += rng.normal(0, 1e-3, len(track)).astype("float32")  # a quiet room
    path = out / f"{voice}.wav"
    soundfile.write(path, track, rate)
    return path, edges


def edge_errors(words: Edges, refs: Edges) -> list[float]:
    errors = []
    for start, end in refs:
        inside = [w for w in words if start <= (w[0] + w[1]) / 2 <= end]
        if inside:
            errors += [abs(inside[0][0] - start), abs(inside[-1][1] - end)]
        else:  # no word for this utterance: count its length as the error of both edges
            errors += [end - start, end - start]
    return errors


def worker_words(audio: Path, language: str) -> Edges:
    import ctranslate2

    import handler

    ctranslate2.set_random_seed(0)  # temperature fallback samples: same draw on every run

    os.environ["LOCAL_INPUT_DIR"] = str(audio.parent)
    out = handler.handler({"id": "bench", "input": {
        "audio_file": audio.name, "model": "base", "compute_type": "int8", "language": language,
        "diarization": False, "debug": True}})
    assert "error" not in out, out["error"]
    assert out["debug_info"]["alignment"]["method"] == "whisper", out["debug_info"]["alignment"]
    return [(w["start"], w["end"]) for s in out["segments"] for w in s["words"]]


def faster_whisper_words(model, audio: Path, language: str) -> Edges:
    import ctranslate2

    ctranslate2.set_random_seed(0)
    segments, _ = model.transcribe(str(audio), language=language, word_timestamps=True,
                                   beam_size=5)
    return [(w.start, w.end) for s in segments for w in s.words]


def main() -> None:
    from faster_whisper import WhisperModel

    import conversations

    model = WhisperModel(str(ROOT / "models" / "base"), device="cpu", compute_type="int8")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for voice, (_, _, language) in conversations.VOICES.items():
            audio, refs = read_speech(voice, Path(tmp))
            rows.append((f"read speech, {voice}", "read", refs,
                         worker_words(audio, language),
                         faster_whisper_words(model, audio, language)))
    rows.append(("pyannote sample (telephone)", "call", sample_utterances(),
                 worker_words(SAMPLE, "en"), faster_whisper_words(model, SAMPLE, "en")))

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    print("mean boundary error (s), base int8, CPU: worker (Whisper timings + VAD clip) vs "
          "faster-whisper word_timestamps=True")
    print(f"{'recording':34} {'edges':>5} {'worker':>7} {'f-w':>7} {'ratio':>6} "
          f"{'longest word':>12}")
    pooled: dict[str, tuple[list[float], list[float]]] = {"read": ([], []), "call": ([], [])}
    for name, kind, refs, ours, theirs in rows:
        o, t = edge_errors(ours, refs), edge_errors(theirs, refs)
        pooled[kind][0].extend(o)
        pooled[kind][1].extend(t)
        print(f"{name:34} {len(o):5d} {mean(o):7.3f} {mean(t):7.3f} {mean(o) / mean(t):6.2f} "
              f"{max(b - a for a, b in ours):11.2f}s")
    for kind, label in (("read", "read speech, 5 languages"), ("call", "telephone call")):
        o, t = pooled[kind]
        print(f"ratio worker / faster-whisper, {label}: {mean(o) / mean(t):.3f} "
              f"({mean(o):.3f} vs {mean(t):.3f} s over {len(o)} edges; target <= 1.10)")
    o, t = pooled["read"][0] + pooled["call"][0], pooled["read"][1] + pooled["call"][1]
    print(f"ratio worker / faster-whisper, all {len(o)} edges: {mean(o) / mean(t):.3f}")


if __name__ == "__main__":
    main()
