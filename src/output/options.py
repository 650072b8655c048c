"""What the response holds and where it goes, built once per job (job_options.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .subtitles import Rules

OutputFormat = Literal["json", "srt", "vtt", "txt", "markdown"]
TextFormat = Literal["plain_text", "formatted_text", "srt", "vtt"]


@dataclass(frozen=True)
class OutputOptions:
    format: OutputFormat  # the extra rendering under its own key (json: none)
    transcription: TextFormat  # the official worker's `transcription` field
    translation: TextFormat  # its `translation` field (translate: true)
    cues: Rules  # subtitle limits, for every rendering
    min_segment_duration: float  # shorter segments are dropped
    words: bool  # segments carry timed words (alignment ran)
    word_timestamps: bool  # the top-level `word_timestamps` list
    char_alignments: bool  # words carry their characters' timings
    whisper_translation: bool  # `translate: true`: a second, English transcript
    speaker_embeddings: bool  # `speaker_embeddings` in the response
    upload: bool | None  # results to the bucket: true, false, or None (when one is set)
    debug: bool  # `debug_info` in the response
