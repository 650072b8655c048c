"""The response: segment fields through every split, transcript formats and subtitles, and
delivery (size limits, results in a bucket)."""

from . import delivery
from .formats import render
from .options import OutputOptions
from .response import Outcome, response
from .segments import final, number, partition
from .subtitles import Rules as CueRules

__all__ = ["CueRules", "Outcome", "OutputOptions", "delivery", "final", "number", "partition",
           "render", "response"]
