"""Language detection on the job's speech windows; batched transcription (whisperx)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import whisperx
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer
from whisperx.audio import SAMPLE_RATE

import rp_schema
import speech
from decoding import DecodeStats, WindowResult, decode_stats
from models import Loaded
from rp_schema import JobInput
from segments import Segment, Window, token_texts
from speech import PrecomputedVad, SpeechWindows, VadParams

log = logging.getLogger("worker.asr")


# What a job that asked for detection reports when the audio has no speech to detect on
# (documented in the README; `warnings` says so).
NO_SPEECH_LANGUAGE = "en"


@dataclass(frozen=True)
class Language:
    code: str
    probability: float | None  # None when the caller fixed the language or there is no speech
    detected: bool
    windows: int = 0  # speech windows the detector looked at


def detect_language(loaded: Loaded, audio: np.ndarray, windows: SpeechWindows,
                    job: JobInput) -> Language:
    """Whisper's language detector on the job's first speech windows (the VAD pass the job
    runs anyway): up to `language_detection_max_tries` of them, stopping at the first whose
    top probability exceeds `language_detection_min_prob`, else the majority language
    (faster-whisper's rule). Cost: one encoder pass per window used, whatever the length."""
    if job.language:
        return Language(job.language, None, False)
    model = loaded.model
    if not model.model.is_multilingual:
        return Language("en", None, False)  # *.en models
    if not windows.windows:  # nothing but silence/padding to detect on
        return Language(NO_SPEECH_LANGUAGE, None, False)
    votes: dict[str, list[float]] = {}
    used = 0
    for start, end in windows.windows[: job.language_detection_max_tries]:
        used += 1
        features = model.feature_extractor(audio[int(start * SAMPLE_RATE): int(end * SAMPLE_RATE)])
        top_token, prob = model.model.detect_language(model.encode(pad_or_trim(features)))[0][0]
        code = top_token[2:-2]
        if prob > job.language_detection_min_prob:
            break
        votes.setdefault(code, []).append(prob)
    else:
        code = max(votes, key=lambda lang: len(votes[lang]))
        prob = max(votes[code])
    log.info("detected language %s (p=%.2f) on %d speech window(s)", code, prob, used)
    return Language(code, float(prob), True, used)


def find_speech(vad: Any, audio: np.ndarray, duration: float, job: JobInput) -> SpeechWindows:
    """The job's one VAD pass (or fixed windows when enable_vad is false)."""
    if not job.enable_vad:
        return speech.fixed(duration, job.chunk_size)
    return speech.find(vad, audio, vad_params(job), job.chunk_size, duration)


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
    windows: list[Window]  # the decoded windows with text, what segments are cut from
    stats: DecodeStats
    speech: list[tuple[float, float]]  # the job's VAD speech regions (s), see speech.py

    @property
    def segments(self) -> list[Segment]:
        """One segment per window, with faster-whisper's fields."""
        return [w.segment() for w in self.windows]


def transcribe(
    loaded: Loaded, windows: SpeechWindows, audio: np.ndarray, job: JobInput, language: str,
    task: str, batch_size: int, score_tokens: bool = False,
) -> Transcript:
    """`score_tokens`: the job will cut windows into several segments, which then need their
    tokens' own log-probabilities (decoding.py)."""
    stats = DecodeStats(batch_size=batch_size, score_tokens=score_tokens)
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
    tokenizer = Tokenizer(loaded.model.hf_tokenizer, loaded.model.model.is_multilingual,
                          task=task, language=language)
    decoded = [
        window(s["start"], s["end"], r, fps, tokenizer.decode)
        for s, r in zip(result["segments"], stats.results, strict=True)
        if r.text.strip()
    ]
    log.info(
        "%s: %d windows, %d re-decoded in %d batched passes (%d stable), %d dropped as silence",
        task, stats.windows, stats.redecoded, stats.fallback_passes, stats.stable, stats.silent,
    )
    return Transcript(decoded, stats, windows.speech)


def window(start: float, end: float, r: WindowResult, frames_per_second: int,
           decode: Callable[[list[int]], str]) -> Window:
    """A decoded window, with faster-whisper's Segment fields and what cutting it needs."""
    return Window(
        start=start, end=end, seek=int(round(start * frames_per_second)),  # frames of the start
        text=r.text.strip(), tokens=tuple(r.tokens), token_text=token_texts(r.tokens, decode),
        token_logprobs=r.token_logprobs, avg_logprob=r.avg_logprob,
        compression_ratio=r.compression_ratio, no_speech_prob=r.no_speech_prob,
        temperature=r.temperature,
    )
