"""Language detection on the job's speech windows (the VAD pass the job runs anyway)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from faster_whisper.audio import pad_or_trim

from worker import SAMPLE_RATE

from .options import LanguageOptions
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
    (faster-whisper's rule). Cost: one encoder pass per window used, whatever the length."""
    if options.language:
        return Language(options.language, None, False)
    model = loaded.model
    if not model.model.is_multilingual:
        return Language("en", None, False)  # *.en models
    if not windows.windows:  # nothing but silence/padding to detect on
        warnings.append(f"language detection skipped: no speech; detected_language is "
                        f"'{NO_SPEECH_LANGUAGE}' by default.")
        return Language(NO_SPEECH_LANGUAGE, None, False)
    votes: dict[str, list[float]] = {}
    used = 0
    for start, end in windows.windows[: options.max_tries]:
        used += 1
        features = model.feature_extractor(audio[int(start * SAMPLE_RATE): int(end * SAMPLE_RATE)])
        top_token, prob = model.model.detect_language(model.encode(pad_or_trim(features)))[0][0]
        code = top_token[2:-2]
        if prob > options.min_prob:
            break
        votes.setdefault(code, []).append(prob)
    else:
        code = max(votes, key=lambda lang: len(votes[lang]))
        prob = max(votes[code])
    log.info("detected language %s (p=%.2f) on %d speech window(s)", code, prob, used)
    return Language(code, float(prob), True, used)
