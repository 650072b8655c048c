"""Word timestamps: wav2vec2 forced alignment, or Whisper's own cross-attention timings."""

from .align import Aligned, Choice, align, choose

__all__ = ["Aligned", "Choice", "align", "choose"]
