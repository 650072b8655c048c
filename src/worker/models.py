"""The model catalogue and the worker's one model cache.

The catalogue is the manifest (model_manifest.json) and MODELS_DIR: `find`/`available` look a
name up for every kind; a Whisper name (`resolve_model`) is looked up under MODELS_DIR, then
taken as a path, then as a Hugging Face id (only when HF_HUB_OFFLINE is not set), and the
official worker's names (tiny ... large-v3, turbo) fall back to the nearest model the image
holds, with a warning. The stages load their models into `cache()`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ctranslate2

from . import gpu_faults, settings
from .errors import InputError

log = logging.getLogger("worker.models")

# The official faster-whisper worker's model names: a request may use them (a missing one falls
# back to the nearest model the image holds).
OFFICIAL_MODELS = (
    "tiny", "base", "small", "medium", "large-v1", "large-v2", "large-v3", "turbo",
    "distil-large-v2", "distil-large-v3", "distil-medium.en", "distil-small.en",
)
MANIFEST = json.loads((Path(__file__).with_name("model_manifest.json")).read_text())
# name -> Hugging Face repository of its CTranslate2 weights
# Baked by default (whisper) or on request (whisper_distil, `fetch_models.py --with distil`).
BAKEABLE = MANIFEST["whisper"] | MANIFEST["whisper_distil"]
HF_REPOS = {name: entry["repo"] for name, entry in BAKEABLE.items()} | {
    alias: BAKEABLE.get(target, {}).get("repo", target)
    for alias, target in MANIFEST["whisper_aliases"].items()
}
# What to use instead when an official name is not in the image, best first. The distil
# models (English-only, distilled decoder) are closest to turbo (multilingual, 4-layer decoder).
SUBSTITUTES = {n: ("large-v3", "large-v3-turbo") for n in OFFICIAL_MODELS}
SUBSTITUTES["turbo"] = ("large-v3-turbo", "large-v3")
SUBSTITUTES |= {n: ("large-v3-turbo", "large-v3") for n in MANIFEST["whisper_distil"]}


def models_dir() -> Path:
    return settings.get().models_dir


def use_nltk_data() -> None:
    """Point NLTK at MODELS_DIR/nltk_data, where punkt_tab is baked (never downloaded)."""
    import nltk

    path = str(models_dir() / "nltk_data")
    if path not in nltk.data.path:
        nltk.data.path.insert(0, path)


def offline() -> bool:
    """No downloads: HF_HUB_OFFLINE (the Hugging Face libraries' own switch) or OFFLINE_MODE."""
    return settings.get().offline


def device() -> str:
    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def _is_model_dir(path: Path) -> bool:
    return (path / "model.bin").is_file()


def find(kind: str, name: str, is_model: Callable[[Path], bool]
         ) -> tuple[Path, dict[str, Any]] | None:
    """The catalogue's one lookup, name -> manifest entry -> folder: the entry's folder (or a
    folder of that name) under MODELS_DIR, else `name` as a path; with the manifest entry ({}
    when the name is not in it). `is_model` says what a usable folder of this kind holds."""
    entry = MANIFEST.get(kind, {}).get(name, {})
    for local in (models_dir() / entry.get("dir", name), Path(name)):
        if is_model(local):
            return local, entry
    return None


def require(kind: str, name: str, is_model: Callable[[Path], bool], folders: tuple[str, ...],
            field: str, what: str) -> tuple[Path, dict[str, Any]]:
    """`find`, or the InputError naming the request's `field` and what this worker has."""
    found = find(kind, name, is_model)
    if found is None:
        from .errors import InputError

        raise InputError(
            f"{field}: {name!r} is not {what} in MODELS_DIR ({models_dir()}) nor a local path. "
            f"Available: {', '.join(available(kind, is_model, folders)) or 'none'}.")
    return found


def available(kind: str, is_model: Callable[[Path], bool], folders: tuple[str, ...]
              ) -> list[str]:
    """Names of `kind` that resolve here: the manifest's models that are present, and other
    model folders in `folders` under MODELS_DIR ("" is MODELS_DIR itself)."""
    listed = {e.get("dir") for e in MANIFEST.get(kind, {}).values()}
    names = {n for n in MANIFEST.get(kind, {}) if find(kind, n, is_model)}
    for sub in folders:
        folder, prefix = (models_dir() / sub, f"{sub}/") if sub else (models_dir(), "")
        for path in folder.iterdir() if folder.is_dir() else ():
            if prefix + path.name not in listed and is_model(path):
                names.add(prefix + path.name)
    return sorted(names)


def available_models() -> list[str]:
    root = models_dir()
    return sorted(p.name for p in root.iterdir() if _is_model_dir(p)) if root.is_dir() else []


def resolve_model(name: str, warnings: list[str]) -> str:
    """A local directory or a Hugging Face id for the requested model name."""
    baked = BAKEABLE.get(MANIFEST["whisper_aliases"].get(name, name), {})
    for local in (models_dir() / name, models_dir() / baked.get("dir", name)):
        if _is_model_dir(local):
            return str(local)
    if _is_model_dir(Path(name)):
        return name
    for substitute in SUBSTITUTES.get(name, ()):
        if _is_model_dir(models_dir() / substitute):
            warnings.append(
                f"model '{name}' is not in this image; using '{substitute}' instead."
            )
            return str(models_dir() / substitute)
    if not offline():
        return HF_REPOS.get(name, name)
    raise InputError(
        f"model: {name!r} is not in MODELS_DIR ({models_dir()}) and downloads are disabled "
        f"(HF_HUB_OFFLINE). Available: {', '.join(available_models()) or 'none'}."
    )


def resolve_compute_type(requested: str, dev: str, warnings: list[str]) -> str:
    supported = ctranslate2.get_supported_compute_types(dev)
    if requested in ("default", "auto") or requested in supported:
        return requested
    fallback = fallback_compute_type(dev, supported)
    warnings.append(
        f"compute_type '{requested}' is not supported on {dev}; using '{fallback}'. "
        f"Supported here: {', '.join(sorted(supported))}."
    )
    return fallback


def fallback_compute_type(dev: str, supported: set[str]) -> str:
    """What to use instead of an unsupported compute type: on a GPU a half-precision type
    (int8 there runs in float32 and is slower than float16), on a CPU int8."""
    preferred = ("int8_float16", "float16") if dev == "cuda" else ("int8",)
    return next((t for t in (*preferred, "float32") if t in supported), "float32")


class ModelCache:
    """The worker's one cache: loaded models stay in memory across jobs. The budget is per kind
    (whisper, vad, align, diarize, speaker_embedding, translation, embedding): a job needs one
    of each at once, so one shared budget would unload within a job. Beyond `capacity` of a
    kind the least recently used is dropped and torch's cached GPU memory released (a large-v3
    holds ~3 GB of GPU memory in float16, a wav2vec2-large ~1.2 GB)."""

    def __init__(self, capacity: int):
        self.capacity = max(1, capacity)
        self._models: dict[str, OrderedDict[tuple, Any]] = {}
        # a loader's requested key -> what the request resolved to (e.g. Whisper's
        # "default" compute type -> the concrete one CTranslate2 chose), kept with the models
        self.aliases: dict[tuple, Any] = {}
        self.lock = threading.RLock()  # loaders that resolve before they load hold it too

    def loaded(self, kind: str) -> list[tuple]:
        return list(self._models.get(kind, {}))

    def get(self, kind: str, key: tuple, load: Callable[[], Any]) -> tuple[Any, float]:
        """The cached model for `key`, loading it if needed; also the seconds spent loading."""
        with self.lock:
            models = self._models.setdefault(kind, OrderedDict())
            if key in models:
                models.move_to_end(key)
                return models[key], 0.0
            start = time.perf_counter()
            log.info("loading %s model %s", kind, key[0])
            models[key] = load()
            seconds = time.perf_counter() - start
            log.info("loaded %s model %s in %.1f s", kind, key[0], seconds)
            self._evict(kind)
            return models[key], seconds

    def _evict(self, kind: str) -> None:
        models = self._models[kind]
        if len(models) <= self.capacity:
            return
        while len(models) > self.capacity:
            dropped, _ = models.popitem(last=False)
            log.info("unloaded %s model %s (MAX_LOADED_MODELS)", kind, dropped[0])
        gpu_faults.free_memory()  # else torch keeps the freed blocks reserved


def _capacity() -> int:
    # A bad value must not crash-loop the worker at import: log it and use the default.
    try:
        return settings.get().max_loaded_models
    except settings.SettingsError as exc:
        default = settings.WorkerSettings.model_fields["max_loaded_models"].default
        log.error("%s Using %d.", exc, default)
        return default


_cache: ModelCache | None = None
_cache_lock = threading.Lock()


def cache() -> ModelCache:
    """The worker's one model cache, made on first use (not at import) from MAX_LOADED_MODELS."""
    global _cache
    with _cache_lock:
        if _cache is None:
            _cache = ModelCache(_capacity())
        return _cache
