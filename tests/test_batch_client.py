"""`whisperx-client --batch` against a fake RunPod Batch jobs API on loopback (an aiohttp app
speaking the documented protocol: create, add, finalize, poll, list, cancel). In the main test
the fake runs each request through a real local API worker (the base model), so results and
errors are the worker's own; the faster tests give canned outputs."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from client import cli
from conftest import english_prompts, wer
from test_api import free_port, local_api
from test_bulk_client import PARAMS, client, finish, index, summary_value

KEY = "rpa_TESTKEY0123456789secret"
ENDPOINT = "ep123batch"
BOOM = ("internal error (RuntimeError): boom. The input was accepted but processing failed; "
        "retry, and report it if it repeats.")


class FakeBatchApi:
    """RunPod's Batch jobs API as docs.runpod.io/serverless/batch-jobs describes it. `ids`:
    create/add answers list the new requests' ids (the client's first assumption); `echo`: listed
    requests carry their input. Requests run one at a time once `gate` is set, through `run`
    (input -> (status, output or error)); `fail_once(input)` fails a request's first run with
    a worker's internal error."""

    def __init__(self, run: Callable[[dict[str, Any]], Any], *, ids: bool = True,
                 echo: bool = False, fail_once: Callable[[dict[str, Any]], bool] | None = None,
                 answer: Callable[[web.Request], web.Response | None] | None = None) -> None:
        self.run, self.ids, self.echo, self.fail_once = run, ids, echo, fail_once
        self.answer = answer
        self.calls: list[str] = []
        self.batches: dict[str, dict[str, Any]] = {}
        self.failed_once: set[str] = set()
        self.gate = threading.Event()
        self.gate.set()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()

    # -- the app ---------------------------------------------------------------------------

    @web.middleware
    async def auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.answer is not None and (early := self.answer(request)) is not None:
            return early
        if request.headers.get("Authorization") != f"Bearer {KEY}":
            return web.json_response({"error": "unauthorized"}, status=401)
        if request.match_info.get("endpoint") != ENDPOINT:
            return web.json_response({"error": "endpoint not found"}, status=404)
        return await handler(request)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.auth])
        base = "/v2/{endpoint}/batch"
        app.router.add_post(base, self.create)
        app.router.add_post(base + "/{id}/requests", self.add)
        app.router.add_get(base + "/{id}/requests", self.list)
        app.router.add_post(base + "/{id}/finalize", self.finalize)
        app.router.add_put(base + "/{id}", self.rename)
        app.router.add_get(base + "/{id}", self.summary)
        app.router.add_post(base + "/{id}/cancel", self.cancel)
        return app

    def _batch(self, request: web.Request) -> dict[str, Any]:
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            raise web.HTTPNotFound(text='{"error": "batch not found"}')
        return batch

    def _append(self, batch: dict[str, Any], items: list[dict[str, Any]]) -> list[str]:
        made = []
        for item in items:
            rid = f"req-{batch['id']}-{len(batch['requests'])}"
            batch["requests"].append({"id": rid, "status": "IN_QUEUE", "input": item["input"]})
            made.append(rid)
        return made

    async def create(self, request: web.Request) -> web.Response:
        self.calls.append("create")
        body = await request.json()
        assert isinstance(body, list)  # DOC: a top-level JSON array
        bid = f"batch-{len(self.batches) + 1}"
        batch = self.batches[bid] = {"id": bid, "status": "DRAFT", "requests": [], "name": None}
        made = self._append(batch, body)
        return web.json_response({"id": bid, "status": "DRAFT"}
                                 | ({"requestIds": made} if self.ids else {}))

    async def add(self, request: web.Request) -> web.Response:
        self.calls.append("add")
        batch = self._batch(request)
        if batch["status"] != "DRAFT":
            return web.json_response({"error": "batch is not a draft"}, status=409)
        made = self._append(batch, (await request.json())["requests"])
        return web.json_response({"requestIds": made} if self.ids else {})

    async def rename(self, request: web.Request) -> web.Response:
        self.calls.append("rename")
        self._batch(request)["name"] = (await request.json())["name"]
        return web.json_response({})

    async def finalize(self, request: web.Request) -> web.Response:
        self.calls.append("finalize")
        batch = self._batch(request)
        batch["status"] = "FINALIZED"
        asyncio.get_running_loop().create_task(self._process(batch))
        return web.json_response({"id": batch["id"], "status": "FINALIZED"})

    async def summary(self, request: web.Request) -> web.Response:
        self.calls.append("summary")
        batch = self._batch(request)
        states = [r["status"] for r in batch["requests"]]
        return web.json_response({
            "id": batch["id"], "endpointId": ENDPOINT, "status": batch["status"],
            "requestTotal": len(states), "requestInProgress": states.count("IN_PROGRESS"),
            "requestCompleted": states.count("COMPLETED"),
            "requestFailed": states.count("FAILED"), "createdAt": 1783584000000})

    async def list(self, request: web.Request) -> web.Response:
        self.calls.append("requests")
        batch = self._batch(request)
        offset, limit = int(request.query["offset"]), int(request.query["limit"])
        page = [{k: v for k, v in r.items() if k != "input" or self.echo}
                for r in batch["requests"][offset:offset + limit]]
        return web.json_response({"requests": page, "total": len(batch["requests"]),
                                  "offset": offset, "limit": limit,
                                  "hasMore": offset + limit < len(batch["requests"])})

    async def cancel(self, request: web.Request) -> web.Response:
        self.calls.append("cancel")
        batch = self._batch(request)
        batch["status"] = "CANCELLED"
        for r in batch["requests"]:
            if r["status"] == "IN_QUEUE":
                r["status"] = "CANCELLED"
        return web.json_response({"id": batch["id"], "status": "CANCELLED"})

    async def _process(self, batch: dict[str, Any]) -> None:
        for r in batch["requests"]:
            while not self.gate.is_set():
                await asyncio.sleep(0.05)
            if batch["status"] != "FINALIZED":
                return
            r["status"] = "IN_PROGRESS"
            if self.fail_once and self.fail_once(r["input"]) and \
                    (fp := json.dumps(r["input"], sort_keys=True)) not in self.failed_once:
                self.failed_once.add(fp)
                status, result = "FAILED", BOOM
            else:
                status, result = await self.run(r["input"])
            r["status"] = status
            r["output" if status == "COMPLETED" else "error"] = result

    # -- serving ---------------------------------------------------------------------------

    def __enter__(self) -> FakeBatchApi:
        runner = web.AppRunner(self.app())
        self.loop.run_until_complete(runner.setup())
        self.loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self.runner = runner
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.gate.set()
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def env(self) -> dict[str, str]:
        return {"RUNPOD_ENDPOINT_BASE_URL": f"{self.url}/v2", "RUNPOD_API_KEY": KEY}


def through_worker(worker: str) -> Callable[[dict[str, Any]], Any]:
    """Run a request on a local API worker (/runsync), as a batch worker would run it."""
    async def run(job_input: dict[str, Any]) -> tuple[str, Any]:
        async with aiohttp.ClientSession() as s, s.post(
                f"{worker}/runsync", json={"input": job_input},
                timeout=aiohttp.ClientTimeout(total=600)) as resp:
            body = await resp.json()
        return body["status"], body.get("output") if body["status"] == "COMPLETED" \
            else body.get("error")
    return run


def sha_of(job_input: dict[str, Any]) -> str:
    return hashlib.sha256(base64.b64decode(job_input["audio_base64"])).hexdigest()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def worker(assets_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with local_api(tmp_path_factory.mktemp("batch") / "worker.log",
                   DIARIZATION="false") as url:
        yield url


def test_a_batch_is_built_stopped_reattached_retried_and_not_sent_again(
        worker: str, tmp_path: Path) -> None:
    clips = english_prompts(2, skip=6)
    folder = tmp_path / "episodes"
    folder.mkdir()
    for wav, _ in clips:
        shutil.copy(wav, folder / wav.name)
    (folder / "broken.mp3").write_bytes(b"ID3" + bytes(range(256)) * 40)  # not decodable
    params = tmp_path / "params.json"
    params.write_text(json.dumps(PARAMS))
    out = tmp_path / "out"
    flaky = hashlib.sha256(clips[0][0].read_bytes()).hexdigest()
    args = ["--folder", str(folder), "--endpoint", ENDPOINT, "--batch", "--params", str(params),
            "--out", str(out), "--batch-poll-max", "0.5", "--retries", "2", "--no-progress"]
    with FakeBatchApi(through_worker(worker),
                      fail_once=lambda job: sha_of(job) == flaky) as fake:
        fake.gate.clear()  # batch workers haven't started yet

        # 1. Built, finalized and polled; stopped with Ctrl-C: the batch goes on.
        run = client(*args, env=fake.env())
        wait_for(lambda: fake.calls.count("summary") >= 2, "the client's polls")
        run.send_signal(signal.SIGINT)
        rc, stdout, stderr = finish(run)
        assert rc == 130, stdout + stderr
        assert fake.calls[:4] == ["create", "rename", "add", "finalize"], fake.calls
        assert set(fake.calls[4:]) == {"summary"}  # nothing finished: no listing, no cancel
        (batch,) = fake.batches.values()
        assert batch["status"] == "FINALIZED" and len(batch["requests"]) == 3
        assert batch["name"].startswith("whisperx-out-")
        assert (f"batches {batch['id']} go on running on RunPod; rerun the same command to "
                "pick up their results") in stderr
        saved = json.loads((out / "batches.json").read_text())["batches"]
        assert [(b["id"], b["state"], len(b["entries"])) for b in saved] == \
            [(batch["id"], "finalized", 3)]
        assert not (out / "index.jsonl").read_text()

        # 2. The batch workers start; a rerun re-attaches (no new batch for these inputs),
        # writes the results, retries the worker's internal error in a new batch and reports
        # the corrupt file without retrying it.
        fake.gate.set()
        before = len(fake.calls)
        rc, stdout, stderr = finish(client(*args, env=fake.env()), timeout=600)
        calls = fake.calls[before:]
        assert rc == 1, stdout + stderr
        assert f"re-attached to batch {batch['id']}" in stderr
        assert calls[0] == "summary" and calls.count("create") == 1, calls
        first = calls.index("create")
        assert calls[first:first + 4] == ["create", "rename", "add", "finalize"]
        retry = fake.batches["batch-2"]
        assert len(retry["requests"]) == 1 and sha_of(retry["requests"][0]["input"]) == flaky
        assert summary_value(stdout, "completed") == "2"
        assert summary_value(stdout, "failed: input error") == "1 (not retried)"
        assert summary_value(stdout, "retries") == "1"
        assert f"target runpod-batch:{ENDPOINT}" in stdout
        for wav, text in clips:
            result = json.loads((out / f"{wav.name}.json").read_text())
            assert result["input_sha256"] == hashlib.sha256(wav.read_bytes()).hexdigest()
            assert wer(text, result["transcription"]) < 0.5, result["transcription"]
            assert (out / f"{wav.name}.srt").read_text() == result["srt"]
        records = {r["input"]: r for r in index(out)}
        retried = records[clips[0][0].name]["attempts"]
        assert [a["batch_id"] for a in retried] == [batch["id"], "batch-2"]
        assert retried[0]["error"].endswith(f"FAILED: {BOOM}")
        assert "error" not in retried[1]
        (failure,) = [json.loads(line) for line in (out / "failures.jsonl").read_text()
                      .splitlines()]
        assert failure["input"] == "broken.mp3" and failure["kind"] == "input_error"
        assert failure["error"].startswith("audio: not a readable audio or video file")
        assert failure["attempts"] == 1 and failure["history"][0]["batch_id"] == batch["id"]
        assert records["broken.mp3"]["status"] == "input_error"
        states = {b["id"]: b["state"] for b in
                  json.loads((out / "batches.json").read_text())["batches"]}
        assert states == {batch["id"]: "ended", "batch-2": "ended"}

        # 3. Everything has a result or failed for good: nothing is sent, no batch is asked.
        before = len(fake.calls)
        rc, stdout, stderr = finish(client(*args, env=fake.env()))
        assert rc == 1, stdout + stderr
        assert fake.calls[before:] == []
        assert summary_value(stdout, "skipped (done before)") == "2"
        assert summary_value(stdout, "failed: input error before") == "1 (--retry-failed resends)"
    assert KEY not in stdout + stderr


# -- canned outputs -------------------------------------------------------------------------

def canned(job_input: dict[str, Any]) -> Any:
    """A worker's answer without the models: the corrupt file fails as the worker says."""
    data = base64.b64decode(job_input["audio_base64"])
    if not data.startswith(b"RIFF"):
        error = "audio: not a readable audio or video file (canned)"
        return _done("FAILED", error)
    return _done("COMPLETED", {"input_sha256": hashlib.sha256(data).hexdigest(),
                               "duration": 1.5, "transcription": "hello",
                               "srt": "1\n00:00:00,000 --> 00:00:01,500\nhello\n"})


async def _done(status: str, result: Any) -> tuple[str, Any]:
    return status, result


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for wav, _ in english_prompts(2):
        shutil.copy(wav, folder / wav.name)
    (folder / "broken.mp3").write_bytes(b"ID3" + bytes(range(256)) * 40)
    return folder


@pytest.mark.parametrize("echo", [False, True])
def test_without_request_ids_results_are_matched_by_echoed_input_or_the_workers_hash(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch,
        echo: bool) -> None:
    folder = _folder(tmp_path)
    out = tmp_path / "out"
    with FakeBatchApi(canned, ids=False, echo=echo) as fake:
        for k, v in fake.env().items():
            monkeypatch.setenv(k, v)
        rc = cli.main(["--folder", str(folder), "--endpoint", ENDPOINT, "--batch",
                       "--out", str(out), "--batch-poll-max", "0.2", "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 1, captured.out + captured.err
    assert summary_value(captured.out, "completed") == "2"
    for wav, _ in english_prompts(2):
        result = json.loads((out / f"{wav.name}.json").read_text())
        assert result["input_sha256"] == hashlib.sha256(wav.read_bytes()).hexdigest()
    (failure,) = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert failure["input"] == "broken.mp3"
    if echo:  # the failed request's echoed input names it: an input error, as with ids
        assert failure["kind"] == "input_error"
        assert failure["error"] == "audio: not a readable audio or video file (canned)"
    else:  # a failed request has no result to carry the hash: it can't be told apart
        assert failure["kind"] == "unmatched"
        assert "1 finished requests match no input" in captured.err
        assert "a rerun sends it again" in failure["error"]
        assert not [r for r in index(out) if r["input"] == "broken.mp3"]  # a rerun sends it
    assert fake.calls.count("create") == 1  # neither kind of failure is retried in-run


def test_cancel_on_exit_cancels_the_batch(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    out = tmp_path / "out"
    with FakeBatchApi(canned) as fake:
        fake.gate.clear()
        run = client("--folder", str(folder), "--endpoint", ENDPOINT, "--batch",
                     "--cancel-on-exit", "--out", str(out), "--batch-poll-max", "0.2",
                     env=fake.env())
        wait_for(lambda: "summary" in fake.calls, "the client's first poll")
        run.send_signal(signal.SIGINT)
        rc, stdout, stderr = finish(run)
        assert rc == 130, stdout + stderr
        assert fake.calls[-1] == "cancel"
        assert fake.batches["batch-1"]["status"] == "CANCELLED"
    assert "cancelled batch batch-1 (requests already running finish and are billed)" in stderr
    (saved,) = json.loads((out / "batches.json").read_text())["batches"]
    assert saved["state"] == "cancelled"


def _echo_headers(request: web.Request) -> web.Response | None:
    """A server that quotes the request's headers in its error (some proxies do)."""
    return web.json_response({"error": "bad request", "headers": dict(request.headers)},
                             status=400)


@pytest.mark.parametrize(("answer", "key", "error"), [
    (_echo_headers, KEY, f"POST /{ENDPOINT}/batch: HTTP 400 "),
    (None, KEY + "-revoked", "the API key was refused, check RUNPOD_API_KEY."),
])
def test_the_api_key_never_appears_in_errors_or_logs(
        tmp_path: Path, capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch, answer: Any, key: str, error: str) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text("https://example.com/a.mp3\n")
    out = tmp_path / "out"
    caplog.set_level(logging.DEBUG)
    with FakeBatchApi(canned, answer=answer) as fake:
        monkeypatch.setenv("RUNPOD_ENDPOINT_BASE_URL", f"{fake.url}/v2")
        monkeypatch.setenv("RUNPOD_API_KEY", key)
        rc = cli.main(["--urls", str(urls), "--endpoint", ENDPOINT, "--batch", "--out", str(out),
                       "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 2, captured.out + captured.err
    shown = captured.out + captured.err + caplog.text + "".join(
        p.read_text() for p in out.iterdir() if p.is_file())
    assert error in shown
    if answer is not None:  # the server did quote the header; the client wrote it redacted
        assert "Bearer <RUNPOD_API_KEY>" in shown
    assert key not in shown


@pytest.mark.parametrize(("args", "error"), [
    (["--url", "http://127.0.0.1:9", "--batch"], "--batch and --cancel-on-exit need --endpoint "
     "ID (Batch jobs run on a RunPod endpoint's batch workers)."),
    (["--endpoint", ENDPOINT, "--cancel-on-exit"], "--cancel-on-exit goes with --batch (a /run "
     "job is cancelled when it passes --job-timeout)."),
])
def test_batch_options_need_an_endpoint_and_each_other(
        tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str], error: str) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text("https://example.com/a.mp3\n")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--urls", str(urls), "--out", str(tmp_path / "out"), *args])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.endswith(f"whisperx-client: error: {error}\n")
