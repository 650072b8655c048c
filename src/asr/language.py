"""Language detection on the job's speech windows (the VAD pass the job runs anyway)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from faster_whisper.audio import pad_or_trim

from worker import SAMPLE_RATE

from .decoding import restrict
from .options import LanguageOptions
from .transcription import Transcript
from .vad import SpeechWindows
from .whisper import Loaded

log = logging.getLogger("worker.asr")


# What a job that asked for detection reports when the audio has no speech to detect on
# (documented in docs/decoding.md; `warnings` says so).
NO_SPEECH_LANGUAGE = "en"


@dataclass(frozen=True)
class Language:
    code: str
    probability: float | None  # None when the caller fixed the language or there is no speech
    detected: bool
    windows: int = 0  # speech windows the detector looked at


def detect_language(loaded: Loaded, audio: np.ndarray, windows: SpeechWindows,
                    options: LanguageOptions, warnings: list[str]) -> Language:
    """Whisper's language detector on the job's first speech windows (the VAD pass the job
    runs anyway): up to `language_detection_max_tries` of them, stopping at the first whose
    top probability exceeds `language_detection_min_prob`, else the majority language
    (faster-whisper's rule); with `expected_languages`, among those only. Cost: one encoder
    pass per window used, whatever the length."""
    fixed = _fixed_language(loaded, options)
    if fixed is not None:
        return fixed
    if not windows.windows:  # nothing but silence/padding to detect on
        warnings.append(f"language detection skipped: no speech; detected_language is "
                        f"'{NO_SPEECH_LANGUAGE}' by default.")
        return Language(NO_SPEECH_LANGUAGE, None, False)
    return _detect(loaded, audio, windows.windows, options)[0]


def detect_language_early(loaded: Loaded, audio: np.ndarray, first: SpeechWindows,
                          options: LanguageOptions) -> Language | None:
    """Streaming: `detect_language` on the file's first windows only (vad.head), when those
    settle it: the detector stopped before running out of them, or used all it may. None when
    the whole file's windows are needed."""
    fixed = _fixed_language(loaded, options)
    if fixed is not None:
        return fixed
    if not first.windows:
        return None
    language, exhausted = _detect(loaded, audio, first.windows, options)
    return None if exhausted else language


def _fixed_language(loaded: Loaded, options: LanguageOptions) -> Language | None:
    """The job's language when nothing is detected before decoding."""
    if options.language and not options.multilingual:
        return Language(options.language, None, False)
    if not loaded.model.model.is_multilingual:
        return Language("en", None, False)  # *.en models
    if options.multilingual:  # each window's, while decoding: see spoken_language
        return Language(NO_SPEECH_LANGUAGE, None, False)
    return None


def _detect(loaded: Loaded, audio: np.ndarray, windows: list[tuple[float, float]],
            options: LanguageOptions) -> tuple[Language, bool]:
    """The detection, and whether it ran out of `windows` before its rule stopped it (more
    windows could change it)."""
    model = loaded.model
    votes: dict[str, list[float]] = {}
    used = 0
    for start, end in windows[: options.max_tries]:
        used += 1
        features = model.feature_extractor(audio[int(start * SAMPLE_RATE): int(end * SAMPLE_RATE)])
        ranked = model.model.detect_language(model.encode(pad_or_trim(features)))[0]
        code, prob = restrict([(token[2:-2], p) for token, p in ranked], options.expected)[0]
        if prob > options.min_prob:
            break
        votes.setdefault(code, []).append(prob)
    else:
        code = max(votes, key=lambda lang: len(votes[lang]))
        prob = max(votes[code])
    exhausted = used < options.max_tries and used == len(windows) and prob <= options.min_prob
    log.info("detected language %s (p=%.2f) on %d speech window(s)", code, prob, used)
    return Language(code, float(prob), True, used), exhausted


def spoken_language(transcript: Transcript, job: Language) -> Language:
    """multilingual: the job's language is the one with the most speech, its probability the
    speech-weighted mean of its windows' detections (`job` when nothing was decoded)."""
    speech = transcript.speech_by_language()
    if not speech:
        return job
    code = next(iter(speech))
    mine = [w for w in transcript.windows if w.language == code]
    weights = [w.end - w.start for w in mine]
    probs = [w.language_probability for w in mine]
    if any(p is None for p in probs) or not sum(weights):
        return Language(code, None, True, len(transcript.windows))
    mean = sum(p * w for p, w in zip(probs, weights, strict=True) if p is not None)
    return Language(code, round(mean / sum(weights), 4), True, len(transcript.windows))
