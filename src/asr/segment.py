"""What every stage after ASR passes on: segments and their words (TypedDicts, so a type
checker sees each field; the response's `segments` are these)."""

from __future__ import annotations

from typing import TypedDict


class Word(TypedDict, total=False):
    """A timed word: alignment gives `start`/`end`/`score`, decoding `probability`,
    diarization `speaker`."""

    word: str
    start: float
    end: float
    score: float  # wav2vec2 alignment's confidence in the word's timing
    probability: float  # Whisper's: the mean probability of the tokens that spell it
    speaker: str


class Segment(TypedDict, total=False):
    """One output segment: ASR makes it (one per decoded window), alignment adds `words` /
    `chars` and may cut it into sentences, diarization adds `speaker` (and `overlap`) and may
    cut it again. Every field is optional (total=False): stages add theirs."""

    id: int
    start: float | None
    end: float | None
    text: str
    words: list[Word]
    chars: list[dict[str, float | str]]
    speaker: str
    # in overlapped speech (speakers.assign): others talk over it, `overlap_speakers` say who
    overlap: bool
    overlap_speakers: list[str]
    seek: int  # the window's start, in 10 ms frames
    tokens: list[int]  # the segment's own text tokens
    temperature: float  # the window's
    avg_logprob: float  # mean log-probability of the segment's tokens
    compression_ratio: float  # gzip ratio of the segment's text
    no_speech_prob: float  # the window's
    language: str  # the window's: detected for it (multilingual), else the job's
    language_probability: float  # the detector's, only where detected per window
