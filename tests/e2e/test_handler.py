"""The handler in-process: inputs (file, base64, URL, video), errors, caching, logs, secrets."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from conftest import MODELS, NO_SAMPLING, ROOT, ffmpeg

FAST = {"diarization": False, "align_output": False, "language": "en"}


@pytest.fixture(scope="module")
def short_wav(sample_clip) -> Path:
    return sample_clip(6)  # real speech, quick jobs


@pytest.fixture(scope="module")
def http_server(serve_directory, media_dir: Path) -> str:
    return serve_directory(media_dir)


def ok(result: dict) -> dict:
    assert "error" not in result, result["error"]
    return result


def test_local_file_transcribes_with_debug_info(run_job, short_wav, local_file):
    result = ok(run_job({"audio_file": local_file(short_wav), "debug": True} | FAST))
    text = result["transcription"].lower()
    assert "hello" in text
    info = result["debug_info"]
    assert set(info) >= {"audio", "runtime", "model", "decode", "output", "params", "timings"}
    assert info["audio"] == {
        "is_compatible": True,
        "expected": {"container": "wav", "codec": "pcm_s16le", "sample_rate": 16000,
                     "channels": 1},
        "actual": {"container": "wav", "codec": "pcm_s16le", "sample_rate": 16000,
                   "channels": 1},
        "used_fallback": False, "source": "local", "reason": "16 kHz mono PCM WAV; read directly",
    }
    assert info["runtime"]["device"] == "cpu" == result["device"]
    assert info["params"]["model"] == {"value": "base", "source": "env:MODEL"}
    assert info["params"]["debug"] == {"value": True, "source": "request:debug"}
    assert info["params"]["beam_size"] == {"value": 5, "source": "default"}
    assert set(info["timings"]) >= {"download", "decode_audio", "model_load",
                                    "language_detection", "transcription"}
    assert len(result["input_sha256"]) == 64 and abs(result["duration"] - 6.0) < 0.05


def test_second_job_reuses_the_loaded_model(run_job, short_wav, local_file, monkeypatch):
    from worker import models

    # An empty cache, whatever other tests loaded before: the first job really loads.
    monkeypatch.setattr(models, "_cache", models.ModelCache(2))
    job = {"audio_file": local_file(short_wav), "compute_type": "float32",
           "debug": True} | FAST | NO_SAMPLING  # the two transcripts are compared exactly
    first, second = ok(run_job(job)), ok(run_job(job))
    assert first["debug_info"]["model"]["load_seconds"] > 0
    assert second["debug_info"]["model"]["load_seconds"] == 0
    assert second["debug_info"]["model"]["compute_type"] == "float32"
    assert second["transcription"] == first["transcription"]


def test_each_job_returns_only_its_own_logs(run_job, short_wav, local_file):
    import handler

    name = local_file(short_wav)
    a = handler.handler({"id": "job-a", "input": {"audio_file": name} | FAST})
    b = handler.handler({"id": "job-b", "input": {"audio_file": name} | FAST})
    assert "job job-a started" in a["logs"] and "job job-b" not in a["logs"]
    assert "job job-b started" in b["logs"] and "job job-a" not in b["logs"]
    assert "stage transcription" in b["logs"]


def test_float16_on_cpu_falls_back_to_int8_with_warning(run_job, short_wav, local_file):
    result = ok(run_job({"audio_file": local_file(short_wav), "compute_type": "float16",
                         "debug": True} | FAST))
    assert result["debug_info"]["model"]["compute_type"] == "int8"
    assert any("compute_type 'float16' is not supported on cpu; using 'int8'" in w
               for w in result["warnings"])


def test_base64_input(run_job, short_wav):
    data = base64.b64encode(short_wav.read_bytes()).decode()
    result = ok(run_job({"audio_base64": data, "debug": True} | FAST))
    assert "hello" in result["transcription"].lower()
    assert result["debug_info"]["audio"]["source"] == "base64"


def test_video_with_audio_track_is_transcribed(run_job, media_dir, short_wav, local_file):
    video = media_dir / "talk.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=blue:s=160x120:d=6", "-i", str(short_wav),
           "-c:v", "libx264", "-c:a", "aac", "-shortest", str(video))
    result = ok(run_job({"audio_file": local_file(video), "debug": True} | FAST))
    assert "hello" in result["transcription"].lower()
    assert result["debug_info"]["audio"]["used_fallback"] is True
    assert result["debug_info"]["audio"]["actual"]["codec"] == "aac"


@pytest.mark.parametrize("output_format, marker", [
    ("srt", "1\n00:00:0"), ("vtt", "WEBVTT\n"), ("txt", "Hello"),
])
def test_output_formats(run_job, short_wav, local_file, output_format, marker):
    result = ok(run_job({"audio_file": local_file(short_wav),
                         "output_format": output_format} | FAST))
    assert result[output_format].startswith(marker) or marker in result[output_format]
    assert "-->" in result[output_format] or output_format == "txt"


def test_official_worker_formats_and_fields(run_job, short_wav, local_file):
    result = ok(run_job({"audio": local_file(short_wav), "transcription": "formatted_text",
                         "model": "base"} | FAST))
    assert result["model"] == "base" and result["device"] == "cpu"
    assert result["translation"] is None
    assert result["transcription"] == "\n".join(s["text"] for s in result["segments"])


def test_url_download_from_allowed_private_host(run_job, http_server, short_wav, monkeypatch):
    monkeypatch.setenv("ALLOW_PRIVATE_URLS", "true")
    result = ok(run_job({"audio_file": f"{http_server}/{short_wav.name}?sig=secret",
                         "debug": True} | FAST))
    assert result["debug_info"]["audio"]["source"] == "url"
    assert "sig=secret" not in result["logs"]  # signed-URL queries are not logged


def test_private_url_is_refused_by_default(run_job, http_server, short_wav):
    result = run_job({"audio_file": f"{http_server}/{short_wav.name}"} | FAST)
    assert result["error"].startswith("audio_file: host '127.0.0.1' resolves to a non-public "
                                      "address (127.0.0.1); downloads from loopback/private")


def test_hostname_resolving_to_loopback_is_refused(run_job, http_server, short_wav):
    port = http_server.rsplit(":", 1)[1]
    result = run_job({"audio_file": f"http://localhost:{port}/{short_wav.name}"} | FAST)
    assert result["error"].startswith("audio_file: host 'localhost' resolves to a non-public "
                                      "address (")


def test_http_404_is_a_clear_error(run_job, http_server, monkeypatch):
    monkeypatch.setenv("ALLOW_PRIVATE_URLS", "true")
    result = run_job({"audio_file": f"{http_server}/missing.wav"} | FAST)
    assert result["error"] == (
        f"audio_file: download failed with HTTP 404 File not found for {http_server}/"
        "missing.wav; check the URL is correct and public."
    )


BAD_MEDIA = [
    ("notes.txt", b"this is not audio at all\n" * 20, "audio: not an audio or video file (it "
     "is text"),
    ("page.html", b"<html><body>404 Not Found</body></html>", "audio: not a"),
    ("random.bin", bytes(range(256)) * 8, "audio: not a readable audio or video file"),
    ("empty.wav", b"", "audio: not a readable audio or video file"),
    ("truncated.wav", None, "audio:"),
]


@pytest.mark.parametrize("name, content, message", BAD_MEDIA, ids=[b[0] for b in BAD_MEDIA])
def test_bad_media_is_an_error_and_the_worker_goes_on(run_job, media_dir, short_wav, local_file,
                                                      name, content, message):
    path = media_dir / name
    path.write_bytes(short_wav.read_bytes()[:30] if content is None else content)
    result = run_job({"audio_file": local_file(path)} | FAST)
    assert result["error"].startswith(message), result["error"]
    assert "Traceback" not in result["error"]
    assert ok(run_job({"audio_file": local_file(short_wav)} | FAST))["segments"]


@pytest.mark.parametrize("suffix", ["wav", "mp3"])
def test_cut_off_file_is_transcribed_with_a_truncation_warning(run_job, media_dir, local_file,
                                                              sample_clip, suffix):
    """A file whose container declares more audio than it holds (an interrupted upload)."""
    whole = media_dir / f"whole-20s.{suffix}"
    ffmpeg("-i", str(sample_clip(20)), str(whole))
    data = whole.read_bytes()
    cut = media_dir / f"cut.{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    result = ok(run_job({"audio_file": local_file(cut)} | FAST))
    warning = next(w for w in result["warnings"] if w.startswith("audio: the file declares"))
    assert warning.startswith("audio: the file declares 20.") and warning.endswith(
        "could be decoded (truncated or damaged); the transcript covers the decoded part.")
    assert 9 < result["duration"] < 11 and result["segments"]
    # the whole file: no such warning
    assert not any("declares" in w for w in ok(run_job({"audio_file": local_file(whole)}
                                                       | FAST))["warnings"])


def test_cut_off_file_with_no_audio_left_is_a_clear_error(run_job, media_dir, local_file,
                                                          sample_clip):
    data = sample_clip(20).read_bytes()
    cut = media_dir / "header-only.wav"
    cut.write_bytes(data[: data.index(b"data") + 8])  # the header, up to where samples start
    result = run_job({"audio_file": local_file(cut)} | FAST)
    assert result["error"].startswith("audio: the file declares 20.0 s of audio but none of "
                                      "it decodes (truncated or damaged)"), result["error"]


def test_video_without_audio_is_a_clear_error(run_job, media_dir, local_file):
    video = media_dir / "silent-film.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=red:s=160x120:d=2", "-c:v", "libx264", str(video))
    result = run_job({"audio_file": local_file(video)} | FAST)
    assert result["error"] == (
        "audio: the file has no audio stream (a video without sound); send a file with an "
        "audio track."
    )


def test_invalid_base64_is_a_clear_error(run_job):
    result = run_job({"audio_base64": "this is not base64!!"} | FAST)
    assert result["error"].startswith("audio_base64: not valid base64.")


def test_local_paths_need_local_input_dir(run_job, monkeypatch):
    monkeypatch.delenv("LOCAL_INPUT_DIR")
    result = run_job({"audio_file": "/etc/passwd"} | FAST)
    assert result["error"].startswith("audio_file: '/etc/passwd' is not an http(s) URL.")


def test_local_paths_cannot_escape_local_input_dir(run_job, short_wav, local_file):
    local_file(short_wav)
    result = run_job({"audio_file": "../../../etc/passwd"} | FAST)
    assert result["error"] == (
        "audio_file: '../../../etc/passwd' is outside LOCAL_INPUT_DIR; name a file inside it."
    )


def test_too_long_audio_is_refused_up_front(run_job, short_wav, local_file, monkeypatch):
    monkeypatch.setenv("MAX_AUDIO_SECONDS", "3")
    result = run_job({"audio_file": local_file(short_wav)} | FAST)
    assert result["error"] == (
        "audio: 6 s is longer than this worker's MAX_AUDIO_SECONDS=3; split the file or raise "
        "the limit."
    )


def test_unknown_model_lists_what_is_available(run_job, short_wav, local_file):
    result = run_job({"audio_file": local_file(short_wav), "model": "large-v2"} | FAST)
    assert result["error"] == (
        f"model: 'large-v2' is not in MODELS_DIR ({MODELS}) and downloads are disabled "
        "(HF_HUB_OFFLINE). Available: base."
    )
    assert "stage " not in result["logs"]  # found missing before the download


def test_official_model_name_maps_to_what_the_image_holds(run_job, short_wav, local_file,
                                                          tmp_path, monkeypatch):
    (tmp_path / "large-v3").symlink_to(MODELS / "base")
    monkeypatch.setenv("MODELS_DIR", str(tmp_path))
    result = ok(run_job({"audio_file": local_file(short_wav), "model": "medium"} | FAST))
    assert "model 'medium' is not in this image; using 'large-v3' instead." in result["warnings"]


def test_token_never_appears_in_output(run_job, short_wav, local_file, monkeypatch):
    request_token, env_token = "hf_REQUESTsecret123", "hf_ENVsecret456"
    monkeypatch.setenv("HF_TOKEN", env_token)  # read by the worker itself, nothing registered
    # senko runs (no pyannote in MODELS_DIR): the job goes through every stage to output.
    result = ok(run_job({"audio_file": local_file(short_wav), "debug": True, "language": "en",
                         "huggingface_access_token": request_token}))
    assert result["segments"] and result["speakers"]
    bad = run_job({"audio_file": local_file(short_wav), "batch_size": 0,
                   "huggingface_access_token": request_token} | FAST)
    assert bad["error"]
    for output in (result, bad):
        dumped = json.dumps(output)
        assert request_token not in dumped and env_token not in dumped
        assert "hf_" not in output["logs"]
    assert result["debug_info"]["params"]["huggingface_access_token"] == {
        "value": "<redacted>", "source": "request:huggingface_access_token"}


def test_a_token_that_is_a_spoken_word_never_alters_a_transcript(run_job, sample_clip,
                                                                  local_file, monkeypatch):
    """pyannote's call opens with "Hello. Hello. Oh, hello.": a job whose token is "Hello"
    keeps its transcript, and the next job (no token) is not masked at all."""
    clip = local_file(sample_clip(4))
    fast = FAST | NO_SAMPLING  # the transcripts are compared exactly
    with_token = ok(run_job({"audio_file": clip, "huggingface_access_token": "Hello"} | fast))
    assert "Hello" in with_token["transcription"], with_token["transcription"]
    assert "<redacted>" not in json.dumps(with_token["segments"])
    after = ok(run_job({"audio_file": clip} | fast))
    assert after["transcription"] == with_token["transcription"]
    assert "<redacted>" not in json.dumps(after)
    # a placeholder in the environment is not a secret either
    monkeypatch.setenv("HF_TOKEN", "none")
    placeholder = ok(run_job({"audio_file": clip, "debug": True} | fast))
    assert placeholder["transcription"] == with_token["transcription"]
    assert "<redacted>" not in json.dumps({k: v for k, v in placeholder.items()
                                           if k != "debug_info"})


def test_container_log_file_gets_every_jobs_lines_with_tokens_masked(run_job, short_wav,
                                                                     local_file):
    import logging
    from logging.handlers import RotatingFileHandler

    from worker import settings

    files = [h for h in logging.getLogger().handlers if isinstance(h, RotatingFileHandler)]
    assert [Path(h.baseFilename) for h in files] == [settings.get().container_log.resolve()]
    result = ok(run_job({"audio_file": local_file(short_wav)} | FAST))
    from worker import job_logs

    token = "hf_containerLogToken42"
    with job_logs.capture(frozenset({token})):  # a job whose own token gets logged
        logging.getLogger("worker.test").warning("calling the hub with %s", token)
    text = Path(files[0].baseFilename).read_text()
    assert all(line in text for line in result["logs"].splitlines())
    assert "calling the hub with <redacted>" in text and token not in text


def test_bad_input_then_good_job(run_job, short_wav, local_file):
    bad = run_job({"audio_file": local_file(short_wav), "beam_size": -1, "colour": "red"})
    assert "input 'beam_size': got -1" in bad["error"]
    assert "unknown parameter 'colour'" in bad["error"]
    assert "logs" in bad
    assert ok(run_job({"audio_file": local_file(short_wav)} | FAST))["segments"]


def test_each_log_line_reaches_stderr_once_after_runpod_configured_logging() -> None:
    """runpod's import calls logging.basicConfig; the worker's logging replaces that handler
    instead of adding a second one beside it (the local run printed every line twice)."""
    import subprocess
    import sys

    code = ("import runpod, logging\n"
            "from worker import job_logs\n"
            "job_logs.install()\n"
            "logging.getLogger('worker.test').warning('the one line')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=ROOT / "src")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("the one line") == 1, done.stderr
