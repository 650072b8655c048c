"""The official worker's per-segment fields (faster-whisper's Segment: `id`, `seek`, `tokens`,
`temperature`, `compression_ratio`, `no_speech_prob`, `avg_logprob`) through every split.

Transcription gives one segment per decoded window with these fields. Alignment re-cuts a
window into sentences and speaker labelling may cut it again; each piece keeps its window's
values (`inherit`), and ids are numbered 0..n-1 once, at output (`number`).
"""

from __future__ import annotations

import bisect
from typing import Any

WINDOW_FIELDS = ("seek", "tokens", "temperature", "avg_logprob", "compression_ratio",
                 "no_speech_prob")


def inherit(child: dict[str, Any], parent: dict[str, Any]) -> dict[str, Any]:
    """`child` (a piece of `parent`) with the parent window's decoding fields; returns it."""
    for key in WINDOW_FIELDS:
        if key in parent:
            child[key] = parent[key]
    return child


def inherit_by_time(pieces: list[dict[str, Any]], windows: list[dict[str, Any]]
                    ) -> list[dict[str, Any]]:
    """Give each piece the fields of the window it came from: the one holding its midpoint
    (windows don't overlap and a piece never leaves its window), else the nearest one."""
    if not windows:
        return pieces
    starts = [w["start"] for w in windows]  # in time order
    for piece in pieces:
        if piece.get("start") is None or piece.get("end") is None:
            continue
        middle = (piece["start"] + piece["end"]) / 2
        i = bisect.bisect_right(starts, middle)
        near = windows[max(0, i - 1): i + 1]
        inherit(piece, min(near, key=lambda w: _distance(middle, w)))
    return pieces


def _distance(t: float, window: dict[str, Any]) -> float:
    return max(window["start"] - t, 0.0, t - window["end"])


def number(segments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Output order: `id` 0..n-1 first, then the segment's own keys."""
    return [{"id": i} | {k: v for k, v in s.items() if k != "id"}
            for i, s in enumerate(segments)]
