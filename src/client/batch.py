"""`--batch`: the inputs as RunPod Batch jobs on the endpoint's batch workers instead of /run.

A batch is created, named, filled with the same job inputs /run would get (in calls of at most
10 MiB, at most 5,000 requests a batch), finalized, and polled with a growing interval; each
finished request's result is written as the /run path writes it. `batches.json` in the output
folder records every batch and which input each request is, so a rerun re-attaches to the
batches still running and sends only inputs no batch holds. Failed requests that are worth
another try go into a new batch. The API itself is batch_api.py; docs/scale-out.md, "Batch jobs".
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp

from . import batch_api
from .batch_api import BatchApi, BatchApiError
from .runner import Options, Outcome, Runner, Tally, is_input_error
from .sources import Item
from .store import Store
from .targets import Fatal, Pool

MANIFEST = "batches.json"
POLL_START_S = 2.0


@dataclass
class Entry:
    """One request of a batch: which input it is, and its earlier attempts."""

    input: str
    key: str
    fp: str  # batch_api.fingerprint of the input sent
    id: str | None = None  # the request's id, once known
    history: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False


@dataclass
class Batch:
    id: str
    endpoint: str
    params: str  # the Store's parameters hash: a batch under other parameters isn't ours
    name: str
    created: str
    state: str = "draft"  # draft, finalized, ended, cancelled (the client's view)
    entries: list[Entry] = field(default_factory=list)
    seen: int = 0  # finished requests at the last look (not saved)
    lagged: bool = False  # counted as done, yet some requests weren't listed done (not saved)


@dataclass
class BatchTarget:
    name: str


def api_key() -> str:
    import runpod

    key = os.environ.get("RUNPOD_API_KEY") or runpod.api_key
    if not key:
        raise Fatal("--endpoint needs a RunPod API key: set RUNPOD_API_KEY (or run "
                    "`runpod config`).")
    return str(key)


class BatchRunner(Runner):
    def __init__(self, items: list[Item], store: Store, options: Options,
                 session: aiohttp.ClientSession, endpoint: str, *, cancel_on_exit: bool = False,
                 poll_max_s: float = 60.0, unreachable_s: float = 300.0) -> None:
        self.target = BatchTarget(f"runpod-batch:{endpoint}")
        super().__init__(items, Pool([self.target], unreachable_s), store, options, session)
        self.endpoint = endpoint
        self.api = BatchApi(endpoint, api_key(), session, unreachable_s=unreachable_s)
        self.cancel_on_exit, self.poll_max_s = cancel_on_exit, poll_max_s
        self.by_key: dict[str, Item] = {}
        self.batches: list[Batch] = []
        self.open: list[Batch] = []
        self.again: list[tuple[Item, list[dict[str, Any]]]] = []  # for the next batch
        self.named = True
        self.unmatched: set[Any] = set()  # request ids already reported as matching no input

    # -- batches.json ----------------------------------------------------------------------

    def _load(self) -> None:
        path = self.store.folder / MANIFEST
        if not path.exists():
            return
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            for b in data["batches"]:
                entries = [Entry(**e) for e in b.pop("entries")]
                self.batches.append(Batch(**b, entries=entries))
        except (ValueError, KeyError, TypeError) as exc:
            raise Fatal(f"{path}: not a batch list this client wrote ({exc}); move it away to "
                        "start new batches.") from None

    def _save_manifest(self) -> None:
        path = self.store.folder / MANIFEST
        data = {"batches": [{k: v for k, v in asdict(b).items() if k not in ("seen", "lagged")}
                            for b in self.batches]}
        tmp = path.with_name(path.name + ".part")
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, path)

    # -- sending ---------------------------------------------------------------------------

    async def _pending(self) -> list[Item]:
        """The inputs without a result, as /run's path decides it (skips, too big)."""
        pending: list[Item] = []
        for item in self.items:
            key = await self._key(item)
            if key is None:
                continue
            if key in self.by_key:  # in a re-attached batch, or the same bytes under another name
                self.tally.skipped += 1
                continue
            if not self._admit(item, key):
                continue
            self.by_key[key] = item
            pending.append(item)
        return pending

    async def _reattach(self) -> set[str]:
        """Follow this folder's unfinished batches again; returns the keys they hold."""
        held: set[str] = set()
        for b in self.batches:
            if b.state not in ("draft", "finalized") or b.endpoint != self.endpoint \
                    or b.params != self.store.params:
                continue
            mine = []
            for e in b.entries:  # the entries still ours: others are done, gone or held twice
                if e.done or e.key not in self.by_key or e.key in held:
                    e.done = True
                else:
                    mine.append(e)
                    held.add(e.key)
            if not mine:
                b.state = "ended"
                continue
            if b.state == "draft":  # the last run stopped while filling it: send what it has
                await self.api.finalize(b.id)
                b.state = "finalized"
            self.tally.in_flight += len(mine)
            self.open.append(b)
            self.say(f"re-attached to batch {b.id} ({b.name}): {len(mine)} inputs")
        self._save_manifest()
        return held

    async def _submit(self, work: list[tuple[Item, list[dict[str, Any]]]]) -> None:
        """New batches holding `work` (input, earlier attempts), finalized."""
        for start in range(0, len(work), batch_api.MAX_REQUESTS_PER_BATCH):
            group = work[start:start + batch_api.MAX_REQUESTS_PER_BATCH]
            stamp = time.strftime("%Y%m%d-%H%M%S")
            name = f"whisperx-{self.store.folder.resolve().name}-{stamp}"
            b = Batch(id=await self.api.create(), endpoint=self.endpoint,
                      params=self.store.params, name=name,
                      created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
            self.batches.append(b)
            self._save_manifest()
            try:
                await self.api.rename(b.id, name)
            except BatchApiError as exc:
                if self.named:  # the name is a convenience; the id is what counts
                    self.say(f"batch {b.id}: could not set its name ({exc})")
                self.named = False
            chunk: list[tuple[Item, list[dict[str, Any]], dict[str, Any]]] = []
            size = 0
            for item, history in group:
                try:
                    job_input = {**self.o.params, **await asyncio.to_thread(item.audio_field)}
                except Exception as exc:  # a file gone since the listing, a presigning error
                    self.tally.gave_up += 1
                    self._fail(item, item.key(), "unreadable", f"{item.name}: could not be read"
                               f" to send ({type(exc).__name__}: {exc})", history)
                    continue
                request = {"input": job_input}
                n = len(json.dumps(request)) + 2
                if chunk and size + n > batch_api.MAX_BODY_BYTES - 4096:
                    await self._add(b, chunk)
                    chunk, size = [], 0
                chunk.append((item, history, request))
                size += n
            if chunk:
                await self._add(b, chunk)
            if not b.entries:
                b.state = "ended"
                self._save_manifest()
                continue
            await self.api.finalize(b.id)
            b.state = "finalized"
            self._save_manifest()
            self.open.append(b)
            self.say(f"batch {b.id} ({name}): {len(b.entries)} requests, finalized; RunPod "
                     "starts batch workers when it has capacity (hours, at times)")

    async def _add(self, b: Batch,
                   chunk: list[tuple[Item, list[dict[str, Any]], dict[str, Any]]]) -> None:
        ids = await self.api.add(b.id, [request for _, _, request in chunk])
        for i, (item, history, request) in enumerate(chunk):
            b.entries.append(Entry(item.name, item.key(),
                                   batch_api.fingerprint(request["input"]),
                                   ids[i] if ids else None, history))
        self.tally.in_flight += len(chunk)
        self._save_manifest()

    # -- results ---------------------------------------------------------------------------

    def _match(self, b: Batch, request: dict[str, Any]) -> Entry | None:
        """The entry a listed request is: by its id, by its echoed input, or (a file input's
        result) by the worker's input_sha256."""
        rid = request.get("id")
        for e in b.entries:
            if rid and e.id == rid:
                return e
        echoed = request.get(batch_api.ECHO_INPUT)
        if isinstance(echoed, dict):
            fp = batch_api.fingerprint(echoed)
            for e in b.entries:
                if e.fp == fp and e.id is None:
                    return e
        output = request.get("output")
        if isinstance(output, dict) and isinstance(output.get("input_sha256"), str):
            key = f"sha256:{output['input_sha256']}"
            for e in b.entries:
                if e.key == key and e.id is None:
                    return e
        return None

    async def _collect(self, b: Batch) -> None:
        unmatched = 0
        for request in await self.api.requests(b.id):
            if request.get("status") not in batch_api.REQUEST_DONE:
                continue
            e = self._match(b, request)
            if e is None:
                if request.get("id") not in self.unmatched:
                    self.unmatched.add(request.get("id"))
                    unmatched += 1
                continue
            if e.done:
                continue
            e.id = e.id or request.get("id")
            e.done = True
            self.tally.in_flight -= 1
            await self._resolve(b, e, request)
        self._save_manifest()  # once a look: batches.json holds up to 5,000 entries a batch
        if unmatched:
            self.say(f"batch {b.id}: {unmatched} finished requests match no input (the API "
                     "returned no request ids and no echoed input; docs/scale-out.md)")

    async def _resolve(self, b: Batch, e: Entry, request: dict[str, Any]) -> None:
        item = self.by_key[e.key]
        previous = self.store.previous(e.key)
        if previous is not None and previous["status"] == "done":
            self.tally.skipped += 1
            return
        attempt: dict[str, Any] = {"target": self.target.name, "batch_id": b.id,
                                   "request_id": request.get("id")}
        attempts = [*e.history, attempt]
        status = request.get("status")
        if status == "COMPLETED":
            output = request.get("output")
            if not isinstance(output, dict):
                return self._again(item, attempts, f"{self.target.name}: request "
                                   f"{attempt['request_id']} completed without a result object")
            try:
                await self._save(item, e.key, output, attempts)
            except Outcome as out:
                return self._again(item, attempts, out.error)
            self.tally.completed += 1
            self.pool.health[self.target.name].completed += 1
            self._progress()
            return None
        error = request.get("error")
        error = error if isinstance(error, str) else json.dumps(error or
                                                                f"request {status} without an "
                                                                "error message")
        if status == "FAILED" and is_input_error(error):
            attempts[-1]["error"] = error
            self.tally.input_errors += 1
            self._fail(item, e.key, "input_error", error, attempts)
            await asyncio.to_thread(self.store.failed_for_good, item.name, e.key, error,
                                    attempts)
            self._progress()
            return None
        return self._again(item, attempts, f"{self.target.name}: request "
                           f"{attempt['request_id']} {status}: {error}")

    def _again(self, item: Item, attempts: list[dict[str, Any]], error: str,
               kind: str = "gave_up") -> None:
        """A failure worth another try: into the next batch, while --retries allows."""
        attempts[-1]["error"] = error
        if len(attempts) > self.o.retries or kind != "gave_up":
            self.tally.gave_up += 1
            self._fail(item, item.key(), kind, error, attempts)
            self._progress()
            return
        self.tally.retries += 1
        self.say(f"retrying {item.name} in a new batch (attempt {len(attempts) + 1} of "
                 f"{self.o.retries + 1}): {error}")
        self.again.append((item, attempts))

    def _end(self, b: Batch, status: str) -> None:
        """The batch is over: its requests without a result are failed attempts."""
        for e in b.entries:
            if e.done:
                continue
            e.done = True
            self.tally.in_flight -= 1
            attempt = {"target": self.target.name, "batch_id": b.id, "request_id": e.id}
            item = self.by_key[e.key]
            if status == "CANCELLED":
                self._again(item, [*e.history, attempt], f"batch {b.id} was cancelled before "
                            "this input finished; a rerun sends it in a new batch",
                            kind="batch_cancelled")
            elif status == "FAILED":
                self._again(item, [*e.history, attempt], f"batch {b.id} FAILED (RunPod: a "
                            "problem with the batch, not with this input)")
            else:
                self._again(item, [*e.history, attempt], f"batch {b.id} finished, but no "
                            "finished request could be matched to this input; a rerun sends it"
                            " again", kind="unmatched")
        b.state = "cancelled" if status == "CANCELLED" else "ended"
        self._save_manifest()

    async def _poll(self) -> None:
        interval = min(POLL_START_S, self.poll_max_s)
        while self.open or self.again:
            if self.again:
                work, self.again = self.again, []
                await self._submit(work)
            next_wait = 0.0  # after a look that found finished requests
            for b in list(self.open):
                summary = await self.api.summary(b.id)
                status = str(summary.get("status"))
                counts = [summary.get(f) for f in (batch_api.TOTAL, batch_api.COMPLETED,
                                                    batch_api.FAILED, batch_api.IN_PROGRESS)]
                total, completed, failed, running = (c if isinstance(c, int) else 0
                                                     for c in counts)
                finished = completed + failed
                over = status in batch_api.ENDED or (
                    status == "FINALIZED" and total > 0 and finished >= total)
                if finished != b.seen or over:  # list the requests only when some finished
                    self.say(f"batch {b.id}: {status}, {completed} completed, {failed} failed, "
                             f"{running} in progress, of {total}")
                    b.seen = finished
                    await self._collect(b)
                    # listing costs a call per PAGE_LIMIT requests: look less often at big ones
                    pages = -(-total // batch_api.PAGE_LIMIT)
                    next_wait = max(next_wait, min(self.poll_max_s, max(POLL_START_S, pages)))
                if over and status == "FINALIZED" and not b.lagged and \
                        any(not e.done for e in b.entries):
                    b.lagged = True  # the list may trail the counts: one more look first
                    b.seen = -1
                    next_wait = next_wait or min(self.poll_max_s, POLL_START_S)
                elif over:
                    self._end(b, status)
                    self.open.remove(b)
            if self.open and not self.again:
                await asyncio.sleep(interval)
                interval = next_wait or min(self.poll_max_s, interval * 1.5)

    # -- the run ---------------------------------------------------------------------------

    async def run(self) -> Tally:
        self._open_bar()
        ticker = asyncio.create_task(self._ticker())
        try:
            self._load()
            pending = await self._pending()
            self._progress(self.tally.skipped + self.tally.skipped_failed + self.tally.too_big)
            held = await self._reattach()
            await self._submit([(item, []) for item in pending if item.key() not in held])
            await self._poll()
        except (BatchApiError, Fatal) as exc:
            self.tally.stopped = str(exc)
            accounted = self.tally.completed + self.tally.skipped + self.tally.failed
            self.tally.not_sent = self.tally.inputs - accounted - self.tally.in_flight
            if self.open:
                self.say(self._reattach_hint())
        except asyncio.CancelledError:  # Ctrl-C
            await self._on_exit()
            raise
        finally:
            ticker.cancel()
            if self.bar is not None:
                self.bar.close()
            self._save_manifest()
        return self.tally

    def _reattach_hint(self) -> str:
        ids = ", ".join(b.id for b in self.open)
        return (f"batches {ids} go on running on RunPod; rerun the same command to pick up "
                f"their results ({self.store.folder / MANIFEST} keeps their ids), or add "
                "--cancel-on-exit to cancel them when you stop it.")

    async def _on_exit(self) -> None:
        live = [b for b in self.batches if b.state in ("draft", "finalized")
                and b.endpoint == self.endpoint]
        if not self.cancel_on_exit:
            self.open = live
            if live:
                self.say(self._reattach_hint())
            return
        for b in live:
            try:
                await asyncio.wait_for(self.api.cancel(b.id), 30)
                b.state = "cancelled"
                self.say(f"cancelled batch {b.id} (requests already running finish and are "
                         "billed)")
            except (BatchApiError, TimeoutError) as exc:
                self.say(f"could not cancel batch {b.id}: {exc}")
