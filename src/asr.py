"""Language detection and batched transcription with whisperx's pipeline."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import whisperx

import rp_schema
from decoding import DecodeStats, SpeechRegions, VadParams, decode_stats
from models import Loaded

log = logging.getLogger("worker.asr")


@dataclass(frozen=True)
class Language:
    code: str
    probability: float | None  # None when the caller fixed the language
    detected: bool


def detect_language(loaded: Loaded, audio: np.ndarray, job: Any) -> Language:
    """Detect on up to `language_detection_max_tries` 30 s windows of speech (faster-whisper's
    own detector, with its bundled Silero VAD so leading silence or music doesn't count)."""
    if job.language:
        return Language(job.language, None, False)
    if not loaded.model.model.is_multilingual:
        return Language("en", None, False)  # *.en models
    kwargs = {
        "language_detection_segments": job.language_detection_max_tries,
        "language_detection_threshold": job.language_detection_min_prob,
    }
    try:
        code, prob, _ = loaded.model.detect_language(audio, vad_filter=True, **kwargs)
    except ValueError:  # Silero found no speech at all: detect on the raw audio instead
        code, prob, _ = loaded.model.detect_language(audio, vad_filter=False, **kwargs)
    log.info("detected language %s (p=%.2f)", code, prob)
    return Language(code, float(prob), True)


def asr_options(job: Any) -> dict[str, Any]:
    """faster-whisper TranscriptionOptions fields taken from the job."""
    return {
        "beam_size": job.beam_size,
        "best_of": job.best_of,
        "patience": job.patience,
        "length_penalty": job.length_penalty,
        "temperatures": list(rp_schema.temperatures(job)),
        "compression_ratio_threshold": job.compression_ratio_threshold,
        "log_prob_threshold": job.log_prob_threshold,
        "no_speech_threshold": job.no_speech_threshold,
        "condition_on_previous_text": job.condition_on_previous_text,
        "initial_prompt": job.initial_prompt,
        "hotwords": job.hotwords,
        "suppress_tokens": [int(t) for t in job.suppress_tokens.split(",") if t.strip()],
        "suppress_numerals": job.suppress_numerals,
    }


def vad_params(job: Any) -> VadParams:
    return VadParams(
        job.vad_onset, job.vad_offset, job.min_duration_on, job.min_duration_off,
        job.pad_onset, job.pad_offset,
    )


@dataclass(frozen=True)
class Transcript:
    segments: list[dict[str, Any]]
    stats: DecodeStats


def transcribe(
    loaded: Loaded, vad: Any, audio: np.ndarray, duration: float, job: Any,
    language: str, task: str, batch_size: int,
) -> Transcript:
    # A pipeline per job: whisperx's pipeline keeps per-call state (tokenizer, options),
    # while the heavy model and VAD objects inside it are shared and stay warm.
    pipeline = whisperx.load_model(
        loaded.path, loaded.device, compute_type=loaded.compute_type, model=loaded.model,
        asr_options=asr_options(job), language=language, task=task,
        vad_model=SpeechRegions(vad, vad_params(job), duration),
        vad_options={"vad_onset": job.vad_onset, "vad_offset": job.vad_offset,
                     "chunk_size": job.chunk_size},
    )
    stats = DecodeStats()
    token = decode_stats.set(stats)
    try:
        result = pipeline.transcribe(
            audio, batch_size=batch_size, language=language, task=task,
            chunk_size=job.chunk_size,
        )
    finally:
        decode_stats.reset(token)
    segments = [
        {"start": s["start"], "end": s["end"], "text": s["text"].strip(),
         "avg_logprob": round(float(s["avg_logprob"]), 4)}
        for s in result["segments"]
        if s["text"].strip()
    ]
    log.info(
        "%s: %d windows, %d re-decoded, %d dropped as silence", task, stats.windows,
        stats.redecoded, stats.silent,
    )
    return Transcript(segments, stats)
