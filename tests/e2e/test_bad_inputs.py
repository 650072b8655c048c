"""The bad-input corpus: every case through the real handler must give `{"error": ...}` naming
the field or cause, never a traceback, and the worker must serve a good job afterwards."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest
import soundfile

import rp_schema
from conftest import ffmpeg

GOOD_WAV = Path(__file__).parents[2] / "samples" / "sample.wav"


def wrong_type(p: rp_schema.Param) -> object:
    inner = rp_schema._inner_type(p.type)
    return {str: 12345, bool: "maybe", int: "many", float: "lots", list: "a name"}[inner]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, serve_directory) -> tuple[str, Path]:
    root = tmp_path_factory.mktemp("served")
    return serve_directory(root), root


def corpus(served_url: str, root: Path) -> list[tuple[str, dict, dict, str]]:
    """(case, input, extra env, expected start of the error)."""
    (root / "page.html").write_text("<!doctype html><html><body>Access denied</body></html>")
    (root / "empty.wav").write_bytes(b"")
    (root / "noise.bin").write_bytes(np.random.default_rng(0).bytes(4096))
    good = GOOD_WAV.read_bytes()
    (root / "truncated.wav").write_bytes(good[:44])
    (root / "corrupt.mp3").write_bytes(b"ID3\x03\x00\x00\x00" + bytes(2000))
    ffmpeg("-f", "lavfi", "-i", "color=c=black:s=64x64:d=1", "-c:v", "libx264",
           str(root / "mute.mp4"))
    private = {"ALLOW_PRIVATE_URLS": "true"}
    url = served_url
    cases = [
        ("unreachable URL", {"audio_file": "http://127.0.0.1:9/a.wav"}, private,
         "audio_file: could not download http://127.0.0.1:9/a.wav (ConnectionError) after 3 "
         "attempts"),
        ("404", {"audio_file": f"{url}/missing.wav"}, private,
         "audio_file: download failed with HTTP 404"),
        ("HTML page instead of audio", {"audio_file": f"{url}/page.html"}, private,
         "audio: not a"),
        ("zero-length file", {"audio_file": f"{url}/empty.wav"}, private,
         "audio_file: http://127.0.0.1"),
        ("non-media bytes", {"audio_file": f"{url}/noise.bin"}, private,
         "audio: not a readable audio or video file"),
        ("truncated wav", {"audio_file": f"{url}/truncated.wav"}, private, "audio:"),
        ("corrupt mp3", {"audio_file": f"{url}/corrupt.mp3"}, private, "audio:"),
        ("video without audio", {"audio_file": f"{url}/mute.mp4"}, private,
         "audio: the file has no audio stream (a video without sound)"),
        ("private URL without opt-in", {"audio_file": f"{url}/page.html"}, {},
         "audio_file: host '127.0.0.1' resolves to a non-public address"),
        ("unsupported scheme", {"audio_file": "ftp://example.com/a.wav"}, {},
         "audio_file: URL scheme 'ftp' is not supported"),
        ("base64 that isn't", {"audio_base64": "%%% not base64 %%%"}, {},
         "audio_base64: not valid base64."),
        ("base64 of text", {"audio_base64": base64.b64encode(b"hello world").decode()}, {},
         "audio: not"),
        ("no audio at all", {"language": "en"}, {}, "input: give exactly one of 'audio_file'"),
        ("input not an object", "https://example.com/a.wav", {},  # type: ignore[list-item]
         "input: expected a JSON object of parameters, got str."),
        ("unknown key", {"audio_file": "a.wav", "beamsize": 3}, {},
         "input: unknown parameter 'beamsize' (did you mean 'beam_size'?)"),
        ("out of range", {"audio_file": "a.wav", "chunk_size": 31}, {},
         "input 'chunk_size': got 31, expected an integer >= 1 and <= 30."),
        ("NaN", {"audio_file": "a.wav", "patience": float("nan")}, {},
         "input 'patience': got nan"),
        ("infinity", {"audio_file": "a.wav", "no_speech_threshold": float("inf")}, {},
         "input 'no_speech_threshold': got inf"),
        ("huge string", {"audio_file": "a.wav", "hotwords": "word " * 10_000}, {},
         "input 'hotwords': got 'word word"),
        ("huge URL", {"audio_file": "https://example.com/" + "a" * 10_000}, {},
         "audio_file: the URL is longer than 8192 characters; use a shorter URL or send the "
         "file inline (base64)."),
        ("bad env value", {"audio_file": "a.wav"}, {"BATCH_SIZE": "thirty-two"},
         "environment variable BATCH_SIZE (sets batch_size): got 'thirty-two'"),
        ("bad env bool", {"audio_file": "a.wav"}, {"DIARIZE": "sometimes"},
         "environment variable DIARIZE (sets diarization): got 'sometimes'"),
    ]
    for p in rp_schema.PARAMS:
        if p.name in ("audio_file", "audio_base64"):
            continue
        cases.append((f"wrong type for {p.name}", {"audio_file": "a.wav", p.name: wrong_type(p)},
                      {}, f"input '{p.name}': got "))
    return cases


def test_every_bad_input_fails_cleanly_and_the_worker_keeps_serving(run_job, served,
                                                                    monkeypatch, local_file):
    url, root = served
    failures = []
    for case, job_input, env, expected in corpus(url, root):
        with monkeypatch.context() as m:
            for name, value in env.items():
                m.setenv(name, value)
            result = run_job(job_input)
        error = result.get("error", "")
        if not error.startswith(expected) or "Traceback" in error or "logs" not in result:
            failures.append(f"{case}: {error[:200]!r}")
    assert not failures, "\n".join(failures)

    silence = root / "silence.wav"
    soundfile.write(silence, np.zeros(16000 * 3, dtype="float32"), 16000, subtype="PCM_16")
    quiet = run_job({"audio_file": local_file(silence), "language": "en"})
    assert "error" not in quiet and quiet["segments"] == []

    result = run_job({"audio_file": local_file(GOOD_WAV), "language": "en",
                      "diarization": False, "align_output": False})
    assert "error" not in result, result["error"]
    assert "chicago" in result["transcription"].lower()
