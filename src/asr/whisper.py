"""Loading the Whisper model and the VAD into the worker's model cache."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import torch
from whisperx.vads import Pyannote

from worker.models import cache, models_dir, offline

from .decoding import ThresholdedWhisperModel


@dataclass(frozen=True)
class Loaded:
    model: ThresholdedWhisperModel
    path: str
    compute_type: str
    device: str
    load_seconds: float  # 0.0 when the model was already warm


def load_whisper(path: str, compute_type: str, dev: str) -> Loaded:
    """One cache entry per concrete compute type: `default`/`auto` are keyed by what
    CTranslate2 resolved them to, so `default` and `float16` on CUDA share one model."""
    models = cache()
    with models.lock:
        concrete = models.aliases.get(("whisper", path, compute_type, dev), compute_type)
        key = (path, concrete, dev)
        if concrete in ("default", "auto") and key not in models.loaded("whisper"):
            model, seconds = _load(path, compute_type, dev)
            concrete = model.model.compute_type
            models.aliases[("whisper", path, compute_type, dev)] = concrete
            model, more = models.get("whisper", (path, concrete, dev), lambda: model)
            return Loaded(model, path, concrete, dev, seconds + more)
        model, seconds = models.get("whisper", key, lambda: _load(path, concrete, dev)[0])
        return Loaded(model, path, concrete, dev, seconds)


def _load(path: str, compute_type: str, dev: str) -> tuple[Any, float]:
    start = time.perf_counter()
    model = ThresholdedWhisperModel(
        path, device=dev, compute_type=compute_type,
        download_root=str(models_dir()) if models_dir().is_dir() else None,
        local_files_only=offline(), cpu_threads=os.cpu_count() or 4,
    )
    return model, time.perf_counter() - start


def load_vad(dev: str) -> Pyannote:
    """whisperx's pyannote VAD (weights ship in the whisperx wheel); thresholds are per job."""
    return cache().get("vad", (dev,), lambda: Pyannote(torch.device(dev), vad_onset=0.5))[0]
