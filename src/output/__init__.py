"""The response: segment fields through every split, transcript formats and subtitles, and
delivery (size limits, results in a bucket)."""

from . import delivery
from .formats import render
from .segments import inherit_by_time, number
from .subtitles import Rules as CueRules

__all__ = ["CueRules", "delivery", "inherit_by_time", "number", "render"]
