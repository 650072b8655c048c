"""Downloading a job's audio from a URL the caller gave, safely.

- The host is resolved once, every address it resolves to is checked (loopback, private and
  link-local are refused unless ALLOW_PRIVATE_URLS), and the connection goes to the address
  that was checked, with the original Host header and TLS server name (certificate checked
  against the host name): a DNS answer that changes between check and connect (rebinding)
  can't redirect the download. The same at every redirect, followed by hand.
- A read timeout (DOWNLOAD_TIMEOUT_S) and an overall deadline (DOWNLOAD_DEADLINE_S), a size cap
  (MAX_DOWNLOAD_MB), 3 attempts with backoff on connection errors and 5xx; every response is
  closed on every path.
- Only the URL without its query string or credentials is ever logged or returned.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, urljoin, urlsplit

import certifi
import urllib3
import urllib3.exceptions
from urllib3.exceptions import HTTPError

from worker import settings
from worker.errors import AudioError

log = logging.getLogger("worker.download")

MAX_REDIRECTS = 5
RETRIES = 3  # attempts for connection errors and 5xx answers
CONNECT_TIMEOUT = 10.0
USER_AGENT = "whisperx-runpod-worker"


def public_url(url: str) -> str:
    """The URL without query or credentials (signed URLs carry secrets there); safe to show."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
        host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else (
            parts.hostname or "")
    except ValueError:  # a malformed URL: show no more than its scheme
        return f"{url.split(':', 1)[0]}://…"
    return f"{parts.scheme}://{host}{port}{parts.path}"


def invalid_url(exc: ValueError) -> AudioError:
    return AudioError(f"audio_file: not a valid URL ({exc}); send an http(s) URL like "
                      "https://host/file.wav.")


@dataclass(frozen=True)
class Target:
    parts: SplitResult
    host: str
    port: int
    address: str  # the checked IP the connection goes to

    @property
    def request_path(self) -> str:
        return (self.parts.path or "/") + (f"?{self.parts.query}" if self.parts.query else "")

    @property
    def host_header(self) -> str:
        default = 443 if self.parts.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


MAX_URL_CHARS = 8192


def split(url: str) -> SplitResult:
    """urlsplit, with a malformed URL (e.g. a broken IPv6 literal) an error naming audio_file."""
    try:
        return urlsplit(url)
    except ValueError as exc:
        raise invalid_url(exc) from None


def check_url(url: str) -> SplitResult:
    """Every way a malformed http(s) URL fails, as one error naming audio_file: length, the
    bracketed host, the port, the host and its IDNA labels."""
    if len(url) > MAX_URL_CHARS:
        raise AudioError(
            f"audio_file: the URL is longer than {MAX_URL_CHARS} characters; use a shorter URL "
            "or send the file inline (base64)."
        )
    parts = split(url)
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
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise AudioError("audio_file: the URL contains spaces or control characters; "
                         "percent-encode them (%20).")
    return parts


def resolve(url: str) -> Target:
    """Check a URL, and pick the address to connect to (resolved once, here)."""
    parts = check_url(url)
    host = parts.hostname or ""  # check_url refused a URL without one
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise AudioError(
            f"audio_file: cannot resolve host {host!r}; check the URL is public."
        ) from None
    addresses = [str(info[4][0]) for info in infos]
    if not settings.get().allow_private_urls:
        for address in addresses:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
            if not ip.is_global:
                raise AudioError(
                    f"audio_file: host {host!r} resolves to a non-public address ({ip}); "
                    "downloads from loopback/private networks are refused. Use a public URL "
                    "(the worker may set ALLOW_PRIVATE_URLS=true for trusted networks)."
                )
    return Target(parts, host, port, addresses[0])


def _open(target: Target, timeout: urllib3.Timeout) -> urllib3.BaseHTTPResponse:
    """GET from the checked address; TLS verifies the certificate for the host name."""
    if target.parts.scheme.lower() == "https":
        pool: urllib3.HTTPConnectionPool = urllib3.HTTPSConnectionPool(
            target.address, target.port, timeout=timeout, retries=False,
            server_hostname=target.host, assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED", ca_certs=certifi.where(),
        )
    else:
        pool = urllib3.HTTPConnectionPool(target.address, target.port, timeout=timeout,
                                          retries=False)
    try:
        return pool.urlopen("GET", target.request_path, redirect=False, retries=False,
                            preload_content=False, assert_same_host=False,
                            headers={"Host": target.host_header, "User-Agent": USER_AGENT})
    finally:
        pool.close()  # the response keeps its own connection until it is closed


def _get_following_redirects(url: str, deadline: float, read_timeout: float
                             ) -> urllib3.BaseHTTPResponse:
    # Redirects are followed by hand so every hop's host is checked (and pinned).
    for _ in range(MAX_REDIRECTS + 1):
        target = resolve(url)
        remaining = max(0.1, deadline - time.monotonic())
        response = _open(target, urllib3.Timeout(connect=min(CONNECT_TIMEOUT, remaining),
                                                 read=min(read_timeout, remaining)))
        location = response.headers.get("location")
        if response.status in (301, 302, 303, 307, 308) and location:
            response.close()
            url = urljoin(url, location)
            continue
        return response
    raise AudioError(f"audio_file: more than {MAX_REDIRECTS} redirects; send the final URL.")


def fetch_url(url: str, path: Path) -> None:
    """Download `url` into `path`, or raise AudioError saying what went wrong."""
    config = settings.get()
    limit_mb, read_timeout = config.max_download_mb, config.download_timeout_s
    deadline = time.monotonic() + config.download_deadline_s
    shown = public_url(url)
    for attempt in range(1, RETRIES + 1):
        response = None
        try:
            response = _get_following_redirects(url, deadline, read_timeout)
            if response.status >= 500 and attempt < RETRIES:
                log.warning("download: HTTP %s from %s, retrying", response.status, shown)
                time.sleep(attempt)
                continue
            if response.status >= 400:
                raise AudioError(
                    f"audio_file: download failed with HTTP {response.status} "
                    f"{response.reason} for {shown}; check the URL is correct and public."
                )
            size = 0
            with path.open("wb") as out:
                while chunk := response.read1(1 << 20):
                    size += len(chunk)
                    if limit_mb and size > limit_mb * 1e6:
                        raise AudioError(
                            f"audio_file: the download exceeds MAX_DOWNLOAD_MB={limit_mb:g}; "
                            "send a smaller file."
                        )
                    if time.monotonic() > deadline:
                        raise _too_slow(config.download_deadline_s, shown)
                    out.write(chunk)
            if size == 0:
                raise AudioError(f"audio_file: {shown} returned an empty body.")
            log.info("downloaded %s (%.1f MB)", shown, size / 1e6)
            return
        except (HTTPError, OSError) as exc:
            if time.monotonic() > deadline:
                raise _too_slow(config.download_deadline_s, shown) from None
            if attempt == RETRIES:
                raise AudioError(
                    f"audio_file: could not download {shown} ({_kind(exc)}) after "
                    f"{RETRIES} attempts; check the host is reachable."
                ) from None
            log.warning("download: %s from %s, retrying", _kind(exc), shown)
            time.sleep(attempt)
        finally:
            if response is not None:
                response.close()
    raise AssertionError("unreachable")


def _kind(exc: Exception) -> str:
    """What went wrong, in the words clients already know (requests' exception names)."""
    # (urllib3's NewConnectionError subclasses its ConnectTimeoutError: test it first)
    if isinstance(exc, (ConnectionError, urllib3.exceptions.NewConnectionError)):
        return "ConnectionError"
    if isinstance(exc, (TimeoutError, urllib3.exceptions.TimeoutError)):
        return "Timeout"
    if isinstance(exc, urllib3.exceptions.SSLError):
        return "SSLError"
    return "ConnectionError"


def _too_slow(deadline_s: float, shown: str) -> AudioError:
    return AudioError(
        f"audio_file: the download of {shown} did not finish within DOWNLOAD_DEADLINE_S="
        f"{deadline_s:g} s; send a faster or smaller source (or raise the limit)."
    )
