"""The job's one VAD pass: speech regions and the windows Whisper decodes.

whisperx's pipeline runs its VAD inside every `transcribe` call, and its pyannote binarization
applies onset/offset only. Here the shared pyannote scorer runs once per job; the scores are
binarized with all the job's rules (onset/offset, min_duration_on/off, pad_onset/offset),
long regions are cut at the quietest frame, and the regions are merged into windows of at most
`chunk_size` s (whisperx's merge). Language detection, transcription, the `translate` pass and
the out-of-memory retry all reuse the result. `enable_vad: false` gives fixed windows instead.

Streaming (`head` then `rest`): the same one pass in two parts. The first block's chunks are
scored first and the windows they already fix are decoded and streamed; the rest's chunks then
follow and all chunks are aggregated together, so the file's scores, speech and windows are
exactly the one-part pass's, for no more model work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pyannote.core import SlidingWindowFeature
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
    # The VAD's speech level per frame (frame centres s, highest class score), where the
    # windows came from VAD scores: `quietest` cuts a piece where its speech dips most.
    levels: tuple[np.ndarray, np.ndarray] | None = field(default=None, compare=False,
                                                         repr=False)


def find(scorer: Pyannote, audio: np.ndarray, params: VadParams, chunk_size: float,
         duration: float) -> SpeechWindows:
    """Run the VAD over the audio once and cut it into the job's speech windows."""
    return windows_from_scores(scores(scorer, audio), params, chunk_size, duration)


def scores(scorer: Pyannote, audio: np.ndarray) -> Any:
    """What whisperx's `Pyannote(...)` call returns (pyannote's pipeline applies its
    `_segmentation` Inference to the file), run with a hook that trims the C heap after each
    batch: without it an hour of audio leaves ~0.85 GB of freed-but-held heap (heap.py).
    tests/asr/test_decoding.py pins that both give the same scores."""
    return compat_pyannote.segmentation_scores(scorer.vad_pipeline, _file(audio),
                                               _trim_each_batch)


# Streaming: the first block the VAD scores (s, rounded up to whole batches of its chunks): its
# fixed windows are decoded while the rest of the file is scored. ~2 windows of speech; its
# scoring costs ~3 % of a 10-min file's VAD on a CPU.
FIRST_BLOCK = 60.0


@dataclass(frozen=True)
class Head:
    """The VAD over a file's first block (streaming)."""

    # The first windows, exactly the whole file's first windows: no later audio can change
    # them (see `_fixed`); `speech` holds the regions they are cut from.
    windows: SpeechWindows
    chunks: Any  # the block's raw chunk scores (SlidingWindowFeature), which `rest` extends
    next_sample: int  # where the rest's first chunk starts


def head(scorer: Pyannote, audio: np.ndarray, params: VadParams, chunk_size: float,
         block: float | None = None) -> Head | None:
    """Score the file's first `block` s and find the windows they fix; None when the file is
    too short to be worth two parts."""
    pipeline = scorer.vad_pipeline
    window, step, batch = compat_pyannote.segmentation_grid(pipeline, SAMPLE_RATE)
    # Whole batches of chunks, as the one-part pass batches them: each chunk's scores are then
    # computed in the very same batch (a batch's shape can change a model's float results).
    block = FIRST_BLOCK if block is None else block
    count = math.ceil(block * SAMPLE_RATE / (step * batch)) * batch
    samples = (count - 1) * step + window  # the block's audio: exactly its `count` chunks
    if samples + window >= len(audio):
        return None
    chunks = compat_pyannote.segmentation_chunks(pipeline, _file(audio[:samples]),
                                                 _trim_each_batch)
    scores = compat_pyannote.aggregate_chunks(pipeline, chunks, samples, SAMPLE_RATE)
    # Frames before the first frame of the rest's first chunk are covered by the block's
    # chunks alone: their scores are final (one frame less, for rounding).
    frames = scores.sliding_window
    final = frames.closest_frame(count * step / SAMPLE_RATE + 0.5 * frames.duration) - 1
    scores = SlidingWindowFeature(scores.data[:final], frames)
    edge = float(frames[final - 1].middle)
    found = windows_from_scores(scores, params, chunk_size, edge)
    return Head(_fixed(found, params, edge), chunks, count * step)


def rest(scorer: Pyannote, audio: np.ndarray, first: Head, params: VadParams,
         chunk_size: float, duration: float) -> SpeechWindows:
    """The rest of the file scored after `first`'s block: the one-part pass's result."""
    return windows_from_scores(rest_scores(scorer, audio, first), params, chunk_size, duration)


def rest_scores(scorer: Pyannote, audio: np.ndarray, first: Head) -> Any:
    """The whole file's scores (`scores`'s, equal to the last bit) from the first block's
    chunks and the rest's."""
    pipeline = scorer.vad_pipeline
    more = compat_pyannote.segmentation_chunks(pipeline, _file(audio[first.next_sample:]),
                                               _trim_each_batch)
    chunks = SlidingWindowFeature(np.concatenate([first.chunks.data, more.data]),
                                  first.chunks.sliding_window)
    return compat_pyannote.aggregate_chunks(pipeline, chunks, len(audio), SAMPLE_RATE)


def _fixed(found: SpeechWindows, params: VadParams, edge: float) -> SpeechWindows:
    """The windows of a block's speech that no audio after `edge` can change.

    Binarizing is causal up to the edge, so the regions can differ only at the end: the last
    region may go on, and a later region may join any region ending near the edge (its padded
    start, bridged by min_duration_off, reaches back pad_onset + min_duration_off). Cutting a
    long region (`_split`) is causal too: all its pieces but the last are fixed once its start
    is. whisperx's merge is greedy from the start: a window is closed by the first piece that
    does not fit, so a window is fixed once a fixed piece follows it."""
    reach = edge - params.pad_onset - params.min_duration_off - 0.1
    if not found.speech:
        return SpeechWindows([], [], True)
    if found.speech[-1][0] < reach:  # the last region's start is fixed, and all before it:
        windows = found.windows[:-2]  # pieces up to the last one (in the last window)
    else:
        kept = [r for r in found.speech[:-1] if r[1] < reach]
        end = kept[-1][1] if kept else -math.inf
        windows = [w for w, after in zip(found.windows, found.windows[1:], strict=False)
                   if after[0] < end]
    if not windows:
        return SpeechWindows([], [], True)
    # the speech the windows are cut from (the regions up to their end)
    cut = windows[-1][1]
    return SpeechWindows([(a, min(b, cut)) for a, b in found.speech if a < cut], windows, True)


def _file(audio: np.ndarray) -> dict[str, Any]:
    return {"waveform": Pyannote.preprocess_audio(audio), "sample_rate": SAMPLE_RATE}


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
        return SpeechWindows(speech, [], True, (times, level))
    merged = Vad.merge_chunks([VadSegment(a, b, "UNKNOWN") for a, b in pieces], chunk_size,
                              p.onset, p.offset)
    return SpeechWindows(speech, [(m["start"], m["end"]) for m in merged], True, (times, level))


def quietest(levels: tuple[np.ndarray, np.ndarray], start: float, end: float,
             margin: float) -> tuple[float, float] | None:
    """The frame of [start, end] with the lowest speech level, at least `margin` s from either
    end, and that level (a pause the VAD bridged is where its level dips); None when the span is
    too short."""
    times, level = levels
    inside = np.flatnonzero((times >= start + margin) & (times <= end - margin))
    if not inside.size:
        return None
    at = inside[np.argmin(level[inside])]
    return float(times[at]), float(level[at])


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
