"""The worker's own settings: environment only, set per endpoint by the operator (job
parameters, which a request can also set, are rp_schema's).

One typed table (`WorkerSettings`); the README's settings table is generated from it by
`scripts/params_doc.py`. Read fresh with `get()` where used, so a changed environment (tests,
a restarted worker) is seen; a bad value is an error naming the variable and what it expects.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from errors import JobError


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
        "Models kept in memory per kind (Whisper, alignment, diarization, VAD); beyond it the "
        "least recently used of that kind is dropped and torch's GPU cache released."))
    warm_up: bool = Field(True, description=(
        "Preload the default model (`MODEL`/`COMPUTE_TYPE`) at start."))
    local_input_dir: Path | None = Field(None, description=(
        "Lets `audio_file` name a file in this directory (local runs); no path may leave it."))
    allow_private_urls: bool = Field(False, description=(
        "Allow downloads from loopback/private/link-local addresses (refused by default, "
        "checked at every redirect)."))
    max_download_mb: float = Field(2048.0, ge=0, description=(
        "Larger downloads are stopped with an error (0: no limit)."))
    download_timeout_s: float = Field(60.0, gt=0, description=(
        "Read timeout per download (connect: 10 s); connection errors and 5xx are retried 3 "
        "times."))
    max_audio_seconds: float | None = Field(14400.0, gt=0, description=(
        "Longer inputs are refused before transcription (default 4 h: one float32 waveform "
        "is 230 MB per hour; cost per hour in BENCHMARKS.md)."))
    log_level: str = Field("INFO", description=(
        "Log level of the container log and of each job's `logs`."))
    runpod_webhook_post_output: str | None = Field(None, description=(
        "Set by RunPod; when present, `/status` shows per-stage progress."))

    @property
    def offline(self) -> bool:
        return self.hf_hub_offline or self.offline_mode


def env_name(field: str) -> str:
    return field.upper()


def get() -> WorkerSettings:
    """The settings as the environment says now."""
    try:
        return WorkerSettings()
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
