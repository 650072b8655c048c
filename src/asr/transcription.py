"""Batched transcription of the job's speech windows (whisperx's pipeline, our decoder)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import whisperx

import rp_schema
from rp_schema import JobInput

from . import vad
from .decoding import DecodeStats, WindowResult, decode_stats
from .vad import PrecomputedVad, SpeechWindows, VadParams
from .whisper import Loaded

log = logging.getLogger("worker.asr")


def find_speech(vad_model: Any, audio: np.ndarray, duration: float, job: JobInput) -> SpeechWindows:
    """The job's one VAD pass (or fixed windows when enable_vad is false)."""
    if not job.enable_vad:
        return vad.fixed(duration, job.chunk_size)
    return vad.find(vad_model, audio, vad_params(job), job.chunk_size, duration)


def asr_options(job: JobInput) -> dict[str, Any]:
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


def vad_params(job: JobInput) -> VadParams:
    return VadParams(
        job.vad_onset, job.vad_offset, job.min_duration_on, job.min_duration_off,
        job.pad_onset, job.pad_offset,
    )


@dataclass(frozen=True)
class Transcript:
    segments: list[dict[str, Any]]  # one per window with text, with the window's fields
    stats: DecodeStats
    speech: list[tuple[float, float]]  # the job's VAD speech regions (s), see speech.py


def transcribe(
    loaded: Loaded, windows: SpeechWindows, audio: np.ndarray, job: JobInput, language: str,
    task: str, batch_size: int,
) -> Transcript:
    stats = DecodeStats(batch_size=batch_size)
    if not windows.windows:
        return Transcript([], stats, windows.speech)
    # A pipeline per job: whisperx's pipeline keeps per-call state (tokenizer, options),
    # while the heavy model inside it is shared and stays warm. Its VAD is the job's windows.
    pipeline = whisperx.load_model(
        loaded.path, loaded.device, compute_type=loaded.compute_type, model=loaded.model,
        asr_options=asr_options(job), language=language, task=task,
        vad_model=PrecomputedVad(windows),
        vad_options={"vad_onset": job.vad_onset, "vad_offset": job.vad_offset,
                     "chunk_size": job.chunk_size},
    )
    token = decode_stats.set(stats)
    try:
        result = pipeline.transcribe(
            audio, batch_size=batch_size, language=language, task=task,
            chunk_size=job.chunk_size,
        )
        loaded.model.finish_fallback(stats)  # the windows still queued for the fallback
    finally:
        decode_stats.reset(token)
    fps = loaded.model.frames_per_second
    segments = [
        segment_fields(s["start"], s["end"], r, fps)
        for s, r in zip(result["segments"], stats.results, strict=True)
        if r.text.strip()
    ]
    log.info(
        "%s: %d windows, %d re-decoded in %d batched passes (%d stable), %d dropped as silence",
        task, stats.windows, stats.redecoded, stats.fallback_passes, stats.stable, stats.silent,
    )
    return Transcript(segments, stats, windows.speech)


def segment_fields(start: float, end: float, r: WindowResult, frames_per_second: int
                   ) -> dict[str, Any]:
    """A window's segment with the official worker's (faster-whisper Segment) fields."""
    return {
        "start": start, "end": end, "text": r.text.strip(),
        "seek": int(round(start * frames_per_second)),  # frames of the window start
        "tokens": list(r.tokens), "temperature": r.temperature,
        "avg_logprob": round(r.avg_logprob, 4),
        "compression_ratio": round(r.compression_ratio, 4),
        "no_speech_prob": round(r.no_speech_prob, 4),
    }
