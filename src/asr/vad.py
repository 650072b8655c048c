"""The job's one VAD pass: speech regions and the windows Whisper decodes.

whisperx's pipeline runs its VAD inside every `transcribe` call, and its pyannote binarization
applies onset/offset only. Here the shared pyannote scorer runs once per job; the scores are
binarized with all the job's rules (onset/offset, min_duration_on/off, pad_onset/offset),
long regions are cut at the quietest frame, and the regions are merged into windows of at most
`chunk_size` s (whisperx's merge). Language detection, transcription, the `translate` pass and
the out-of-memory retry all reuse the result. `enable_vad: false` gives fixed windows instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from whisperx.diarize import Segment as VadSegment
from whisperx.vads import Pyannote, Vad
from whisperx.vads.pyannote import Binarize

from worker import SAMPLE_RATE, heap
from worker.compat import pyannote as compat_pyannote


@dataclass(frozen=True)
class VadParams:
    onset: float
    offset: float
    min_duration_on: float
    min_duration_off: float
    pad_onset: float
    pad_offset: float


@dataclass(frozen=True)
class SpeechWindows:
    # Speech regions after the job's padding / min-duration rules (s), clipped to the audio.
    speech: list[tuple[float, float]]
    # What Whisper decodes: each at most chunk_size s, in order, not overlapping.
    windows: list[tuple[float, float]]
    vad: bool  # False: fixed windows (enable_vad=false)


def find(scorer: Pyannote, audio: np.ndarray, params: VadParams, chunk_size: float,
         duration: float) -> SpeechWindows:
    """Run the VAD over the audio once and cut it into the job's speech windows."""
    return windows_from_scores(scores(scorer, audio), params, chunk_size, duration)


def scores(scorer: Pyannote, audio: np.ndarray) -> Any:
    """What whisperx's `Pyannote(...)` call returns (pyannote's pipeline applies its
    `_segmentation` Inference to the file), run with a hook that trims the C heap after each
    batch: without it an hour of audio leaves ~0.85 GB of freed-but-held heap (heap.py).
    tests/test_decoding.py pins that both give the same scores."""
    file = {"waveform": Pyannote.preprocess_audio(audio), "sample_rate": SAMPLE_RATE}
    return compat_pyannote.segmentation_scores(scorer.vad_pipeline, file, _trim_each_batch)


def _trim_each_batch(*_: Any, completed: int | None = None, **__: Any) -> None:
    if completed:  # pyannote's Inference reports progress after each batch
        heap.release()


def windows_from_scores(scores: Any, params: VadParams, chunk_size: float,
                        duration: float) -> SpeechWindows:
    """Binarize pyannote VAD scores (SlidingWindowFeature) with the job's rules, then window."""
    p = params
    # whisperx's Binarize can't pad or bridge gaps while also capping region length, so
    # binarize with all the job's parameters first, then split regions that are too long.
    regions = Binarize(
        onset=p.onset, offset=p.offset, min_duration_on=p.min_duration_on,
        min_duration_off=p.min_duration_off, pad_onset=p.pad_onset, pad_offset=p.pad_offset,
    )(scores).get_timeline()
    # Padding can reach past either end of the audio; windows are sliced from it.
    speech = [(max(0.0, r.start), min(duration, r.end)) for r in regions]
    speech = [(float(a), float(b)) for a, b in speech if b > a]
    frames = scores.sliding_window
    times = frames.start + frames.duration / 2 + frames.step * np.arange(scores.data.shape[0])
    level = scores.data.max(axis=1)
    pieces = [piece for a, b in speech for piece in _split(a, b, times, level, chunk_size)]
    if not pieces:
        return SpeechWindows(speech, [], True)
    merged = Vad.merge_chunks([VadSegment(a, b, "UNKNOWN") for a, b in pieces], chunk_size,
                              p.onset, p.offset)
    return SpeechWindows(speech, [(m["start"], m["end"]) for m in merged], True)


def fixed(duration: float, chunk_size: float) -> SpeechWindows:
    """enable_vad=false: the whole audio in equal windows of at most chunk_size s (equal, so
    no window is a sliver of a second that Whisper would fill with a hallucination)."""
    if duration <= 0:
        return SpeechWindows([], [], False)
    count = math.ceil(duration / chunk_size - 1e-9)
    edges = [round(duration * i / count, 3) for i in range(count + 1)]
    return SpeechWindows([(0.0, duration)], list(zip(edges, edges[1:], strict=False)), False)


def _split(
    start: float, end: float, times: np.ndarray, speech: np.ndarray, max_len: float
) -> list[tuple[float, float]]:
    """Cut [start, end] into pieces of at most max_len s, each cut at the frame with the lowest
    speech score in the second half of the piece (the rule whisperx's Binarize uses)."""
    pieces = []
    while end - start > max_len:
        window = np.flatnonzero((times > start + max_len / 2) & (times < start + max_len))
        cut = times[window[np.argmin(speech[window])]] if window.size else start + max_len
        pieces.append((start, float(cut)))
        start = float(cut)
    if end > start:
        pieces.append((start, end))
    return pieces


class PrecomputedVad(Vad):
    """Hands the job's windows to whisperx's FasterWhisperPipeline.transcribe, which calls
    `preprocess_audio`, `__call__` and `merge_chunks` on its VAD: no second VAD pass."""

    def __init__(self, windows: SpeechWindows):
        super().__init__(0.5)
        self.speech = windows

    def preprocess_audio(self, audio: Any) -> Any:
        return audio  # nothing to prepare: no model runs

    def __call__(self, audio: Any, **kwargs: Any) -> None:
        return None

    def merge_chunks(self, segments: Any, chunk_size: float, onset: float = 0.5,
                     offset: float | None = None) -> list[dict]:
        return [{"start": a, "end": b, "segments": [(a, b)]} for a, b in self.speech.windows]
