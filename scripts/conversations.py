"""A real-voice diarization dev set: conversations mixed from different real human voices
(Debian's recorded telephone prompts, one speaker per package) and pyannote's real two-speaker
sample, with reference turns exact from the mixing. Deterministic by seed.

Two splits that never share a recording: `dev` (tune on) uses the prompts whose name hashes
even, `heldout` (report / assert on) the odd ones and other seeds. pyannote's sample is only in
`heldout` (its first half: the diarization test asserts on the whole file, nothing tunes on it).

    .venv/bin/python scripts/conversations.py --split heldout --out /tmp/convs   # wav + rttm
"""

from __future__ import annotations

import argparse
import gzip
import re
import subprocess
import zlib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import soundfile
from scipy.signal import resample_poly

RATE = 16000
SOUNDS = Path("/usr/share/asterisk/sounds")
ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "sample.wav"
SAMPLE_RTTM = ROOT / "samples" / "sample.rttm"

# One speaker each (asterisk-core-sounds-*-wav and asterisk-prompt-* packages). es_MX_f_Allison
# is left out: it may be the same voice actor as en_US_f_Allison.
VOICES = {
    "en-allison": ("en_US_f_Allison", "wav", "en"),
    "fr-june": ("fr_CA_f_June", "wav", "fr"),
    "fr-armelle": ("fr", "gsm", "fr"),
    "it-carlo": ("it_IT_m_Carlo", "wav", "it"),
    "it-menardi": ("it_IT_f_Menardi", "wav", "it"),
    "ru-ivrvoice": ("ru_RU_f_IvrvoiceRU", "wav", "ru"),
    "es-co": ("es", "gsm", "es"),
}
SPLITS = ("dev", "heldout")

# name -> (speakers, turn seconds (min, max), pause seconds (min, max), overlap probability)
CONDITIONS = {
    "long-turns-2": (2, (5.0, 9.0), (0.2, 0.8), 0.0),
    "short-turns-2": (2, (1.0, 3.0), (0.1, 0.5), 0.0),
    "pauses-3": (3, (2.0, 5.0), (1.0, 3.0), 0.0),
    "overlap-3": (3, (2.0, 5.0), (0.1, 0.5), 0.4),
    "speakers-4": (4, (1.5, 5.0), (0.1, 0.8), 0.1),
    "speakers-5-6": (5, (1.5, 4.0), (0.1, 0.6), 0.1),  # 6 speakers on odd conversations
    "same-language": (2, (1.5, 5.0), (0.1, 0.6), 0.1),  # two voices of one language
}
SAME_LANGUAGE = [("it-carlo", "it-menardi"), ("fr-june", "fr-armelle")]
DURATION = 30.0  # like the meeting clips the worker is judged on


@dataclass
class Mix:
    name: str
    audio: np.ndarray
    turns: list[tuple[float, float, str]] = field(default_factory=list)

    def reference(self):  # -> pyannote.core.Annotation
        from pyannote.core import Annotation, Segment

        annotation = Annotation(uri=self.name)
        for a, b, speaker in self.turns:
            annotation[Segment(a, b)] = speaker
        return annotation

    def rttm(self) -> str:
        return "".join(f"SPEAKER {self.name} 1 {a:.3f} {b - a:.3f} <NA> <NA> {s} <NA> <NA>\n"
                       for a, b, s in self.turns)


def _read(path: Path, kind: str) -> np.ndarray:
    if kind == "gsm":  # raw GSM 06.10 at 8 kHz: only ffmpeg reads it
        raw = subprocess.run(["ffmpeg", "-v", "error", "-f", "gsm", "-ar", "8000", "-i", str(path),
                              "-f", "f32le", "-ac", "1", "-"], check=True, capture_output=True)
        audio, rate = np.frombuffer(raw.stdout, dtype="<f4"), 8000
    else:
        audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
        audio = audio.mean(axis=1)
    if rate != RATE:
        audio = resample_poly(audio, RATE, rate).astype("float32")
    return audio


def speech_spans(audio: np.ndarray, gap: float = 0.3) -> list[tuple[float, float]]:
    """Where a clean recording speaks: 10 ms frames 35 dB under its loudest, gaps < `gap` s
    bridged. The reference of a prompt, so a pause inside it is not counted as speech."""
    hop = RATE // 100
    frames = audio[: len(audio) // hop * hop].reshape(-1, hop)
    level = 20 * np.log10(np.sqrt((frames ** 2).mean(axis=1)) + 1e-9)
    loud = np.flatnonzero(level > level.max() - 35)
    spans: list[list[float]] = []
    for i in loud:
        if spans and i / 100 - spans[-1][1] < gap:
            spans[-1][1] = (i + 1) / 100
        else:
            spans.append([i / 100, (i + 1) / 100])
    return [(a, b) for a, b in spans if b - a >= 0.05]


@cache
def prompts(voice: str, split: str) -> list[Path]:
    directory, kind, _ = VOICES[voice]
    parity = SPLITS.index(split)
    return sorted(p for p in (SOUNDS / directory).glob(f"*.{kind}")
                  if zlib.crc32(p.stem.encode()) % 2 == parity)


@cache
def _utterance(path: Path, kind: str) -> tuple[np.ndarray, tuple[tuple[float, float], ...]]:
    """A prompt trimmed to its speech, at -20 dBFS RMS, with its speech spans."""
    audio = _read(path, kind)
    spans = speech_spans(audio)
    if not spans:
        return np.zeros(0, "float32"), ()
    a, b = int(spans[0][0] * RATE), int(spans[-1][1] * RATE)
    audio = audio[a:b]
    audio = audio * (0.1 / (np.sqrt((audio ** 2).mean()) + 1e-9))
    return audio.astype("float32"), tuple((x - spans[0][0], y - spans[0][0]) for x, y in spans)


def _turn(rng: np.random.Generator, voice: str, split: str, seconds: tuple[float, float]
          ) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Prompts of one voice, 0.15-0.4 s apart, until the turn is long enough (cut at a span's
    end when a single prompt is longer than the turn)."""
    target = rng.uniform(*seconds)
    pieces, spans, length = [], [], 0.0
    files = prompts(voice, split)
    while length < target:
        audio, own = _utterance(files[rng.integers(len(files))], VOICES[voice][1])
        if not own:
            continue
        if pieces:
            gap = rng.uniform(0.15, 0.4)
            pieces.append(np.zeros(int(gap * RATE), "float32"))
            length += gap
        keep = [s for s in own if s[1] <= target - length + 0.5] or [own[0]]
        end = keep[-1][1]
        pieces.append(audio[: int(end * RATE)])
        spans += [(length + a, length + b) for a, b in keep]
        length += end
    return np.concatenate(pieces), spans


def _sample_turns(start: float, end: float) -> list[tuple[float, float, str]]:
    turns = []
    for line in SAMPLE_RTTM.read_text().splitlines():
        f = line.split()
        a, b = float(f[3]), float(f[3]) + float(f[4])
        if b > start and a < end:
            turns.append((max(a, start) - start, min(b, end) - start, f"sample-{f[7]}"))
    return turns


def conversation(condition: str, index: int, split: str, duration: float = DURATION) -> Mix:
    speakers, turn_s, pause_s, p_overlap = CONDITIONS[condition]
    seed = zlib.crc32(f"{split}/{condition}/{index}".encode())
    rng = np.random.default_rng(seed)
    if condition == "same-language":
        voices = list(SAME_LANGUAGE[index % len(SAME_LANGUAGE)])
    else:
        speakers += condition == "speakers-5-6" and index % 2
        voices = list(rng.choice(sorted(VOICES), size=speakers, replace=False))
    track = np.zeros(int(3 * duration * RATE), "float32")
    turns: list[tuple[float, float, str]] = []
    cursor, previous = 0.0, None
    if split == "heldout" and condition == "speakers-4" and index % 2 == 0:
        # pyannote's real telephone call (first 12 s: its two speakers) opens the conversation
        voices = voices[:2]
        audio = _read(SAMPLE, "wav")[: 12 * RATE]
        track[: len(audio)] += audio * (0.1 / (np.sqrt((audio ** 2).mean()) + 1e-9))
        turns += _sample_turns(0.0, 12.0)
        cursor = 12.0 + rng.uniform(*pause_s)
    order = list(rng.permutation(voices))  # everyone speaks once before anyone repeats
    while cursor < duration - 1.0 or order:
        choices = [v for v in voices if v != previous]
        voice = order.pop(0) if order else choices[rng.integers(len(choices))]
        audio, spans = _turn(rng, voice, split, turn_s)
        start = cursor
        if previous is not None and rng.random() < p_overlap:  # barge in on the last turn
            start = max(0.0, cursor - rng.uniform(0.5, 1.5))
        a = int(start * RATE)
        track[a: a + len(audio)] += audio
        turns += [(start + x, start + y, voice) for x, y in spans]
        cursor = start + len(audio) / RATE + rng.uniform(*pause_s)
        previous = voice
    end = min(len(track), int(max(b for _, b, _ in turns) * RATE) + RATE // 4)
    track = track[:end]
    track += rng.normal(0, 1e-3, len(track)).astype("float32")  # a quiet room, not digital zero
    return Mix(f"{split}-{condition}-{index}", np.clip(track, -1, 1), sorted(turns))


# Voices whose prompts have a published transcript (the core-sounds packages' text files): the
# code-switched set (codeswitched()) is scored by WER, so only these speak in it.
TRANSCRIPTS = {
    "en-allison": Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"),
    "ru-ivrvoice": Path("/usr/share/doc/asterisk-core-sounds-ru/core-sounds-ru.txt.gz"),
}


@cache
def said(voice: str, split: str) -> tuple[tuple[Path, str], ...]:
    """The voice's prompts in `split` with their transcripts: whole sentences of 3+ words
    without digits (Whisper may write a number either way) or bracketed notes."""
    with gzip.open(TRANSCRIPTS[voice], "rt", encoding="utf-8") as f:
        texts = dict(line.strip().split(": ", 1) for line in f if re.match(r"^[\w-]+: ", line))
    return tuple((p, texts[p.stem].strip()) for p in prompts(voice, split)
                 if p.stem in texts and len(texts[p.stem].split()) >= 3
                 and not re.search(r"[\d\[\]<>]", texts[p.stem]))


@dataclass
class Turn:
    start: float
    end: float
    voice: str
    language: str
    text: str
    audio: np.ndarray = field(repr=False)


def codeswitched(index: int, split: str, voices: tuple[str, str] = ("en-allison", "ru-ivrvoice"),
                 turns: int = 8) -> tuple[Mix, list[Turn]]:
    """A two-voice call that switches language at every turn (each voice speaks its own
    language, one to three whole prompts per turn, 0.15-0.4 s apart; 0.3-1.2 s between turns),
    with each turn's transcript. Deterministic by seed; `split` as for conversation()."""
    rng = np.random.default_rng(zlib.crc32(f"{split}/codeswitched/{index}".encode()))
    order = list(voices) if index % 2 == 0 else list(voices)[::-1]
    pieces, out, cursor = [], [], 0.0
    for t in range(turns):
        voice = order[t % 2]
        files = said(voice, split)
        chosen = [files[i] for i in rng.choice(len(files), size=int(rng.integers(1, 4)),
                                                  replace=False)]
        audio_parts = []
        for k, (path, _) in enumerate(chosen):
            if k:
                audio_parts.append(np.zeros(int(rng.uniform(0.15, 0.4) * RATE), "float32"))
            audio_parts.append(_utterance(path, VOICES[voice][1])[0])
        audio = np.concatenate(audio_parts)
        if t:
            gap = rng.uniform(0.3, 1.2)
            pieces.append(np.zeros(int(gap * RATE), "float32"))
            cursor += gap
        out.append(Turn(cursor, cursor + len(audio) / RATE, voice, VOICES[voice][2],
                        " ".join(text for _, text in chosen), audio))
        pieces.append(audio)
        cursor += len(audio) / RATE
    track = np.concatenate([*pieces, np.zeros(RATE // 4, "float32")])
    track += rng.normal(0, 1e-3, len(track)).astype("float32")  # a quiet room
    mix = Mix(f"{split}-codeswitched-{index}", np.clip(track, -1, 1),
              [(t.start, t.end, t.voice) for t in out])
    return mix, out


def dataset(split: str, per_condition: int = 4) -> list[tuple[str, Mix]]:
    return [(c, conversation(c, i, split)) for c in CONDITIONS for i in range(per_condition)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=SPLITS, default="dev")
    parser.add_argument("--per-condition", type=int, default=4)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for _, mix in dataset(args.split, args.per_condition):
        soundfile.write(args.out / f"{mix.name}.wav", mix.audio, RATE)
        (args.out / f"{mix.name}.rttm").write_text(mix.rttm())
        print(mix.name, f"{len(mix.audio) / RATE:.1f} s", len(mix.reference().labels()),
              "speakers")


if __name__ == "__main__":
    main()
