"""Give the C heap's free memory back to the operating system (glibc's `malloc_trim`).

glibc keeps freed blocks in the process heap, and a loop that frees large temporaries while
keeping small results alive fragments it: the resident size grows with the audio's length
although nothing is live. Trimmed after each VAD batch, each decoding batch and each job
(60 min of audio: peak RSS over the loaded models 2236 MB before, 1034 MB after;
docs/long-audio-and-benchmarks.md). The VAD pass took 84 s instead of 81 s on 60 min. A no-op
where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache


@cache
def _malloc_trim():  # -> the C function, or None
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return None


def release() -> bool:
    """Return free heap memory to the OS; False where that isn't possible."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
