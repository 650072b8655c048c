"""What every stage shares: worker settings, errors, per-job logs, GPU faults, the C heap, the
language table, and the model catalogue and cache. Stages import its modules; it imports no
stage."""

from __future__ import annotations

import os

# The one rate every stage takes audio at (Whisper's, wav2vec2's, pyannote's and CAM++'s).
SAMPLE_RATE = 16000


def configure_libraries() -> None:
    """Third-party settings, made before any model loads (cheap, idempotent): pyannote 4 sends
    telemetry on every model and pipeline load unless told not to (its import turns it on when
    the variable is unset, so it is switched off here, not by a default); tokenizers warns after
    fork."""
    from pyannote.audio.telemetry import set_telemetry_metrics

    set_telemetry_metrics(False)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
