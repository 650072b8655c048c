"""Word timestamps: wav2vec2 forced alignment, or Whisper's own cross-attention timings."""

from .align import Aligned, align

__all__ = ["Aligned", "align"]
