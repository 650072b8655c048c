"""What a request may make the worker do: load only allowed models (loading one can run its
code), before any download or network call."""

from __future__ import annotations

import socket

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
    import model_policy

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
