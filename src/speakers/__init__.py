"""Who said what: diarization turns onto words and segments, and speakers named from
reference samples."""

from .assign import assign, turns_output
from .identify import Identification, Sample, load_samples
from .identify import debug as identification_debug
from .identify import run as identify

__all__ = ["Identification", "Sample", "assign", "identification_debug",
           "identify", "load_samples", "turns_output"]
