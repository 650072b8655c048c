"""Word diarization error rate (WDER): the share of timed words whose speaker is wrong, under
the best one-to-one mapping of hypothesis speakers onto reference speakers (Hungarian), counted
only where the reference has speech. The benches share it (transcript_der_bench.py,
diarization_bench.py).

A word's reference speakers are those whose turns cover at least half of it; where none does,
the one covering most of it. So a word in overlapped speech is right under either voice (the
reference does not say which one Whisper transcribed), and a word that only brushes a turn
change belongs to the turn it sits in. A word no reference turn touches is not counted; a
counted word without a speaker, or whose speaker maps to no reference speaker, is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

Turn = tuple[float, float, str]  # start, end, speaker
TimedWord = tuple[float, float, str | None]  # start, end, the hypothesis' speaker


@dataclass(frozen=True)
class Score:
    wrong: int
    counted: int  # words where the reference has speech
    words: int  # all timed words given

    @property
    def wder(self) -> float:
        return self.wrong / self.counted if self.counted else 0.0

    def __add__(self, other: Score) -> Score:
        return Score(self.wrong + other.wrong, self.counted + other.counted,
                     self.words + other.words)


def reference_speakers(start: float, end: float, reference: Sequence[Turn]) -> set[str]:
    """Who speaks during [start, end] by the reference (empty where nobody does)."""
    cover: dict[str, float] = {}
    for a, b, speaker in reference:
        inter = min(b, end) - max(a, start)
        if inter > 0 or (end <= start and a <= start < b):  # a zero-length word: a point
            cover[speaker] = cover.get(speaker, 0.0) + max(inter, 0.0)
    if not cover:
        return set()
    half = (end - start) / 2
    most = max(cover.values())
    return {s for s, c in cover.items() if (end > start and c >= half) or c == most}


def score(reference: Sequence[Turn], words: Iterable[TimedWord]) -> Score:
    """WDER of one recording's timed words against its reference turns."""
    words = list(words)
    rows = [(hyp, reference_speakers(a, b, reference)) for a, b, hyp in words]
    rows = [(hyp, refs) for hyp, refs in rows if refs]
    hyps = sorted({h for h, _ in rows if h is not None})
    refs = sorted({r for _, rs in rows for r in rs})
    counts = np.zeros((len(hyps), len(refs)))
    for hyp, rs in rows:
        if hyp is not None:
            for r in rs:
                counts[hyps.index(hyp), refs.index(r)] += 1
    # a word is right iff its speaker's image is among its reference speakers, so the right
    # words under a mapping are the sum of its cells: the assignment maximising them is optimal
    rows_i, cols_i = linear_sum_assignment(counts, maximize=True)
    mapping = {hyps[i]: refs[j] for i, j in zip(rows_i, cols_i, strict=True)}
    right = sum(1 for hyp, rs in rows if hyp in mapping and mapping[hyp] in rs)
    return Score(len(rows) - right, len(rows), len(words))


def timed_words(segments: Iterable[dict]) -> list[TimedWord]:
    """A response's timed words with their speakers (untimed words carry no time to score)."""
    return [(float(w["start"]), float(w["end"]), w.get("speaker"))
            for s in segments for w in s.get("words") or []
            if w.get("start") is not None and w.get("end") is not None]
