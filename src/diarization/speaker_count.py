"""Voices a clustering joined, split apart again; one voice it cut in pieces, joined.

senko's spectral clustering takes the speaker count at the largest eigengap of a graph that
keeps a fixed number of neighbours per 1.5 s window. On short meetings with several speakers
that graph often joins two voices: on scripts/conversations.py's `dev` split every count error
of the default was one or two speakers too few (3 voices with pauses found as 2, 4 as 2 or 3,
6 as 5), none too many, while no two different voices there had centroids more alike than
0.75 and senko's own merge joins clusters from 0.8 up.

So each cluster is tried in two (k-means on its unit window embeddings), and split when the two
halves' centroids are less alike than `SPLIT_COSINE`: two voices, not one voice's spread. Each
half keeps at least `MIN_WINDOWS` windows, and a split never takes the count past `max_count`.
The split threshold sits well under the merge threshold, so a split is never merged back.

The other way round (`merge_fragments`): on a larger dev sample (12 conversations per
condition) a voice is sometimes found as two, one of them a few seconds long: such a fragment
joins its nearest cluster at a lower cosine than senko's merge.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans

# Chosen on `--split dev` only: 0.6 and 0.65 score the same there (DER of senko's turns 0.119
# -> 0.101, count error 0.21 -> 0.07), 0.5-0.55 split too little. The lower end is kept, far
# under the 0.8 at which senko's merge calls two clusters one voice.
SPLIT_COSINE = 0.6
# the fewest windows (1.5 s, 0.6 s apart: ~2.7 s of speech) either half keeps; on dev 4 and
# more leave a 3-voice and a 6-voice conversation one short (DER 0.111, 0.119)
MIN_WINDOWS = 3


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def split_voices(labels: np.ndarray, embeddings: np.ndarray, max_count: int) -> np.ndarray:
    """`labels` with every cluster that holds two voices split in two, until none does."""
    labels = np.asarray(labels).copy()
    vectors = _unit(np.asarray(embeddings, dtype=np.float64))
    tried: set[bytes] = set()  # clusters found to be one voice, by their members
    while len(np.unique(labels)) < max_count:
        for label in np.unique(labels):
            members = np.flatnonzero(labels == label)
            key = members.tobytes()
            if key in tried:
                continue
            tried.add(key)
            halves = _two_voices(vectors[members])
            if halves is not None:
                labels[members[halves]] = labels.max() + 1
                break
        else:
            break
    return labels


def _two_voices(vectors: np.ndarray) -> np.ndarray | None:
    """A mask of one half when the windows hold two voices, else None."""
    if len(vectors) < 2 * MIN_WINDOWS:
        return None
    halves = KMeans(n_clusters=2, random_state=0, n_init=10).fit_predict(vectors) == 1
    if min(halves.sum(), (~halves).sum()) < MIN_WINDOWS:
        return None
    a, b = _unit(vectors[halves].mean(axis=0)), _unit(vectors[~halves].mean(axis=0))
    return halves if float(a @ b) < SPLIT_COSINE else None


# Chosen on `--split dev --per-condition 12` only (84 conversations, 5 of them with a voice
# found as two): below 8-10 windows at 0.72-0.75 all score DER 0.121 -> 0.113 there; fewer
# windows (5-6) or 0.78 join too few fragments (0.115-0.120); more windows (12-16) or a lower
# cosine (0.6-0.7) score worse (0.116-0.244): real voices join too.
FRAGMENT_WINDOWS = 10  # fewer windows than this (~7 s of speech) make a fragment
FRAGMENT_COSINE = 0.73


def merge_fragments(labels: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
    """`labels` with each fragment (a cluster of fewer than FRAGMENT_WINDOWS windows) joined to
    the nearest other cluster when their centroids are at least FRAGMENT_COSINE alike, the
    smallest first.

    Why: a voice that sounds different for a few seconds (another prompt, a raised voice) forms
    a cluster of its own that senko's merge (0.8) keeps; a few windows' centroid is noisy, so it
    is held to a lower bar than two clusters with plenty of speech. Different voices' prompts
    embed 0.34-0.55 apart (medians, the dev set's voices), and a split's halves (under
    SPLIT_COSINE) are never joined back together."""
    labels = np.asarray(labels).copy()
    vectors = _unit(np.asarray(embeddings, dtype=np.float64))
    kept: set[int] = set()  # fragments with no cluster near enough
    while True:
        clusters = [int(c) for c in np.unique(labels)]
        sizes = {c: int((labels == c).sum()) for c in clusters}
        fragments = sorted((sizes[c], c) for c in clusters
                           if sizes[c] < FRAGMENT_WINDOWS and c not in kept)
        if len(clusters) < 2 or not fragments:
            return labels
        label = fragments[0][1]
        centroids = {c: _unit(vectors[labels == c].mean(axis=0)) for c in clusters}
        nearest = max((c for c in clusters if c != label),
                      key=lambda c: float(centroids[c] @ centroids[label]))
        if float(centroids[nearest] @ centroids[label]) >= FRAGMENT_COSINE:
            labels[labels == label] = nearest
        else:
            kept.add(label)
