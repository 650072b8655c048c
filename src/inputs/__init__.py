"""The job's audio: fetched (URL, base64, data URI or local file), probed, decoded to 16 kHz."""

from .download import public_url
from .media import Audio, Source, fetch, load

__all__ = ["Audio", "Source", "fetch", "load", "public_url"]
