"""How long a recording is: what the decoder finds, not what its header claims.

Recorders that stream write the WAV header before they know the length: the data chunk's size
is a placeholder (0, 0xFFFFFFFF, 0x7FFFxxxx). Such a file is transcribed whole, and refused
only when the audio it holds is longer than MAX_AUDIO_SECONDS.
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

from conftest import english_prompts, ffmpeg, read_16k, wer
from inputs import media
from worker.errors import AudioError

FAST = {"diarization": False, "align_output": False, "language": "en"}
SANE_WER = 0.3  # base int8 on CPU, Debian's English prompts; the same as test_decoding's
# The data chunk's size as streaming recorders leave it: ffmpeg to a pipe (RIFF size too),
# never updated, and a "largest" value some recorders write (INT32_MAX less the header).
PLACEHOLDERS = {"0xFFFFFFFF": 0xFFFFFFFF, "0": 0, "0x7FFFFFE0": 0x7FFFFFE0}


def with_data_size(wav: Path, size: int, out: Path) -> Path:
    """`wav` with its data chunk's size field (and the RIFF size after it) set to `size`."""
    data = bytearray(wav.read_bytes())
    at = data.index(b"data")
    riff = 0xFFFFFFFF if size == 0xFFFFFFFF else (size + at) & 0xFFFFFFFF
    data[4:8], data[at + 4:at + 8] = struct.pack("<I", riff), struct.pack("<I", size)
    out.write_bytes(bytes(data))
    return out


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, float]:
    """~8 s of Debian's recorded English prompts as 16 kHz mono PCM WAV (read directly, not
    through ffmpeg), their transcript and length."""
    prompts = english_prompts(3, skip=2)
    pieces = []
    for wav, _ in prompts:
        pieces += [read_16k(wav), np.zeros(8000, dtype="float32")]
    path = tmp_path_factory.mktemp("speech") / "prompts-16k.wav"
    soundfile.write(path, np.concatenate(pieces), 16000, subtype="PCM_16")
    return path, " ".join(text for _, text in prompts), soundfile.info(path).duration


@pytest.mark.parametrize("size", PLACEHOLDERS.values(), ids=PLACEHOLDERS.keys())
def test_streamed_wav_header_is_transcribed_whole(run_job, speech, media_dir, local_file, size):
    wav, reference, seconds = speech
    streamed = with_data_size(wav, size, media_dir / f"streamed-{size:x}.wav")
    result = run_job({"audio_file": local_file(streamed)} | FAST)
    assert "error" not in result, result["error"]
    assert abs(result["duration"] - seconds) < 0.01, (result["duration"], seconds)
    assert not any(w.startswith("audio:") for w in result["warnings"]), result["warnings"]
    text = " ".join(s["text"] for s in result["segments"])
    assert wer(reference, text) <= SANE_WER, text


@pytest.mark.parametrize("size", PLACEHOLDERS.values(), ids=PLACEHOLDERS.keys())
def test_streamed_wav_header_through_ffmpeg_keeps_every_sample(tmp_path, size):
    prompt = english_prompts(1)[0][0]  # 8 kHz: decoded with ffmpeg
    streamed = with_data_size(prompt, size, tmp_path / "streamed.wav")
    audio = media.load(media.Source(streamed, "local", streamed.name), warnings := [])
    assert np.array_equal(audio.waveform, read_16k(prompt))
    assert not warnings


@pytest.mark.parametrize("size", PLACEHOLDERS.values(), ids=PLACEHOLDERS.keys())
def test_streamed_wav_header_longer_than_the_limit_is_refused_unread(speech, tmp_path,
                                                                     monkeypatch, size):
    """Refused on what the file holds (its size), before anything is decoded."""
    monkeypatch.setenv("MAX_AUDIO_SECONDS", "5")
    reads = spy_on_decoders(monkeypatch)
    streamed = with_data_size(speech[0], size, tmp_path / "streamed.wav")
    with pytest.raises(AudioError) as error:
        media.load(media.Source(streamed, "local", streamed.name))
    assert str(error.value) == (
        f"audio: {speech[2]:.0f} s is longer than this worker's MAX_AUDIO_SECONDS=5; split the "
        "file or raise the limit."
    )
    assert reads == []


def test_implausible_container_length_is_not_refused(tmp_path):
    """An AU file (not WAV) whose header claims 67109 s: ffprobe believes it, the file's size
    (~50 KB) can't hold it. Decoded, it is the prompt it holds."""
    prompt = english_prompts(1)[0][0]
    au = tmp_path / "prompt.au"
    ffmpeg("-i", str(prompt), str(au))
    data = bytearray(au.read_bytes())
    data[8:12] = struct.pack(">I", 0x7FFFFFE0)  # the data size, big-endian
    au.write_bytes(bytes(data))
    audio = media.load(media.Source(au, "local", au.name))
    assert np.array_equal(audio.waveform, read_16k(prompt))


def spy_on_decoders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the decoders media.load calls (each still runs)."""
    calls: list[str] = []

    def spy(name, function):
        def call(*args, **kwargs):
            calls.append(name)
            return function(*args, **kwargs)
        return call

    monkeypatch.setattr(media, "decode_ffmpeg", spy("ffmpeg", media.decode_ffmpeg))
    monkeypatch.setattr(media.soundfile, "read", spy("soundfile", media.soundfile.read))
    return calls


@pytest.mark.parametrize("suffix", ["wav", "mp3", "ogg", "mp4"])
def test_long_file_is_refused_before_decoding(tmp_path, monkeypatch, suffix):
    """A container whose length agrees with its size is refused on it, without decoding."""
    monkeypatch.setenv("MAX_AUDIO_SECONDS", "30")
    path = tmp_path / f"ten-minutes.{suffix}"
    video = ["-f", "lavfi", "-i", "color=c=black:s=64x64:r=1", "-c:v", "libx264"]
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", *(video if suffix == "mp4" else []),
           "-t", "600", str(path))
    reads = spy_on_decoders(monkeypatch)
    with pytest.raises(AudioError) as error:
        media.load(media.Source(path, "local", path.name))
    assert str(error.value) == ("audio: 600 s is longer than this worker's MAX_AUDIO_SECONDS=30; "
                                "split the file or raise the limit.")
    assert reads == []


def test_file_of_unknown_length_stops_decoding_at_the_limit(tmp_path, monkeypatch):
    """FLAC written to a pipe doesn't say how long it is: decoded up to the limit, no further."""
    monkeypatch.setenv("MAX_AUDIO_SECONDS", "30")
    path = tmp_path / "streamed.flac"
    with path.open("wb") as out:
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                        "anullsrc=r=16000:cl=mono", "-t", "600", "-f", "flac", "-"],
                       stdout=out, check=True)
    with pytest.raises(AudioError) as error:
        media.load(media.Source(path, "local", path.name))
    assert str(error.value) == (
        "audio: the file decodes to more than 30 s (decoding stopped there), longer than this "
        "worker's MAX_AUDIO_SECONDS=30; split the file or raise the limit."
    )
