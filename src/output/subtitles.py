"""Subtitle cues under the job's limits: line width, lines per cue, cue duration, karaoke.

Cues are cut at word boundaries, inside one segment (a cue never mixes speakers), using the
words' timings; a segment without word timings gets times spread over its words by character
count (an estimate, as no finer timing exists). Rendering to SRT/VTT text uses whisperx's own
timestamp format, so cues look exactly like its writer's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from whisperx.utils import LANGUAGES_WITHOUT_SPACES, format_timestamp

from asr import Segment

DEFAULT_LINE_WIDTH = 42  # characters: the usual broadcast subtitle line limit


@dataclass(frozen=True)
class Rules:
    max_line_width: int | None = None  # characters per line (speaker prefix included)
    max_line_count: int | None = None  # lines per cue
    max_cue_duration: float | None = None  # seconds per cue
    highlight_words: bool = False  # one cue per word, that word underlined (karaoke)

    @property
    def active(self) -> bool:
        return bool(self.max_line_width or self.max_line_count or self.max_cue_duration
                    or self.highlight_words)

    @classmethod
    def of(cls, max_line_width: int | None, max_line_count: int | None,
           max_cue_duration: float | None, highlight_words: bool) -> Rules:
        if max_line_width is None and max_line_count is not None:
            max_line_width = DEFAULT_LINE_WIDTH  # a line count needs lines to count
        return cls(max_line_width, max_line_count, max_cue_duration, highlight_words)


@dataclass(frozen=True)
class Word:
    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Cue:
    words: tuple[Word, ...]
    lines: tuple[tuple[int, ...], ...]  # indices into words, one tuple per line
    prefix: str  # "[SPEAKER_00]: " on the first line when the segment has a speaker

    @property
    def start(self) -> float:
        return self.words[0].start

    @property
    def end(self) -> float:
        return max(w.end for w in self.words)

    def text(self, sep: str, underline: int | None = None) -> str:
        def shown(i: int) -> str:
            return f"<u>{self.words[i].text}</u>" if i == underline else self.words[i].text

        lines = [sep.join(shown(i) for i in line) for line in self.lines]
        return (self.prefix + "\n".join(lines)).replace("-->", "->")


def _words(segment: Mapping[str, Any]) -> list[Word]:
    timed = [w for w in segment.get("words", []) if w.get("start") is not None
             and w.get("end") is not None and w.get("word", "").strip()]
    if timed:
        return [Word(w["word"].strip(), float(w["start"]), float(w["end"])) for w in timed]
    tokens = segment["text"].split()
    start, end = float(segment["start"] or 0), float(segment["end"] or 0)
    total = sum(len(t) for t in tokens) or 1
    words, at = [], start
    for token in tokens:  # no word timings: spread the segment's span by character count
        step = (end - start) * len(token) / total
        words.append(Word(token, at, at + step))
        at += step
    return words


def _wrap(words: list[Word], width: int | None, prefix: str, sep: str) -> list[tuple[int, ...]]:
    """Greedy line filling (the prefix counts on the first line); a word longer than the
    width gets a line of its own."""
    lines: list[list[int]] = [[]]
    used = len(prefix)
    for i, word in enumerate(words):
        extra = len(word.text) + (len(sep) if lines[-1] else 0)
        if width is not None and lines[-1] and used + extra > width:
            lines.append([])
            used, extra = 0, len(word.text)
        lines[-1].append(i)
        used += extra
    return [tuple(line) for line in lines]


def _make(words: list[Word], rules: Rules, prefix: str, sep: str) -> Cue:
    return Cue(tuple(words), tuple(_wrap(words, rules.max_line_width, prefix, sep)), prefix)


def cues(segments: list[Segment], language: str, rules: Rules) -> list[Cue]:
    """Each segment's words, cut into cues that keep every limit (a single word that alone
    breaks the width or duration still gets a cue)."""
    sep = separator(language)
    out: list[Cue] = []
    for segment in segments:
        prefix = f"[{segment['speaker']}]: " if segment.get("speaker") else ""
        current: list[Word] = []
        for word in _words(segment):
            trial = _make([*current, word], rules, prefix, sep)
            too_many = rules.max_line_count is not None and len(trial.lines) > rules.max_line_count
            too_long = (rules.max_cue_duration is not None
                        and trial.end - trial.start > rules.max_cue_duration)
            if current and (too_many or too_long):
                out.append(_make(current, rules, prefix, sep))
                current = [word]
            else:
                current.append(word)
        if current:
            out.append(_make(current, rules, prefix, sep))
    return out


def separator(language: str) -> str:
    return "" if language in LANGUAGES_WITHOUT_SPACES else " "


def render(fmt: str, segments: list[Segment], language: str, rules: Rules) -> str:
    """SRT or VTT text of the cues under `rules`; with highlight_words, each cue is shown once
    per word with that word underlined (whisperx's karaoke style)."""
    sep, srt = separator(language), fmt == "srt"
    timed: list[tuple[float, float, str]] = []
    for cue in cues(segments, language, rules):
        if rules.highlight_words:
            timed += [(w.start, w.end, cue.text(sep, i)) for i, w in enumerate(cue.words)]
        else:
            timed.append((cue.start, cue.end, cue.text(sep)))
    blocks = [] if srt else ["WEBVTT\n"]
    for n, (start, end, text) in enumerate(timed, start=1):
        stamp = f"{_ts(start, srt)} --> {_ts(end, srt)}"
        blocks.append(f"{n}\n{stamp}\n{text}\n" if srt else f"{stamp}\n{text}\n")
    return "\n".join(blocks)


def _ts(seconds: float, srt: bool) -> str:
    return format_timestamp(seconds, always_include_hours=srt, decimal_marker="," if srt else ".")
