"""Parameter resolution: request -> env -> default for every parameter, and bad input errors."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rp_schema
from rp_schema import PARAMS, Param, resolve
from worker.errors import InputError

AUDIO = {"audio_file": "a.wav"}


def env_sample(p: Param) -> tuple[str, Any]:
    """An env string for `p` and the value it parses to; always different from the default."""
    special = {
        "suppress_tokens": ("-1,50", "-1,50"),
        "huggingface_access_token": ("hf_env_token", "hf_env_token"),
        "expected_languages": ("ru,en", ["ru", "en"]),
    }
    if p.name in special:
        return special[p.name]
    if p.choices:
        choice = next(c for c in p.choices if c != p.default)
        return choice.upper(), choice  # case-insensitive
    inner = rp_schema._inner_type(p.type)
    if inner is str:
        return f"custom-{p.name}", f"custom-{p.name}"
    if inner is bool:
        return str(not p.default).lower(), not p.default
    low = p.ge if p.ge is not None else (p.gt if p.gt is not None else 0)
    high = p.le if p.le is not None else p.lt
    if inner is int:
        value = int(low) + 1 if p.default is None or p.default != int(low) + 1 else int(low) + 2
        return str(value), value
    value = round((low + high) / 2 + 0.01, 3)
    assert value != p.default
    return str(value), value


WITH_ENV = [(p, name) for p in PARAMS for name in p.env_names]
WITHOUT_ENV = [p for p in PARAMS if not p.env_names]


@pytest.mark.parametrize("p, env_name", WITH_ENV, ids=[f"{p.name}-{n}" for p, n in WITH_ENV])
def test_env_beats_default_and_request_beats_env(p: Param, env_name: str) -> None:
    raw_env, parsed_env = env_sample(p)
    environ = {env_name: raw_env}

    default = resolve(dict(AUDIO), {})
    assert getattr(default.values, p.name) == p.default
    assert default.sources[p.name] == "default"

    from_env = resolve(dict(AUDIO), environ)
    assert getattr(from_env.values, p.name) == parsed_env
    assert from_env.sources[p.name] == f"env:{env_name}"

    # The request wins even when it asks for the default value explicitly.
    request = dict(AUDIO) | {p.name: p.default}
    from_request = resolve(request, environ)
    assert getattr(from_request.values, p.name) == p.default
    assert from_request.sources[p.name] == f"request:{p.name}"


@pytest.mark.parametrize("p", WITHOUT_ENV, ids=[p.name for p in WITHOUT_ENV])
def test_parameters_without_env_alias_ignore_the_environment(p: Param) -> None:
    # LANGUAGE is a locale variable on many systems: it must never pick the language.
    environ = {p.name.upper(): "ru"}
    resolved = resolve({"audio_base64": "AAAA"} if p.name == "audio_file" else dict(AUDIO),
                       environ)
    assert resolved.sources[p.name] in ("default", f"request:{p.name}")
    assert getattr(resolved.values, p.name) != "ru"


@pytest.mark.parametrize("key, param", [
    ("audio", "audio_file"), ("diarize", "diarization"),
    ("logprob_threshold", "log_prob_threshold"),
])
def test_alias_keys_set_their_parameter(key: str, param: str) -> None:
    value = {"audio": "b.wav", "diarize": False, "logprob_threshold": -0.5}[key]
    raw = {key: value} | ({} if key == "audio" else dict(AUDIO))
    resolved = resolve(raw, {})
    assert getattr(resolved.values, param) == value
    assert resolved.sources[param] == f"request:{key}"


def test_first_env_alias_wins_when_both_are_set() -> None:
    environ = {"HF_TOKEN": "hf_second", "HUGGINGFACE_ACCESS_TOKEN": "hf_first"}
    resolved = resolve(dict(AUDIO), environ)
    assert resolved.values.huggingface_access_token == "hf_first"


def test_empty_env_value_counts_as_unset() -> None:
    resolved = resolve(dict(AUDIO), {"MIN_SPEAKERS": "", "BATCH_SIZE": "  "})
    assert resolved.values.min_speakers is None and resolved.sources["batch_size"] == "default"


def test_values_are_normalized() -> None:
    v = resolve({"audio": "x", "transcription": "plain text", "language": "Russian",
                 "output_format": "SRT", "compute_type": "INT8"}, {}).values
    assert (v.transcription, v.language, v.output_format, v.compute_type) == (
        "plain_text", "ru", "srt", "int8")
    assert resolve({"audio": "x", "language": "pt-BR"}, {}).values.language == "pt"
    # expected_languages: codes, in order, once; a list or (an env value) "ru,en"
    languages = resolve({"audio": "x", "expected_languages": ["Russian", "EN", "ru-RU"]}, {})
    assert languages.values.expected_languages == ["ru", "en"]
    from_env = resolve({"audio": "x"}, {"EXPECTED_LANGUAGES": " uk, English "})
    assert from_env.values.expected_languages == ["uk", "en"]
    assert from_env.sources["expected_languages"] == "env:EXPECTED_LANGUAGES"
    assert resolve({"audio": "x", "expected_languages": []}, {}).values.expected_languages is None


def test_official_worker_request_is_accepted() -> None:
    # The official faster-whisper worker's own test request (.runpod/tests.json).
    official = {
        "audio": "https://github.com/runpod-workers/sample-inputs/raw/main/audio/gettysburg.wav",
        "model": "large-v2", "transcription": "plain text", "translate": False,
        "temperature": 0, "best_of": 5, "beam_size": 5, "suppress_tokens": "-1",
        "condition_on_previous_text": False, "temperature_increment_on_fallback": 0.2,
        "compression_ratio_threshold": 2.4, "logprob_threshold": -1, "no_speech_threshold": 0.6,
        "enable_vad": False, "word_timestamps": False, "initial_prompt": None, "patience": 1.0,
        "length_penalty": 0, "language": None, "translation": "vtt", "audio_base64": None,
    }
    v = resolve(official, {}).values
    assert v.audio_file == official["audio"] and v.model == "large-v2"
    assert v.log_prob_threshold == -1.0 and v.transcription == "plain_text"


def test_temperature_schedule() -> None:
    v = resolve(dict(AUDIO) | {"temperature": 0.4, "temperature_increment_on_fallback": 0.3}, {})
    assert rp_schema.temperatures(v.values) == (0.4, 0.7, 1.0)
    v = resolve(dict(AUDIO) | {"temperature_increment_on_fallback": None}, {})
    assert rp_schema.temperatures(v.values) == (0.0,)


BAD_INPUTS = [
    ({"batch_size": 0},
     "input 'batch_size': got 0, expected an integer >= 1 and <= 256."),
    ({"batch_size": "eight"},
     "input 'batch_size': got 'eight', expected an integer >= 1 and <= 256."),
    ({"batch_size": True},
     "input 'batch_size': got True, expected an integer >= 1 and <= 256."),
    ({"beam_size": 2.5},
     "input 'beam_size': got 2.5, expected an integer >= 1 and <= 32."),
    ({"temperature": float("nan")},
     "input 'temperature': got nan, expected a number >= 0 and <= 1."),
    ({"vad_onset": float("inf")},
     "input 'vad_onset': got inf, expected a number > 0 and < 1."),
    ({"vad_onset": 1.0}, "input 'vad_onset': got 1.0, expected a number > 0 and < 1."),
    ({"diarization": "maybe"}, "input 'diarization': got 'maybe', expected true or false."),
    ({"output_format": "pdf"},
     "input 'output_format': got 'pdf', expected one of json, srt, vtt, txt, markdown."),
    ({"compute_type": "float8"}, "input 'compute_type': got 'float8', expected one of default"),
    ({"language": "klingon"}, "input 'language': got 'klingon', expected a Whisper language code"),
    ({"language": 7}, "input 'language': got 7, expected a Whisper language code or name"),
    ({"expected_languages": ["ru", "klingon"]},
     "input 'expected_languages': got ['ru', 'klingon'], expected Whisper language codes or "
     'names such as ["ru", "en"]: \'klingon\' is not one (the \'language\' error lists the '
     "codes)."),
    ({"expected_languages": 7}, "input 'expected_languages': got 7, expected a list of Whisper "
     'language codes or names (["ru", "en"]), or "ru,en"'),
    ({"language": "de", "expected_languages": ["ru", "en"]},
     "input: language 'de' is not among expected_languages (ru, en); add it there, or leave "
     "language null to detect one of them."),
    ({"suppress_tokens": "-1,abc"},
     "input 'suppress_tokens': got '-1,abc', expected comma-separated integer token ids"),
    ({"min_speakers": 3, "max_speakers": 2},
     "input: min_speakers (3) is greater than max_speakers (2); make min_speakers <= "
     "max_speakers."),
    ({"bach_size": 8}, "input: unknown parameter 'bach_size' (did you mean 'batch_size'?). "
     "Valid parameters: align_model, align_output, audio, audio_base64, audio_file,"),
    ({"diarize": True, "diarization": False},
     "input: 'diarization' and 'diarize' are the same parameter with different values; "
     "send only one."),
    ({"initial_prompt": "x" * 5000},
     "input 'initial_prompt': got 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx... "
     "(5002 characters), expected a string of at most 4096 characters (or null)."),
]


@pytest.mark.parametrize("bad, message", BAD_INPUTS, ids=[str(b)[:40] for b, _ in BAD_INPUTS])
def test_bad_request_values_are_named_with_the_fix(bad: dict, message: str) -> None:
    with pytest.raises(InputError) as info:
        resolve(dict(AUDIO) | bad, {})
    assert message in str(info.value)


def test_audio_must_be_given_exactly_once() -> None:
    with pytest.raises(InputError, match="give exactly one of 'audio_file'.*neither was given"):
        resolve({}, {})
    with pytest.raises(InputError, match="not both"):
        resolve({"audio_file": "a.wav", "audio_base64": "AAAA"}, {})
    with pytest.raises(InputError, match="expected a JSON object of parameters, got list"):
        resolve(["a.wav"], {})


def test_bad_env_value_names_the_variable() -> None:
    with pytest.raises(InputError) as info:
        resolve(dict(AUDIO), {"LOGPROB_THRESHOLD": "high"})
    assert str(info.value) == (
        "environment variable LOGPROB_THRESHOLD (sets log_prob_threshold): got 'high', "
        "expected a number >= -100 and <= 0 (or null)."
    )


def test_all_errors_are_reported_together() -> None:
    with pytest.raises(InputError) as info:
        resolve({"batch_size": 0, "beam_size": 0}, {})
    text = str(info.value)
    assert "'batch_size'" in text and "'beam_size'" in text and "neither was given" in text


def test_secret_values_never_appear_in_errors_or_report() -> None:
    secret = "hf_" + "s3cr3t" * 100
    with pytest.raises(InputError) as info:
        resolve(dict(AUDIO) | {"huggingface_access_token": secret}, {})
    assert "s3cr3t" not in str(info.value) and "<redacted>" in str(info.value)
    report = resolve(dict(AUDIO), {"HF_TOKEN": "hf_abcdef"}).report()
    assert report["huggingface_access_token"] == {"value": "<redacted>", "source": "env:HF_TOKEN"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=5,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(rp_schema.KEY_TO_PARAM) + ["extra"]), json_values,
                       max_size=6))
def test_any_json_input_resolves_or_raises_input_error(raw: dict) -> None:
    try:
        resolved = resolve(raw, {})
    except InputError as exc:
        assert str(exc).startswith(("input", "environment variable"))
        return
    for p in PARAMS:  # whatever got through is of the declared type
        value = getattr(resolved.values, p.name)
        inner = rp_schema._inner_type(p.type)
        assert value is None or isinstance(value, inner)


def test_worker_settings_follow_the_environment(monkeypatch) -> None:
    """settings.get() parses once per environment, and still sees every change (any case)."""
    from worker import settings as worker_settings

    monkeypatch.setenv("MAX_LOADED_MODELS", "3")
    first = worker_settings.get()
    assert first.max_loaded_models == 3 and worker_settings.get() is first
    monkeypatch.setenv("MAX_LOADED_MODELS", "5")
    assert worker_settings.get().max_loaded_models == 5
    monkeypatch.delenv("MAX_LOADED_MODELS")
    monkeypatch.setenv("max_loaded_models", "4")  # pydantic-settings ignores the case
    assert worker_settings.get().max_loaded_models == 4
    monkeypatch.setenv("max_loaded_models", "many")
    for _ in range(2):  # a bad value is an error every time, never a stale good one
        with pytest.raises(worker_settings.SettingsError, match="MAX_LOADED_MODELS: got 'many'"):
            worker_settings.get()
