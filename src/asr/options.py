"""The ASR stages' options, built once per job (job_options.py), as faster-whisper's
`TranscriptionOptions`: the stages take these, never the whole request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from .vad import VadParams

Task = Literal["transcribe", "translate"]


@dataclass(frozen=True)
class VadOptions:
    enabled: bool  # false: fixed windows of chunk_size s over the whole audio
    params: VadParams  # binarization rules (onset/offset, min durations, padding)
    chunk_size: float  # longest window Whisper decodes (s)

    def report(self) -> dict[str, Any]:
        return vars(self.params) | {"chunk_size": self.chunk_size}


@dataclass(frozen=True)
class LanguageOptions:
    language: str | None  # given by the caller: no detection
    max_tries: int  # speech windows the detector may look at
    min_prob: float  # a window whose top language is this sure ends the search
    multilingual: bool = False  # each window's own language, detected while decoding
    expected: tuple[str, ...] = ()  # detection picks among these only; (): any


@dataclass(frozen=True)
class AsrOptions:
    """Decoding: faster-whisper's TranscriptionOptions fields, and the batch shape."""

    beam_size: int
    best_of: int
    patience: float
    length_penalty: float
    temperatures: tuple[float, ...]  # the fallback schedule
    compression_ratio_threshold: float | None
    log_prob_threshold: float | None
    no_speech_threshold: float | None
    condition_on_previous_text: bool
    initial_prompt: str | None
    hotwords: str | None
    suppress_tokens: tuple[int, ...]
    suppress_numerals: bool
    chunk_size: float
    batch_size: int
    # code-switching: each window decoded in its own detected language (docs/decoding.md)
    multilingual: bool = False
    expected_languages: tuple[str, ...] = ()  # a window's language is one of these; (): any

    def faster_whisper(self) -> dict[str, Any]:
        """The fields faster-whisper's TranscriptionOptions takes (whisperx's `asr_options`)."""
        return {
            "beam_size": self.beam_size, "best_of": self.best_of, "patience": self.patience,
            "length_penalty": self.length_penalty, "temperatures": list(self.temperatures),
            "compression_ratio_threshold": self.compression_ratio_threshold,
            "log_prob_threshold": self.log_prob_threshold,
            "no_speech_threshold": self.no_speech_threshold,
            "condition_on_previous_text": self.condition_on_previous_text,
            "initial_prompt": self.initial_prompt, "hotwords": self.hotwords,
            "suppress_tokens": list(self.suppress_tokens),
            "suppress_numerals": self.suppress_numerals,
            # whisperx defaults it to the model's is_multilingual: always say it
            "multilingual": self.multilingual,
        }
