"""Clustering of the campplus backend's CAM++ embeddings, as a pyannote clustering step.

pyannote's SpeakerDiarization calls `clustering(embeddings=(chunks, local speakers, dim),
segmentations=..., num_clusters=, min_clusters=, max_clusters=)` and wants back
(hard_clusters, soft_clusters, centroids): BaseClustering's public contract, which this keeps
(tests/diarization/test_diarization.py pins it). What changes is how the clusters are found:

- `ahc`: pyannote's own agglomerative clustering (centroid linkage, a distance threshold and a
  minimum cluster size), with the values retuned on the real-voice dev set.
- `spectral`: spectral clustering with the number of speakers from the eigengap of the pruned
  cosine-affinity Laplacian (as 3D-Speaker clusters CAM++ embeddings), bounded by the request.
- either can take a lower bound on the speaker count from segmentation-3.0 itself: when one
  10 s chunk holds k clearly active local speakers, the recording has at least k.

Hours of audio stay bounded: at most MAX_EMBEDDINGS embeddings (evenly spaced) are clustered,
a (n, n) matrix of 2000² floats (32 MB); every embedding is then assigned to its nearest
cluster centroid (pyannote's assign_embeddings), which is linear in the audio's length.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pyannote.audio.pipelines.clustering import AgglomerativeClustering, BaseClustering
from pyannote.core import SlidingWindowFeature
from sklearn.cluster import KMeans

MAX_EMBEDDINGS = 2000


@dataclass(frozen=True)
class Settings:
    method: str = "ahc"  # "ahc" | "spectral"
    threshold: float = 0.56  # ahc: centroid-linkage distance between unit embeddings
    min_cluster_size: int = 12  # ahc: smaller clusters are merged into the nearest large one
    prune: float = 0.2  # spectral: fraction of neighbours each embedding keeps in the affinity
    max_speakers: int = 8  # spectral: eigengap searched up to this many speakers
    local_count: float = 0.0  # > 0: lower bound from chunks with local speakers this active


def local_speaker_bound(segmentations: SlidingWindowFeature, active_ratio: float) -> int:
    """The most local speakers any one chunk holds, counting a speaker only when it alone is
    active for `active_ratio` of the chunk (segmentation-3.0 flickers in overlaps)."""
    data = segmentations.data  # (chunks, frames, local speakers), 0/1
    alone = data * (data.sum(axis=2, keepdims=True) == 1)
    active = alone.sum(axis=1) >= active_ratio * data.shape[1]
    return int(active.sum(axis=1).max()) if len(data) else 1


def spectral(embeddings: np.ndarray, min_clusters: int, max_clusters: int,
             num_clusters: int | None, prune: float) -> np.ndarray:
    n = len(embeddings)
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    affinity = unit @ unit.T
    keep = max(2, int(round(prune * n)))
    # per row, zero all but the `keep` most similar: what remains links same-speaker embeddings
    cutoff = np.partition(affinity, n - keep, axis=1)[:, n - keep][:, None]
    affinity = np.where(affinity >= cutoff, affinity, 0.0)
    affinity = np.clip(0.5 * (affinity + affinity.T), 0.0, None)
    np.fill_diagonal(affinity, 0.0)
    laplacian = np.diag(affinity.sum(axis=1)) - affinity
    values, vectors = np.linalg.eigh(laplacian)
    if num_clusters is None:
        top = min(max_clusters, n - 1)
        gaps = np.diff(values[: top + 1])
        num_clusters = (int(np.argmax(gaps[min_clusters - 1:]) + min_clusters)
                        if top > min_clusters else min(min_clusters, n))
    if num_clusters <= 1:
        return np.zeros(n, dtype=int)
    return KMeans(num_clusters, n_init=10, random_state=0).fit_predict(vectors[:, :num_clusters])


class SpeakerClustering(BaseClustering):
    expects_num_clusters = False

    def __init__(self, settings: Settings = Settings()):
        super().__init__(metric="cosine")
        self.settings = settings
        self._ahc = AgglomerativeClustering(metric="cosine")
        self._ahc.instantiate({"method": "centroid", "threshold": settings.threshold,
                               "min_cluster_size": settings.min_cluster_size})
        self._min_from_segmentation = 1

    def filter_embeddings(self, embeddings, segmentations=None, min_active_ratio=0.2):
        kept, chunk_idx, speaker_idx = super().filter_embeddings(
            embeddings, segmentations=segmentations, min_active_ratio=min_active_ratio)
        if len(kept) > MAX_EMBEDDINGS:  # evenly over the recording; all are assigned later
            pick = np.linspace(0, len(kept) - 1, MAX_EMBEDDINGS).round().astype(int)
            kept, chunk_idx, speaker_idx = kept[pick], chunk_idx[pick], speaker_idx[pick]
        return kept, chunk_idx, speaker_idx

    def __call__(self, embeddings, segmentations=None, num_clusters=None, min_clusters=None,
                 max_clusters=None, **kwargs):
        if self.settings.local_count > 0 and num_clusters is None and segmentations is not None:
            bound = local_speaker_bound(segmentations, self.settings.local_count)
            min_clusters = max(min_clusters or 1, bound)
            if max_clusters is not None:
                min_clusters = min(min_clusters, max_clusters)
        return super().__call__(embeddings, segmentations=segmentations,
                                num_clusters=num_clusters, min_clusters=min_clusters,
                                max_clusters=max_clusters, **kwargs)

    def cluster(self, embeddings, min_clusters=None, max_clusters=None, num_clusters=None):
        min_clusters = min_clusters or 1
        max_clusters = max_clusters or len(embeddings)
        if self.settings.method == "spectral" and len(embeddings) > 2:
            top = max(min_clusters, min(max_clusters, self.settings.max_speakers))
            return spectral(embeddings, min_clusters, top, num_clusters, self.settings.prune)
        return self._ahc.cluster(embeddings, min_clusters=min_clusters,
                                 max_clusters=max_clusters, num_clusters=num_clusters)
