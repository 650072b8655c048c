"""Word timestamps: wav2vec2 forced alignment, or Whisper's own cross-attention timings."""

from .align import Aligned, AlignOptions, Choice, align, choose

__all__ = ["AlignOptions", "Aligned", "Choice", "align", "choose"]
