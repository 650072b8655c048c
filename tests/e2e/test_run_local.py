"""`make run` (scripts/run_local.py): a real job through the handler, the full result as JSON in
a file, a short summary on the terminal, exit 1 with the full error when the job fails."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import run_local
from conftest import ROOT, WORKER_ENV
from conftest import process_env as subprocess_env


def test_make_run_writes_the_full_result_and_prints_a_summary(
        assets_ready: None, tmp_path: Path) -> None:
    """The Makefile's command on test_input.json, as a newcomer runs it (own process)."""
    output = tmp_path / "output.json"
    # this checkout's src/ (the venv's editable install may point at another checkout)
    proc = subprocess.run(
        [sys.executable, "scripts/run_local.py", "test_input.json", "--output", str(output)],
        cwd=ROOT, env=subprocess_env(PYTHONPATH=str(ROOT / "src")), capture_output=True,
        text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(output.read_text())
    request = json.loads((ROOT / "test_input.json").read_text())["input"]
    assert request["output_format"] == "srt" and request["debug"] is True
    assert result["segments"] and "error" not in result and "job local_test done" in result["logs"]
    out = proc.stdout
    assert f"language: {result['detected_language']} (probability " in out
    assert f"audio: {result['duration']:.1f} s, {len(result['segments'])} segments" in out
    assert "speakers: not diarized" in out  # test_input.json turns diarization off
    assert "timings: " in out and " transcription " in out  # debug: true gives stage timings
    srt = result["srt"].splitlines()
    assert srt[:2] == ["1", srt[1]] and " --> " in srt[1]
    assert "\n".join(f"  {line}" for line in srt[:3]) in out  # the first cue, text included
    assert f"full result: {output} (" in out
    assert "TRUNCATED" not in out + proc.stderr


def test_output_json_is_the_handler_result(
        run_job: Callable[..., dict[str, Any]], sample_clip: Callable[[int], Path],
        local_file: Callable[[Path], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import handler

    returned = []

    def handler_spy(job: handler.RunpodJob) -> dict[str, Any]:  # the real handler, recorded
        returned.append(real(job))
        return returned[-1]

    real = handler.handler
    monkeypatch.setattr(handler, "handler", handler_spy)
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"input": {"audio_file": local_file(sample_clip(10)),
                                             "diarization": False, "align_output": False}}))
    output = tmp_path / "output.json"

    assert run_local.main([str(request), "--output", str(output)]) == 0

    assert len(returned) == 1
    result = json.loads(output.read_text())
    assert result == json.loads(json.dumps(returned[0]))
    out = capsys.readouterr().out
    assert f"language: {result['detected_language']} (probability " in out
    first = result["segments"][0]
    assert f"  [{first['start']:.1f}-{first['end']:.1f}] {first['text'].strip()}\n" in out
    assert 'timings: send "debug": true for stage timings' in out


def test_failed_job_exits_1_with_its_full_error(
        assets_ready: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # four misspelt parameters: an error over 4096 characters, where runpod's logger cuts
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"input": {"audio_file": "sample.wav", "bach_size": 8,
                                             "langauge": "en", "modle": "base",
                                             "diarise": False}}))
    output = tmp_path / "output.json"

    assert run_local.main([str(request), "--output", str(output)]) == 1

    result = json.loads(output.read_text())
    error = result["error"]
    assert len(error) > 4096
    assert error.startswith("input: unknown parameter 'bach_size' (did you mean 'batch_size'?)")
    assert "input: unknown parameter 'modle' (did you mean 'model'?)" in error
    err = capsys.readouterr().err
    assert "job local_test FAILED after " in err and f": {error}\n" in err
    assert f"full result: {output}\n" in err
    log = Path(WORKER_ENV["CONTAINER_LOG"])
    assert f"logs: this job's in {output} (\"logs\"), every worker line in {log}" in err
    assert "job local_test failed: input: unknown parameter" in result["logs"]


def test_request_file_that_is_not_a_request_is_refused(tmp_path: Path) -> None:
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"audio_file": "sample.wav"}))
    with pytest.raises(SystemExit) as exc:
        run_local.main([str(request)])
    assert str(exc.value) == (f'{request}: expected a request {{"input": {{"audio_file": ...}}}}, '
                              "as sent to RunPod.")
