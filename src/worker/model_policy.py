"""Which models a request may make the worker load.

`model`, `align_model` and `diarization_model` reach loaders that run code from what they load:
pyannote instantiates the classes a pipeline's config.yaml names and unpickles its checkpoints
(weights_only=False), and the operator's HF_TOKEN would be used to fetch them. So a request may
name only the image's models (src/model_manifest.json, the official worker's names, whisperx's
own default alignment models), directories under MODELS_DIR, or what the operator allows
(`ALLOWED_REMOTE_MODELS`, or `ALLOW_REMOTE_MODELS=true`). Checked before any work or download.
"""

from __future__ import annotations

from pathlib import Path

from whisperx.alignment import DEFAULT_ALIGN_MODELS_HF, DEFAULT_ALIGN_MODELS_TORCH

from rp_schema import JobInput

from . import settings
from .errors import InputError
from .models import MANIFEST, OFFICIAL_MODELS, models_dir


def _known(parameter: str) -> set[str]:
    if parameter == "model":
        return (set(MANIFEST["whisper"]) | set(MANIFEST["whisper_aliases"])
                | set(MANIFEST.get("whisper_distil", {})) | set(OFFICIAL_MODELS))
    if parameter == "align_model":
        return (set(MANIFEST["alignment"].values()) | set(DEFAULT_ALIGN_MODELS_TORCH.values())
                | set(DEFAULT_ALIGN_MODELS_HF.values()))
    return set(MANIFEST["diarization"])


def allowed(parameter: str, value: str) -> bool:
    config = settings.get()
    if value in _known(parameter) or config.allow_remote_models:
        return True
    if value in {v.strip() for v in config.allowed_remote_models.split(",") if v.strip()}:
        return True
    root = models_dir().resolve()
    for candidate in (root / value, Path(value)):  # a name under MODELS_DIR, or a path
        if candidate.resolve().is_relative_to(root) and candidate.exists():
            return True
    return False


def check(job: JobInput) -> None:
    """InputError naming every requested model the worker may not load, and the setting."""
    refused = [(name, value) for name in ("model", "align_model", "diarization_model")
               if (value := getattr(job, name)) is not None and not allowed(name, value)]
    if refused:
        raise InputError(" ".join(
            f"input '{name}': {value!r} is not a model of this image or a directory under "
            f"MODELS_DIR; other models load only when the worker allows them "
            f"(ALLOWED_REMOTE_MODELS={value}, or ALLOW_REMOTE_MODELS=true)."
            for name, value in refused))
