"""The response of one job, assembled from what its stages returned: the official worker's
fields, the speakers, the renderings the job asked for, its warnings and (`debug: true`) what
it ran with and how long each stage took."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ctranslate2
import torch
import whisperx

import alignment
import asr
import diarization
import inputs
import speakers
from asr import Segment
from enrich import translation as mt
from rp_schema import Resolved
from worker.timings import Timings

from .formats import render
from .options import OutputOptions


@dataclass(frozen=True)
class Outcome:
    """What one job's stages returned, in the order they ran."""

    audio: inputs.Audio
    loaded: asr.Loaded
    language: asr.Language
    transcript: asr.Transcript
    segments: list[Segment]  # final: aligned, with speakers, shared out, numbered
    english: asr.Transcript | None  # Whisper's own English (`translate: true`)
    aligned: alignment.Aligned | None
    diarized: diarization.Diarization | None
    samples: list[speakers.Sample]
    identified: speakers.Identification | None
    translated: mt.Translated | None  # machine translation (`translate_to`)
    text_vectors: dict[str, Any] | None
    timings: Timings
    device: str
    vad_options: asr.VadOptions  # what the stages ran with, for debug_info
    asr_options: asr.AsrOptions


def response(resolved: Resolved, outcome: Outcome, warnings: list[str],
             options: OutputOptions) -> dict[str, Any]:
    job = resolved.values
    o = outcome
    if not o.transcript.windows:
        warnings.append("no speech detected: the audio is silent or the VAD found no speech.")
    segments, language, audio, diarized, translated = (
        o.segments, o.language, o.audio, o.diarized, o.translated)
    response: dict[str, Any] = {
        "segments": segments,
        "detected_language": language.code,
        "language_probability": language.probability,
        "languages": languages_summary(o.transcript, segments),
        "duration": round(audio.duration, 3),
        "input_sha256": audio.sha256,
        # the official faster-whisper worker's fields, so its clients keep working
        "transcription": render(options.transcription, segments, language.code, options.cues),
        "translation": (render(options.translation, o.english.segments, "en", options.cues)
                        if o.english is not None else None),
        "device": o.device,
        "model": job.model,
    }
    if diarized is not None:
        response["speakers"] = diarization.speakers_summary(diarized.turns, segments)
        response["speaker_turns"] = speakers.turns_output(diarized.turns)
    if options.speaker_embeddings:
        response["speaker_embeddings"] = embeddings_output(diarized)
    if options.word_timestamps:
        response["word_timestamps"] = [
            {"word": w["word"], "start": w.get("start"), "end": w.get("end"),
             "probability": w.get("probability")}
            for s in segments for w in s.get("words", [])
        ]
    if options.format != "json":
        response[options.format] = render(options.format, segments, language.code,
                                          options.cues)
    if translated is not None:
        response["translated"] = {"language": translated.language, "model": translated.model,
                                "segments": translated.segments}
        if options.format != "json":
            response["translated"][options.format] = render(
                options.format, translated.segments, translated.language, options.cues)
    if o.text_vectors is not None:
        response["embeddings"] = o.text_vectors
    response["warnings"] = warnings
    if options.debug:
        response["debug_info"] = debug_info(resolved, o)
    return response


def languages_summary(transcript: asr.Transcript, segments: list[Segment]
                      ) -> list[dict[str, Any]]:
    """Each language spoken: its VAD speech (s) and its segments, most speech first."""
    counts: dict[str, int] = {}
    for s in segments:
        counts[s.get("language", "")] = counts.get(s.get("language", ""), 0) + 1
    return [{"code": code, "speech_seconds": round(seconds, 3), "segments": counts.get(code, 0)}
            for code, seconds in transcript.speech_by_language().items()]


def debug_info(resolved: Resolved, o: Outcome) -> dict[str, Any]:
    """What the job ran with and how long each stage took (`debug: true`)."""
    job = resolved.values
    audio, loaded, language, transcript = o.audio, o.loaded, o.language, o.transcript
    aligned, diarized, device = o.aligned, o.diarized, o.device
    return {
        "audio": audio.check,
        "runtime": runtime_info(device),
        "model": {
            "name": job.model, "path": loaded.path, "compute_type": loaded.compute_type,
            "load_seconds": round(loaded.load_seconds, 3),
            "asr_options": o.asr_options.faster_whisper(),
            "vad_options": o.vad_options.report(),
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
            "multilingual": o.asr_options.multilingual,
            "cut_as_mixed_language": transcript.stats.mixed,
        },
        "alignment": ({"method": aligned.method, "model": aligned.model}
                      # several languages (multilingual): what each was aligned with
                      | ({"by_language": aligned.by_language} if aligned.by_language else {})
                      if aligned else None),
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
        "timings": _timings_report(o.timings),
        **gpu_memory(device),
        "speaker_identification": (speakers.identification_debug(o.identified, o.samples)
                                   if o.identified else None),
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
