"""The bulk run: N jobs in flight over the pool of targets, each input submitted with /run and
polled with /status until it ends, retried on other workers when a worker fails or goes away,
written to the output folder as it arrives."""

from __future__ import annotations

import asyncio
import json
import random
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from .sources import Item
from .store import FORMAT_FIELDS, Store
from .targets import FAILED_STATES, AllDown, Fatal, JobLost, Pool, Refused, Unreachable

# The worker's errors about the input itself (worker/errors.py InputError, AudioError) start
# with the field at fault: "input 'batch_size': ...", "audio: ffmpeg could not decode ...",
# "audio_file: download failed ...", "speaker_samples[0] ("Alice"): ...". Sending the same
# input again fails the same way. Everything else ("internal error (...)", "GPU failure (...)",
# a worker that went away, a timeout) is worth another try.
INPUT_ERROR = re.compile(r'^(input\b|[a-z][a-z0-9_]*(\[\d+\])?( \("[^"]*"\))?: )')


def is_input_error(error: str) -> bool:
    return bool(INPUT_ERROR.match(error))


@dataclass
class Options:
    params: dict[str, Any]
    concurrency: int = 8
    retries: int = 3
    job_timeout_s: float = 3600.0
    retry_base_s: float = 2.0
    max_inline_mb: float = 10.0
    retry_failed: bool = False
    progress: bool = True


@dataclass
class Tally:
    inputs: int = 0
    skipped: int = 0  # done before with these parameters
    skipped_failed: int = 0  # failed before with an input error
    completed: int = 0
    input_errors: int = 0
    gave_up: int = 0
    too_big: int = 0
    not_sent: int = 0  # the run stopped before it got to them
    retries: int = 0
    in_flight: int = 0
    audio_s: float = 0.0
    worker_ms: int = 0  # RunPod's executionTime, where the endpoint reports it
    failures: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    stopped: str = ""

    @property
    def failed(self) -> int:
        return self.input_errors + self.gave_up + self.too_big + self.skipped_failed

    def speed(self) -> float:
        wall = time.monotonic() - self.started
        return self.audio_s / wall if wall > 0 else 0.0


class Outcome(Exception):
    """How an attempt ended, when it didn't complete."""

    def __init__(self, error: str, *, counts: bool = True, final: bool = False) -> None:
        super().__init__(error)
        self.error, self.counts, self.final = error, counts, final
        self.attempt: dict[str, Any] = {}


class Runner:
    def __init__(self, items: list[Item], pool: Pool, store: Store, options: Options,
                 session: aiohttp.ClientSession) -> None:
        self.items, self.pool, self.store, self.o = items, pool, store, options
        self.session = session
        self.tally = Tally(inputs=len(items))
        self.params_bytes = len(json.dumps(options.params))
        self.bar: Any = None

    # -- reporting -------------------------------------------------------------------------

    def say(self, message: str) -> None:
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)

    def _progress(self, step: int = 1) -> None:
        if self.bar is None:
            return
        t = self.tally
        self.bar.set_postfix_str(
            f"done={t.completed} skipped={t.skipped} failed={t.failed} "
            f"in_flight={t.in_flight} audio_h/h={t.speed():.1f}", refresh=False)
        self.bar.update(step)
        if not step:
            self.bar.refresh()

    async def _ticker(self) -> None:
        while True:  # in-flight counts and speed change between completions too
            await asyncio.sleep(2)
            self._progress(0)

    def _fail(self, item: Item, key: str | None, kind: str, error: str,
              attempts: list[dict[str, Any]]) -> None:
        self.tally.failures.append({"input": item.name, "key": key, "kind": kind,
                                    "error": error, "attempts": len(attempts),
                                    "history": attempts})
        self.say(f"failed {item.name}: {error}")

    # -- one input -------------------------------------------------------------------------

    async def _attempt(self, item: Item) -> tuple[dict[str, Any], dict[str, Any]]:
        """Submit the input to a target and follow it to its end; returns (result, attempt:
        where it ran). A failed attempt raises Outcome, with the attempt."""
        target = await self.pool.acquire()
        attempt: dict[str, Any] = {"target": target.name}
        try:
            return await self._run_on(target, item, attempt)
        except Outcome as out:
            out.attempt = attempt
            raise

    async def _run_on(self, target: Any, item: Item,
                      attempt: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        self.tally.in_flight += 1
        try:
            try:
                job_input = {**self.o.params, **await asyncio.to_thread(item.audio_field)}
            except Exception as exc:  # a file gone since the listing, a presigning error
                raise Outcome(f"{item.name}: could not be read to send "
                              f"({type(exc).__name__}: {exc})") from None
            deadline = time.monotonic() + self.o.job_timeout_s
            try:
                job_id = await target.submit(job_input, self.o.job_timeout_s)
            except Unreachable as exc:
                rest = self.pool.unreachable(target, str(exc))
                raise Outcome(f"{exc}; resting it {rest:.0f} s", counts=False) from None
            except Refused as exc:
                raise Outcome(str(exc), final=True) from None
            del job_input  # an inline file's base64 is not kept while the job runs
            self.pool.reached(target)
            attempt["job_id"] = job_id
            state = await self._follow(target, job_id, deadline)
        finally:
            self.tally.in_flight -= 1
            self.pool.release(target)
        status = state.get("status")
        for field_, name in (("executionTime", "execution_ms"), ("delayTime", "delay_ms")):
            if isinstance(state.get(field_), int):  # RunPod's: what the job was billed, queued
                attempt[name] = state[field_]
        self.tally.worker_ms += attempt.get("execution_ms", 0)
        if status == "COMPLETED":
            output = state.get("output")
            if not isinstance(output, dict):
                raise Outcome(f"{target.name}: job {job_id} completed without a result object")
            return output, attempt
        error = str(state.get("error") or f"job {status} without an error message")
        raise Outcome(f"{target.name}: job {job_id} {status}: {error}"
                      if status != "FAILED" or not is_input_error(error) else error,
                      final=status == "FAILED" and is_input_error(error))

    async def _follow(self, target: Any, job_id: str, deadline: float) -> dict[str, Any]:
        """Poll /status with a growing interval (1 s to 15 s) until the job ends."""
        interval = 1.0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                await target.cancel(job_id)
                raise Outcome(f"{target.name}: job {job_id} took longer than --job-timeout "
                              f"{self.o.job_timeout_s:g} s; cancelled")
            try:
                state = await target.status(job_id, left)
            except TimeoutError:
                continue  # the deadline check above ends it
            except JobLost as exc:
                self.pool.unreachable(target, str(exc))
                raise Outcome(str(exc)) from None
            if state.get("status") in ("COMPLETED", *FAILED_STATES):
                return state
            await asyncio.sleep(min(interval, max(0.0, deadline - time.monotonic())))
            interval = min(15.0, interval * 1.5)

    async def _fetch_bucket(self, output: dict[str, Any]) -> dict[str, Any]:
        """A result delivered to the worker's bucket: the full result from its presigned URL."""
        urls = output["result_urls"].get("urls", {})
        async with self.session.get(urls["json"], timeout=aiohttp.ClientTimeout(total=600)) \
                as resp:
            resp.raise_for_status()
            return await resp.json(content_type=None)

    async def _save(self, item: Item, key: str, output: dict[str, Any],
                    attempts: list[dict[str, Any]]) -> None:
        if "result_urls" in output and "json" in output["result_urls"].get("urls", {}):
            try:
                output = await self._fetch_bucket(output)
            except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
                raise Outcome(f"the result's bucket URL could not be read ({exc})") from None
        texts = {f: output[f] for f in FORMAT_FIELDS if isinstance(output.get(f), str)}
        await asyncio.to_thread(self.store.done, item.name, key, output, texts, attempts)
        duration = output.get("duration")
        if isinstance(duration, (int, float)):
            self.tally.audio_s += duration

    async def _key(self, item: Item) -> str | None:
        """The input's key (a file's is its sha256), or None, counted, when it can't be read."""
        if item.kind == "file":
            try:
                await asyncio.to_thread(item.hash_file)
            except OSError as exc:
                self._fail(item, None, "unreadable", f"{item.name}: {exc.strerror or exc}", [])
                self.tally.too_big += 1
                return None
        return item.key()

    def _admit(self, item: Item, key: str) -> bool:
        """Whether the input is to be sent; when not, it is counted: done before, failed before
        (without --retry-failed), or too big to send inline."""
        previous = self.store.previous(key)
        if previous is not None and previous["status"] == "done":
            self.tally.skipped += 1
            return False
        if previous is not None and not self.o.retry_failed:
            self.tally.skipped_failed += 1
            self.tally.failures.append({"input": item.name, "key": key, "kind": "input_error",
                                        "error": previous["error"], "attempts": 0,
                                        "history": previous.get("attempts", []),
                                        "note": "failed before; --retry-failed sends it again"})
            return False
        too_big = item.too_big(self.o.max_inline_mb, self.params_bytes)
        if too_big:
            self.tally.too_big += 1
            self._fail(item, key, "too_big", too_big, [])
            return False
        return True

    async def _process(self, item: Item) -> None:
        key = await self._key(item)
        if key is None or not self._admit(item, key):
            return
        attempts: list[dict[str, Any]] = []
        counted = 0
        while True:
            try:
                output, attempt = await self._attempt(item)
                attempts.append(attempt)
                try:
                    await self._save(item, key, output, attempts)
                except Outcome as out:
                    attempts.pop()
                    out.attempt = attempt
                    raise
                self.tally.completed += 1
                self.pool.health[attempt["target"]].completed += 1
                return
            except Outcome as out:
                if out.counts:
                    attempts.append({**out.attempt, "error": out.error})
                    counted += 1
                if out.final:
                    self.tally.input_errors += 1
                    self._fail(item, key, "input_error", out.error, attempts)
                    await asyncio.to_thread(self.store.failed_for_good, item.name, key,
                                            out.error, attempts)
                    return
                if counted > self.o.retries:
                    self.tally.gave_up += 1
                    self._fail(item, key, "gave_up", out.error, attempts)
                    return
                if out.counts:
                    self.tally.retries += 1
                    wait = min(60.0, self.o.retry_base_s * 2 ** (counted - 1))
                    wait *= random.uniform(0.8, 1.2)
                    self.say(f"retrying {item.name} in {wait:.0f} s (attempt {counted + 1} of "
                             f"{self.o.retries + 1}): {out.error}")
                    await asyncio.sleep(wait)

    # -- the run ---------------------------------------------------------------------------

    async def _worker(self, queue: asyncio.Queue[Item]) -> None:
        while True:
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await self._process(item)
            self._progress()

    def _open_bar(self) -> None:
        """A progress bar over the inputs (`--progress`, when tqdm is installed)."""
        if self.o.progress:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=len(self.items), unit="file", file=sys.stderr,
                                dynamic_ncols=True)
            except ImportError:
                self.bar = None

    async def run(self) -> Tally:
        queue: asyncio.Queue[Item] = asyncio.Queue()
        for item in self.items:
            queue.put_nowait(item)
        self._open_bar()
        workers = [asyncio.create_task(self._worker(queue))
                   for _ in range(max(1, min(self.o.concurrency, len(self.items))))]
        ticker = asyncio.create_task(self._ticker())
        try:
            await asyncio.gather(*workers)
        except (AllDown, Fatal) as exc:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            self.tally.stopped = (f"no target reachable: {exc}" if isinstance(exc, AllDown)
                                  else str(exc))
            accounted = (self.tally.completed + self.tally.skipped + self.tally.failed)
            self.tally.not_sent = self.tally.inputs - accounted
        finally:
            ticker.cancel()
            if self.bar is not None:
                self.bar.close()
        return self.tally


def summary(tally: Tally, pool: Pool, out: str) -> str:
    """The table printed at the end of a run."""
    wall = time.monotonic() - tally.started
    rows = [
        ("inputs", f"{tally.inputs}"),
        ("completed", f"{tally.completed}"),
        ("skipped (done before)", f"{tally.skipped}"),
        ("failed: input error", f"{tally.input_errors} (not retried)"),
        ("failed: input error before", f"{tally.skipped_failed} (--retry-failed resends)"),
        ("failed: gave up", f"{tally.gave_up} (after the retries; a rerun tries again)"),
        ("not sent: too big/unreadable", f"{tally.too_big}"),
        ("retries", f"{tally.retries}"),
        ("audio", f"{tally.audio_s / 3600:.3f} h"),
        ("wall", f"{wall / 3600:.3f} h"),
        ("audio h per wall h", f"{tally.speed():.1f}"),
    ]
    if tally.worker_ms:
        rows.append(("worker time (RunPod executionTime)", f"{tally.worker_ms / 3.6e6:.3f} h"))
    if tally.not_sent:
        rows.append(("not sent: run stopped", f"{tally.not_sent}"))
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    for target in pool.targets:
        h = pool.health[target.name]
        lines.append(f"{'target ' + target.name:<{width}}  {h.completed} completed"
                     + (f", unreachable: {h.last_error}" if h.failures else ""))
    kinds = Counter(f["kind"] for f in tally.failures)
    if tally.failures:
        lines.append(f"failures: {out}/failures.jsonl ("
                     + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) + ")")
    if tally.stopped:
        lines.append(f"stopped: {tally.stopped}")
    return "\n".join(lines)
