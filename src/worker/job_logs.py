"""Per-job log capture, so each response's `logs` holds that job's lines and no other's.

Every record goes to stderr (the container log) as usual; records emitted while a job runs
are also kept for that job, keyed by a ContextVar so concurrent jobs don't mix. Secrets (the
environment's tokens, and the running job's own token while it runs) are masked in both
places and in the response's `logs`/`error`/`warnings`/`debug_info`, never in its transcript.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from logging.handlers import RotatingFileHandler
from typing import Any

from . import settings

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MASK = "<redacted>"
# Environment variables whose values are tokens (masked everywhere, every job).
SECRET_ENV = ("HF_TOKEN", "HUGGINGFACE_ACCESS_TOKEN", "HUGGING_FACE_HUB_TOKEN",
              "BUCKET_SECRET_ACCESS_KEY")
# What the response may carry of the worker's own words: masking touches only these fields,
# never the transcript (a token can be a word someone says).
MASKED_FIELDS = ("logs", "error", "warnings", "debug_info")
_PLACEHOLDERS = {"none", "null", "false", "true", "changeme", "your_token", "token", "secret"}

_lines: ContextVar[list[str] | None] = ContextVar("job_log_lines", default=None)
# The running job's own secrets (its request token): they live only for that job.
_job_secrets: ContextVar[frozenset[str]] = ContextVar("job_secrets", default=frozenset())


def looks_secret(value: Any, min_length: int) -> bool:
    """A value worth masking: long enough not to be a common word, not a placeholder."""
    return (isinstance(value, str) and len(value.strip()) >= min_length
            and value.strip().lower() not in _PLACEHOLDERS)


def env_secrets() -> frozenset[str]:
    """Tokens set in the environment (real tokens are long: hf_ + 34 characters)."""
    values = (os.environ.get(name, "") for name in SECRET_ENV)
    return frozenset(v.strip() for v in values if looks_secret(v, 8))


def job_secrets(raw_input: Any) -> frozenset[str]:
    """The secrets a request brings (its Hugging Face token), for that job only."""
    token = raw_input.get("huggingface_access_token") if isinstance(raw_input, dict) else None
    if isinstance(token, str) and looks_secret(token, 4):
        return frozenset({token.strip()})
    return frozenset()


def _mask(value: Any, secrets: frozenset[str]) -> Any:
    """`value` with every secret masked, walking dicts and lists."""
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, MASK)
        return value
    if isinstance(value, dict):
        return {k: _mask(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v, secrets) for v in value]
    return value


def redact_output(output: dict[str, Any], secrets: frozenset[str]) -> dict[str, Any]:
    """The job's output with the env's and the job's secrets masked in the worker's own
    fields (MASKED_FIELDS) only; transcript fields are returned exactly as transcribed."""
    every = secrets | env_secrets()
    return {k: _mask(v, every) if k in MASKED_FIELDS else v for k, v in output.items()}


# A URL's query string (signed URLs carry credentials there), as in "GET /a.wav?X-Sig=... HTTP"
# lines urllib3 logs at DEBUG: masked in every log line.
_QUERY = re.compile(r"\?(?=[^\s\"'?]*=)[^\s\"']+")


def redact_line(line: str) -> str:
    return _QUERY.sub("?" + MASK, _mask(line, env_secrets() | _job_secrets.get()))


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact_line(super().format(record))


class _JobHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        lines = _lines.get()
        if lines is not None:
            lines.append(self.format(record))


def install() -> None:
    """Route logging (and Python warnings) to stderr, to the container log file and to the
    running job's buffer."""
    root = logging.getLogger()
    if any(isinstance(h, _JobHandler) for h in root.handlers):
        return
    # A library's import-time logging.basicConfig (runpod's rp_upload has one) left a plain
    # stderr handler on the root: ours replaces it, or every line would be printed twice.
    for plain in [h for h in root.handlers if type(h) is logging.StreamHandler]:
        root.removeHandler(plain)
    try:
        config: settings.WorkerSettings | None = settings.get()
    except settings.SettingsError as exc:  # logged below, once logging works
        config, problem = None, str(exc)
    handlers: list[logging.Handler] = [logging.StreamHandler(), _JobHandler()]
    file_problem = None
    if config and config.container_log:
        try:
            config.container_log.parent.mkdir(parents=True, exist_ok=True)
            handlers.append(RotatingFileHandler(
                config.container_log, maxBytes=int(config.container_log_max_mb * 2**20),
                backupCount=config.container_log_backups, encoding="utf-8"))
        except OSError as exc:  # a read-only disk must not stop the worker
            file_problem = f"container log {config.container_log} not writable ({exc})"
    for handler in handlers:
        handler.setFormatter(_RedactingFormatter(FORMAT))
        root.addHandler(handler)
    level = (config.log_level if config else "INFO").strip().upper()
    root.setLevel(level if level in logging.getLevelNamesMapping() else "INFO")
    logging.captureWarnings(True)
    if config is None:
        logging.getLogger("worker.settings").error("%s Using defaults for logging.", problem)
    if file_problem:
        logging.getLogger("worker.settings").warning(file_problem)


@contextmanager
def capture(secrets: frozenset[str] = frozenset()) -> Iterator[list[str]]:
    """Collect the job's log lines; its `secrets` are masked in them (and in the container
    log) while it runs, and forgotten when it ends."""
    lines: list[str] = []
    token, secrets_token = _lines.set(lines), _job_secrets.set(secrets)
    try:
        yield lines
    finally:
        _lines.reset(token)
        _job_secrets.reset(secrets_token)
