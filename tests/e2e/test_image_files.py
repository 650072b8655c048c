"""The container image's files stay true: the single-step Dockerfile is base + app, the token
only ever reaches a build as a secret, the RunPod Hub files are the schema's, and
builder/fetch_models.py fetches, lays out and loads models as the worker expects them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import MODELS, ROOT

sys.path.insert(0, str(ROOT / "builder"))

import fetch_models

import rp_schema
import runpod_hub
from pyannote_dir import PUBLISHED_3_1


def fetch_models_cli(*args: str, env: dict[str, str] | None = None
                     ) -> subprocess.CompletedProcess[str]:
    """builder/fetch_models.py run as the image build runs it, in its own interpreter."""
    return subprocess.run([sys.executable, str(ROOT / "builder" / "fetch_models.py"), *args],
                          env=env, capture_output=True, text=True, timeout=300)


def instructions(path: Path) -> list[str]:
    """A Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    return [" ".join(line.split()) for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_single_step_dockerfile_is_base_then_app() -> None:
    app = [i for i in instructions(ROOT / "Dockerfile.app")
           if not i.startswith(("ARG BASE=", "FROM "))]
    assert instructions(ROOT / "Dockerfile") == instructions(ROOT / "Dockerfile.base") + app


def test_token_reaches_the_build_only_as_a_secret() -> None:
    for name in ("Dockerfile", "Dockerfile.base", "Dockerfile.app"):
        for line in instructions(ROOT / name):
            assert not re.match(r"(ARG|ENV|LABEL)\b.*token", line, re.I), line
            for mention in re.findall(r"\S*hf_token\S*", line):
                assert mention in ("--mount=type=secret,id=hf_token", "/run/secrets/hf_token"), line


def test_app_image_runs_the_handler_offline_on_a_sample_it_ships() -> None:
    app = " ".join(instructions(ROOT / "Dockerfile.app"))
    for setting in ("HF_HUB_OFFLINE=1", "PYANNOTE_METRICS_ENABLED=false", "MODELS_DIR=/models",
                    "LOCAL_INPUT_DIR=/app/samples"):
        assert setting in app
    assert 'CMD ["python", "-u", "src/handler.py"]' in app
    # not as root: the last USER before CMD is an unprivileged one
    users = [i.split()[1] for i in instructions(ROOT / "Dockerfile.app") if i.startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), users
    sample = json.loads((ROOT / "test_input.json").read_text())["input"]["audio_file"]
    assert f"sample/{sample} samples/" in app  # copied into LOCAL_INPUT_DIR


def test_build_context_leaves_out_local_state() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "models", "samples"} <= set(ignored)
    assert not {"src", "builder", "scripts", "requirements.lock"} & set(ignored)


# --- RunPod Hub files ------------------------------------------------------------------------


def test_runpod_hub_files_match_the_schema() -> None:
    for path, text in runpod_hub.rendered().items():
        assert path.read_text() == text, "run: python scripts/runpod_hub.py"


def test_hub_settings_defaults_and_presets_parse_with_the_schema() -> None:
    by_env = {p.env_names[0]: p for p in rp_schema.PARAMS if p.env_names}
    config = json.loads(runpod_hub.HUB.read_text())["config"]
    assert {e["key"] for e in config["env"]} == set(by_env)
    for entry in config["env"]:
        param, field = by_env[entry["key"]], entry["input"]
        if "default" in field:
            assert rp_schema.parse_value(param, field["default"], entry["key"]) == param.default
        for option in field.get("options", []):
            rp_schema.parse_value(param, option["value"], entry["key"])
    for preset in config["presets"]:
        for key, value in preset["defaults"].items():
            rp_schema.parse_value(by_env[key], value, f"preset {preset['name']}: {key}")


def test_hub_tests_are_valid_requests_for_models_in_the_image() -> None:
    for case in json.loads(runpod_hub.TESTS.read_text())["tests"]:
        job = rp_schema.resolve(case["input"], environ={}).values
        assert job.model in fetch_models.MANIFEST["whisper"], case["name"]


# --- builder/fetch_models.py -----------------------------------------------------------------



def test_pipeline_config_points_at_its_own_subfolders(tmp_path: Path) -> None:
    from pyannote.audio.core.pipeline import expand_subfolders

    parts = list(fetch_models.PIPELINE_PARTS["pyannote/speaker-diarization-3.1"])
    config = yaml.safe_load(fetch_models.localize_pipeline_config(PUBLISHED_3_1, parts))
    assert config["params"] == yaml.safe_load(PUBLISHED_3_1)["params"]  # tuned values kept
    # What Pipeline.from_pretrained(<dir>) does with it: every part resolves inside <dir>.
    expand_subfolders(config, tmp_path)
    params = config["pipeline"]["params"]
    for part in ("segmentation", "embedding", "plda"):
        assert params[part]["checkpoint"] == tmp_path and params[part]["subfolder"] == part
    assert params["clustering"] == "AgglomerativeClustering"


def test_every_manifest_model_is_an_item_with_the_workers_path(tmp_path: Path) -> None:
    items = {i.key: i for i in fetch_models.all_items(tmp_path)}
    manifest = fetch_models.MANIFEST
    for name, entry in manifest["whisper"].items():
        assert items[name].target == tmp_path / entry["dir"]
    for lang in manifest["alignment"]:
        assert items[f"alignment/{lang}"].target == tmp_path / "alignment"
    for repo, entry in manifest["diarization"].items():
        assert items[f"diarization/{repo}"].target == tmp_path / entry["dir"]
    assert items["punkt_tab"].target == tmp_path / "nltk_data"
    for name, entry in manifest["translation"].items():
        if not entry.get("optional"):
            assert items[f"translation/{name}"].target == tmp_path / entry["dir"]
    assert items["embeddings/bge-m3"].target == tmp_path / "embeddings" / "bge-m3"


def test_every_downloaded_default_model_is_pinned_to_a_commit() -> None:
    """A build bakes the same bytes every time: each Hugging Face download of the default image
    (and the opt-in NLLB) names a commit, not a branch that moves under it."""
    manifest = fetch_models.MANIFEST
    pins = {name: e["revision"] for name, e in manifest["whisper"].items()}
    pins |= {f"{name}/{part}": p["revision"] for name, e in manifest["diarization"].items()
             for part, p in e.get("parts", {}).items()}
    pins |= {name: e["revision"] for group in ("diarization", "translation", "embeddings")
             for name, e in manifest[group].items() if not e.get("local")}
    pins["distil-large-v3"] = manifest["whisper_distil"]["distil-large-v3"]["revision"]
    unpinned = {name: rev for name, rev in pins.items() if not re.fullmatch(r"[0-9a-f]{40}", rev)}
    assert not unpinned


def test_non_commercial_translation_model_is_opt_in(tmp_path: Path) -> None:
    nllb = "translation/nllb-200-distilled-1.3B"
    assert "non-commercial" in fetch_models.MANIFEST["translation"][nllb.split("/")[1]][
        "license"]
    assert nllb not in {i.key for i in fetch_models.all_items(tmp_path)}
    assert nllb in {i.key for i in fetch_models.all_items(tmp_path, optional=(nllb,))}


@pytest.mark.slow
def test_translation_and_embedding_models_fetch_and_load_offline(tmp_path: Path) -> None:
    """The image build's model step for the new groups: a tiny CTranslate2 MT model (built as
    in test_translation) and a real sentence-transformers folder, copied and loaded offline."""
    from conftest import build_tiny_madlad

    tiny = build_tiny_madlad(tmp_path / "tiny")
    target = tmp_path / "models"
    result = fetch_models_cli(
        "--models-dir", str(target),
        "--token-file", str(tmp_path / "no-token"),
        f"--from-dir=translation/madlad400-3b-mt={tiny}",
        f"--from-dir=embeddings/bge-m3={MODELS / 'all-MiniLM-L6-v2'}",
        "--skip=whisper", "--skip=alignment", "--skip=diarization", "--skip=punkt_tab",
        "--skip=translation", "--skip=embeddings",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fetched translation/madlad400-3b-mt: copied from" in result.stdout
    assert "loaded  translation/madlad400-3b-mt:" in result.stdout
    assert "loaded  embeddings/bge-m3: 384-d, window 256 tokens" in result.stdout
    assert (target / "translation" / "madlad400-3b-mt" / "model.bin").is_file()


def test_skip_and_from_dir_select_items(tmp_path: Path) -> None:
    items = fetch_models.all_items(tmp_path, ("ru", "en"))
    chosen = fetch_models.select(items, ["whisper", "alignment/ru", "diarization",
                                         "translation", "embeddings"],
                                 {"large-v3": tmp_path})
    assert [i.key for i in chosen] == ["large-v3", "alignment/en", "punkt_tab"]
    with pytest.raises(SystemExit, match="unknown item"):
        fetch_models.select(items, ["large-v2"], {})
    with pytest.raises(SystemExit, match="not a group"):
        fetch_models.select(items, [], {"whisper": tmp_path})


def test_alignment_languages_baked_by_default_and_their_models() -> None:
    keys = [i.key for i in fetch_models.all_items(Path("/m")) if i.group == "alignment"]
    assert keys == [f"alignment/{lang}" for lang in ("ru", "en", "de", "fr", "es", "it")]
    # the manifest's choice first (what the worker uses), else whisperx's default
    assert fetch_models.align_model("ru") == "jonatasgrosman/wav2vec2-large-xlsr-53-russian"
    assert fetch_models.align_model("de") == "VOXPOPULI_ASR_BASE_10K_DE"
    assert fetch_models.align_model("ja") == "jonatasgrosman/wav2vec2-large-xlsr-53-japanese"
    with pytest.raises(SystemExit, match="no alignment model for language 'la'"):
        fetch_models.align_model("la")


def test_distil_models_are_baked_only_when_asked_for(tmp_path: Path) -> None:
    items = fetch_models.all_items(tmp_path)
    skip = ["whisper", "alignment", "diarization", "punkt_tab", "translation", "embeddings"]
    assert fetch_models.select(items, skip, {}) == []
    chosen = fetch_models.select(items, skip, {}, ["distil"])
    assert [i.key for i in chosen] == list(fetch_models.MANIFEST["whisper_distil"])
    assert chosen[0].target == tmp_path / "distil-large-v3"
    with pytest.raises(SystemExit, match="--with takes distil, translation/nllb-200-distilled-"
                                         "1.3B, got whisper"):
        fetch_models.select(items, [], {}, ["whisper"])


@pytest.mark.slow
def test_fetch_from_local_dirs_then_load_offline(tmp_path: Path) -> None:
    """The image check's own fetch, for real: copy, then load in a fresh offline interpreter."""
    target = tmp_path / "models"
    result = fetch_models_cli(
        "--models-dir", str(target),
        "--token-file", str(tmp_path / "no-token"),
        f"--from-dir=faster-whisper-large-v3-russian={MODELS / 'base'}",
        f"--from-dir=punkt_tab={MODELS / 'nltk_data'}",
        "--skip=whisper", "--skip=alignment", "--skip=diarization", "--skip=translation",
        "--skip=embeddings",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "loaded  faster-whisper-large-v3-russian: multilingual" in result.stdout
    assert "loaded  punkt_tab: 20 languages" in result.stdout
    assert (target / "faster-whisper-large-v3-russian" / "model.bin").is_file()
    assert "size    total:" in result.stdout


@pytest.mark.slow
def test_a_model_that_does_not_load_fails_the_fetch(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.bin").write_bytes(b"not a model")
    result = fetch_models_cli(
        "--models-dir", str(tmp_path / "models"), "--token-file", str(tmp_path / "no-token"),
        f"--from-dir=large-v3={broken}", "--skip=whisper", "--skip=alignment",
        "--skip=diarization", "--skip=punkt_tab", "--skip=translation", "--skip=embeddings",
    )
    assert result.returncode != 0
    assert "FAILED  large-v3" in result.stdout


def test_without_a_token_the_gated_pipelines_are_skipped(tmp_path: Path) -> None:
    result = fetch_models_cli(
        "--models-dir", str(tmp_path / "models"), "--token-file", str(tmp_path / "no-token"),
        "--skip=whisper", "--skip=alignment", "--skip=punkt_tab", "--skip=translation",
        "--skip=embeddings",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "skipping the gated diarization/pyannote/speaker-diarization-3.1" in result.stdout
    assert "0 item(s)" in result.stdout


def test_job_log_check_tells_success_from_failure() -> None:
    import check_job_result

    ok_log = ("2026-01-01 00:00:00,000 INFO worker.asr: detected language en (p=0.99)\n"
              "2026-01-01 00:00:09,000 INFO worker.handler: job local_test done: 1 segments, "
              "language en, 30.0 s of audio, 0 speakers, 1 warnings\n"
              "INFO   | Job local_test completed successfully.\n"
              "INFO   | Job result: {'output': {'segments': [{'start': 6.7, 'end': 29.9, "
              "'text': \"Hello. I didn't know\"}]}}\nINFO   | Local testing complete, exiting.\n")
    ok, lines = check_job_result.summarize(ok_log)
    assert ok and "detected language en (p=0.99)" in lines
    assert "job local_test done: 1 segments, language en, 30.0 s of audio, 0 speakers, " \
           "1 warnings" in lines
    failed, lines = check_job_result.summarize(
        "ERROR  | Job local_test failed with error: internal error (KeyError): 'language'.\n")
    assert not failed and lines[-1] == "job result: FAILED"


@pytest.mark.slow
def test_self_contained_3_1_pipeline_loads_offline(tmp_path: Path) -> None:
    """pyannote.audio 4 loads speaker-diarization-3.1 laid out as the image has it, with no
    network. Stand-in weights, as the real ones are gated: whisperx's bundled pyannote
    segmentation checkpoint for both models, and a PLDA of the right shapes."""
    import numpy as np
    import whisperx

    checkpoint = Path(whisperx.__file__).parent / "assets" / "pytorch_model.bin"
    parts = {}
    for name in ("segmentation", "embedding"):
        parts[name] = tmp_path / "downloads" / name
        parts[name].mkdir(parents=True)
        (parts[name] / "pytorch_model.bin").write_bytes(checkpoint.read_bytes())
    parts["plda"] = tmp_path / "downloads" / "plda"
    parts["plda"].mkdir()
    rng = np.random.default_rng(0)
    np.savez(parts["plda"] / "xvec_transform.npz", mean1=np.zeros(256), mean2=np.zeros(128),
             lda=rng.normal(size=(256, 128)))
    np.savez(parts["plda"] / "plda.npz", mu=np.zeros(128), tr=np.eye(128), psi=np.ones(128))

    repo = "pyannote/speaker-diarization-3.1"
    models = tmp_path / "models"
    pipeline = models / fetch_models.MANIFEST["diarization"][repo]["dir"]
    pipeline.mkdir(parents=True)
    (pipeline / "config.yaml").write_text(PUBLISHED_3_1)
    fetch_models.make_self_contained(pipeline, parts)

    result = fetch_models_cli(
        "--verify-only",
        "--models-dir", str(models), "--skip=whisper", "--skip=alignment", "--skip=punkt_tab",
        "--skip=translation", "--skip=embeddings",
        "--skip=diarization/pyannote/speaker-diarization-community-1",
        env=fetch_models.offline_env(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"loaded  diarization/{repo}: SpeakerDiarization" in result.stdout
