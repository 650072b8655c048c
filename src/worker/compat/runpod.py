"""runpod SDK internals the bulk client relies on."""

from __future__ import annotations

from typing import Any


async def raw_status(job: Any) -> dict[str, Any]:
    """A job's whole /status answer. The SDK's `Job.status()` and `output()` keep only the
    status or the output and drop a failed job's `error`; its `_fetch_job` (private) returns
    the answer as it came."""
    state: dict[str, Any] = await job._fetch_job()
    return state
