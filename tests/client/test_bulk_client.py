"""The bulk client (`python -m client`, the `whisperx-client` script) against real workers: two
local API servers on loopback ports, real clips through the base model, one worker killed
while it runs a job, a corrupt file, a rerun that sends nothing, S3 inputs on moto's server
through runpod's SDK with results delivered to a bucket, and a URL list."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http.server
import json
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import numpy as np
import pytest
import requests
import soundfile
from client_runs import PARAMS, client, finish, index, summary_value

from client import cli
from client.runner import is_input_error
from conftest import ROOT, english_prompts, free_port, process_env, read_16k, wer

UNREACHABLE = "http://127.0.0.1:9"
# The base model, no diarization or alignment: the client is under test, not the models.
S3_KEYS = {"AWS_ACCESS_KEY_ID": "AKIACLIENTTEST", "AWS_SECRET_ACCESS_KEY": "client-secret",
           "AWS_DEFAULT_REGION": "us-east-1"}
RESULTS_BUCKET = "transcripts"


@dataclass
class Worker:
    url: str
    proc: subprocess.Popen
    log: Path

    def started(self) -> list[str]:
        """Job ids this worker's handler started, in order."""
        ids = re.findall(r"INFO worker\.handler: job (\S+) started", self.log.read_text())
        return list(dict.fromkeys(ids))


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=url, **_boto_keys()).create_bucket(Bucket=RESULTS_BUCKET)
    yield url
    server.stop()


def _boto_keys() -> dict[str, str]:
    return {"aws_access_key_id": S3_KEYS["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": S3_KEYS["AWS_SECRET_ACCESS_KEY"],
            "region_name": S3_KEYS["AWS_DEFAULT_REGION"]}


@pytest.fixture(scope="module")
def workers(assets_ready: None, s3_endpoint: str,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Worker]]:
    """Two local API workers, started together. They may download from loopback (the S3 and
    URL inputs here) and deliver results to moto's bucket when a job doesn't say otherwise."""
    logs = tmp_path_factory.mktemp("workers")
    env = dict(DIARIZATION="false", ALLOW_PRIVATE_URLS="true", BUCKET_ENDPOINT_URL=s3_endpoint,
               BUCKET_ACCESS_KEY_ID=S3_KEYS["AWS_ACCESS_KEY_ID"],
               BUCKET_SECRET_ACCESS_KEY=S3_KEYS["AWS_SECRET_ACCESS_KEY"],
               BUCKET_NAME=RESULTS_BUCKET, AWS_DEFAULT_REGION="us-east-1")
    started = []
    with contextlib.ExitStack() as stack:
        for i in range(2):
            port = free_port()
            log = logs / f"worker-{i}.log"
            out = stack.enter_context(log.open("w"))
            proc = subprocess.Popen(
                [sys.executable, "src/handler.py", "--rp_serve_api", "--rp_api_host",
                 "127.0.0.1", "--rp_api_port", str(port)], cwd=ROOT,
                env=process_env(CONTAINER_LOG=str(logs / f"container-{i}.txt"), **env),
                stdout=out, stderr=subprocess.STDOUT)
            started.append(Worker(f"http://127.0.0.1:{port}", proc, log))
        try:
            deadline = time.monotonic() + 300
            for w in started:
                while True:
                    if w.proc.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"worker did not start:\n{w.log.read_text()[-3000:]}")
                    try:
                        requests.get(f"{w.url}/docs", timeout=2)
                        break
                    except requests.ConnectionError:
                        time.sleep(0.5)
            yield started
        finally:
            for w in started:
                if w.proc.poll() is None:
                    w.proc.terminate()
                    w.proc.wait(timeout=30)


def kill_while_running_a_job(worker: Worker, proc: subprocess.Popen) -> str:
    """SIGKILL `worker` while its handler runs a job (started, not finished); returns the job's
    id. The worker is stopped (SIGSTOP) to look, so a job can't finish while we check."""
    checked: set[str] = set()
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        for job in worker.started():
            if job in checked:
                continue
            checked.add(job)
            worker.proc.send_signal(signal.SIGSTOP)
            if f"job {job} finished" not in worker.log.read_text():
                worker.proc.kill()
                worker.proc.wait(timeout=30)
                return job
            worker.proc.send_signal(signal.SIGCONT)
        time.sleep(0.02)
    pytest.fail(f"no job caught running on {worker.url}; started: {sorted(checked)}")


def test_folder_over_two_workers_one_killed_then_a_rerun_sends_nothing(
        workers: list[Worker], tmp_path: Path) -> None:
    clips = english_prompts(3)
    folder = tmp_path / "episodes"
    (folder / "season-2").mkdir(parents=True)
    for i, (wav, _) in enumerate(clips):  # one in a subfolder: names keep the folder
        shutil.copy(wav, folder / ("season-2" if i == 0 else "") / wav.name)
    (folder / "broken.mp3").write_bytes(b"ID3" + bytes(range(256)) * 40)  # not decodable
    (folder / "notes.txt").write_text("not audio")
    params = tmp_path / "params.json"
    params.write_text(json.dumps(PARAMS))
    out = tmp_path / "out"
    a, b = workers
    args = ["--folder", str(folder), "--url", a.url, "--url", b.url, "--params", str(params),
            "--out", str(out), "--concurrency", "4", "--retries", "2"]

    run = client(*args)  # with the progress bar
    killed = kill_while_running_a_job(b, run)
    rc, stdout, stderr = finish(run)

    assert rc == 1, stdout + stderr  # one input failed
    assert "1 files that are not audio/video passed over" in stderr
    assert "in_flight=" in stderr and "audio_h/h=" in stderr  # the progress bar's counts
    assert summary_value(stdout, "completed") == "3"
    assert summary_value(stdout, "failed: input error") == "1 (not retried)"
    assert int(summary_value(stdout, "retries")) >= 1
    for i, (wav, text) in enumerate(clips):
        name = ("season-2/" if i == 0 else "") + wav.name
        result = json.loads((out / f"{name}.json").read_text())
        # each result is its own input's: the worker hashed the bytes the client sent
        assert result["input_sha256"] == hashlib.sha256(wav.read_bytes()).hexdigest()
        assert wer(text, result["transcription"]) < 0.5, result["transcription"]
        assert (out / f"{name}.srt").read_text() == result["srt"]
    # the job lost with the killed worker ran again on the other one
    records = {r["input"]: r for r in index(out)}
    retried = [r for r in records.values()
               if any(att.get("job_id") == killed for att in r["attempts"])]
    (record,) = retried
    assert record["attempts"][-1]["target"] == a.url
    assert f"{b.url} went away with the job" in record["attempts"][-2]["error"]
    # which job the kill caught is the scheduler's draw: the corrupt file's ends as an input
    # error on the other worker, any other as a transcript
    expected = "input_error" if record["input"] == "broken.mp3" else "done"
    assert record["status"] == expected
    # the corrupt file: reported with the worker's error, sent once after it said so
    (failure,) = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert failure["input"] == "broken.mp3" and failure["kind"] == "input_error"
    assert failure["error"].startswith("audio: not a readable audio or video file")
    errors = [att["error"] for att in failure["history"]]
    assert errors[-1] == failure["error"] and not any(e.startswith("audio") for e in errors[:-1])
    assert records["broken.mp3"]["status"] == "input_error"

    # A rerun with the same parameters: everything is done or failed for good; nothing is sent.
    sent_before = a.started()
    rc, stdout, stderr = finish(client(*args, "--no-progress"))
    assert a.started() == sent_before
    assert rc == 1, stdout + stderr
    assert summary_value(stdout, "completed") == "0"
    assert summary_value(stdout, "skipped (done before)") == "3"
    assert summary_value(stdout, "failed: input error before") == "1 (--retry-failed resends)"
    (failure,) = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert failure["input"] == "broken.mp3" and failure["error"].startswith("audio: ")


def test_s3_prefix_through_runpods_sdk_with_results_in_a_bucket(
        workers: list[Worker], s3_endpoint: str, tmp_path: Path) -> None:
    a = workers[0]
    clips = english_prompts(1, skip=3)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, **_boto_keys())
    s3.create_bucket(Bucket="media")
    for wav, _ in clips:
        s3.upload_file(str(wav), "media", f"shows/2024/{wav.name}")
    s3.put_object(Bucket="media", Key="shows/2024/cover.jpg", Body=b"\xff\xd8")
    s3.put_object(Bucket="media", Key="other/skip.wav", Body=b"RIFF")  # outside the prefix
    out = tmp_path / "out"
    params = tmp_path / "params.json"
    params.write_text(json.dumps({k: v for k, v in PARAMS.items() if k != "upload_results"}))
    # runpod's SDK pointed at the local API (its RunPod paths), as a RunPod endpoint
    env = {"RUNPOD_ENDPOINT_BASE_URL": a.url, "RUNPOD_API_KEY": "local-key", **S3_KEYS}
    rc, stdout, stderr = finish(client(
        "--s3", "s3://media/shows/2024/", "--s3-endpoint-url", s3_endpoint,
        "--endpoint", "abc123xyz", "--params", str(params), "--out", str(out), "--no-progress",
        env=env))
    assert rc == 0, stdout + stderr
    assert "1 files that are not audio/video passed over" in stderr
    assert summary_value(stdout, "completed") == "1"
    assert "target runpod:abc123xyz" in stdout
    records = index(out)
    assert sorted(r["input"] for r in records) == sorted(wav.name for wav, _ in clips)
    for wav, text in clips:
        result = json.loads((out / f"{wav.name}.json").read_text())
        assert result["input_sha256"] == hashlib.sha256(wav.read_bytes()).hexdigest()
        assert wer(text, result["transcription"]) < 0.5 and result["segments"]
        assert (out / f"{wav.name}.srt").read_text() == result["srt"]
    # the worker delivered each result to its bucket; the client fetched the full result there
    delivered = {}
    for obj in s3.list_objects_v2(Bucket=RESULTS_BUCKET)["Contents"]:
        if obj["Key"].endswith("/result.json"):
            body = json.loads(s3.get_object(Bucket=RESULTS_BUCKET, Key=obj["Key"])["Body"].read())
            delivered[body["input_sha256"]] = body
    for wav, _ in clips:
        written = json.loads((out / f"{wav.name}.json").read_text())
        assert written == delivered[hashlib.sha256(wav.read_bytes()).hexdigest()]
    assert S3_KEYS["AWS_SECRET_ACCESS_KEY"] not in stdout + stderr


def test_url_list_and_a_url_the_worker_cannot_fetch(
        workers: list[Worker], serve_directory, tmp_path: Path) -> None:
    a = workers[0]
    (wav, text), = english_prompts(1, skip=5)
    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(wav, media / wav.name)
    base = serve_directory(media)
    urls = tmp_path / "urls.txt"
    urls.write_text(f"# episodes\n{base}/{wav.name}\n\n{base}/{wav.name}\n{base}/gone.mp3\n")
    params = tmp_path / "params.json"
    params.write_text(json.dumps(PARAMS | {"output_format": "vtt"}))
    out = tmp_path / "out"
    rc, stdout, stderr = finish(client("--urls", str(urls), "--url", a.url, "--params",
                                       str(params), "--out", str(out), "--no-progress"))
    assert rc == 1, stdout + stderr
    assert summary_value(stdout, "completed") == "1"  # the repeated line is one input
    name = f"127.0.0.1/{wav.name}"
    result = json.loads((out / f"{name}.json").read_text())
    assert wer(text, result["transcription"]) < 0.5
    assert (out / f"{name}.vtt").read_text() == result["vtt"]
    (failure,) = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert failure["input"] == "127.0.0.1/gone.mp3" and failure["kind"] == "input_error"
    assert failure["error"].startswith("audio_file: download failed with HTTP 404")
    assert failure["attempts"] == 1


def _reference_turns(offsets: list[float]) -> list[tuple[float, float, str]]:
    rows = [line.split() for line in (ROOT / "samples" / "sample.rttm").read_text().splitlines()]
    return [(o + float(r[3]), o + float(r[3]) + float(r[4]), r[7]) for o in offsets for r in rows]


def test_one_file_split_across_two_workers_merges_with_speakers_linked(
        workers: list[Worker], tmp_path: Path) -> None:
    """pyannote's real two-speaker call twice over (a pause between): cut into chunks at
    pauses, sent to both workers, merged, each voice one label across the chunks."""
    from client.splitter import find_speech

    audio = read_16k(ROOT / "samples" / "sample.wav")
    pause = np.random.default_rng(0).normal(0, 1e-3, int(1.5 * 16000)).astype("float32")
    folder = tmp_path / "long"
    folder.mkdir()
    soundfile.write(folder / "call.wav", np.concatenate([audio, pause, audio]), 16000)
    second = (len(audio) + len(pause)) / 16000
    params = tmp_path / "params.json"
    params.write_text(json.dumps({**PARAMS, "diarization": True, "word_timestamps": True}))
    out = tmp_path / "out"
    a, b = workers
    args = ["--folder", str(folder), "--url", a.url, "--url", b.url, "--params", str(params),
            "--out", str(out), "--split", "0.25", "--no-progress"]
    sent_before = len(a.started()) + len(b.started())
    rc, stdout, stderr = finish(client(*args), timeout=900)
    assert rc == 0, stdout + stderr
    plan = json.loads((out / "call.wav.chunks" / "plan.json").read_text())
    chunks = plan["chunks"]
    assert len(chunks) >= 2 and chunks[0][0] == 0 and chunks[-1][1] == plan["duration"]
    assert summary_value(stdout, "completed") == str(len(chunks))
    assert len(a.started()) + len(b.started()) - sent_before == len(chunks)
    # every cut is in a pause of the VAD's speech
    speech = find_speech(read_16k(folder / "call.wav"))
    for (_, cut), (start, _) in zip(chunks, chunks[1:], strict=False):
        assert cut == start and not any(s < cut < e for s, e in speech), (cut, speech)

    result = json.loads((out / "call.wav.json").read_text())
    segments = result["segments"]
    assert [s["id"] for s in segments] == list(range(len(segments)))
    starts = [s["start"] for s in segments]
    assert starts == sorted(starts) and 0 <= starts[0]
    assert all(s["start"] <= s["end"] <= result["duration"] for s in segments)
    assert result["duration"] == pytest.approx(plan["duration"])
    labels = {s["id"] for s in result["speakers"]}
    assert all(s["speaker"] in labels for s in segments)
    assert all(t["speaker"] in labels for t in result["speaker_turns"])
    assert result["detected_language"] == "en"
    assert (out / "call.wav.srt").read_text() == result["srt"]
    assert result["srt"].count(" --> ") == len(segments)
    assert result["input_sha256"] == hashlib.sha256((folder / "call.wav").read_bytes()).hexdigest()
    assert "speaker_embeddings" not in result  # forced for the chunks, not asked for here
    assert {c["index"] for c in result["split"]["chunks"]} == set(range(len(chunks)))
    # the same voice has the same label across chunks: a word's label against the reference
    # speaker at its middle (where one person speaks); the best one-to-one mapping of labels
    # to reference speakers covers most words (swapped labels in a chunk would halve it)
    reference = _reference_turns([0.0, second])
    pairs = []
    for w in (w for s in segments for w in s.get("words", []) if w.get("start") is not None):
        middle = (w["start"] + w["end"]) / 2
        who = {spk for s, e, spk in reference if s <= middle <= e}
        if len(who) == 1 and w.get("speaker"):
            pairs.append((w["speaker"], who.pop()))
    counts = Counter(pairs)
    best = max(counts[(x, "speaker90")] + counts[(y, "speaker91")]
               for x in labels for y in labels if x != y)
    assert len(pairs) > 100 and best / len(pairs) >= 0.8, counts

    # A rerun sends nothing; without the merged result, it merges again from the chunks'
    rc, stdout, _ = finish(client(*args))
    assert rc == 0 and "0 merged, 1 done before" in stdout
    (out / "call.wav.json").unlink()
    rc, stdout, stderr = finish(client(*args))
    assert rc == 0, stdout + stderr
    assert summary_value(stdout, "skipped (done before)") == str(len(chunks))
    assert len(a.started()) + len(b.started()) - sent_before == len(chunks)
    assert json.loads((out / "call.wav.json").read_text()) == result


def test_split_keeps_the_files_speaker_count_when_a_chunk_holds_one_voice(
        workers: list[Worker], tmp_path: Path) -> None:
    """num_speakers is the file's: pyannote's two-speaker call, then one of its voices alone
    for three chunks. Sent to every chunk as it is, it made a one-voice chunk split its voice
    in two (two speakers of one chunk never link), so the file had more speakers than it
    said; each chunk gets it as max_speakers, and the merge keeps the file to it."""
    audio = read_16k(ROOT / "samples" / "sample.wav")
    alone = audio[round(21.8 * 16000):round(27.8 * 16000)]  # speaker91 alone (sample.rttm)
    rng = np.random.default_rng(1)

    def pause(seconds: float) -> np.ndarray:
        return rng.normal(0, 1e-3, int(seconds * 16000)).astype("float32")

    folder = tmp_path / "long"
    folder.mkdir()
    soundfile.write(folder / "call.wav", np.concatenate(
        [audio, pause(1.5)] + [x for _ in range(6) for x in (alone, pause(1.0))]), 16000)
    params = tmp_path / "params.json"
    params.write_text(json.dumps({**PARAMS, "diarization": True, "num_speakers": 2}))
    out = tmp_path / "out"
    a, b = workers
    rc, stdout, stderr = finish(client(
        "--folder", str(folder), "--url", a.url, "--url", b.url, "--params", str(params),
        "--out", str(out), "--split", "0.25", "--no-progress"), timeout=900)
    assert rc == 0, stdout + stderr
    result = json.loads((out / "call.wav.json").read_text())
    chunks = result["split"]["chunks"]
    assert len(chunks) >= 3 and chunks[-1]["start"] > 40  # one-voice chunks at the end
    assert len(result["speakers"]) <= 2, result["speakers"]
    labels = {s["id"] for s in result["speakers"]}
    assert {s["speaker"] for s in result["segments"] if s.get("speaker")} <= labels


def test_split_needs_a_folder_and_positive_minutes(tmp_path: Path) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text("https://example.com/a.mp3\n")
    for extra, message in ((["--urls", str(urls), "--split", "10"], "--split needs --folder"),
                           (["--folder", str(tmp_path), "--split", "0"],
                            "--split: got 0, expected a positive number of minutes")):
        rc, _, stderr = finish(client(*extra, "--url", UNREACHABLE, "--out",
                                      str(tmp_path / "out")))
        assert rc == 2 and message in stderr, stderr


# -- without workers ------------------------------------------------------------------------

def test_a_file_too_big_to_inline_is_not_sent(tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    (wav, _), = english_prompts(1)
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(wav, folder / wav.name)
    out = tmp_path / "out"
    # a target that can't be reached: any attempt to send would show as "no target reachable"
    rc = cli.main(["--folder", str(folder), "--url", UNREACHABLE, "--out", str(out),
                   "--max-inline-mb", "0.05", "--unreachable-timeout", "1", "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 1, captured.out + captured.err
    (failure,) = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    size = wav.stat().st_size / 1e6
    assert failure["kind"] == "too_big" and failure["attempts"] == 0
    assert failure["error"].startswith(
        f"{wav.name}: {size:.1f} MB is too big to send inline (as base64 the request is ")
    assert "pass --urls FILE (one URL a line) or --s3 s3://bucket/prefix." in failure["error"]
    assert "no target reachable" not in captured.out


def test_no_reachable_target_stops_the_run_and_records_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (wav, _), = english_prompts(1)
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(wav, folder / wav.name)
    out = tmp_path / "out"
    rc = cli.main(["--folder", str(folder), "--url", UNREACHABLE, "--out", str(out),
                   "--unreachable-timeout", "2", "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 2
    assert f"stopped: no target reachable: {UNREACHABLE}: ClientConnectorError" in captured.out
    assert summary_value(captured.out, "not sent: run stopped") == "1"
    assert (out / "index.jsonl").read_text() == ""  # a rerun sends it


@pytest.mark.parametrize(("params", "error"), [
    ('["en"]', 'expected a JSON object like {"language": "en", "output_format": "srt"}, got '
               "list."),
    ('{"audio_file": "x.mp3"}', "audio_file is set per input by the client; remove it."),
    ('{"batch_size": 0}', "input 'batch_size': got 0, expected an integer >= 1 and <= 256."),
    ('{"bach_size": 8}', "input: unknown parameter 'bach_size' (did you mean 'batch_size'?)"),
    ("{", "not valid JSON (Expecting property name enclosed in double quotes"),
])
def test_bad_params_are_refused_before_anything_is_sent(
        tmp_path: Path, capsys: pytest.CaptureFixture, params: str, error: str) -> None:
    path = tmp_path / "params.json"
    path.write_text(params)
    urls = tmp_path / "urls.txt"
    urls.write_text("https://example.com/a.mp3\n")
    rc = cli.main(["--urls", str(urls), "--url", UNREACHABLE, "--params", str(path),
                   "--out", str(tmp_path / "out")])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith(f"whisperx-client: --params {path}: ") and error in err, err


def test_bad_url_lines_are_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text("https://example.com/a.mp3\nftp://example.com/b.mp3\nepisode.mp3\n")
    rc = cli.main(["--urls", str(urls), "--url", UNREACHABLE, "--out", str(tmp_path / "o")])
    assert rc == 2
    assert capsys.readouterr().err == (
        f"whisperx-client: --urls {urls}: not http(s) URLs: line 2: "
        "'ftp://example.com/b.mp3'; line 3: 'episode.mp3'. Give one http(s) URL a line.\n")


def test_endpoint_without_an_api_key(tmp_path: Path, capsys: pytest.CaptureFixture,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import runpod

    monkeypatch.delenv("RUNPOD_API_KEY", raising=False)
    monkeypatch.setattr(runpod, "api_key", None)  # no ~/.runpod credentials either
    urls = tmp_path / "urls.txt"
    urls.write_text("https://example.com/a.mp3\n")
    rc = cli.main(["--urls", str(urls), "--endpoint", "abc", "--out", str(tmp_path / "o")])
    assert rc == 2
    assert capsys.readouterr().err.endswith(
        "whisperx-client: --endpoint needs a RunPod API key: set RUNPOD_API_KEY (or run "
        "`runpod config`).\n")


def test_two_runs_cannot_share_an_output_folder(tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    from client.store import Store

    urls = tmp_path / "urls.txt"
    urls.write_text("https://example.com/a.mp3\n")
    out = tmp_path / "out"
    first = Store(out, {})  # a run in progress
    try:
        rc = cli.main(["--urls", str(urls), "--url", UNREACHABLE, "--out", str(out)])
    finally:
        first.close()
    assert rc == 2
    assert capsys.readouterr().err == (
        f"whisperx-client: another whisperx-client run is writing to {out}; wait for it or "
        "use another --out folder.\n")


class QueueStub(http.server.BaseHTTPRequestHandler):
    """Stands in for an endpoint in states a real worker can't be held in on demand: /run
    accepts, /status answers `state` (a job stuck IN_QUEUE, or a worker's internal error)."""

    state: dict = {}
    calls: list[str] = []

    def do_POST(self) -> None:
        self.calls.append(self.path.rsplit("/", 1)[0] if "/status/" in self.path
                          or "/cancel/" in self.path else self.path)
        body = ({"id": f"job-{len(self.calls)}", "status": "IN_QUEUE"}
                if self.path == "/run" else self.state)
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize(("state", "error"), [
    ({"status": "IN_QUEUE"}, "took longer than --job-timeout 1 s; cancelled"),
    ({"status": "FAILED", "error": "internal error (RuntimeError): boom. The input was "
      "accepted but processing failed; retry, and report it if it repeats."},
     "FAILED: internal error (RuntimeError): boom."),
])
def test_stuck_and_crashing_jobs_are_retried_then_given_up(
        tmp_path: Path, capsys: pytest.CaptureFixture, state: dict, error: str) -> None:
    handler = type("Stub", (QueueStub,), {"state": state, "calls": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    urls = tmp_path / "urls.txt"
    urls.write_text("https://example.com/a.mp3\n")
    out = tmp_path / "out"
    try:
        rc = cli.main(["--urls", str(urls), "--url", f"http://127.0.0.1:{server.server_port}",
                       "--out", str(out), "--job-timeout", "1", "--retries", "1",
                       "--no-progress"])
    finally:
        server.shutdown()
    captured = capsys.readouterr()
    assert rc == 1, captured.out + captured.err
    assert summary_value(captured.out, "retries") == "1"
    (failure,) = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert failure["kind"] == "gave_up" and failure["attempts"] == 2  # 1 + --retries
    assert all(error in att["error"] for att in failure["history"]), failure
    job_ids = [att["job_id"] for att in failure["history"]]
    assert len(set(job_ids)) == 2  # the retry was a new job
    if state["status"] == "IN_QUEUE":  # each stuck job was cancelled before the next try
        assert handler.calls.count("/cancel") == 2
    assert (out / "index.jsonl").read_text() == ""  # not failed for good: a rerun sends it


def test_jobs_spread_over_targets_and_a_rested_one_is_probed_again() -> None:
    from types import SimpleNamespace

    from client.targets import Pool

    async def scenario() -> None:
        a, b = SimpleNamespace(name="a"), SimpleNamespace(name="b")
        pool = Pool([a, b], unreachable_timeout_s=60)
        assert [await pool.acquire() for _ in range(4)] == [a, b, a, b]  # the least busy
        for t in (a, b, a, b):
            pool.release(t)
        assert pool.unreachable(b, "b: refused") == 2.0
        assert [await pool.acquire() for _ in range(2)] == [a, a]  # b rests
        await asyncio.sleep(2.1)
        assert await pool.acquire() is b  # its rest is over: one job probes it
        assert await pool.acquire() is a  # and only one
        pool.reached(b)  # the probe got through: b is back
        assert await pool.acquire() is b

    asyncio.run(scenario())


@pytest.mark.parametrize(("error", "input_error"), [
    ("input 'batch_size': got 0, expected an integer >= 1 and <= 256.", True),
    ("input: unknown parameter 'bach_size' (did you mean 'batch_size'?). Valid ...", True),
    ("audio: ffmpeg could not decode the file (Invalid data).", True),
    ("audio_file: download failed with HTTP 403 Forbidden for https://x/a.mp3", True),
    ('speaker_samples[0] ("Alice"): only 1.2 s of speech found', True),
    ("model: 'x' is not in MODELS_DIR (/models) and downloads are disabled", True),
    ("internal error (RuntimeError): boom. The input was accepted but processing failed; "
     "retry, and report it if it repeats.", False),
    ("GPU failure (CudaError): ... This worker is being replaced; retry the job.", False),
    ("Job ID not found", False),
    ('{"error_type": "<class \'RuntimeError\'>", "error_message": "x"}', False),
])
def test_which_worker_errors_are_retried(error: str, input_error: bool) -> None:
    assert is_input_error(error) is input_error


def test_the_console_script_is_the_clients_main() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["whisperx-client"] == "client.cli:main"
