"""Job audio: fetched (URL, base64 or local file), probed with ffprobe, decoded to 16 kHz mono.

A 16 kHz mono PCM WAV is read as is; anything else ffmpeg can open (video included: only the
audio track is decoded) goes through ffmpeg, and `Audio.check` says which path was taken.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import logging
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import numpy as np
import requests
import soundfile
from whisperx.audio import SAMPLE_RATE

import settings
from errors import AudioError

log = logging.getLogger("worker.media")

EXPECTED = {"container": "wav", "codec": "pcm_s16le", "sample_rate": SAMPLE_RATE, "channels": 1}
MAX_REDIRECTS = 5
RETRIES = 3  # attempts for connection errors and 5xx answers


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
        return _from_base64(audio_base64, workdir)
    assert audio_file
    scheme = urlsplit(audio_file).scheme.lower()
    if scheme in ("http", "https"):
        return _download(audio_file, workdir)
    if scheme and len(scheme) > 1:  # one letter is a Windows drive, not a scheme
        raise AudioError(
            f"audio_file: URL scheme '{scheme}' is not supported; use an http(s) URL or "
            "audio_base64."
        )
    return _local(audio_file)


def _from_base64(data: str, workdir: Path) -> Source:
    if data.startswith("data:") and "," in data:  # data URLs: data:audio/wav;base64,....
        data = data.split(",", 1)[1]
    try:
        raw = base64.b64decode("".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        raise AudioError(
            "audio_base64: not valid base64. Encode the file's bytes with standard base64 "
            "(e.g. `base64 -w0 file.wav`)."
        ) from None
    if not raw:
        raise AudioError("audio_base64: decodes to an empty file; send the audio file's bytes.")
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


def _public_url(url: str) -> str:
    """The URL without query or credentials: signed URLs carry secrets there."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


def _check_host(url: str) -> None:
    host = urlsplit(url).hostname
    if not host:
        raise AudioError(f"audio_file: {_public_url(url)!r} has no host name.")
    if settings.get().allow_private_urls:
        return
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        raise AudioError(
            f"audio_file: cannot resolve host {host!r}; check the URL is public."
        ) from None
    for info in infos:
        ip = ipaddress.ip_address(info[4][0])
        if not ip.is_global:
            raise AudioError(
                f"audio_file: host {host!r} resolves to a non-public address ({ip}); "
                "downloads from loopback/private networks are refused. Use a public URL "
                "(the worker may set ALLOW_PRIVATE_URLS=true for trusted networks)."
            )


def _download(url: str, workdir: Path) -> Source:
    config = settings.get()
    limit_mb, timeout = config.max_download_mb, config.download_timeout_s
    path = workdir / "input.bin"
    shown = _public_url(url)
    for attempt in range(1, RETRIES + 1):
        try:
            response = _get_following_redirects(url, timeout)
            if response.status_code >= 500 and attempt < RETRIES:
                log.warning("download: HTTP %s from %s, retrying", response.status_code, shown)
                time.sleep(attempt)
                continue
            if response.status_code >= 400:
                raise AudioError(
                    f"audio_file: download failed with HTTP {response.status_code} "
                    f"{response.reason} for {shown}; check the URL is correct and public."
                )
            size = 0
            with path.open("wb") as out:
                for chunk in response.iter_content(1 << 20):
                    size += len(chunk)
                    if limit_mb and size > limit_mb * 1e6:
                        raise AudioError(
                            f"audio_file: the download exceeds MAX_DOWNLOAD_MB={limit_mb:g}; "
                            "send a smaller file."
                        )
                    out.write(chunk)
            if size == 0:
                raise AudioError(f"audio_file: {shown} returned an empty body.")
            log.info("downloaded %s (%.1f MB)", shown, size / 1e6)
            return Source(path, "url", shown)
        except requests.RequestException as exc:
            if attempt == RETRIES:
                raise AudioError(
                    f"audio_file: could not download {shown} ({type(exc).__name__}) after "
                    f"{RETRIES} attempts; check the host is reachable."
                ) from None
            log.warning("download: %s from %s, retrying", type(exc).__name__, shown)
            time.sleep(attempt)
    raise AssertionError("unreachable")


def _get_following_redirects(url: str, timeout: float | None) -> requests.Response:
    # Redirects are followed by hand so every hop's host is checked, not only the first.
    for _ in range(MAX_REDIRECTS + 1):
        _check_host(url)
        response = requests.get(
            url, stream=True, allow_redirects=False, timeout=(10, timeout),
            headers={"User-Agent": "whisperx-runpod-worker"},
        )
        if response.is_redirect and "location" in response.headers:
            url = urljoin(url, response.headers["location"])
            response.close()
            continue
        return response
    raise AudioError(f"audio_file: more than {MAX_REDIRECTS} redirects; send the final URL.")


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


def load(source: Source) -> Audio:
    info = _probe(source.path)
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
    # Refused up front on the container's declared length, and again on the decoded one.
    _check_length(float(fmt.get("duration") or stream.get("duration") or 0))
    compatible = actual["container"] == "wav" and all(
        actual[k] == EXPECTED[k] for k in ("codec", "sample_rate", "channels")
    )
    waveform, used_fallback, reason = None, True, "not 16 kHz mono PCM WAV; decoded with ffmpeg"
    if compatible:
        try:
            waveform = soundfile.read(source.path, dtype="float32")[0]
            used_fallback, reason = False, "16 kHz mono PCM WAV; read directly"
        except (soundfile.LibsndfileError, RuntimeError) as exc:
            reason = f"direct read failed ({exc}); decoded with ffmpeg"
    if waveform is None:
        waveform = decode_ffmpeg(source.path, float(fmt.get("duration") or 0))
    if waveform.size == 0:
        raise AudioError("audio: the file decodes to 0 seconds of audio; send a longer file.")
    duration = waveform.shape[0] / SAMPLE_RATE
    _check_length(duration)
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


CHUNK_SAMPLES = 1 << 18  # ~16 s of audio per read from ffmpeg's pipe


def decode_ffmpeg(path: Path, declared_seconds: float) -> np.ndarray:
    """16 kHz mono float32 of any file ffmpeg opens, streamed into one preallocated array.

    Same ffmpeg command as whisperx's `load_audio`, but its output is never held whole as bytes,
    int16 and float32 at once (3 h of audio: ~1.7 GB of copies): each pipe chunk is scaled into
    its slot of the array, sized from the container's declared length (grown if it lied).
    """
    cmd = ["ffmpeg", "-nostdin", "-threads", "0", "-i", str(path), "-f", "s16le", "-ac", "1",
           "-acodec", "pcm_s16le", "-ar", str(SAMPLE_RATE), "-"]
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
