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
from pathlib import Path

import pytest

from conftest import MODELS


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


def whisper_folder(where: Path) -> Path:
    """models/base as a model folder of its own (file links: the folder itself is `where`, so
    it resolves outside MODELS_DIR)."""
    where.mkdir(parents=True)
    for file in (MODELS / "base").iterdir():
        (where / file.name).symlink_to(file)
    return where


@pytest.fixture
def volume_models_dir(tmp_path, monkeypatch) -> Path:
    """MODELS_DIR holding `my-whisper`, the operator's symlink to a model on a network volume
    (/models/large-v3 -> /runpod-volume/models/large-v3); the volume holds `other` too."""
    models = tmp_path / "models"
    models.mkdir()
    (models / "my-whisper").symlink_to(whisper_folder(tmp_path / "volume" / "my-whisper"))
    whisper_folder(tmp_path / "volume" / "other")
    monkeypatch.setenv("MODELS_DIR", str(models))
    return models


QUICK = {"language": "en", "diarization": False, "align_output": False, "debug": True}


def test_the_operators_model_path_outside_models_dir_runs(run_job, sample_clip, local_file,
                                                           tmp_path, monkeypatch):
    """MODEL=/runpod-volume/... in the endpoint's environment is configuration, not a request."""
    model = whisper_folder(tmp_path / "runpod-volume" / "whisper")
    monkeypatch.setenv("MODEL", str(model))
    result = run_job({"audio_file": local_file(sample_clip(4))} | QUICK | {"align_output": True})
    assert "error" not in result, result["error"]
    assert result["segments"] and result["model"] == str(model)
    assert result["debug_info"]["model"]["path"] == str(model)
    assert result["debug_info"]["params"]["model"] == {"value": str(model), "source": "env:MODEL"}
    # alignment still degrades (no wav2vec2 model here) with its one warning
    assert [w for w in result["warnings"] if w.startswith("alignment model ")] == [
        "alignment model 'WAV2VEC2_ASR_BASE_960H' for language 'en' is not in this image "
        f"({MODELS / 'alignment'}) and downloads are off; word timings come from Whisper's "
        "cross-attention (bake it with the image's ALIGN_LANGUAGES)."]


@pytest.mark.parametrize("source", ["request", "env"])
def test_the_operators_symlink_under_models_dir_is_its_entry(run_job, sample_clip, local_file,
                                                             volume_models_dir, monkeypatch,
                                                             source):
    job = {"audio_file": local_file(sample_clip(4))} | QUICK
    if source == "request":
        job["model"] = "my-whisper"
    else:
        monkeypatch.setenv("MODEL", "my-whisper")
    result = run_job(job)
    assert "error" not in result, result["error"]
    assert result["segments"]
    assert result["debug_info"]["model"]["path"] == str(volume_models_dir / "my-whisper")
    assert result["debug_info"]["params"]["model"]["source"] == (
        "request:model" if source == "request" else "env:MODEL")


@pytest.mark.parametrize("value", ["../volume/other", "my-whisper/../other", "ABSOLUTE"])
def test_a_request_may_not_leave_models_dir(run_job, sample_clip, local_file, volume_models_dir,
                                            value):
    """Real model folders outside MODELS_DIR, named by a request: by `..` (also through the
    operator's symlink, which the OS resolves in the link's target) or by an absolute path."""
    if value == "ABSOLUTE":
        value = str(volume_models_dir.parent / "volume" / "other")
    result = run_job({"audio_file": local_file(sample_clip(4)), "model": value} | QUICK)
    assert result["error"] == (
        f"input 'model': {value!r} is not a model of this image or a directory under "
        f"MODELS_DIR; other models load only when the worker allows them "
        f"(ALLOWED_REMOTE_MODELS={value}, or ALLOW_REMOTE_MODELS=true).")
    assert "stage download" not in result["logs"]


def test_a_name_too_long_for_the_filesystem_is_an_input_error(run_job, sample_clip, local_file):
    long = "m" * 300  # within the schema's 512 characters, over a file name's 255 bytes
    audio = local_file(sample_clip(4))
    result = run_job({"audio_file": audio, "model": long} | QUICK)
    assert result["error"] == (
        f"input 'model': {long!r} is not a model of this image or a directory under "
        f"MODELS_DIR; other models load only when the worker allows them "
        f"(ALLOWED_REMOTE_MODELS={long}, or ALLOW_REMOTE_MODELS=true).")
    result = run_job({"audio_file": audio, "translate_to": "de", "translation_model": long}
                     | QUICK)
    assert result["error"] == (
        f"translation_model: {long!r} is not a CTranslate2 translation model in MODELS_DIR "
        f"({MODELS}) nor a local path. Available: none.")


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
