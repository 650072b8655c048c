"""The worker's own settings: environment only, set per endpoint by the operator (job
parameters, which a request can also set, are rp_schema's).

One typed table (`WorkerSettings`); the README's settings table is generated from it by
`scripts/params_doc.py`. Read fresh with `get()` where used, so a changed environment (tests,
a restarted worker) is seen; a bad value is an error naming the variable and what it expects.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import JobError


class SettingsError(JobError):
    """An environment variable of the worker has a value it can't use."""


class WorkerSettings(BaseSettings):
    # Field names are the variables' names in lower case; empty values count as unset.
    model_config = SettingsConfigDict(case_sensitive=False, env_ignore_empty=True,
                                      extra="ignore", frozen=True)

    models_dir: Path = Field(Path("/models"), description="Where models are looked up by name.")
    hf_hub_offline: bool = Field(False, description=(
        "`1`/`true`: never download (the Hugging Face libraries' own switch); unknown models "
        "are an error listing what is available, and backends that would download are skipped "
        "with a warning."))
    offline_mode: bool = Field(False, description="Same as `HF_HUB_OFFLINE`.")
    max_loaded_models: int = Field(2, ge=1, description=(
        "Models kept in memory per kind (Whisper, VAD, alignment, diarization, speaker "
        "embedding, translation, text embedding); beyond it the least recently used of that "
        "kind is dropped and torch's GPU cache released."))
    warm_up: bool = Field(True, description=(
        "Preload the default model (`MODEL`/`COMPUTE_TYPE`) at start."))
    local_input_dir: Path | None = Field(None, description=(
        "Lets `audio_file` name a file in this directory (local runs); no path may leave it."))
    allow_private_urls: bool = Field(False, description=(
        "Allow downloads from loopback/private/link-local addresses (refused by default, "
        "checked at every redirect)."))
    allowed_remote_models: str = Field("", description=(
        "Comma-separated Hugging Face ids (or local paths outside `MODELS_DIR`) that requests "
        "may name in `model`, `align_model` or `diarization_model`, besides the image's own "
        "models and directories under `MODELS_DIR`. Loading a model can run code from it."))
    allow_remote_models: bool = Field(False, description=(
        "`true`: requests may name any model id or path (trusted clients only)."))
    max_download_mb: float = Field(2048.0, ge=0, description=(
        "Larger downloads are stopped with an error (0: no limit)."))
    download_timeout_s: float = Field(60.0, gt=0, description=(
        "Read timeout per download (connect: 10 s); connection errors and 5xx are retried 3 "
        "times."))
    download_deadline_s: float = Field(600.0, gt=0, description=(
        "Longest a whole download may take (a server dripping bytes can't hold a job)."))
    max_audio_seconds: float | None = Field(14400.0, gt=0, description=(
        "Longer inputs are refused before transcription (default 4 h: one float32 waveform "
        "is 230 MB per hour; cost per hour in BENCHMARKS.md)."))
    log_level: str = Field("INFO", description=(
        "Log level of the container log and of each job's `logs`."))
    container_log: Path | None = Field(Path("container_log.txt"), description=(
        "File the worker also appends every log line to (tokens masked), rotated by size; "
        "relative to the working directory."))
    container_log_max_mb: float = Field(10.0, gt=0, description=(
        "Size at which `CONTAINER_LOG` is rotated."))
    container_log_backups: int = Field(3, ge=0, description=(
        "Rotated `CONTAINER_LOG` files kept (`container_log.txt.1`, ...)."))
    bucket_endpoint_url: str | None = Field(None, description=(
        "S3-compatible endpoint for results (runpod `rp_upload` convention, e.g. "
        "`https://s3.us-east-1.amazonaws.com`); with the two keys below, every job's full "
        "result is uploaded and the response carries presigned URLs (see `upload_results`)."))
    bucket_access_key_id: str | None = Field(None, description="Access key id for the bucket.")
    bucket_secret_access_key: SecretStr | None = Field(None, description=(
        "Secret key for the bucket; never logged or returned."))
    bucket_name: str | None = Field(None, description=(
        "Bucket for results (unset: runpod's default, the month as `MM-YY`); objects are "
        "named `<job id>/result.json`, `<job id>/result.<format>`."))
    upload_url_expiry_s: int = Field(604800, ge=60, le=604800, description=(
        "Lifetime of the presigned result URLs (S3's maximum, 7 days, by default)."))
    max_response_mb: float = Field(10.0, gt=0, description=(
        "Largest response returned inline (RunPod: /run ~10 MB, /runsync ~20 MB). Without a "
        "bucket, jobs predicted to exceed it fail before transcription; larger results are "
        "truncated with a warning."))
    stream_results: bool = Field(False, description=(
        "`true`: the worker streams each job through RunPod's `/stream`: progress per stage, "
        "each decoded batch's segments as soon as it is decoded, the final segments, and the "
        "usual response as the last element; `/runsync` and `/status` then return the list "
        "of every element (see [Streaming](#streaming)). For the whole endpoint, not per "
        "request."))
    runpod_webhook_post_output: str | None = Field(None, description=(
        "Set by RunPod; when present, `/status` shows per-stage progress."))

    @property
    def offline(self) -> bool:
        return self.hf_hub_offline or self.offline_mode


def env_name(field: str) -> str:
    return field.upper()


_PARSED: dict[tuple[tuple[str, str], ...], WorkerSettings] = {}


def get() -> WorkerSettings:
    """The settings as the environment says now. Parsed once per distinct set of the worker's
    variables: a parse costs milliseconds, and models_dir()/offline() ask many times a job."""
    # case_sensitive=False: pydantic-settings matches variable names in any case
    key = tuple(sorted((k.lower(), v) for k, v in os.environ.items()
                       if k.lower() in WorkerSettings.model_fields))
    if (parsed := _PARSED.get(key)) is not None:
        return parsed
    try:
        parsed = _PARSED[key] = WorkerSettings()
        if len(_PARSED) > 64:  # tests change the environment a lot; a worker never does
            _PARSED.clear()
            _PARSED[key] = parsed
        return parsed
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = env_name(str(error["loc"][0]))
            info = WorkerSettings.model_fields[str(error["loc"][0])]
            problems.append(f"environment variable {name}: got {error.get('input')!r}, "
                            f"expected {_expected(info.annotation)} ({error['msg']}).")
        raise SettingsError(" ".join(problems)) from None


def _expected(annotation: object) -> str:
    text = getattr(annotation, "__name__", None) or str(annotation)
    return {"bool": "true or false", "int": "an integer", "float": "a number"}.get(text, text)
