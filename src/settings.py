"""Reading the worker's own environment switches (not job parameters: those are rp_schema's)."""

from __future__ import annotations

import os

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def flag(name: str, default: bool = False) -> bool:
    """An on/off environment variable; unset, empty or unrecognised gives `default`."""
    value = os.environ.get(name, "").strip().lower()
    return True if value in _TRUE else False if value in _FALSE else default
