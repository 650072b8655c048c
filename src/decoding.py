"""Two gaps in whisperx's batched pipeline, filled with whisperx's and faster-whisper's own parts.

1. whisperx decodes every window once, by beam search at temperature 0, and ignores
   `temperature`, fallback and the no-speech / log-prob / compression-ratio thresholds.
   `ThresholdedWhisperModel` keeps that fast batched pass and re-decodes only the windows that
   fail a threshold with faster-whisper's `generate_with_fallback`, which also drops windows
   that are silence (no_speech_prob above its threshold and a low log-probability).
2. whisperx's pyannote VAD binarizes with onset/offset only; `SpeechRegions` applies the
   job's min_duration_on/off and pad_onset/offset too.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import TranscriptionOptions, get_compression_ratio
from whisperx.asr import WhisperModel
from whisperx.diarize import Segment as VadSegment
from whisperx.vads import Pyannote, Vad
from whisperx.vads.pyannote import Binarize


@dataclass
class DecodeStats:
    windows: int = 0
    redecoded: int = 0
    silent: int = 0
    temperatures: list[float] = field(default_factory=list)


# Set per job by asr.transcribe; the model object itself is shared by every job.
decode_stats: ContextVar[DecodeStats | None] = ContextVar("decode_stats", default=None)


def _fails(text: str, avg_logprob: float, options: TranscriptionOptions) -> bool:
    cr, lp = options.compression_ratio_threshold, options.log_prob_threshold
    return (cr is not None and get_compression_ratio(text) > cr) or (
        lp is not None and avg_logprob < lp
    )


class ThresholdedWhisperModel(WhisperModel):
    def generate_segment_batched(
        self,
        features: np.ndarray,
        tokenizer: Tokenizer,
        options: TranscriptionOptions,
        encoder_output: Any = None,
    ) -> dict[str, list]:
        out = super().generate_segment_batched(features, tokenizer, options)
        texts, logprobs = list(out["text"]), list(out["avg_logprob"])
        stats = decode_stats.get() or DecodeStats()
        stats.windows += len(texts)
        sampling_first = options.temperatures[0] > 0  # the batched pass only does beam search
        for i, (text, avg_logprob) in enumerate(zip(texts, logprobs, strict=True)):
            if not (sampling_first or _fails(text, avg_logprob, options)):
                continue
            texts[i], logprobs[i], temperature, silent = self._redecode(
                features[i], tokenizer, options
            )
            stats.redecoded += 1
            stats.silent += silent
            stats.temperatures.append(temperature)
        return {"text": texts, "avg_logprob": logprobs}

    def _redecode(
        self, features: np.ndarray, tokenizer: Tokenizer, options: TranscriptionOptions
    ) -> tuple[str, float, float, bool]:
        previous = (
            tokenizer.encode(" " + options.initial_prompt.strip()) if options.initial_prompt else []
        )
        prompt = self.get_prompt(
            tokenizer, previous, without_timestamps=options.without_timestamps,
            prefix=options.prefix, hotwords=options.hotwords,
        )
        result, avg_logprob, temperature, _ = self.generate_with_fallback(
            self.encode(features), prompt, tokenizer, options
        )
        silent = (
            options.no_speech_threshold is not None
            and options.log_prob_threshold is not None
            and result.no_speech_prob > options.no_speech_threshold
            and avg_logprob < options.log_prob_threshold
        )
        text = "" if silent else tokenizer.decode(result.sequences_ids[0])
        return text, avg_logprob, temperature, silent


@dataclass(frozen=True)
class VadParams:
    onset: float
    offset: float
    min_duration_on: float
    min_duration_off: float
    pad_onset: float
    pad_offset: float


class SpeechRegions(Vad):
    """Per-job VAD: the shared pyannote scorer, binarized with the job's parameters."""

    def __init__(self, scorer: Pyannote, params: VadParams, duration: float):
        super().__init__(params.onset)
        self.scorer, self.params, self.duration = scorer, params, duration

    def __call__(self, audio: Any, **kwargs: Any) -> Any:
        return self.scorer(audio, **kwargs)

    preprocess_audio = staticmethod(Pyannote.preprocess_audio)

    def merge_chunks(
        self, scores: Any, chunk_size: float, onset: float, offset: float | None
    ) -> list[dict]:
        p = self.params
        # whisperx's Binarize can't pad or bridge gaps while also capping region length, so
        # binarize with all the job's parameters first, then split regions that are too long.
        regions = Binarize(
            onset=p.onset, offset=p.offset, min_duration_on=p.min_duration_on,
            min_duration_off=p.min_duration_off, pad_onset=p.pad_onset, pad_offset=p.pad_offset,
        )(scores).get_timeline()
        frames = scores.sliding_window
        times = np.array([frames[i].middle for i in range(scores.data.shape[0])])
        speech = scores.data.max(axis=1)
        segments = []
        for region in regions:
            # Padding can reach past either end of the audio; windows are sliced from it.
            start, end = max(0.0, region.start), min(self.duration, region.end)
            for a, b in _split(start, end, times, speech, chunk_size):
                segments.append(VadSegment(a, b, "UNKNOWN"))
        if not segments:
            return []
        return Vad.merge_chunks(segments, chunk_size, onset, offset)


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
