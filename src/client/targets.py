"""Where jobs go: a RunPod endpoint (runpod's AsyncioEndpoint) or base URLs of workers that
speak RunPod's /run and /status/<id> (the local API, `handler.py --rp_serve_api`). A pool
spreads jobs over the targets and rests a target that stops answering."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from worker.compat import runpod as compat_runpod

# RunPod's job states; the first three end a job.
FAILED_STATES = ("FAILED", "TIMED_OUT", "CANCELLED")
DONE_STATES = ("COMPLETED", *FAILED_STATES)


class Unreachable(Exception):
    """The job never reached a worker (connection refused, 429, 5xx): send it again without
    counting an attempt."""


class JobLost(Exception):
    """The target went away while it held the job: counts as an attempt."""


class Refused(Exception):
    """The target refused this request for good (413: too large)."""


class Fatal(Exception):
    """No job can succeed (a refused API key, no such endpoint): the run stops."""


def _explain(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _submit_error(name: str, exc: BaseException) -> Exception:
    if isinstance(exc, aiohttp.ClientResponseError):
        if exc.status in (401, 403):
            return Fatal(f"{name}: HTTP {exc.status}, the API key was refused; check "
                         "RUNPOD_API_KEY.")
        if exc.status in (404, 405):
            return Fatal(f"{name}: HTTP {exc.status} for /run; check the endpoint id or URL "
                         "(a worker's base URL, e.g. http://127.0.0.1:8000).")
        if exc.status == 413:
            return Refused(f"{name}: HTTP 413, the request is too large; send a URL instead.")
        return Unreachable(f"{name}: HTTP {exc.status} {exc.message}")
    return Unreachable(f"{name}: {_explain(exc)}")


class HttpTarget:
    """A worker's base URL: POST /run, then POST /status/<id>. runpod's local API runs the job
    inside the /status request, so that request may take as long as the job."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self.name = base_url.rstrip("/")
        self.session = session

    async def submit(self, job_input: dict[str, Any], wait_s: float) -> str:
        # A busy local API answers /run only after its current job: wait up to a job's time.
        try:
            async with self.session.post(
                    f"{self.name}/run", json={"input": job_input},
                    timeout=aiohttp.ClientTimeout(total=wait_s, sock_connect=10)) as resp:
                resp.raise_for_status()
                body = await resp.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise _submit_error(self.name, exc) from None
        if not isinstance(body, dict) or not body.get("id"):
            raise Unreachable(f"{self.name}: /run answered without a job id: {str(body)[:200]}")
        return str(body["id"])

    async def status(self, job_id: str, wait_s: float) -> dict[str, Any]:
        try:
            async with self.session.post(
                    f"{self.name}/status/{job_id}",
                    timeout=aiohttp.ClientTimeout(total=wait_s, sock_connect=10)) as resp:
                resp.raise_for_status()
                return await resp.json(content_type=None)
        except TimeoutError:
            raise
        except (aiohttp.ClientError, ValueError) as exc:
            raise JobLost(f"{self.name} went away with the job ({_explain(exc)})") from None

    async def cancel(self, job_id: str) -> None:
        try:  # runpod's local API has no /cancel; a real endpoint stops billing for the job
            async with self.session.post(f"{self.name}/cancel/{job_id}",
                                         timeout=aiohttp.ClientTimeout(total=10)):
                pass
        except (TimeoutError, aiohttp.ClientError):
            pass


class RunPodTarget:
    """A RunPod endpoint through runpod's SDK (`runpod.AsyncioEndpoint`): its base URL
    (RUNPOD_ENDPOINT_BASE_URL), /run and /cancel. The SDK's `Job.status()`/`output()` drop a
    failed job's error, so the status is read raw (worker/compat/runpod.py)."""

    def __init__(self, endpoint_id: str, session: aiohttp.ClientSession) -> None:
        import runpod

        self.name = f"runpod:{endpoint_id}"
        # The SDK reads only its credentials file (`runpod config`); RUNPOD_API_KEY first.
        api_key = os.environ.get("RUNPOD_API_KEY") or runpod.api_key
        try:
            self.endpoint = runpod.AsyncioEndpoint(endpoint_id, session, api_key=api_key)
        except RuntimeError:  # "API key must be provided or set globally"
            raise Fatal("--endpoint needs a RunPod API key: set RUNPOD_API_KEY (or run "
                        "`runpod config`).") from None
        self.jobs: dict[str, Any] = {}

    async def submit(self, job_input: dict[str, Any], wait_s: float) -> str:
        try:
            job = await asyncio.wait_for(self.endpoint.run(job_input), 120)
        except (TimeoutError, aiohttp.ClientError, ValueError, KeyError) as exc:
            raise _submit_error(self.name, exc) from None
        self.jobs[job.job_id] = job
        return str(job.job_id)

    async def status(self, job_id: str, wait_s: float) -> dict[str, Any]:
        try:
            state = await asyncio.wait_for(compat_runpod.raw_status(self.jobs[job_id]),
                                           min(wait_s, 120))
        except aiohttp.ClientResponseError as exc:
            if exc.status == 404:
                raise JobLost(f"{self.name}: job {job_id} not found (HTTP 404)") from None
            if exc.status in (401, 403):
                raise _submit_error(self.name, exc) from None
            return {"status": "IN_PROGRESS", "note": f"HTTP {exc.status}"}  # poll again
        except (aiohttp.ClientError, ValueError) as exc:
            return {"status": "IN_PROGRESS", "note": _explain(exc)}  # the job is RunPod's
        if state.get("status") in DONE_STATES:
            self.jobs.pop(job_id, None)
        return state

    async def cancel(self, job_id: str) -> None:
        job = self.jobs.pop(job_id, None)
        if job is not None:
            try:
                await asyncio.wait_for(job.cancel(), 30)
            except (TimeoutError, aiohttp.ClientError, ValueError):
                pass


@dataclass
class Health:
    in_flight: int = 0
    failures: int = 0  # consecutive failures to reach it
    down_until: float = 0.0
    down_since: float | None = None
    last_error: str = ""
    completed: int = 0
    lost: int = 0


class AllDown(Exception):
    """Every target has been unreachable for longer than --unreachable-timeout."""


class Pool:
    """Spreads jobs over the targets: each job goes to the reachable target with the fewest
    jobs in flight. A target that can't be reached rests (2 s, doubling to 60 s), then takes
    one job as a probe before it gets more. A job that never reached a target doesn't count
    as an attempt, so probing costs no retries."""

    def __init__(self, targets: list[Any], unreachable_timeout_s: float) -> None:
        self.targets = targets
        self.health = {t.name: Health() for t in targets}
        self.unreachable_timeout_s = unreachable_timeout_s
        self.changed = asyncio.Event()

    def _usable(self, target: Any, now: float) -> bool:
        h = self.health[target.name]
        if h.failures == 0:
            return True
        return now >= h.down_until and h.in_flight == 0  # one probe at a time

    async def acquire(self) -> Any:
        while True:
            now = time.monotonic()
            usable = [t for t in self.targets if self._usable(t, now)]
            if usable:
                # A rested target whose rest is over gets the next job (a restarted worker
                # comes back); else the least busy.
                probes = [t for t in usable if self.health[t.name].failures]
                target = probes[0] if probes else min(
                    usable, key=lambda t: self.health[t.name].in_flight)
                self.health[target.name].in_flight += 1
                return target
            healths = list(self.health.values())
            if all(h.down_since is not None for h in healths):
                since = max(h.down_since for h in healths if h.down_since is not None)
                if now - since > self.unreachable_timeout_s:
                    raise AllDown("; ".join(h.last_error for h in healths))
            wake = min((h.down_until for h in healths if h.failures), default=now + 1)
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), max(0.05, min(wake - now, 5)))
            except TimeoutError:
                pass

    def release(self, target: Any) -> None:
        self.health[target.name].in_flight -= 1
        self.changed.set()

    def reached(self, target: Any) -> None:
        h = self.health[target.name]
        h.failures, h.down_until, h.down_since = 0, 0.0, None
        self.changed.set()

    def unreachable(self, target: Any, error: str) -> float:
        """Rest the target; returns for how long."""
        h = self.health[target.name]
        now = time.monotonic()
        h.failures += 1
        h.last_error = error
        h.down_since = h.down_since or now
        rest = min(60.0, 2.0 * 2 ** (h.failures - 1))
        h.down_until = now + rest
        self.changed.set()
        return rest
