"""Transcript renderings: whisperx's own SRT/VTT/TXT writers (which prefix `[SPEAKER_xx]: `
when segments carry speakers), the official worker's plain_text / formatted_text, and a
speaker-grouped Markdown document."""

from __future__ import annotations

import io

from whisperx.utils import ResultWriter, WriteSRT, WriteTXT, WriteVTT

from asr import Segment

from . import subtitles

# Without subtitle limits: one cue per segment, as the official worker does.
_WRITER_OPTIONS = {"max_line_width": None, "max_line_count": None, "highlight_words": False}
_WRITERS: dict[str, type[ResultWriter]] = {"srt": WriteSRT, "vtt": WriteVTT, "txt": WriteTXT}


def render(fmt: str, segments: list[Segment], language: str,
           rules: subtitles.Rules | None = None) -> str:
    if fmt in ("srt", "vtt") and rules is not None and rules.active:
        return subtitles.render(fmt, segments, language, rules)
    if fmt == "markdown":
        return markdown(segments)
    if fmt == "plain_text":
        return " ".join(s["text"].strip() for s in segments)
    if fmt == "formatted_text":
        return "\n".join(s["text"].strip() for s in segments)
    buffer = io.StringIO()
    # whisperx's writers need the language to join words (ja/zh have no spaces)
    result = {"segments": segments, "language": language}
    _WRITERS[fmt](output_dir=".").write_result(result, buffer, _WRITER_OPTIONS)
    return buffer.getvalue()


def _clock(seconds: float | None) -> str:
    seconds = int(seconds or 0)
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def markdown(segments: list[Segment]) -> str:
    """Full transcript grouped by speaker turns, then timestamped segments, each with its
    word-level timestamps."""
    lines = ["# Full Transcript", ""]
    turns: list[tuple[str | None, list[str]]] = []
    for s in segments:
        if turns and turns[-1][0] == s.get("speaker"):
            turns[-1][1].append(s["text"].strip())
        else:
            turns.append((s.get("speaker"), [s["text"].strip()]))
    for speaker, texts in turns:
        text = " ".join(texts)
        lines += [f"**{speaker}:** {text}" if speaker else text, ""]
    lines += ["# Timestamped Transcript", ""]
    for i, s in enumerate(segments, start=1):
        speaker = f" ({s['speaker']})" if s.get("speaker") else ""
        lines += [f"## Segment {i}: [{_clock(s['start'])} - {_clock(s['end'])}]{speaker}", "",
                  s["text"].strip(), ""]
        words = [w for w in s.get("words", []) if w.get("start") is not None]
        if words:
            lines += ["### Word-level timestamps", ""]
            lines += [f"- {w['word']} @ {_clock(w['start'])}"
                      + (f" ({w['speaker']})" if w.get("speaker") else "") for w in words]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"
