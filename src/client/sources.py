"""The inputs of a bulk run: files in a folder (sent inline as base64), a text file of URLs,
or the objects under an S3 prefix (sent as presigned GET URLs). Each input has a key that
survives a rerun: the file's sha256, the URL, or the object's bucket, key and ETag."""

from __future__ import annotations

import base64
import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

# What ffmpeg reads that podcasts, recordings and videos come as; other files are left alone.
MEDIA_EXTENSIONS = frozenset({
    "3gp", "aac", "ac3", "aif", "aiff", "amr", "avi", "caf", "flac", "flv", "m4a", "m4b",
    "m4v", "mka", "mkv", "mov", "mp2", "mp3", "mp4", "mpeg", "mpg", "mpga", "oga", "ogg",
    "opus", "spx", "ts", "wav", "weba", "webm", "wma", "wmv",
})
# RunPod's request limit for /run is about 10 MB (/runsync: 20 MB); the client uses /run.
RUN_PAYLOAD_MB = 10.0


class SourceError(Exception):
    """The inputs can't be read as given (a missing folder, a bad line in the URL file)."""


@dataclass
class Item:
    """One input. `name` is how it is shown and where its results go under the output folder
    (no query strings: a presigned URL's signature is a credential)."""

    name: str
    kind: str  # "file", "url", "s3", or "chunk" (a piece of a file cut by --split)
    path: Path | None = None
    url: str | None = None
    size: int | None = None
    presign: Callable[[], str] | None = None  # s3: a fresh GET URL per attempt
    s3_id: str | None = None  # s3: bucket, key and ETag (a changed object is a new input)
    sha256: str | None = field(default=None, repr=False)
    chunk_key: str | None = None  # chunk: its file's sha256 and where it was cut

    def key(self) -> str:
        """What a rerun recognises this input by. Files must be hashed first (`hash_file`)."""
        if self.kind == "file":
            assert self.sha256, "hash_file() first"
            return f"sha256:{self.sha256}"
        if self.kind == "chunk":
            assert self.chunk_key
            return self.chunk_key
        if self.kind == "url":
            # The URL itself may carry a token: the index keeps its hash only.
            return "url:" + hashlib.sha256(str(self.url).encode()).hexdigest()
        return f"s3:{self.s3_id}"

    def hash_file(self) -> None:
        if self.kind == "file" and self.sha256 is None:
            digest = hashlib.sha256()
            with open(self.path, "rb") as f:  # type: ignore[arg-type]
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            self.sha256 = digest.hexdigest()

    def audio_field(self) -> dict[str, Any]:
        """The request's audio: the file's bytes as base64, or a URL the worker downloads."""
        if self.kind in ("file", "chunk"):
            assert self.path is not None
            return {"audio_base64": base64.b64encode(self.path.read_bytes()).decode("ascii")}
        if self.kind == "s3":
            assert self.presign is not None
            return {"audio_file": self.presign()}
        return {"audio_file": self.url}

    def too_big(self, max_payload_mb: float, params_bytes: int) -> str | None:
        """Why this file can't be sent inline, or None. base64 makes it 4/3 as big."""
        if self.kind not in ("file", "chunk") or self.size is None:
            return None
        payload = 4 * math.ceil(self.size / 3) + params_bytes + 200
        limit = max_payload_mb * 1e6
        if payload <= limit:
            return None
        largest = (limit - params_bytes - 200) * 3 / 4 / 1e6
        if self.kind == "chunk":
            return (f"{self.name}: {self.size / 1e6:.1f} MB is too big to send inline (as "
                    f"base64 the request is {payload / 1e6:.1f} MB, over --max-inline-mb "
                    f"{max_payload_mb:g}; chunks up to {largest:.1f} MB fit). Pass a smaller "
                    "--split, or --split-codec opus (about 0.36 MB a minute).")
        return (f"{self.name}: {self.size / 1e6:.1f} MB is too big to send inline (as base64 "
                f"the request is {payload / 1e6:.1f} MB, over --max-inline-mb "
                f"{max_payload_mb:g}; files up to {largest:.1f} MB fit). Put the files where "
                "the worker can download them and pass --urls FILE (one URL a line) or "
                "--s3 s3://bucket/prefix.")


def _is_media(name: str, extensions: frozenset[str]) -> bool:
    return PurePosixPath(name).suffix.lower().lstrip(".") in extensions


def safe_name(name: str) -> str:
    """A relative path safe to create under the output folder: no '..', no absolute parts,
    no characters file systems refuse."""
    parts = [re.sub(r"[^\w.\- ]", "_", p) for p in PurePosixPath(name).parts
             if p not in ("", ".", "..", "/")]
    parts = [p.lstrip(".") or "_" for p in parts]  # no hidden or empty names
    return "/".join(parts) or "_"


def from_folder(folder: Path, extensions: frozenset[str] = MEDIA_EXTENSIONS,
                exclude: Path | None = None) -> tuple[list[Item], int]:
    """Every media file under `folder` (recursively, sorted), and how many other files were
    passed over. `exclude` (the output folder, if it is inside) is not walked."""
    if not folder.is_dir():
        raise SourceError(f"--folder {folder}: not a directory.")
    items, other = [], 0
    excluded = exclude.resolve() if exclude else None
    for path in sorted(folder.rglob("*")):
        if excluded and path.resolve().is_relative_to(excluded):
            continue
        if not path.is_file():
            continue
        rel = path.relative_to(folder).as_posix()
        if any(part.startswith(".") for part in PurePosixPath(rel).parts):
            continue  # hidden files and folders (.DS_Store, .git)
        if not _is_media(rel, extensions):
            other += 1
            continue
        items.append(Item(name=safe_name(rel), kind="file", path=path,
                          size=path.stat().st_size))
    return items, other


def public(url: str) -> str:
    """A URL as it may be shown: no query string, fragment or user:password."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def from_url_file(path: Path) -> list[Item]:
    """One http(s) URL a line; blank lines and lines starting with # are skipped. A URL given
    twice is one input."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SourceError(f"--urls {path}: {exc.strerror or exc}.") from None
    items, seen, bad = [], set(), []
    for number, line in enumerate(lines, 1):
        url = line.strip()
        if not url or url.startswith("#"):
            continue
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            bad.append(f"line {number}: {public(url) if '://' in url else url[:80]!r}")
            continue
        if url in seen:
            continue
        seen.add(url)
        name = safe_name(f"{parts.hostname}{parts.path}")
        if parts.query:  # the same path with other queries must not share a result file
            name += "-" + hashlib.sha256(url.encode()).hexdigest()[:8]
        items.append(Item(name=name, kind="url", url=url))
    if bad:
        raise SourceError(f"--urls {path}: not http(s) URLs: {'; '.join(bad[:5])}"
                          + (f" (and {len(bad) - 5} more)" if len(bad) > 5 else "")
                          + ". Give one http(s) URL a line.")
    return items


def parse_s3(uri: str) -> tuple[str, str]:
    parts = urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc:
        raise SourceError(f"--s3 {uri!r}: expected s3://bucket/prefix.")
    return parts.netloc, parts.path.lstrip("/")


def from_s3(uri: str, s3: Any, expiry_s: int,
            extensions: frozenset[str] = MEDIA_EXTENSIONS) -> tuple[list[Item], int]:
    """Every media object under the prefix (listed with boto3's paginator), and how many other
    objects were passed over. Names are the keys below the prefix's folder."""
    bucket, prefix = parse_s3(uri)
    base = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
    items, other = [], 0
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if key.endswith("/"):
                    continue
                if not _is_media(key, extensions):
                    other += 1
                    continue

                def presign(key: str = key) -> str:
                    return s3.generate_presigned_url(
                        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expiry_s)

                items.append(Item(name=safe_name(key[len(base):]), kind="s3",
                                  size=obj.get("Size"), presign=presign,
                                  s3_id=f"{bucket}/{key}@{obj.get('ETag', '').strip(chr(34))}"))
    except Exception as exc:  # botocore's errors: no bucket, no credentials, no access
        raise SourceError(f"--s3 {uri}: listing failed ({type(exc).__name__}: {exc}).") from None
    return items, other
