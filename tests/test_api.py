"""The worker as users run it: runpod's local API server (/runsync, /run + /status, also under
RunPod's /<endpoint id>/ for its SDK) on 127.0.0.1, and `python src/handler.py` on
test_input.json."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from conftest import CLEARED_ENV, NO_SAMPLING, ROOT, WORKER_ENV

SAMPLE_JOB = {"audio_file": "sample.wav", "diarization": False, "align_output": False}


def worker_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLEARED_ENV}
    return env | WORKER_ENV | {"LOCAL_INPUT_DIR": str(ROOT / "samples")} | extra


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def local_api(log: Path, **env: str) -> Iterator[str]:
    """runpod's local API server (`--rp_serve_api`) on a free loopback port; yields its URL.
    Its output goes to `log`: an unread pipe would fill up and block the server."""
    port = free_port()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "src/handler.py", "--rp_serve_api", "--rp_api_host", "127.0.0.1",
             "--rp_api_port", str(port)],
            cwd=ROOT, env=worker_env(**env), stdout=out, stderr=subprocess.STDOUT, text=True,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                requests.get(f"{url}/docs", timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.5)
        else:
            proc.kill()
            pytest.fail(f"API server did not start:\n{log.read_text()[-3000:]}")
        try:
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=30)


@pytest.fixture(scope="module")
def api(assets_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with local_api(tmp_path_factory.mktemp("api") / "server.log") as url:
        yield url


def test_runsync_transcribes(api: str) -> None:
    response = requests.post(f"{api}/runsync", json={"input": SAMPLE_JOB | {"debug": True}},
                             timeout=300)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "COMPLETED", body
    output = body["output"]
    assert "chicago" in output["transcription"].lower()
    assert output["detected_language"] == "en"
    # the model was preloaded at start-up, so the job itself loads nothing
    assert output["debug_info"]["model"]["load_seconds"] == 0
    assert "job " in output["logs"] and "stage transcription" in output["logs"]


def test_run_then_status(api: str) -> None:
    submitted = requests.post(f"{api}/run", json={"input": SAMPLE_JOB}, timeout=30).json()
    assert submitted["status"] == "IN_PROGRESS"
    result = requests.post(f"{api}/status/{submitted['id']}", timeout=300).json()
    assert result["status"] == "COMPLETED", result
    assert "new jersey" in result["output"]["transcription"].lower()


def test_bad_request_fails_cleanly_and_server_keeps_serving(api: str) -> None:
    bad = requests.post(f"{api}/runsync", json={"input": {"audio_file": "sample.wav",
                                                          "batch_size": "lots"}},
                        timeout=60).json()
    assert bad["status"] == "FAILED"
    assert bad["error"] == (
        "input 'batch_size': got 'lots', expected an integer >= 1 and <= 256."
    )
    good = requests.post(f"{api}/runsync", json={"input": SAMPLE_JOB}, timeout=300).json()
    assert good["status"] == "COMPLETED"


def test_handler_runs_test_input_json() -> None:
    """What `make run` does: runpod's local test mode on test_input.json, exit 0 on success."""
    proc = subprocess.run(
        [sys.executable, "src/handler.py"], cwd=ROOT, env=worker_env(), capture_output=True,
        text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Job local_test completed successfully." in proc.stdout
    assert re.search(r"job local_test done: [1-9]\d* segments, language en, 30\.0 s of audio",
                     proc.stdout + proc.stderr), proc.stderr[-3000:]
    job_input = json.loads((ROOT / "test_input.json").read_text())["input"]
    assert job_input["audio_file"] == "sample.wav"


# A backend engineer's client for the RunPod endpoint, unchanged: only the environment points
# runpod's SDK at the local API (README, Clients).
SDK_CLIENT = """
import json, os, sys
import runpod

runpod.api_key = os.environ["RUNPOD_API_KEY"]
endpoint = runpod.Endpoint(os.environ["ENDPOINT_ID"])
print(json.dumps(endpoint.run_sync({"input": json.loads(sys.argv[1])}, timeout=600)))
"""


def result_shape(result: dict) -> tuple[dict[str, str], list[str]]:
    """Every top-level field with its JSON type, and every segment field."""
    return ({k: type(v).__name__ for k, v in result.items()},
            sorted({k for s in result["segments"] for k in s}))


def test_runpod_sdk_and_plain_http_get_the_same_full_result(api: str, tmp_path: Path) -> None:
    job = SAMPLE_JOB | {"output_format": "srt"}
    client = tmp_path / "client.py"
    client.write_text(SDK_CLIENT)
    # the SDK posts to <RUNPOD_ENDPOINT_BASE_URL>/<endpoint id>/runsync
    proc = subprocess.run(
        [sys.executable, str(client), json.dumps(job)], capture_output=True, text=True,
        timeout=600, env=worker_env(RUNPOD_ENDPOINT_BASE_URL=api, RUNPOD_API_KEY="local-key",
                                    ENDPOINT_ID="abc123xyz"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    sdk = json.loads(proc.stdout)
    body = requests.post(f"{api}/runsync", json={"input": job},
                         headers={"Authorization": "Bearer local-key"}, timeout=300).json()
    assert body["status"] == "COMPLETED", body
    plain = body["output"]
    assert result_shape(sdk) == result_shape(plain)
    for result in (sdk, plain):
        assert result["detected_language"] == "en" and result["segments"]
        assert "chicago" in result["transcription"].lower()
        assert result["srt"].startswith("1\n") and "job " in result["logs"]


def test_runpod_paths_with_an_endpoint_id(api: str) -> None:
    """What a plain-HTTP client written for https://api.runpod.ai/v2/<id>/ sends, here."""
    bad = requests.post(f"{api}/abc123xyz/runsync", json={"input": {"audio_file": "sample.wav",
                                                                     "batch_size": "lots"}},
                        headers={"Authorization": "Bearer local-key"}, timeout=60).json()
    assert bad["status"] == "FAILED"
    assert bad["error"] == "input 'batch_size': got 'lots', expected an integer >= 1 and <= 256."
    # the SDK GETs /status (runpod's local API had it as POST only)
    unknown = requests.get(f"{api}/abc123xyz/status/no-such-job", timeout=30).json()
    assert unknown == {"id": "no-such-job", "status": "FAILED", "error": "Job ID not found"}


def test_a_streaming_worker_returns_the_list_of_elements_with_the_result_last(
        assets_ready: None, tmp_path: Path) -> None:
    """STREAM_RESULTS=true: runpod aggregates what the generator yields (/runsync, /status),
    and /stream/{id} returns the elements; the last one is the usual response."""
    job_input = SAMPLE_JOB | NO_SAMPLING  # two runs' segments are compared
    with local_api(tmp_path / "server.log", STREAM_RESULTS="true", WARM_UP="false") as url:
        body = requests.post(f"{url}/runsync", json={"input": job_input}, timeout=300).json()
        assert body["status"] == "COMPLETED", body
        elements = body["output"]
        assert isinstance(elements, list) and elements[-1]["type"] == "result"
        assert {e["type"] for e in elements[:-1]} == {"progress", "segments"}
        result = elements[-1]["output"]
        assert "chicago" in result["transcription"].lower() and "job " in result["logs"]
        # what a client reading RunPod's /stream sees (the SDK GETs it under the endpoint id)
        job = requests.post(f"{url}/run", json={"input": job_input}, timeout=30).json()
        stream = requests.get(f"{url}/abc123xyz/stream/{job['id']}", timeout=300).json()
        assert stream["status"] == "COMPLETED", stream
        outputs = [chunk["output"] for chunk in stream["stream"]]
        assert outputs[-1]["type"] == "result"
        assert outputs[-1]["output"]["segments"] == result["segments"]
