"""Batched transcription of the job's speech windows (whisperx's pipeline, our decoder)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import whisperx
from faster_whisper.tokenizer import Tokenizer

from worker import gpu_faults

from . import vad
from .decoding import DecodeStats, ThresholdedWhisperModel, WindowResult, decode_stats
from .options import AsrOptions, Task, VadOptions
from .segment import Segment
from .vad import PrecomputedVad, SpeechWindows
from .whisper import Loaded

log = logging.getLogger("worker.asr")

# Called with each decoded batch's segments (start, end, text), in time order: streaming.
OnSegments = Callable[[list[Segment]], None]
# Streaming: the windows of the first batch (then batch_size each), so that the first segments
# arrive after a few windows' decoding. Its cost is one more, small batch.
STREAM_FIRST_BATCH = 4


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
    language: str  # its own (multilingual), else the job's
    language_probability: float | None = None  # the detector's, when detected for it alone

    def segment(self) -> Segment:
        """The whole window as one segment, with faster-whisper's (Segment) fields."""
        return {"start": self.start, "end": self.end, "text": self.text, "seek": self.seek,
                "tokens": list(self.tokens), "temperature": self.temperature,
                "avg_logprob": round(self.avg_logprob, 4),
                "compression_ratio": round(self.compression_ratio, 4),
                "no_speech_prob": round(self.no_speech_prob, 4)} | self.language_fields()

    def language_fields(self) -> Segment:
        """`language` on every segment; `language_probability` where detected per window."""
        if self.language_probability is None:
            return {"language": self.language}
        return {"language": self.language, "language_probability": self.language_probability}


@dataclass(frozen=True)
class Transcript:
    windows: list[Window]  # the decoded windows with text, what segments are cut from
    stats: DecodeStats
    speech: list[tuple[float, float]]  # the job's VAD speech regions (s), see vad.py

    def speech_by_language(self) -> dict[str, float]:
        """Seconds of VAD speech in each language's windows, most first."""
        seconds: dict[str, float] = {}
        for w in self.windows:
            inside = sum(max(0.0, min(b, w.end) - max(a, w.start)) for a, b in self.speech)
            seconds[w.language] = seconds.get(w.language, 0.0) + (inside or w.end - w.start)
        return dict(sorted(seconds.items(), key=lambda kv: -kv[1]))

    @property
    def segments(self) -> list[Segment]:
        """One segment per window, with faster-whisper's fields."""
        return [w.segment() for w in self.windows]


def transcribe(
    loaded: Loaded, windows: SpeechWindows, audio: np.ndarray, options: AsrOptions,
    language: str, task: Task, warnings: list[str], score_tokens: bool = False,
    stage: str = "transcription", on_segments: OnSegments | None = None,
    rest: Callable[[], SpeechWindows] | None = None,
) -> Transcript:
    """The windows decoded at the job's batch_size; out of GPU memory, once more at half.
    `score_tokens`: the job will cut windows into several segments, which then need their
    tokens' own log-probabilities (decoding.py). `on_segments` gets each batch's windows as
    soon as they are decoded (Partials). `rest` (streaming): `windows` are only the file's
    first windows (vad.head); the first batch is decoded from them, then `rest()` gives the
    job's windows (called once)."""
    if options.multilingual and not loaded.model.model.is_multilingual:
        warnings.append("multilingual is ignored: this model knows English only.")
        options = replace(options, multilingual=False)
    partials = Partials(windows.windows, on_segments) if on_segments else None
    if rest is not None:
        rest = functools.cache(rest)  # the out-of-memory retry runs the VAD's rest once
    return gpu_faults.retry_on_oom(
        stage, lambda batch: decode_windows(loaded, windows, audio, options, language, task,
                                            score_tokens, partials, batch, rest=rest),
        options.batch_size, warnings)


class Partials:
    """Hands the decoded windows on as plain segments, in time order, as each batch finishes.
    A window waiting for the temperature fallback (decoding.py, rule 2) holds back the ones
    after it until its re-decode has run, so every window is sent once, with its final text;
    kept across the out-of-memory retry, so a retry sends none twice."""

    def __init__(self, windows: list[tuple[float, float]], send: OnSegments):
        self.windows, self.send, self.sent = windows, send, 0

    def __call__(self, stats: DecodeStats) -> None:
        """After a batch of the job's windows: those done, up to the first still waiting for
        a re-decode or to be cut as mixed-language (multilingual)."""
        results = stats.results[: len(self.windows)]
        done = min([p.index for p in stats.queue]
                   + [i for i, r in enumerate(results) if r.mixed] + [len(results)])
        self._send(list(zip(self.windows[self.sent:done], results[self.sent:done],
                            strict=True)))
        self.sent = max(self.sent, done)

    def restart(self, windows: list[tuple[float, float]],
                sent: list[tuple[float, float]]) -> None:
        """The job's windows are decoded afresh: those already sent as the same window are
        not sent again (a differing one may repeat a stretch: the final result is exact)."""
        same = next((i for i, (a, b) in enumerate(zip(windows, sent, strict=False)) if a != b),
                    min(len(windows), len(sent)))
        self.windows, self.sent = windows, min(self.sent, same)

    def rest(self, done: list[tuple[tuple[float, float], WindowResult]]) -> None:
        """After every pass: what is not sent yet (cut pieces included), in time order."""
        after = self.windows[self.sent][0] if self.sent < len(self.windows) else float("inf")
        self._send(sorted((d for d in done if d[0][0] >= after and not d[1].mixed),
                          key=lambda d: d[0]))
        self.sent = len(self.windows)

    def _send(self, done: list[tuple[tuple[float, float], WindowResult]]) -> None:
        segments = [Segment(start=round(a, 3), end=round(b, 3), text=r.text.strip())
                    for (a, b), r in done if r.text.strip()]
        if segments:
            self.send(segments)


def decode_windows(
    loaded: Loaded, windows: SpeechWindows, audio: np.ndarray, options: AsrOptions,
    language: str, task: Task, score_tokens: bool, partials: Partials | None,
    batch_size: int, rest: Callable[[], SpeechWindows] | None = None,
) -> Transcript:
    stats = DecodeStats(batch_size=batch_size, score_tokens=score_tokens,
                        expected=options.expected_languages)
    if not windows.windows and rest is not None:
        windows, rest = rest(), None
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
    if options.multilingual:  # a window with a pause inside may be cut at a language change
        stats.cuttable = cuttable(windows)
    token = decode_stats.set(stats)
    different: _NotThePrefix | None = None
    try:
        # Streaming: a small first batch, so the first segments come after it, not after a
        # full batch (on a CPU, half a 10-minute file); the rest in full batches.
        head = min(STREAM_FIRST_BATCH, batch_size) if partials else 0
        first = windows.windows[:head]
        done = run_pipeline(pipeline, loaded.model, stats, first, audio, head, language, task,
                            options.chunk_size, partials) if first else []
        if rest is not None:  # the VAD's rest, while the first segments are on their way
            windows = rest()
            if windows.windows[: len(first)] != first:
                raise _NotThePrefix(windows, first)
            if options.multilingual:
                stats.cuttable = cuttable(windows)
            if partials:
                partials.windows = windows.windows
        later = windows.windows[len(first):]
        done += run_pipeline(pipeline, loaded.model, stats, later, audio, batch_size, language,
                             task, options.chunk_size, partials) if later else []
        mixed = [(w, r.candidates) for w, r in done if r.mixed]
        if mixed:
            done = [d for d in done if not d[1].mixed] + decode_mixed(
                pipeline, loaded.model, stats, mixed, windows, audio, batch_size, language,
                task, options.chunk_size)
        if partials:
            partials.rest(done)
    except _NotThePrefix as error:
        different = error
    finally:
        decode_stats.reset(token)
    if different is not None:  # vad._fixed rules this out; if it ever fails, stay exact
        log.warning("streaming: the first windows are not the file's; decoding them again")
        if partials:
            partials.restart(different.windows.windows, different.first)
        return decode_windows(loaded, different.windows, audio, options, language, task,
                              score_tokens, partials, batch_size)
    fps = loaded.model.frames_per_second
    tokenizer = Tokenizer(loaded.model.hf_tokenizer, loaded.model.model.is_multilingual,
                          task=task, language=language)
    decoded = [window(start, end, r, fps, tokenizer.decode, language)
               for (start, end), r in sorted(done, key=lambda d: d[0]) if r.text.strip()]
    log.info(
        "%s: %d windows, %d re-decoded in %d batched passes (%d stable), %d dropped as silence, "
        "%d cut at a language change", task, stats.windows, stats.redecoded,
        stats.fallback_passes, stats.stable, stats.silent, stats.mixed,
    )
    return Transcript(decoded, stats, windows.speech)


class _NotThePrefix(Exception):
    """Streaming: the job's windows do not start with the first windows decoded."""

    def __init__(self, windows: SpeechWindows, first: list[tuple[float, float]]):
        super().__init__("the first windows are not the file's")
        self.windows, self.first = windows, first


def cuttable(windows: SpeechWindows) -> set[int]:
    """multilingual: the windows with a pause inside (index in the job's order)."""
    return {i for i, w in enumerate(windows.windows) if len(pieces(w, windows.speech)) > 1}


def decode_mixed(pipeline: Any, model: ThresholdedWhisperModel, stats: DecodeStats,
                 mixed: list[tuple[tuple[float, float], tuple[str, ...]]],
                 windows: SpeechWindows, audio: np.ndarray, batch_size: int, language: str,
                 task: Task, chunk_size: float,
                 ) -> list[tuple[tuple[float, float], WindowResult]]:
    """The mixed windows (each with its candidate languages) cut at their pauses, and each
    piece decoded in one of its window's languages (decoding.py). A piece still unsure of its
    language, with no pause left, holds a turn change the VAD bridged (its level dips but stays
    above `vad_offset`): it is cut once more, at its quietest frame, and its halves decoded."""
    cut = [(p, allowed) for w, allowed in mixed for p in pieces(w, windows.speech)]
    first = stats.windows
    stats.allowed = {first + j: allowed for j, (_, allowed) in enumerate(cut)}
    stats.cuttable = {first + j for j, (p, _) in enumerate(cut) if halves(p, windows.levels)}
    done = run_pipeline(pipeline, model, stats, [p for p, _ in cut], audio, batch_size,
                        language, task, chunk_size)
    unsure = [(p, allowed) for ((p, r), (_, allowed)) in zip(done, cut, strict=True)
              if r.mixed]
    stats.cuttable = set()
    if not unsure:
        return done
    # the spans come back rounded to the millisecond (whisperx): should that move the cut out
    # of reach, the piece is decoded whole rather than lost
    split = [(h, allowed) for p, allowed in unsure for h in halves(p, windows.levels) or [p]]
    stats.allowed = {stats.windows + j: allowed for j, (_, allowed) in enumerate(split)}
    return [d for d in done if not d[1].mixed] + run_pipeline(
        pipeline, model, stats, [h for h, _ in split], audio, batch_size, language, task,
        chunk_size)


def run_pipeline(pipeline: Any, model: ThresholdedWhisperModel, stats: DecodeStats,
                 spans: list[tuple[float, float]], audio: np.ndarray, batch_size: int,
                 language: str, task: Task, chunk_size: float,
                 partials: Partials | None = None,
                 ) -> list[tuple[tuple[float, float], WindowResult]]:
    """whisperx's pipeline over these windows; each with its result (DecodeStats, in order).
    `partials` hears of each batch as it is decoded, before the next starts."""
    first = len(stats.results)
    pipeline.vad_model = PrecomputedVad(SpeechWindows([], spans, True))
    result = pipeline.transcribe(audio, batch_size=batch_size, language=language, task=task,
                                 chunk_size=chunk_size,
                                 progress_callback=partials and (lambda _: partials(stats)))
    model.finish_fallback(stats)  # the windows still queued for the fallback
    return [((s["start"], s["end"]), r)
            for s, r in zip(result["segments"], stats.results[first:], strict=True)]


# multilingual: the shortest piece a mixed window is cut into (s). Whisper's language detector
# and decoder both need about a second of speech; a shorter stretch joins the neighbour across
# the shorter pause (a turn change is usually the longer one).
MIN_PIECE = 1.0
# multilingual: a piece with no pause left is cut once more where the VAD's speech level dips
# below this (a pause it bridged: pyannote's score stays above vad_offset across a short turn
# change). On the dev split of scripts/codeswitch_bench.py the quietest frame of a piece was
# 0.25-0.84 between sentences and turns, 0.90-1.0 between words of one sentence.
BRIDGED_BELOW = 0.85


def pieces(window: tuple[float, float], speech: list[tuple[float, float]]
           ) -> list[tuple[float, float]]:
    """The window cut at its pauses (gaps between its VAD speech regions), no piece shorter
    than MIN_PIECE s; one piece when it has no pause."""
    start, end = window
    spans = [[max(a, start), min(b, end)] for a, b in speech if a < end and b > start]
    if not spans:
        return [window]
    spans[0][0], spans[-1][1] = start, end
    while len(spans) > 1:
        shortest = min(range(len(spans)), key=lambda i: spans[i][1] - spans[i][0])
        if spans[shortest][1] - spans[shortest][0] >= MIN_PIECE:
            break
        gap_before = (spans[shortest][0] - spans[shortest - 1][1] if shortest > 0
                      else float("inf"))
        gap_after = (spans[shortest + 1][0] - spans[shortest][1]
                     if shortest + 1 < len(spans) else float("inf"))
        left = shortest - 1 if gap_before <= gap_after else shortest
        spans[left: left + 2] = [[spans[left][0], spans[left + 1][1]]]
    return [(a, b) for a, b in spans]


def halves(piece: tuple[float, float], levels: tuple[np.ndarray, np.ndarray] | None
           ) -> list[tuple[float, float]]:
    """A piece cut in two at its quietest VAD frame, each half at least MIN_PIECE s, where the
    speech level dips there below BRIDGED_BELOW; [] where it doesn't (no pause the VAD bridged,
    too short, or windows not from VAD scores)."""
    start, end = piece
    found = vad.quietest(levels, start, end, MIN_PIECE) if levels is not None else None
    if found is None or found[1] >= BRIDGED_BELOW:
        return []
    return [(start, found[0]), (found[0], end)]


def window(start: float, end: float, r: WindowResult, frames_per_second: int,
           decode: Callable[[list[int]], str], language: str) -> Window:
    """A decoded window, with faster-whisper's Segment fields and what cutting it needs."""
    return Window(
        start=start, end=end, seek=int(round(start * frames_per_second)),
        text=r.text.strip(), tokens=tuple(r.tokens), token_text=token_texts(r.tokens, decode),
        token_logprobs=r.token_logprobs, avg_logprob=r.avg_logprob,
        compression_ratio=r.compression_ratio, no_speech_prob=r.no_speech_prob,
        temperature=r.temperature, language=r.language or language,
        language_probability=r.language_probability,
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
