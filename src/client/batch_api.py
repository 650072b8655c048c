"""RunPod's Batch jobs REST API, as the bulk client uses it: every path, field name and limit in
one place, so a change on RunPod's side is a change here.

Source: https://docs.runpod.io/serverless/batch-jobs (the runpod/docs repository's
serverless/advanced-workflows/batch-jobs.mdx at commit 5f6aeed2, 2026-08-20). What the page
says is marked DOC; what it doesn't say and the client assumes is marked ASSUMED (docs/scale-out.md,
"Batch jobs", lists both)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from typing import Any, Literal

import aiohttp

# -- paths (DOC): under the same base as /run, https://api.runpod.ai/v2/{endpoint_id}. The SDK's
# base (RUNPOD_ENDPOINT_BASE_URL, default https://api.runpod.ai/v2) is used for both (ASSUMED:
# the page gives the paths as /v2/{endpoint_id}/batch... without a host).
CREATE = "/{endpoint}/batch"  # POST, body: a JSON array of {"input": ...} (may be [])
ADD = "/{endpoint}/batch/{batch}/requests"  # POST, body: {"requests": [{"input": ...}, ...]}
FINALIZE = "/{endpoint}/batch/{batch}/finalize"  # POST, no body
UPDATE = "/{endpoint}/batch/{batch}"  # PUT: "update batch attributes (e.g. display name)"
SUMMARY = "/{endpoint}/batch/{batch}"  # GET: status and request counts
CANCEL = "/{endpoint}/batch/{batch}/cancel"  # POST
REQUESTS = "/{endpoint}/batch/{batch}/requests"  # GET ?offset=&limit=: the child requests

# -- batch states (DOC): DRAFT -> FINALIZED -> FAILED | CANCELLED. A FINALIZED batch is done when
# requestCompleted + requestFailed == requestTotal; there is no RUNNING or COMPLETED state.
BatchStatus = Literal["DRAFT", "FINALIZED", "FAILED", "CANCELLED"]
ENDED = ("FAILED", "CANCELLED")
TOTAL, IN_PROGRESS, COMPLETED, FAILED = (
    "requestTotal", "requestInProgress", "requestCompleted", "requestFailed")

# -- child requests (DOC): {"id", "status", "output" | "error", "startedAt", "completedAt"};
# the page {"requests": [...], "total", "offset", "limit", "hasMore"}. The page shows the
# states COMPLETED and FAILED; the others are RunPod's job states (ASSUMED to apply).
REQUEST_DONE = ("COMPLETED", "FAILED", "TIMED_OUT", "CANCELLED")
PAGE_LIMIT = 50  # DOC: the example page's limit; larger limits are not documented

# -- limits (DOC): 10 MiB a request body; 5,000 requests a batch; 10 active batches and 50,000
# queued requests an endpoint (enterprise accounts: configurable, up to 1,000,000 a day).
MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_REQUESTS_PER_BATCH = 5000

# -- ASSUMED: which request ids a create/add call made. The page shows the create response as
# {"id", "status"} and doesn't show the add response. The client takes ids from the first of
# these fields it finds (in the order the requests were sent); without them it matches a
# finished request to its input by an echoed "input" (ECHO_INPUT, not documented either) or by
# the worker's own `input_sha256` (file inputs).
ADDED_IDS = ("requestIds", "ids", "requests")
ECHO_INPUT = "input"
NAME = "name"  # ASSUMED: the PUT body's display-name field


class BatchApiError(Exception):
    """The API refused a call (4xx other than auth/not found), or kept failing."""


class AuthError(BatchApiError):
    """401/403/404: no call can succeed (the run stops)."""


def base_url() -> str:
    import runpod

    return str(os.environ.get("RUNPOD_ENDPOINT_BASE_URL") or runpod.endpoint_url_base)


def fingerprint(job_input: dict[str, Any]) -> str:
    """What a request's input is known by, if the API echoes it back."""
    text = json.dumps(job_input, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def added_ids(body: Any, count: int) -> list[str] | None:
    """The ids of the `count` requests a create/add call made, if its answer lists them."""
    if not isinstance(body, dict):
        return None
    for name in ADDED_IDS:
        value = body.get(name)
        if isinstance(value, list) and len(value) == count:
            ids = [v.get("id") if isinstance(v, dict) else v for v in value]
            if all(isinstance(i, str) and i for i in ids):
                return [str(i) for i in ids]
    return None


class BatchApi:
    """The calls, with the API key in a header only. Every message this class makes goes
    through `_redact`: a server that echoes the request's headers can't leak the key."""

    def __init__(self, endpoint_id: str, api_key: str, session: aiohttp.ClientSession,
                 base: str | None = None, unreachable_s: float = 300.0) -> None:
        self.endpoint = endpoint_id
        self.base = (base or base_url()).rstrip("/")
        self._key = api_key
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self.session = session
        self.unreachable_s = unreachable_s

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "<RUNPOD_API_KEY>") if self._key else text

    def _url(self, path: str, batch: str = "") -> str:
        return self.base + path.format(endpoint=self.endpoint, batch=batch)

    async def _call(self, method: str, path: str, batch: str = "", body: Any = None,
                    params: dict[str, int] | None = None) -> Any:
        """One call; a refused connection, 429 or 5xx is tried again (2 s, doubling to 60 s)
        for up to `unreachable_s`."""
        url = self._url(path, batch)
        shown = f"{method} {path.format(endpoint=self.endpoint, batch=batch)}"
        wait, waited = 2.0, 0.0
        while True:
            try:
                async with self.session.request(
                        method, url, json=body, params=params, headers=self._headers,
                        raise_for_status=False,
                        timeout=aiohttp.ClientTimeout(total=300, sock_connect=30)) as resp:
                    text = await resp.text()
                    if resp.status < 300:
                        return json.loads(text) if text.strip() else {}
                    problem = self._redact(f"{shown}: HTTP {resp.status} {text.strip()[:300]}")
                    if resp.status in (401, 403):
                        raise AuthError(f"{problem}; the API key was refused, check "
                                        "RUNPOD_API_KEY.")
                    if resp.status == 404 and not batch:
                        raise AuthError(f"{problem}; check the endpoint id.")
                    if resp.status != 429 and resp.status < 500:
                        raise BatchApiError(problem)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                problem = self._redact(f"{shown}: {type(exc).__name__}: {exc}".rstrip(": "))
            if waited >= self.unreachable_s:
                raise BatchApiError(f"{problem} (for {waited:.0f} s)")
            await asyncio.sleep(wait)
            waited += wait
            wait = min(60.0, wait * 2)

    async def create(self) -> str:
        body = await self._call("POST", CREATE, body=[])
        batch_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(batch_id, str) or not batch_id:
            raise BatchApiError(f"POST {CREATE.format(endpoint=self.endpoint)} answered "
                                f"without a batch id: {self._redact(str(body))[:200]}")
        return batch_id

    async def rename(self, batch: str, name: str) -> None:
        await self._call("PUT", UPDATE, batch, body={NAME: name})

    async def add(self, batch: str, requests: list[dict[str, Any]]) -> list[str] | None:
        body = await self._call("POST", ADD, batch, body={"requests": requests})
        return added_ids(body, len(requests))

    async def finalize(self, batch: str) -> None:
        await self._call("POST", FINALIZE, batch)

    async def summary(self, batch: str) -> dict[str, Any]:
        body = await self._call("GET", SUMMARY, batch)
        return body if isinstance(body, dict) else {}

    async def cancel(self, batch: str) -> None:
        await self._call("POST", CANCEL, batch)

    async def requests(self, batch: str) -> list[dict[str, Any]]:
        """Every child request, page by page (offset/limit until hasMore is false)."""
        found: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = await self._call("GET", REQUESTS, batch,
                                    params={"offset": offset, "limit": PAGE_LIMIT})
            items = page.get("requests") if isinstance(page, dict) else None
            if not isinstance(items, list):
                raise BatchApiError(f"GET {REQUESTS.format(endpoint=self.endpoint, batch=batch)}"
                                    f" answered without a request list: "
                                    f"{self._redact(str(page))[:200]}")
            found.extend(r for r in items if isinstance(r, dict))
            offset += len(items)
            if not page.get("hasMore") or not items:
                return found
