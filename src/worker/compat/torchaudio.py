"""torchaudio internals the worker relies on."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def bundle_file(bundle: Any) -> str:
    """The file name a torchaudio pipeline bundle downloads its weights to (the bundle's
    private `_path`): what an image bakes under MODELS_DIR/alignment for whisperx."""
    return Path(bundle._path).name
