"""Batched transcription of the job's speech windows (whisperx's pipeline, our decoder)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import whisperx
from faster_whisper.tokenizer import Tokenizer

from worker import gpu_faults

from . import vad
from .decoding import DecodeStats, WindowResult, decode_stats
from .options import AsrOptions, Task, VadOptions
from .segment import Segment
from .vad import PrecomputedVad, SpeechWindows
from .whisper import Loaded

log = logging.getLogger("worker.asr")

# Called with each decoded batch's segments (start, end, text), in time order: streaming.
OnSegments = Callable[[list[Segment]], None]


def find_speech(vad_model: Any, audio: np.ndarray, duration: float,
                options: VadOptions) -> SpeechWindows:
    """The job's one VAD pass (or fixed windows when enable_vad is false)."""
    if not options.enabled:
        return vad.fixed(duration, options.chunk_size)
    return vad.find(vad_model, audio, options.params, options.chunk_size, duration)


@dataclass(frozen=True)
class Window:
    """A decoded window with text: what its segments are cut from (output.segments)."""

    start: float
    end: float
    seek: int  # frames (10 ms) of the window start
    text: str  # stripped
    tokens: tuple[int, ...]  # text tokens, below end-of-text
    # each token's characters of the decoded text, in order ("" for a token that ends inside a
    # character: the token completing it carries the character)
    token_text: tuple[str, ...]
    # each token's log-probability (teacher-forced, decoding.py); empty when not scored
    token_logprobs: tuple[float, ...]
    avg_logprob: float  # faster-whisper's, of the whole window
    compression_ratio: float
    no_speech_prob: float
    temperature: float

    def segment(self) -> Segment:
        """The whole window as one segment, with faster-whisper's (Segment) fields."""
        return {"start": self.start, "end": self.end, "text": self.text, "seek": self.seek,
                "tokens": list(self.tokens), "temperature": self.temperature,
                "avg_logprob": round(self.avg_logprob, 4),
                "compression_ratio": round(self.compression_ratio, 4),
                "no_speech_prob": round(self.no_speech_prob, 4)}


@dataclass(frozen=True)
class Transcript:
    windows: list[Window]  # the decoded windows with text, what segments are cut from
    stats: DecodeStats
    speech: list[tuple[float, float]]  # the job's VAD speech regions (s), see vad.py

    @property
    def segments(self) -> list[Segment]:
        """One segment per window, with faster-whisper's fields."""
        return [w.segment() for w in self.windows]


def transcribe(
    loaded: Loaded, windows: SpeechWindows, audio: np.ndarray, options: AsrOptions,
    language: str, task: Task, warnings: list[str], score_tokens: bool = False,
    stage: str = "transcription", on_segments: OnSegments | None = None,
) -> Transcript:
    """The windows decoded at the job's batch_size; out of GPU memory, once more at half.
    `score_tokens`: the job will cut windows into several segments, which then need their
    tokens' own log-probabilities (decoding.py). `on_segments` gets each batch's windows as
    soon as they are decoded (Partials)."""
    partials = Partials(windows.windows, on_segments) if on_segments else None
    return gpu_faults.retry_on_oom(
        stage, lambda batch: decode_windows(loaded, windows, audio, options, language, task,
                                            score_tokens, batch, partials),
        options.batch_size, warnings)


class Partials:
    """Hands the decoded windows on as plain segments, in time order, as each batch finishes.
    A window waiting for the temperature fallback (decoding.py, rule 2) holds back the ones
    after it until its re-decode has run, so every window is sent once, with its final text;
    kept across the out-of-memory retry, so a retry sends none twice."""

    def __init__(self, windows: list[tuple[float, float]], send: OnSegments):
        self.windows, self.send, self.sent = windows, send, 0

    def __call__(self, stats: DecodeStats) -> None:
        done = min((p.index for p in stats.queue), default=len(stats.results))
        segments = [Segment(start=round(a, 3), end=round(b, 3), text=r.text.strip())
                    for (a, b), r in zip(self.windows[self.sent:done],
                                         stats.results[self.sent:done], strict=True)
                    if r.text.strip()]
        self.sent = max(self.sent, done)
        if segments:
            self.send(segments)


def decode_windows(
    loaded: Loaded, windows: SpeechWindows, audio: np.ndarray, options: AsrOptions,
    language: str, task: Task, score_tokens: bool, batch_size: int,
    partials: Partials | None = None,
) -> Transcript:
    stats = DecodeStats(batch_size=batch_size, score_tokens=score_tokens)
    if not windows.windows:
        return Transcript([], stats, windows.speech)
    # A pipeline per job: whisperx's pipeline keeps per-call state (tokenizer, options),
    # while the heavy model inside it is shared and stays warm. Its VAD is the job's windows.
    pipeline = whisperx.load_model(
        loaded.path, loaded.device, compute_type=loaded.compute_type, model=loaded.model,
        asr_options=options.faster_whisper(), language=language, task=task,
        vad_model=PrecomputedVad(windows),  # the job's windows: its options are not used
        vad_options={"chunk_size": options.chunk_size},
    )
    token = decode_stats.set(stats)
    try:
        result = pipeline.transcribe(
            audio, batch_size=batch_size, language=language, task=task,
            chunk_size=options.chunk_size,
            # called per window once its batch is decoded, before the next batch starts
            progress_callback=partials and (lambda _percent: partials(stats)),
        )
        loaded.model.finish_fallback(stats)  # the windows still queued for the fallback
        if partials:
            partials(stats)
    finally:
        decode_stats.reset(token)
    fps = loaded.model.frames_per_second
    tokenizer = Tokenizer(loaded.model.hf_tokenizer, loaded.model.model.is_multilingual,
                          task=task, language=language)
    decoded = [
        window(s["start"], s["end"], r, fps, tokenizer.decode)
        for s, r in zip(result["segments"], stats.results, strict=True)
        if r.text.strip()
    ]
    log.info(
        "%s: %d windows, %d re-decoded in %d batched passes (%d stable), %d dropped as silence",
        task, stats.windows, stats.redecoded, stats.fallback_passes, stats.stable, stats.silent,
    )
    return Transcript(decoded, stats, windows.speech)


def window(start: float, end: float, r: WindowResult, frames_per_second: int,
           decode: Callable[[list[int]], str]) -> Window:
    """A decoded window, with faster-whisper's Segment fields and what cutting it needs."""
    return Window(
        start=start, end=end, seek=int(round(start * frames_per_second)),
        text=r.text.strip(), tokens=tuple(r.tokens), token_text=token_texts(r.tokens, decode),
        token_logprobs=r.token_logprobs, avg_logprob=r.avg_logprob,
        compression_ratio=r.compression_ratio, no_speech_prob=r.no_speech_prob,
        temperature=r.temperature,
    )


def token_texts(tokens: Sequence[int], decode: Callable[[list[int]], str]) -> tuple[str, ...]:
    """Each token's characters of `decode(tokens)`, in order. Byte-level BPE can end a token
    inside a character; such a token gets "" and the one completing the character carries it
    (faster-whisper's split_tokens_on_unicode, keeping every token)."""
    full = decode(list(tokens))
    out: list[str] = []
    pending: list[int] = []
    offset = 0
    for token in tokens:
        pending.append(token)
        text = decode(pending)
        bad = text.find("\ufffd")
        if bad < 0 or full[offset + bad: offset + bad + 1] == "\ufffd":  # complete, or a real �
            out += [""] * (len(pending) - 1) + [text]
            offset += len(text)
            pending = []
    return tuple(out + [""] * len(pending))
