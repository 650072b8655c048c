"""Requests copied from the workers people switch from, sent unchanged (but for where the
audio is) to runpod's local API server: kodxana/whisperx-worker's README example, the official
faster-whisper worker's `.runpod/tests.json`, and a data: URI."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from conftest import MODELS, local_api


@pytest.fixture(scope="module")
def compat_api(assets_ready: None, tmp_path_factory: pytest.TempPathFactory,
               serve_directory, sample_clip) -> Iterator[tuple[str, str]]:
    """The API server over an image-like MODELS_DIR holding `base` and a `large-v3` (the base
    weights under that name), allowed to fetch from the loopback file server; yields the API
    URL and the file server's URL."""
    models = tmp_path_factory.mktemp("image-models")
    for name in ("base", "large-v3"):
        (models / name).symlink_to(MODELS / name if name == "base" else MODELS / "base")
    with local_api(models / "server.log", MODELS_DIR=str(models),
                   ALLOW_PRIVATE_URLS="true") as url:
        yield url, serve_directory(sample_clip(CLIP).parent)


CLIP = 10  # seconds of the real two-speaker sample: "... this is diane in new jersey"
AUDIO = f"sample-{CLIP}s.wav"


def runsync(api: str, job_input: dict) -> dict:
    body = requests.post(f"{api}/runsync", json={"input": job_input}, timeout=600).json()
    assert body["status"] == "COMPLETED", body
    return body["output"]


def test_kodxana_readme_request(compat_api):
    """kodxana/whisperx-worker's README usage example; its keys keep their meaning."""
    api, files = compat_api
    output = runsync(api, {
        "audio_file": f"{files}/{AUDIO}",
        "language": "en",
        "batch_size": 32,
        "temperature": 0.2,
        "align_output": True,
        "debug": True,
    })
    assert output["detected_language"] == "en"
    assert "new jersey" in " ".join(s["text"] for s in output["segments"]).lower()
    assert all(s["words"] for s in output["segments"])  # align_output: word timings
    params = output["debug_info"]["params"]
    assert params["temperature"] == {"value": 0.2, "source": "request:temperature"}
    assert params["batch_size"] == {"value": 32, "source": "request:batch_size"}


def test_kodxana_full_key_set(compat_api):
    """Every key of kodxana's schema (v1 and v2 without speaker samples), with its values."""
    api, files = compat_api
    output = runsync(api, {
        "audio_file": f"{files}/{AUDIO}", "language": None,
        "language_detection_min_prob": 0, "language_detection_max_tries": 5,
        "initial_prompt": "A phone call.", "batch_size": 64, "temperature": 0,
        "vad_onset": 0.500, "vad_offset": 0.363, "align_output": False, "diarization": False,
        "huggingface_access_token": None, "min_speakers": None, "max_speakers": None,
        "debug": True,
    })
    assert output["detected_language"] == "en"
    params = output["debug_info"]["params"]
    for key, value in (("vad_onset", 0.5), ("vad_offset", 0.363),
                       ("language_detection_max_tries", 5), ("diarization", False)):
        assert params[key] == {"value": value, "source": f"request:{key}"}


def test_official_worker_tests_json_request(compat_api):
    """runpod-workers/worker-faster_whisper's .runpod/tests.json, its `audio` URL pointed at
    the local file server: model large-v2 maps to the image's large-v3 with a warning."""
    api, files = compat_api
    output = runsync(api, {
        "audio": f"{files}/{AUDIO}",
        "model": "large-v2",
        "transcription": "plain text",
        "translate": False,
        "temperature": 0,
        "best_of": 5,
        "beam_size": 5,
        "suppress_tokens": "-1",
        "condition_on_previous_text": False,
        "temperature_increment_on_fallback": 0.2,
        "compression_ratio_threshold": 2.4,
        "logprob_threshold": -1,
        "no_speech_threshold": 0.6,
    })
    assert "model 'large-v2' is not in this image; using 'large-v3' instead." in output[
        "warnings"]
    assert "new jersey" in output["transcription"].lower()
    assert output["translation"] is None


def test_distil_model_and_data_uri(compat_api, sample_clip):
    """The official worker's distil-large-v3 and the audio inline as a data: URI, with
    subtitle limits on the srt `transcription`."""
    api, _ = compat_api
    data = base64.b64encode(Path(sample_clip(CLIP)).read_bytes()).decode()
    output = runsync(api, {
        "audio_file": f"data:audio/wav;base64,{data}", "model": "distil-large-v3",
        "language": "en", "diarization": False, "transcription": "srt",
        "max_line_width": 24, "max_line_count": 1,
    })
    assert ("model 'distil-large-v3' is not in this image; using 'large-v3' instead."
            in output["warnings"])
    text_lines = [line for line in output["transcription"].splitlines()
                  if line and "-->" not in line and not line.isdigit()]
    assert text_lines and all(len(line) <= 24 or " " not in line for line in text_lines)
    assert "new jersey" in " ".join(text_lines).lower()


def test_raw_base64_in_audio_file(compat_api, sample_clip):
    """kodxana also takes the file's base64 itself in audio_file."""
    api, _ = compat_api
    data = base64.b64encode(Path(sample_clip(CLIP)).read_bytes()).decode()
    output = runsync(api, {"audio_file": data, "language": "en", "align_output": False,
                           "diarization": False})
    assert "new jersey" in output["transcription"].lower()
