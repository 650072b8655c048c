"""Transcript renderings: whisperx's own SRT/VTT/TXT writers, and the official worker's
plain_text / formatted_text."""

from __future__ import annotations

import io
from typing import Any

from whisperx.utils import ResultWriter, WriteSRT, WriteTXT, WriteVTT

# One cue per segment, as the official worker does; no line re-wrapping.
_WRITER_OPTIONS = {"max_line_width": None, "max_line_count": None, "highlight_words": False}
_WRITERS: dict[str, type[ResultWriter]] = {"srt": WriteSRT, "vtt": WriteVTT, "txt": WriteTXT}


def render(fmt: str, segments: list[dict[str, Any]]) -> str:
    if fmt == "plain_text":
        return " ".join(s["text"].strip() for s in segments)
    if fmt == "formatted_text":
        return "\n".join(s["text"].strip() for s in segments)
    buffer = io.StringIO()
    _WRITERS[fmt](output_dir=".").write_result({"segments": segments}, buffer, _WRITER_OPTIONS)
    return buffer.getvalue()
