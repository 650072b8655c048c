"""Job audio: fetched (URL, base64 or local file), probed with ffprobe, decoded to 16 kHz mono.

A 16 kHz mono PCM WAV is read as is; anything else ffmpeg can open (video included: only the
audio track is decoded) goes through ffmpeg, and `Audio.check` says which path was taken.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from worker import SAMPLE_RATE, settings
from worker.errors import AudioError

from . import download

log = logging.getLogger("worker.media")

EXPECTED = {"container": "wav", "codec": "pcm_s16le", "sample_rate": SAMPLE_RATE, "channels": 1}


@dataclass(frozen=True)
class Source:
    path: Path
    kind: str  # "url" | "base64" | "local"
    name: str  # what the caller sent, safe to log (no query string)


@dataclass(frozen=True)
class Audio:
    waveform: np.ndarray  # float32, mono, 16 kHz
    duration: float
    sha256: str
    check: dict[str, Any]  # debug_info.audio


# --- fetching ---------------------------------------------------------------------------------

def fetch(audio_file: str | None, audio_base64: str | None, workdir: Path) -> Source:
    if audio_base64:
        return _from_base64(audio_base64, workdir, "audio_base64")
    assert audio_file
    if audio_file[:5].lower() == "data:":  # data:audio/wav;base64,... (kodxana accepts it)
        return _from_base64(audio_file, workdir, "audio_file")
    if "://" not in audio_file and not _is_local_file(audio_file) and _looks_base64(audio_file):
        return _from_base64(audio_file, workdir, "audio_file")
    scheme = download.split(audio_file).scheme.lower()
    if scheme in ("http", "https"):
        return _download(audio_file, workdir)
    if scheme and len(scheme) > 1:  # one letter is a Windows drive, not a scheme
        raise AudioError(
            f"audio_file: URL scheme '{scheme}' is not supported; use an http(s) URL, base64 "
            "or a data: URI."
        )
    return _local(audio_file)


# Raw base64 in audio_file vs a file name under LOCAL_INPUT_DIR: an existing file wins; else
# a value of at least this many characters, all from the standard base64 alphabet ('=' only
# as the final padding), is base64. File names have a '.' (not in the alphabet); the smallest
# playable media file (a WAV header is 44 bytes) is longer in base64 than a plausible name.
MIN_BASE64_CHARS = 64
_BASE64 = re.compile(r"[A-Za-z0-9+/\s]+={0,2}\s*")


def _looks_base64(value: str) -> bool:
    return len(value) >= MIN_BASE64_CHARS and _BASE64.fullmatch(value) is not None


def _is_local_file(name: str) -> bool:
    root = settings.get().local_input_dir
    try:
        return root is not None and (root / name).is_file()
    except (OSError, ValueError):  # a name too long for the file system, or with a NUL byte
        return False


def _from_base64(data: str, workdir: Path, field: str) -> Source:
    if data[:5].lower() == "data:":
        header, comma, data = data.partition(",")
        if not comma or not header.lower().endswith(";base64"):
            raise AudioError(
                f"{field}: a data: URI must be base64-encoded, like "
                "'data:audio/wav;base64,UklGR...'."
            )
    limit_mb = settings.get().max_download_mb
    text = "".join(data.split())
    # Checked before decoding: 4 characters carry 3 bytes.
    if limit_mb and len(text) * 3 / 4 > limit_mb * 1e6:
        raise AudioError(
            f"{field}: the inline file is larger than MAX_DOWNLOAD_MB={limit_mb:g}; send a "
            "smaller file or a URL."
        )
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise AudioError(
            f"{field}: not valid base64. Encode the file's bytes with standard base64 "
            "(e.g. `base64 -w0 file.wav`)."
        ) from None
    if not raw:
        raise AudioError(f"{field}: decodes to an empty file; send the audio file's bytes.")
    path = workdir / "input.bin"
    path.write_bytes(raw)
    return Source(path, "base64", f"<base64, {len(raw)} bytes>")


def _local(name: str) -> Source:
    root = settings.get().local_input_dir
    if root is None:
        raise AudioError(
            f"audio_file: {name!r} is not an http(s) URL. Send a URL or audio_base64; local "
            "files are read only when the worker sets LOCAL_INPUT_DIR."
        )
    base = root.resolve()
    path = (base / name).resolve()
    if not path.is_relative_to(base):
        raise AudioError(f"audio_file: {name!r} is outside LOCAL_INPUT_DIR; name a file inside it.")
    if not path.is_file():
        raise AudioError(f"audio_file: no file {name!r} in LOCAL_INPUT_DIR ({base}).")
    return Source(path, "local", name)


def _download(url: str, workdir: Path) -> Source:
    path = workdir / "input.bin"
    download.fetch_url(url, path)
    return Source(path, "url", download.public_url(url))


# --- probing and decoding ---------------------------------------------------------------------

def _probe(path: Path) -> dict[str, Any]:
    proc = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["unknown format"])[-1]
        raise AudioError(
            f"audio: not a readable audio or video file ({reason[:200]}). Send a media file "
            "ffmpeg can decode (wav, mp3, m4a, ogg, flac, webm, mp4, ...)."
        )
    return json.loads(proc.stdout or "{}")


def load(source: Source, warnings: list[str] | None = None) -> Audio:
    """Probe and decode; what the job should be told (a truncated file) goes to `warnings`."""
    warnings = [] if warnings is None else warnings
    wav = _wav_header(source.path)
    try:
        info = _probe(source.path)
    except AudioError:
        if wav and wav.claimed:  # a WAV header and nothing after it
            raise _nothing_decodes(wav.claimed) from None
        raise
    fmt = info.get("format", {})
    if fmt.get("format_name") == "tty":  # ffmpeg opens any text file as ANSI-art "video"
        raise AudioError(
            "audio: not an audio or video file (it is text, e.g. an error page); send the "
            "media file itself."
        )
    streams = [s for s in info.get("streams", []) if s.get("codec_type") == "audio"]
    if not streams:
        has_video = any(s.get("codec_type") == "video" for s in info.get("streams", []))
        raise AudioError(
            "audio: the file has no audio stream"
            + (" (a video without sound)" if has_video else "")
            + "; send a file with an audio track."
        )
    stream = streams[0]
    actual = {
        "container": fmt.get("format_name"),
        "codec": stream.get("codec_name"),
        "sample_rate": int(stream.get("sample_rate") or 0),
        "channels": int(stream.get("channels") or 0),
    }
    # A header is a hint: refused up front only on a length the file's size bears out (without
    # decoding hours first), and on the decoded length in every case (the decode stops soon
    # after MAX_AUDIO_SECONDS). `claimed` is what the container says, for the truncation check.
    if wav:  # what the data chunk holds, from the file size: exact, whatever the header says
        length, claimed = wav.holds, wav.claimed
    else:  # the audio stream's own length (a video's may be longer)
        claimed = float(stream.get("duration") or fmt.get("duration") or 0)
        plausible = claimed * MIN_BITS_PER_SECOND / 8 <= source.path.stat().st_size
        length = claimed if plausible else 0.0
    _check_length(length)
    compatible = actual["container"] == "wav" and all(
        actual[k] == EXPECTED[k] for k in ("codec", "sample_rate", "channels")
    )
    waveform, used_fallback, reason = None, True, "not 16 kHz mono PCM WAV; decoded with ffmpeg"
    if compatible and wav and not wav.exact:
        # libsndfile reads a data size of 0 as no audio at all; ffmpeg reads to the end
        reason = ("WAV header's data size is not the file's (streamed or cut off); decoded "
                  "with ffmpeg")
    elif compatible:
        try:
            waveform = soundfile.read(source.path, dtype="float32")[0]
            used_fallback, reason = False, "16 kHz mono PCM WAV; read directly"
        except (soundfile.LibsndfileError, RuntimeError) as exc:
            reason = f"direct read failed ({exc}); decoded with ffmpeg"
    if waveform is None:
        waveform = decode_ffmpeg(source.path, length)
    if waveform.size == 0:
        if claimed > 0:
            raise _nothing_decodes(claimed)
        raise AudioError("audio: the file decodes to 0 seconds of audio; send a longer file.")
    duration = waveform.shape[0] / SAMPLE_RATE
    _check_length(duration)
    if claimed - duration > max(1.0, 0.02 * claimed):
        warnings.append(
            f"audio: the file declares {claimed:.1f} s but only {duration:.1f} s could be "
            "decoded (truncated or damaged); the transcript covers the decoded part."
        )
    check = {
        "is_compatible": compatible,
        "expected": EXPECTED,
        "actual": actual,
        "used_fallback": used_fallback,
        "source": source.kind,
        "reason": reason,
    }
    log.info(
        "audio: %s, %.2f s, %s %s Hz x%d (%s)", source.name, duration, actual["codec"],
        actual["sample_rate"], actual["channels"], reason,
    )
    return Audio(waveform, duration, _sha256(source.path), check)


# A container length the file can't hold at even this bitrate is a bad header (an AU file's
# data size, like a WAV's, may be a placeholder), not a reason to refuse before decoding.
# Silence is what codecs spend least on: Vorbis ~750 bit/s, Opus ~1.8 kbit/s.
MIN_BITS_PER_SECOND = 500


def _nothing_decodes(declared: float) -> AudioError:
    return AudioError(f"audio: the file declares {declared:.1f} s of audio but none of it "
                      "decodes (truncated or damaged); send the complete file.")


@dataclass(frozen=True)
class WavHeader:
    holds: float  # seconds of audio the file holds: the data chunk's, cut at the end of file
    claimed: float  # seconds the data chunk's size says; 0 for a placeholder
    exact: bool  # the size is the data the file holds (else placeholder or cut off)


def _wav_header(path: Path) -> WavHeader | None:
    """What a RIFF/WAVE file holds and what its header claims (None if not a WAV or no
    length in its header). ffprobe reports a cut-off WAV's length from the file size, so a
    truncated upload would go unnoticed; and a header written before the recording's length
    was known has a placeholder size, which no length should be taken from.

    The file size is the evidence of what a WAV holds. A data size larger than that is either
    a placeholder (a streamed recording: no warning) or a cut-off file (the size of the whole:
    a truncation warning). Placeholders are 0, and sizes within 64 KiB of 2 or 4 GiB (0x7FFFF000
    sox, 0x7FFFFFFF, 0xFFFFFFFF ffmpeg and RF64): only a cut-off recording whose whole size
    lands there would miss its warning.
    """
    size_of_file = path.stat().st_size
    with path.open("rb") as f:
        if f.read(12)[8:12] != b"WAVE":
            return None
        byte_rate = block = 0
        while len(header := f.read(8)) == 8:
            kind, size = header[:4], int.from_bytes(header[4:], "little")
            if kind == b"fmt ":
                fmt = f.read(16)
                byte_rate = int.from_bytes(fmt[8:12], "little")
                block = int.from_bytes(fmt[12:14], "little") or 1
                f.seek(size - 16 + size % 2, 1)
            elif kind == b"data":
                if not byte_rate:
                    return None
                there = size_of_file - f.tell()
                there -= there % block
                placeholder = size == 0 or (size | 0xFFFF) in (0x7FFFFFFF, 0xFFFFFFFF)
                exact = 0 < size <= there
                claimed = 0 if placeholder and not exact else size
                return WavHeader((size if exact else there) / byte_rate, claimed / byte_rate,
                                 exact)
            else:
                f.seek(size + size % 2, 1)
    return None


CHUNK_SAMPLES = 1 << 18  # ~16 s of audio per read from ffmpeg's pipe


def decode_ffmpeg(path: Path, declared_seconds: float) -> np.ndarray:
    """16 kHz mono float32 of any file ffmpeg opens, streamed into one preallocated array.

    Same ffmpeg command as whisperx's `load_audio`, but its output is never held whole as bytes,
    int16 and float32 at once (3 h of audio: ~1.7 GB of copies): each pipe chunk is scaled into
    its slot of the array, sized from the container's declared length (grown if it lied).
    Stops a second past MAX_AUDIO_SECONDS: a file of unknown length is refused on what
    decodes, without decoding all of it.
    """
    max_seconds = settings.get().max_audio_seconds
    cmd = ["ffmpeg", "-nostdin", "-threads", "0", "-i", str(path), "-f", "s16le", "-ac", "1",
           "-acodec", "pcm_s16le", "-ar", str(SAMPLE_RATE),
           *(["-t", f"{max_seconds + 1:.3f}"] if max_seconds else []), "-"]
    out = np.empty(max(int(declared_seconds * SAMPLE_RATE) + SAMPLE_RATE, CHUNK_SAMPLES),
                   dtype=np.float32)
    filled, odd = 0, b""
    # stderr to a file: a pipe nobody reads would block ffmpeg once full
    with tempfile.TemporaryFile() as stderr, subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=stderr
    ) as proc:
        assert proc.stdout is not None
        while chunk := proc.stdout.read(2 * CHUNK_SAMPLES):
            chunk = odd + chunk
            usable = len(chunk) - len(chunk) % 2
            odd = chunk[usable:]
            samples = np.frombuffer(chunk[:usable], dtype=np.int16)
            if filled + samples.size > out.size:
                out = np.resize(out, max(out.size * 2, filled + samples.size))  # rare
            np.multiply(samples, 1 / 32768.0, out=out[filled:filled + samples.size],
                        casting="unsafe")
            filled += samples.size
        if proc.wait() != 0:
            stderr.seek(0)
            lines = stderr.read().decode(errors="replace").strip().splitlines() or ["error"]
            # ffmpeg's last stderr line names the problem
            raise AudioError(f"audio: ffmpeg could not decode the file ({lines[-1][:200]}).")
    if max_seconds and filled > max_seconds * SAMPLE_RATE:
        raise AudioError(
            f"audio: the file decodes to more than {max_seconds:g} s (decoding stopped there), "
            f"longer than this worker's MAX_AUDIO_SECONDS={max_seconds:g}; split the file or "
            "raise the limit."
        )
    if filled < out.size // 2:
        return out[:filled].copy()  # declared length far too long: don't keep the slack
    return out[:filled]


def _check_length(seconds: float) -> None:
    max_seconds = settings.get().max_audio_seconds
    if max_seconds and seconds > max_seconds:
        raise AudioError(
            f"audio: {seconds:.0f} s is longer than this worker's MAX_AUDIO_SECONDS="
            f"{max_seconds:g}; split the file or raise the limit."
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
