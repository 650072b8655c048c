"""The job's speech recognition, top to bottom: the one VAD pass, language detection and the
batched transcription, each timed as a stage.

Streaming (`on_segments`), the VAD runs in two parts (vad.head, vad.rest): the windows that the
file's first block already fixes are decoded and sent before the rest of the file is scored,
so the first segments come after a block's VAD, not the whole file's. The result is the
one-part pass's, for the same model work: the block's scores are kept and aggregated with the
rest's (tests/asr/test_streamed_vad.py). The progress events keep the plain job's order (vad,
language_detection, transcription); only the `segments` elements come earlier.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from worker.timings import Timings

from . import vad
from .language import Language, detect_language, detect_language_early
from .options import AsrOptions, LanguageOptions, Task, VadOptions
from .transcription import OnSegments, Transcript, find_speech, transcribe
from .vad import SpeechWindows
from .whisper import Loaded


@dataclass(frozen=True)
class Recognized:
    speech: SpeechWindows  # the job's VAD pass (the translate pass decodes it again)
    language: Language
    transcript: Transcript


def recognize(loaded: Loaded, scorer: Any, audio: np.ndarray, duration: float,
              vad_options: VadOptions, language_options: LanguageOptions,
              asr_options: AsrOptions, task: Task, warnings: list[str], timings: Timings,
              score_tokens: bool = False, on_segments: OnSegments | None = None) -> Recognized:
    """VAD -> language -> transcription; `on_segments` gets each decoded batch's segments."""
    first = None
    if on_segments is not None and vad_options.enabled:
        with timings.stage("vad", report=False):
            first = vad.head(scorer, audio, vad_options.params, vad_options.chunk_size)
    if first is None or not first.windows.windows:
        with timings.stage("vad"):
            speech = (vad.rest(scorer, audio, first, vad_options.params, vad_options.chunk_size,
                               duration) if first is not None
                      else find_speech(scorer, audio, duration, vad_options))
        return _after_vad(loaded, audio, speech, language_options, asr_options, task, warnings,
                          timings, score_tokens, on_segments)
    with timings.stage("language_detection", report=False):
        language = detect_language_early(loaded, audio, first.windows, language_options)
    if language is None:  # the first windows can't settle it: the whole file's first windows
        with timings.stage("vad"):
            speech = vad.rest(scorer, audio, first, vad_options.params, vad_options.chunk_size,
                              duration)
        return _after_vad(loaded, audio, speech, language_options, asr_options, task, warnings,
                          timings, score_tokens, on_segments)
    whole: list[SpeechWindows] = []

    def rest() -> SpeechWindows:
        with timings.stage("vad"):  # inside the transcription stage: timed apart from it
            whole.append(vad.rest(scorer, audio, first, vad_options.params,
                                  vad_options.chunk_size, duration))
        timings.report("language_detection")
        return whole[-1]

    with timings.stage("transcription"):
        transcript = transcribe(loaded, first.windows, audio, asr_options, language.code, task,
                                warnings, score_tokens=score_tokens, on_segments=on_segments,
                                rest=rest)
    return Recognized(whole[-1], language, transcript)


def _after_vad(loaded: Loaded, audio: np.ndarray, speech: SpeechWindows,
               language_options: LanguageOptions, asr_options: AsrOptions, task: Task,
               warnings: list[str], timings: Timings, score_tokens: bool,
               on_segments: OnSegments | None) -> Recognized:
    with timings.stage("language_detection"):
        language = detect_language(loaded, audio, speech, language_options, warnings)
    with timings.stage("transcription"):
        transcript = transcribe(loaded, speech, audio, asr_options, language.code, task,
                                warnings, score_tokens=score_tokens, on_segments=on_segments)
    return Recognized(speech, language, transcript)
