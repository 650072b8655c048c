"""The official worker's per-segment fields (faster-whisper's Segment: `id`, `seek`, `tokens`,
`temperature`, `compression_ratio`, `no_speech_prob`, `avg_logprob`) through every split.

Transcription gives one segment per decoded window (`asr.Window.segment`). Alignment re-cuts
a window into sentences and speaker labelling may cut it again. The pieces of a window share
its decoding fields out between them, in one place (`partition`), instead of each copying
them: each piece gets the window's tokens that spell its own text (a piece's text is a
consecutive stretch of its window's text, modulo whitespace), the mean log-probability of
those tokens, and the compression ratio of its own text; `seek`, `temperature` and
`no_speech_prob` are the window's (it was decoded once). A window that stays one segment
keeps faster-whisper's values. Ids are numbered 0..n-1 once, at output (`number`).
"""

from __future__ import annotations

import bisect
import difflib
import logging
import math
from collections.abc import Sequence

from faster_whisper.transcribe import get_compression_ratio

from asr import Segment, Window, Word

log = logging.getLogger("worker.segments")


def fields(window: Window, indices: Sequence[int], text: str) -> Segment:
    """The decoding fields of the piece of `window` made of the tokens at `indices`,
    spelling `text`; the whole window keeps faster-whisper's values."""
    whole = len(indices) == len(window.tokens)
    logprobs = [window.token_logprobs[i] for i in indices] if window.token_logprobs else []
    avg = window.avg_logprob if whole or not logprobs else sum(logprobs) / len(logprobs)
    ratio = window.compression_ratio if whole else get_compression_ratio(text)
    return {"seek": window.seek, "tokens": [window.tokens[i] for i in indices],
            "temperature": window.temperature, "avg_logprob": round(avg, 4),
            "compression_ratio": round(ratio, 4),
            "no_speech_prob": round(window.no_speech_prob, 4)}


def cut(window: Window, texts: Sequence[str]) -> list[list[int]]:
    """The tokens (indices) of each of these pieces of the window's text, every token in
    exactly one piece, in order: a token goes to the piece whose text holds its first
    non-space character (whitespace-only tokens go with the token after them)."""
    squashed, positions = _squash(window.token_text)
    found: list[int] = []
    cursor = 0
    for text in texts:
        at = _find(squashed, "".join(text.split()), cursor)
        found.append(at)
        cursor = max(cursor, at + len("".join(text.split())))
    order = sorted(range(len(texts)), key=lambda k: (found[k], k))
    starts = [found[k] for k in order]
    out: list[list[int]] = [[] for _ in texts]
    for index, position in enumerate(positions):
        out[order[max(0, bisect.bisect_right(starts, position) - 1)]].append(index)
    return out


def _squash(token_text: Sequence[str]) -> tuple[str, list[int]]:
    """The text without whitespace, and each token's first character in it (a token with
    none: the next one's, the last ones: the end)."""
    squashed: list[str] = []
    positions: list[int | None] = []
    for text in token_text:
        chars = "".join(text.split())
        positions.append(len(squashed) if chars else None)
        squashed.extend(chars)
    following = len(squashed)
    resolved = []
    for position in reversed(positions):
        following = following if position is None else position
        resolved.append(following)
    return "".join(squashed), resolved[::-1]


def _find(haystack: str, needle: str, cursor: int) -> int:
    """Where `needle` starts in `haystack`: after `cursor` first (pieces come in order, and a
    sentence can repeat), then anywhere, else where its longest common run says."""
    if not needle:
        return cursor
    at = haystack.find(needle, cursor)
    if at < 0:
        at = haystack.find(needle)
    if at < 0:
        match = difflib.SequenceMatcher(None, haystack, needle, autojunk=False) \
            .find_longest_match(0, len(haystack), 0, len(needle))
        at = max(0, match.a - match.b) if match.size else cursor
        log.debug("piece %r is not in its window's text; placed at %d", needle[:40], at)
    return at


def partition(pieces: list[Segment], windows: list[Window]) -> list[Segment]:
    """Every piece with its share of its window's decoding fields (module docstring)."""
    if not windows:
        return pieces
    members: dict[int, list[int]] = {}
    for i, w in enumerate(_owners(pieces, windows)):
        members.setdefault(w, []).append(i)
    out = list(pieces)
    for w, indices in members.items():
        window = windows[w]
        texts = [pieces[i].get("text", "") for i in indices]
        shares = [range(len(window.tokens))] if len(indices) == 1 else cut(window, texts)
        for i, share, text in zip(indices, shares, texts, strict=True):
            out[i] = pieces[i] | fields(window, share, text)
            if window.token_logprobs and "words" in pieces[i]:
                out[i]["words"] = with_probabilities(pieces[i]["words"], window, share)
    return out


def with_probabilities(words: list[Word], window: Window, share: Sequence[int]) -> list[Word]:
    """Each word with `probability`: the mean probability of the tokens that spell it
    (faster-whisper's word probability), from the piece's tokens (`share`). A token belongs
    to the word holding its first non-space character, as in `cut`. Words that have one
    (Whisper's cross-attention timings compute it) keep theirs."""
    squashed, positions = _squash([window.token_text[i] for i in share])
    probs = [math.exp(window.token_logprobs[i]) for i in share]
    out: list[Word] = []
    cursor = 0
    for word in words:
        text = "".join(word.get("word", "").split())
        at = _find(squashed, text, cursor)
        cursor = max(cursor, at + len(text))
        mine = [p for p, pos in zip(probs, positions, strict=True) if at <= pos < at + len(text)]
        if not mine and probs:  # a word no token starts in: the token it falls inside
            k = max(0, bisect.bisect_right(positions, at) - 1)
            mine = [probs[k]]
        if mine and "probability" not in word:
            word = word | {"probability": round(sum(mine) / len(mine), 4)}
        out.append(word)
    return out


def _owners(pieces: list[Segment], windows: list[Window]) -> list[int]:
    """The window each piece was cut from: the one holding its midpoint (a piece never
    leaves its window, though alignment may overrun its edge: else the nearest), or, where
    that window's text doesn't hold the piece's, a neighbour that does. An untimed piece
    follows the piece before it."""
    starts = [w.start for w in windows]  # in time order, not overlapping
    squashed = ["".join(w.text.split()) for w in windows]
    owners: list[int] = []
    for piece in pieces:
        start, end = piece.get("start"), piece.get("end")
        if start is None or end is None:
            owners.append(owners[-1] if owners else 0)
            continue
        middle = (start + end) / 2
        i = bisect.bisect_right(starts, middle)
        near = range(max(0, i - 1), min(len(windows), i + 1))
        w = min(near, key=lambda k: _distance(middle, windows[k]))
        text = "".join(piece.get("text", "").split())
        if text not in squashed[w]:
            w = next((k for k in (w - 1, w + 1)
                      if 0 <= k < len(windows) and text in squashed[k]), w)
        owners.append(w)
    return owners


def _distance(t: float, window: Window) -> float:
    return max(window.start - t, 0.0, t - window.end)


def number(segments: list[Segment]) -> list[Segment]:
    """Output order: `id` 0..n-1 first, then the segment's own keys."""
    return [{"id": i} | {k: v for k, v in s.items() if k != "id"}  # type: ignore[misc]
            for i, s in enumerate(segments)]


def final(pieces: list[Segment], windows: list[Window], min_duration: float) -> list[Segment]:
    """The response's segments: the pieces alignment and speakers cut, with their window's
    decoding fields shared out, those shorter than `min_duration` s dropped, numbered."""
    segments = partition(pieces, windows)
    if min_duration:
        segments = [s for s in segments
                    if (s["end"] or 0) - (s["start"] or 0) >= min_duration]
    return number(segments)
