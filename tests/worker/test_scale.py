"""Long audio in bounded memory and model-cache hygiene (issue 12 items 3-4): the streamed
ffmpeg decode, the compute-type chooser, cache keys per resolved compute type, the budget."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from whisperx.audio import load_audio

from conftest import MODELS, SAMPLES, ffmpeg
from inputs import media
from worker import models
from worker.errors import AudioError


@pytest.fixture(scope="module")
def ten_minutes_ogg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 min of the real two-speaker sample, looped, as Ogg/Opus (so ffmpeg decodes it)."""
    path = tmp_path_factory.mktemp("long") / "ten-minutes.ogg"
    ffmpeg("-stream_loop", "19", "-i", str(SAMPLES / "sample.wav"), "-c:a", "libopus",
           "-b:a", "24k", str(path))
    return path


def test_streamed_decode_equals_whisperx_load_audio(ten_minutes_ogg: Path) -> None:
    expected = load_audio(str(ten_minutes_ogg))
    got = media.load(media.Source(ten_minutes_ogg, "local", "ten-minutes.ogg")).waveform
    assert got.dtype == np.float32
    assert np.array_equal(got, expected)
    assert abs(got.size / 16000 - 600) < 0.1


def test_streamed_decode_grows_past_a_short_declared_length(ten_minutes_ogg: Path) -> None:
    # a container that declares 1 s but holds 10 min still decodes whole
    got = media.decode_ffmpeg(ten_minutes_ogg, 1.0)
    assert np.array_equal(got, load_audio(str(ten_minutes_ogg)))


def test_load_of_ten_minutes_holds_one_waveform(ten_minutes_ogg: Path) -> None:
    # whisperx's load_audio holds ffmpeg's bytes, an int16 copy and two float32 arrays (~3x)
    tracemalloc.start()
    try:
        audio = media.load(media.Source(ten_minutes_ogg, "local", "ten-minutes.ogg"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * audio.waveform.nbytes, (peak, audio.waveform.nbytes)


def test_ffmpeg_failure_names_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"ID3" + bytes(5000))
    with pytest.raises(AudioError, match=r"^audio: .*\(.+\)"):
        media.load(media.Source(bad, "local", "bad.mp3"))


@pytest.mark.parametrize(("dev", "supported", "expected"), [
    ("cuda", {"float32", "float16", "int8_float16", "int8", "int8_float32", "bfloat16"},
     "int8_float16"),
    ("cuda", {"float32", "float16", "int8", "int8_float32"}, "float16"),
    ("cuda", {"float32", "int8", "int8_float32"}, "float32"),
    ("cpu", {"float32", "int8", "int8_float32", "int16"}, "int8"),
    ("cpu", {"float32"}, "float32"),
])
def test_compute_type_fallback(dev: str, supported: set[str], expected: str) -> None:
    assert models.fallback_compute_type(dev, supported) == expected


def test_default_and_its_resolved_type_share_one_model(monkeypatch: pytest.MonkeyPatch) -> None:
    import asr

    monkeypatch.setattr(models, "_cache", models.ModelCache(2))
    path = str(MODELS / "base")
    first = asr.load_whisper(path, "default", "cpu")  # base is saved float16: float32 on a CPU
    assert first.compute_type == "float32" and first.load_seconds > 0
    again = asr.load_whisper(path, "float32", "cpu")
    assert again.model is first.model and again.load_seconds == 0
    assert asr.load_whisper(path, "default", "cpu").load_seconds == 0
    assert models.cache().loaded("whisper") == [(path, "float32", "cpu")]


def test_budget_is_per_kind_least_recently_used_dropped() -> None:
    cache = models.ModelCache(2)
    for name in ("a", "b"):
        cache.get("whisper", (name,), object)
    cache.get("align", ("x",), object)
    cache.get("whisper", ("a",), object)  # a is now the most recent
    cache.get("whisper", ("c",), object)
    assert cache.loaded("whisper") == [("a",), ("c",)]
    assert cache.loaded("align") == [("x",)]
