"""The bulk client as a user runs it, and what its output folder holds: shared by the
client's tests."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, process_env

# The base model, no diarization or alignment: the client is under test, not the models.
PARAMS = {"language": "en", "diarization": False, "align_output": False,
          "output_format": "srt", "upload_results": False}


def client(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`python -m client ...` as a user runs it (the console script calls the same main), with
    Ctrl-C working as in a terminal: a test suite started in the background (`cmd &` in a
    script) has SIGINT ignored, which its children inherit, and the Ctrl-C tests then hang."""
    return subprocess.Popen([sys.executable, "-m", "client", *args], cwd=ROOT,
                            env=process_env(PYTHONPATH=str(ROOT / "src"), **(env or {})),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def summary_value(stdout: str, row: str) -> str:
    match = re.search(rf"^{re.escape(row)}\s+(.*)$", stdout, re.M)
    assert match, f"no {row!r} row in the summary:\n{stdout}"
    return match.group(1)


def index(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
