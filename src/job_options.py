"""Each stage's own options, built once from the job's resolved parameters (as faster-whisper
builds `TranscriptionOptions` from `transcribe()`'s arguments). This module is where the
request's names meet the stages' names; no stage sees the whole request.

A stage the job doesn't run has None: `align` when no word timings are wanted (or for
task=translate, whose English text isn't what is spoken), `diarize` without diarization,
`translate` without `translate_to`, `embed` with `embeddings: false`.
"""

from __future__ import annotations

from dataclasses import dataclass

import rp_schema
from alignment import AlignOptions
from asr import AsrOptions, LanguageOptions, VadOptions, VadParams
from diarization import DiarizeOptions
from enrich.text_embeddings import EmbedOptions
from enrich.translation import TranslateOptions
from output.options import OutputOptions
from output.subtitles import Rules
from rp_schema import JobInput


@dataclass(frozen=True)
class JobOptions:
    vad: VadOptions
    language: LanguageOptions
    asr: AsrOptions
    align: AlignOptions | None
    diarize: DiarizeOptions | None
    identify: bool  # speaker_samples are matched against the diarized speakers
    translate: TranslateOptions | None  # machine translation (`translate_to`)
    embed: EmbedOptions | None  # text embeddings
    output: OutputOptions


def build(job: JobInput, warnings: list[str]) -> JobOptions:
    """The stages' options; a warning for each parameter the job can't honour."""
    wants_words = job.align_output or job.word_timestamps
    aligns = wants_words and job.task != "translate"
    if wants_words and not aligns:
        warnings.append("word alignment is skipped for task=translate: the English text is not "
                        "what is spoken in the audio.")
    if job.multilingual and job.language:
        warnings.append(f"language {job.language!r} is not used: multilingual detects each "
                        "speech window's language (faster-whisper's rule); leave language "
                        "null, or set multilingual to false to transcribe in one language.")
    identify = bool(job.speaker_samples) and job.speaker_verification is not False
    if job.speaker_samples and not identify:
        warnings.append("speaker_samples are ignored: speaker_verification is false.")
    return JobOptions(
        vad=vad_options(job),
        language=LanguageOptions(job.language, job.language_detection_max_tries,
                                 job.language_detection_min_prob, job.multilingual,
                                 tuple(job.expected_languages or ())),
        asr=asr_options(job),
        align=AlignOptions(job.align_model, job.interpolate_method, job.return_char_alignments,
                           job.batch_size) if aligns else None,
        diarize=diarize_options(job) if job.diarization else None,
        identify=identify,
        translate=TranslateOptions(job.translate_to, job.translation_model)
        if job.translate_to else None,
        embed=EmbedOptions(job.embeddings, job.embedding_model, job.embedding_dims)
        if job.embeddings != "false" else None,
        output=OutputOptions(
            format=job.output_format, transcription=job.transcription,
            translation=job.translation,
            cues=Rules.of(job.max_line_width, job.max_line_count, job.max_cue_duration,
                          job.highlight_words),
            min_segment_duration=job.min_segment_duration, words=wants_words,
            word_timestamps=job.word_timestamps, char_alignments=job.return_char_alignments,
            whisper_translation=job.translate,
            speaker_embeddings=job.return_speaker_embeddings, upload=job.upload_results,
            debug=job.debug),
    )


def vad_options(job: JobInput) -> VadOptions:
    return VadOptions(job.enable_vad, VadParams(
        job.vad_onset, job.vad_offset, job.min_duration_on, job.min_duration_off,
        job.pad_onset, job.pad_offset), job.chunk_size)


def asr_options(job: JobInput) -> AsrOptions:
    return AsrOptions(
        beam_size=job.beam_size, best_of=job.best_of, patience=job.patience,
        length_penalty=job.length_penalty, temperatures=rp_schema.temperatures(job),
        compression_ratio_threshold=job.compression_ratio_threshold,
        log_prob_threshold=job.log_prob_threshold,
        no_speech_threshold=job.no_speech_threshold,
        condition_on_previous_text=job.condition_on_previous_text,
        initial_prompt=job.initial_prompt, hotwords=job.hotwords,
        suppress_tokens=tuple(int(t) for t in job.suppress_tokens.split(",") if t.strip()),
        suppress_numerals=job.suppress_numerals, chunk_size=job.chunk_size,
        batch_size=job.batch_size, multilingual=job.multilingual,
        expected_languages=tuple(job.expected_languages or ()))


def diarize_options(job: JobInput) -> DiarizeOptions:
    return DiarizeOptions(
        backend=job.diarization_backend, model=job.diarization_model,
        token=job.huggingface_access_token, num_speakers=job.num_speakers,
        min_speakers=job.min_speakers, max_speakers=job.max_speakers,
        # speaker identification (speaker_samples) matches samples against these centroids
        embeddings=bool(job.return_speaker_embeddings or job.speaker_samples))
