"""Who said what: diarization turns onto words, then segments cut where the speaker changes.

whisperx's `assign_word_speakers` labels each segment with the speaker of its largest overlap,
so one segment can hold two people's words under one label. Here words get speakers first
(whisperx's own assignment, `fill_nearest` for words between turns), then every segment is
split into runs of one speaker: a segment's `speaker` is the speaker of all its words.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import pandas as pd
import whisperx
from whisperx.utils import LANGUAGES_WITHOUT_SPACES

from asr import Segment


def turns_output(turns: pd.DataFrame) -> list[dict[str, Any]]:
    """The diarization itself, overlaps included: `speaker_turns`."""
    return [{"start": round(float(r.start), 3), "end": round(float(r.end), 3),
             "speaker": str(r.speaker)}
            for r in turns.sort_values(["start", "end"]).itertuples(index=False)]


def assign(turns: pd.DataFrame, segments: list[Segment], language: str
           ) -> list[Segment]:
    """Speakers on words and segments; segments split where their words change speaker."""
    if turns.empty or not segments:
        return segments
    labelled = whisperx.assign_word_speakers(
        turns, {"segments": [_timed_words_only(s) for s in segments]}, fill_nearest=True,
    )["segments"]
    joiner = "" if language in LANGUAGES_WITHOUT_SPACES else " "
    out: list[Segment] = []  # whisperx's labelled segments are untyped dicts
    for original, segment in zip(segments, labelled, strict=True):
        words = _with_untimed_words(original, segment)
        if not any(w.get("speaker") for w in words):
            out.append(segment | ({"words": words} if words else {}))
            continue
        _fill_from_neighbours(words)
        out.extend(_split(segment, words, joiner))
    return out


def _timed_words_only(segment: Mapping[str, Any]) -> dict[str, Any]:
    # whisperx's assignment reads word["start"]; words the aligner couldn't place have None.
    copy = dict(segment)
    if "words" in segment:
        copy["words"] = [dict(w) for w in segment["words"] if w.get("start") is not None]
    return copy


def _with_untimed_words(original: Mapping[str, Any], labelled: Mapping[str, Any]
                        ) -> list[dict[str, Any]]:
    """All the segment's words in order, the timed ones carrying their speakers."""
    timed = iter(labelled.get("words", []))
    return [next(timed) if w.get("start") is not None else dict(w)
            for w in original.get("words", [])]


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
