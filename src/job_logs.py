"""Per-job log capture, so each response's `logs` holds that job's lines and no other's.

Every record goes to stderr (the container log) as usual; records emitted while a job runs
are also kept for that job, keyed by a ContextVar so concurrent jobs don't mix. Known secrets
are masked in both places.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import settings

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MASK = "<redacted>"
_lines: ContextVar[list[str] | None] = ContextVar("job_log_lines", default=None)
_secrets: set[str] = set()


def add_secret(value: Any) -> None:
    if isinstance(value, str) and len(value.strip()) >= 4:
        _secrets.add(value.strip())


def redact(value: Any) -> Any:
    """`value` with every known secret masked, walking dicts and lists."""
    if isinstance(value, str):
        for secret in _secrets:
            value = value.replace(secret, MASK)
        return value
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _JobHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        lines = _lines.get()
        if lines is not None:
            lines.append(self.format(record))


def install() -> None:
    """Route logging (and Python warnings) to stderr and to the running job's buffer."""
    root = logging.getLogger()
    if any(isinstance(h, _JobHandler) for h in root.handlers):
        return
    for handler in (logging.StreamHandler(), _JobHandler()):
        handler.setFormatter(_RedactingFormatter(FORMAT))
        root.addHandler(handler)
    try:
        level = settings.get().log_level.strip().upper()
    except settings.SettingsError:
        level = "INFO"
    root.setLevel(level if level in logging.getLevelNamesMapping() else "INFO")
    logging.captureWarnings(True)
    for name in ("HF_TOKEN", "HUGGINGFACE_ACCESS_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        add_secret(os.environ.get(name))


@contextmanager
def capture() -> Iterator[list[str]]:
    lines: list[str] = []
    token = _lines.set(lines)
    try:
        yield lines
    finally:
        _lines.reset(token)
