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
import re
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urljoin, urlsplit

import numpy as np
import requests
import soundfile
from whisperx.audio import SAMPLE_RATE, load_audio

import errors
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
        return _from_base64(audio_base64, workdir, "audio_base64")
    assert audio_file
    if audio_file[:5].lower() == "data:":  # data:audio/wav;base64,... (kodxana accepts it)
        return _from_base64(audio_file, workdir, "audio_file")
    if "://" not in audio_file and not _is_local_file(audio_file) and _looks_base64(audio_file):
        return _from_base64(audio_file, workdir, "audio_file")
    scheme = _split(audio_file).scheme.lower()
    if scheme in ("http", "https"):
        _check_url(audio_file)
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


MAX_URL_CHARS = 8192


def _split(url: str) -> SplitResult:
    try:
        return urlsplit(url)
    except ValueError as exc:  # e.g. "Invalid IPv6 URL" for http://[::1/a.wav
        raise AudioError(
            f"audio_file: not a valid URL ({exc}); send an http(s) URL like "
            "https://host/file.wav."
        ) from None


def _check_url(url: str) -> None:
    """Every way a malformed http(s) URL fails, as one input error naming audio_file: the
    bracketed host (urlsplit), the port (.port), the host, and requests' own URL check."""
    if len(url) > MAX_URL_CHARS:
        raise AudioError(
            f"audio_file: the URL is longer than {MAX_URL_CHARS} characters; use a shorter URL "
            "or send the file inline (base64)."
        )
    parts = _split(url)
    try:
        parts.port  # noqa: B018 - raises ValueError for a non-numeric or out-of-range port
    except ValueError:
        raise AudioError(
            "audio_file: the URL's port is not a number from 0 to 65535; fix the URL."
        ) from None
    if not parts.hostname:
        raise AudioError(
            "audio_file: the URL has no host name; send a URL like https://host/file.wav."
        )
    try:  # the resolver's IDNA encoding: empty labels (host..com) or labels over 63 chars
        parts.hostname.encode("idna")
    except UnicodeError:
        raise AudioError(
            f"audio_file: the host name {parts.hostname[:80]!r} is not valid (an empty or "
            "over-long label); fix the URL."
        ) from None
    try:
        requests.Request("GET", url).prepare()
    except (requests.RequestException, ValueError) as exc:
        raise AudioError(f"audio_file: not a valid URL ({errors.brief(exc)}).") from None


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
        _check_url(url)  # every hop: a redirect's Location can be malformed too
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
        try:
            waveform = load_audio(str(source.path), SAMPLE_RATE)
        except RuntimeError as exc:
            # ffmpeg's last stderr line names the problem
            detail = str(exc).strip().splitlines()[-1][:200]
            raise AudioError(f"audio: ffmpeg could not decode the file ({detail}).") from None
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
