"""Which models a request may make the worker load.

`model`, `align_model` and `diarization_model` reach loaders that run code from what they load:
pyannote instantiates the classes a pipeline's config.yaml names and unpickles its checkpoints
(weights_only=False), and the operator's HF_TOKEN would be used to fetch them. So a value that
came from the request may name only the image's models (src/model_manifest.json, the official
worker's names, whisperx's own default alignment models), entries of MODELS_DIR, or what the
operator allows (`ALLOWED_REMOTE_MODELS`, or `ALLOW_REMOTE_MODELS=true`). Values the operator
set (environment variables, defaults) are configuration, not requests: never refused here.
Checked before any work or download.
"""

from __future__ import annotations

import os
from pathlib import Path

from whisperx.alignment import DEFAULT_ALIGN_MODELS_HF, DEFAULT_ALIGN_MODELS_TORCH

from rp_schema import Resolved

from . import settings
from .errors import InputError
from .models import MANIFEST, OFFICIAL_MODELS, models_dir

CHECKED = ("model", "align_model", "diarization_model")


def _known(parameter: str) -> set[str]:
    if parameter == "model":
        return (set(MANIFEST["whisper"]) | set(MANIFEST["whisper_aliases"])
                | set(MANIFEST.get("whisper_distil", {})) | set(OFFICIAL_MODELS))
    if parameter == "align_model":
        return (set(MANIFEST["alignment"].values()) | set(DEFAULT_ALIGN_MODELS_TORCH.values())
                | set(DEFAULT_ALIGN_MODELS_HF.values()))
    return set(MANIFEST["diarization"])


def in_models_dir(value: str) -> bool:
    """Whether a request's `value` names an existing entry of MODELS_DIR (by name, or by a path
    through MODELS_DIR or ending inside it). The operator's entries may be symlinks to anywhere
    (a network volume): the check is on the path as named, so no `..` is accepted (after a
    symlink the OS would resolve it in the link's target, outside MODELS_DIR)."""
    if ".." in Path(value).parts:
        return False
    root = Path(os.path.abspath(models_dir()))
    named = Path(os.path.abspath(root / value))  # root / "/abs" is "/abs"
    try:
        if named == root or not named.exists():
            return False
        # MODELS_DIR itself may be a symlink (/models -> /runpod-volume/models): either spelling
        return named.is_relative_to(root) or named.resolve().is_relative_to(root.resolve())
    except OSError:  # e.g. a name longer than the filesystem allows: no entry of MODELS_DIR
        return False


def allowed(parameter: str, value: str) -> bool:
    """Whether a request may name `value` for `parameter`."""
    config = settings.get()
    if value in _known(parameter) or config.allow_remote_models:
        return True
    if value in {v.strip() for v in config.allowed_remote_models.split(",") if v.strip()}:
        return True
    return in_models_dir(value)


def check(resolved: Resolved) -> None:
    """InputError naming every model the request named that the worker may not load, and the
    setting; values from the environment or defaults (`resolved.sources`) are the operator's."""
    job = resolved.values
    refused = [(name, value) for name in CHECKED
               if (value := getattr(job, name)) is not None
               and resolved.sources[name].startswith("request:") and not allowed(name, value)]
    if refused:
        raise InputError(" ".join(
            f"input '{name}': {value!r} is not a model of this image or a directory under "
            f"MODELS_DIR; other models load only when the worker allows them "
            f"(ALLOWED_REMOTE_MODELS={value}, or ALLOW_REMOTE_MODELS=true)."
            for name, value in refused))
