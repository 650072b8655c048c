"""Who said what: diarization turns onto words, then segments cut where the speaker changes,
and segments in overlapped speech marked.

whisperx's `assign_word_speakers` labels each segment with the speaker of its largest overlap,
so one segment can hold two people's words under one label. Here words get speakers first,
from the exclusive turns (one speaker at a time, pyannote 4's exclusive diarization; the
overlapping turns stay in `speaker_turns`): a word's speaker is the one covering most of it,
the nearest turn's for a word between turns. Then every segment is split into runs of one
speaker: a segment's `speaker` is the speaker of all its words. A segment where others talk
over it for `OVERLAP_MIN_S` gets `overlap: true` and `overlap_speakers`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import numpy as np
import pandas as pd
from whisperx.utils import LANGUAGES_WITHOUT_SPACES

from asr import Segment

# Overlapped speech shorter than this inside a segment is a boundary blur between two turns
# (segmentation-3.0's frames are 17 ms), not someone talking over the segment.
OVERLAP_MIN_S = 0.2
# Words at turn changes, chosen on scripts/conversations.py's dev split
# (scripts/transcript_der_bench.py --split dev --sweep-words):
ISLAND_MAX_S = 0.6  # a run of words this short between two words of another speaker joins them
EDGE_TRIM = 0.0  # share of a word cut off each end before asking who covers it


def turns_output(turns: pd.DataFrame) -> list[dict[str, Any]]:
    """The diarization itself, overlaps included: `speaker_turns`."""
    return [{"start": round(float(r.start), 3), "end": round(float(r.end), 3),
             "speaker": str(r.speaker)}
            for r in turns.sort_values(["start", "end"]).itertuples(index=False)]


def assign(turns: pd.DataFrame, segments: list[Segment], language: str,
           exclusive: pd.DataFrame | None = None) -> list[Segment]:
    """Speakers on words (from `exclusive`, else `turns`) and segments; segments split where
    their words change speaker, and marked where they sit in overlapped speech (`turns`)."""
    if turns.empty or not segments:
        return segments
    one_at_a_time = Turns(turns if exclusive is None or exclusive.empty else exclusive)
    joiner = "" if language in LANGUAGES_WITHOUT_SPACES else " "
    words = [[dict(w) for w in s.get("words", [])] for s in segments]
    label_words([w for ws in words for w in ws], one_at_a_time)
    out: list[Segment] = []
    for segment, own in zip(segments, words, strict=True):
        if not any(w.get("speaker") for w in own):
            start, end = segment.get("start"), segment.get("end")
            speaker = (one_at_a_time.speaker(start, end)
                       if start is not None and end is not None else None)
            out.append(cast(Segment, {**segment, **({"words": own} if own else {}),
                                      **({"speaker": speaker} if speaker else {})}))
            continue
        _fill_from_neighbours(own)
        out.extend(_split(segment, own, joiner))
    overlaps = _overlaps(turns)
    return [_mark_overlap(s, overlaps) for s in out]


def label_words(words: list[dict[str, Any]], turns: Turns) -> None:
    """Each timed word (in time order) gets the speaker of the turn covering most of its
    core (EDGE_TRIM: word edges are where timings err, and they brush the neighbour turn);
    then a run of words shorter than ISLAND_MAX_S between two words of one other speaker
    takes theirs."""
    timed = [w for w in words if w.get("start") is not None and w.get("end") is not None]
    for w in timed:
        start, end = float(w["start"]), float(w["end"])
        trim = (end - start) * EDGE_TRIM
        speaker = turns.speaker(start + trim, end - trim)
        if speaker is not None:
            w["speaker"] = speaker
    if ISLAND_MAX_S <= 0:
        return
    runs: list[list[dict[str, Any]]] = []
    for w in timed:
        if runs and runs[-1][-1].get("speaker") == w.get("speaker"):
            runs[-1].append(w)
        else:
            runs.append([w])
    for before, run, after in zip(runs, runs[1:], runs[2:], strict=False):
        speaker = before[-1].get("speaker")
        if (speaker is not None and after[0].get("speaker") == speaker
                and float(run[-1]["end"]) - float(run[0]["start"]) <= ISLAND_MAX_S):
            for w in run:
                w["speaker"] = speaker


class Turns:
    """Turns as arrays, for the speaker of a stretch of time."""

    def __init__(self, turns: pd.DataFrame):
        ordered = turns.sort_values(["start", "end"])
        self.starts = ordered["start"].to_numpy(dtype=float)
        self.ends = ordered["end"].to_numpy(dtype=float)
        self.speakers = [str(s) for s in ordered["speaker"]]

    def speaker(self, start: float, end: float) -> str | None:
        """Who covers most of [start, end]; between turns, the turn nearest to its edges."""
        if not self.speakers:
            return None
        inter = np.minimum(self.ends, end) - np.maximum(self.starts, start)
        cover: dict[str, float] = {}
        for i in np.flatnonzero(inter > 0):
            cover[self.speakers[i]] = cover.get(self.speakers[i], 0.0) + float(inter[i])
        if cover:
            return max(cover, key=lambda k: cover[k])
        # the gap to each turn (a zero-length word inside a turn: 0)
        gap = np.maximum(self.starts - end, 0.0) + np.maximum(start - self.ends, 0.0)
        return self.speakers[int(np.argmin(gap))]


def _fill_from_neighbours(words: list[dict[str, Any]]) -> None:
    """An untimed word (digits, symbols) speaks with the word before it, else after it."""
    previous = None
    for w in words:
        if w.get("speaker") is None and previous:
            w["speaker"] = previous
        previous = w.get("speaker") or previous
    following = None
    for w in reversed(words):
        if w.get("speaker") is None and following:
            w["speaker"] = following
        following = w.get("speaker") or following


def _overlaps(turns: pd.DataFrame) -> list[tuple[float, float, frozenset[str]]]:
    """Stretches where two or more speakers talk at once, with who talks (one sweep over the
    turns' edges)."""
    events = sorted([(float(t.start), 1, str(t.speaker)) for t in turns.itertuples()]
                    + [(float(t.end), -1, str(t.speaker)) for t in turns.itertuples()])
    active: dict[str, int] = {}
    out: list[tuple[float, float, frozenset[str]]] = []
    for (time, step, speaker), following in zip(events, [*events[1:], None], strict=True):
        active[speaker] = active.get(speaker, 0) + step
        talking = frozenset(k for k, v in active.items() if v > 0)
        if following is None or following[0] <= time or len(talking) < 2:
            continue
        if out and out[-1][1] == time and out[-1][2] == talking:
            out[-1] = (out[-1][0], following[0], talking)
        else:
            out.append((time, following[0], talking))
    return out


def _mark_overlap(segment: Segment, overlaps: list[tuple[float, float, frozenset[str]]]
                  ) -> Segment:
    """`overlap: true` and the other speakers, where others talk over the segment for
    OVERLAP_MIN_S or more."""
    start, end, own = segment.get("start"), segment.get("end"), segment.get("speaker")
    if start is None or end is None:
        return segment
    shared, others = 0.0, set[str]()
    for a, b, talking in overlaps:
        inter = min(b, end) - max(a, start)
        if inter > 0 and talking - {own}:
            shared += inter
            others |= talking - {own}
    if shared < OVERLAP_MIN_S:
        return segment
    return cast(Segment, {**segment, "overlap": True, "overlap_speakers": sorted(others)})


def _split(segment: Mapping[str, Any], words: list[dict[str, Any]], joiner: str
           ) -> list[Segment]:
    runs: list[list[dict[str, Any]]] = []
    for w in words:
        if runs and runs[-1][-1]["speaker"] == w["speaker"]:
            runs[-1].append(w)
        else:
            runs.append([w])
    if len(runs) == 1:
        return [cast(Segment, {**segment, "words": words, "speaker": words[0]["speaker"]})]
    pieces: list[Segment] = []
    for run in runs:
        starts = [w["start"] for w in run if w.get("start") is not None]
        ends = [w["end"] for w in run if w.get("end") is not None]
        piece: dict[str, Any] = {
            "start": min(starts) if starts else segment["start"],
            "end": max(ends) if ends else segment["end"],
            "text": joiner.join(w["word"] for w in run).strip(),
            "words": run,
            "speaker": run[0]["speaker"],
        }
        if "chars" in segment:
            piece["chars"] = [c for c in segment["chars"] if c.get("start") is not None
                              and piece["start"] <= c["start"] < piece["end"]]
        pieces.append(cast(Segment, piece))  # decoding fields: output.partition, from its window
    return pieces
