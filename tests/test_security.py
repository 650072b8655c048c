"""What a request may make the worker do: load only allowed models (loading one can run its
code), before any download or network call."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import socket
import threading
import time

import pytest


@pytest.fixture
def online(monkeypatch):
    """Downloads on (a Hub-built image), and any network call fails the test."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def no_network(*args, **kwargs):
        raise AssertionError(f"network call: {args[:2]}")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)


@pytest.mark.parametrize("parameter, value", [
    ("diarization_model", "attacker/speaker-diarization"),
    ("model", "attacker/faster-whisper-evil"),
    ("align_model", "attacker/wav2vec2-evil"),
    ("diarization_model", "/etc"),  # a directory outside MODELS_DIR
])
def test_a_model_the_operator_did_not_allow_is_refused_before_any_work(
        run_job, sample_clip, local_file, online, parameter, value):
    result = run_job({"audio_file": local_file(sample_clip(4)), parameter: value,
                      "huggingface_access_token": "hf_requestToken123"})
    assert result["error"] == (
        f"input '{parameter}': {value!r} is not a model of this image or a directory under "
        f"MODELS_DIR; other models load only when the worker allows them "
        f"(ALLOWED_REMOTE_MODELS={value}, or ALLOW_REMOTE_MODELS=true).")
    assert "stage download" not in result["logs"]


def test_the_images_models_and_allowed_ids_pass(monkeypatch, tmp_path):
    from worker import model_policy

    for parameter, value in [("model", "large-v3"), ("model", "turbo"), ("model", "large-v2"),
                             ("model", "base"),  # a directory under MODELS_DIR
                             ("align_model", "WAV2VEC2_ASR_BASE_960H"),
                             ("align_model", "jonatasgrosman/wav2vec2-large-xlsr-53-japanese"),
                             ("diarization_model", "pyannote/speaker-diarization-community-1")]:
        assert model_policy.allowed(parameter, value), (parameter, value)
    assert not model_policy.allowed("model", "org/custom-whisper")
    assert not model_policy.allowed("model", "../models/base/../../etc")
    monkeypatch.setenv("ALLOWED_REMOTE_MODELS", "org/custom-whisper, org/other")
    assert model_policy.allowed("model", "org/custom-whisper")
    assert not model_policy.allowed("model", "org/third")
    monkeypatch.setenv("ALLOW_REMOTE_MODELS", "true")
    assert model_policy.allowed("diarization_model", "org/third")


# --- downloads --------------------------------------------------------------------------------

class _Counting(http.server.SimpleHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        type(self).hits.append(self.path)
        super().do_GET()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def counting_server(media_dir, sample_clip):
    shutil.copyfile(sample_clip(4), media_dir / "speech.wav")
    handler = functools.partial(_Counting, directory=str(media_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Counting.hits = []
    yield server.server_address[1]
    server.shutdown()


def test_dns_rebinding_cannot_reach_a_private_address(run_job, counting_server, monkeypatch):
    """The name resolves to a public address when checked and to loopback afterwards: the
    download connects only to the address that was checked, never to loopback."""
    import urllib3.util.connection

    real = socket.getaddrinfo
    answers = iter(["93.184.216.34"] + ["127.0.0.1"] * 20)

    def rebinding(host, port, *args, **kwargs):
        if host == "rebind.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]
        return real(host, port, *args, **kwargs)

    connects: list[tuple] = []

    def refuse(address, *args, **kwargs):  # record instead of sending anything anywhere
        connects.append(address)
        raise ConnectionRefusedError("test: no traffic")

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    monkeypatch.setattr(urllib3.util.connection, "create_connection", refuse)
    result = run_job({"audio_file": f"http://rebind.example:{counting_server}/speech.wav",
                      "language": "en"})
    assert result["error"].startswith("audio_file: ")
    assert connects and {host for host, _ in connects} == {"93.184.216.34"}
    assert _Counting.hits == []


DRIP_S = 30  # how long the slow server drips: far longer than the deadline plus a slow job


class _Drip(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        for _ in range(DRIP_S * 5):  # one byte every 0.2 s for DRIP_S, then hang up
            try:
                self.wfile.write(b"\0")
                self.wfile.flush()
            except OSError:
                return
            time.sleep(0.2)

    def log_message(self, *args) -> None:
        pass


def test_a_slow_drip_download_stops_at_the_deadline(run_job, monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Drip)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("ALLOW_PRIVATE_URLS", "true")
    monkeypatch.setenv("DOWNLOAD_DEADLINE_S", "1")
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/slow.wav?X-Amz-Signature=s3cr3t"
        started = time.monotonic()
        result = run_job({"audio_file": url})
        # stopped at the deadline, not when the server hung up: half the drip is room for a
        # slow, busy machine (the wall clock is not what is measured)
        assert time.monotonic() - started < DRIP_S / 2
    finally:
        server.shutdown()
    assert result["error"] == (
        f"audio_file: the download of http://127.0.0.1:{server.server_address[1]}/slow.wav "
        "did not finish within DOWNLOAD_DEADLINE_S=1 s; send a faster or smaller source (or "
        "raise the limit).")


def test_signed_url_query_is_in_no_log_or_debug_info(run_job, counting_server, monkeypatch):
    import logging

    monkeypatch.setenv("ALLOW_PRIVATE_URLS", "true")
    url = f"http://127.0.0.1:{counting_server}/speech.wav?X-Amz-Signature=s3cr3tSig"
    # LOG_LEVEL=DEBUG, and urllib3's own logger opened up too (runpod quiets it to WARNING)
    loggers = [logging.getLogger(), logging.getLogger("urllib3")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    try:
        result = run_job({"audio_file": url, "debug": True, "diarization": False,
                          "align_output": False, "language": "en"})
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
    assert "error" not in result, result["error"]
    assert _Counting.hits == ["/speech.wav?X-Amz-Signature=s3cr3tSig"]
    assert "urllib3" in result["logs"]  # urllib3 did log the request, without the query
    assert "s3cr3tSig" not in json.dumps(result)
    assert result["debug_info"]["params"]["audio_file"]["value"] == (
        f"http://127.0.0.1:{counting_server}/speech.wav")


@pytest.mark.parametrize("url", ["http://example.com:99999/a.wav", "http://[::1/a.wav",
                                 "http:///a.wav", "https://exa mple.com/a.wav"])
def test_a_malformed_url_is_an_input_error_naming_audio_file(run_job, url):
    result = run_job({"audio_file": url})
    assert result["error"].startswith("audio_file: "), result["error"]
    assert "internal error" not in result["error"]
