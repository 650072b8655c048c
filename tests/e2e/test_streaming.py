"""STREAM_RESULTS: the real generator handler in-process on real speech: tagged elements,
each decoded batch's segments before the job ends, in time order, and the non-streamed
response as the last element (errors too); the default worker keeps the plain handler."""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import CLEARED_ENV, NO_SAMPLING, SAMPLES, WORKER_ENV

# 30 s of two real speakers in windows of at most 5 s, two per batch: several batches.
JOB = {"audio_file": "sample.wav", "chunk_size": 5, "batch_size": 2,
       "language": "en"} | NO_SAMPLING  # the streamed and plain responses are compared exactly
TOKEN = "hf_STREAMsecret789"


def streamed(job_input: Any, job_id: str = "stream-1") -> list[dict[str, Any]]:
    import handler

    return list(handler.stream_handler({"id": job_id, "input": job_input}))


def without_logs(output: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in output.items() if k != "logs"}


def test_the_default_worker_runs_the_plain_handler(monkeypatch):
    from runpod.serverless.modules.rp_handler import is_generator

    import handler

    plain = handler.config()
    assert plain == {"handler": handler.handler} and not is_generator(plain["handler"])
    monkeypatch.setenv("STREAM_RESULTS", "true")
    streaming = handler.config()
    assert is_generator(streaming["handler"]) and inspect.isgeneratorfunction(
        handler.stream_handler)
    assert streaming["return_aggregate_stream"] is True


@pytest.fixture(scope="module")
def job_elements(assets_ready: None) -> Iterator[list[dict[str, Any]]]:
    with pytest.MonkeyPatch.context() as env:  # one job for the module: conftest's environment
        for name in CLEARED_ENV:
            env.delenv(name, raising=False)
        for name, value in (WORKER_ENV | {"LOCAL_INPUT_DIR": str(SAMPLES)}).items():
            env.setenv(name, value)
        yield streamed(JOB | {"huggingface_access_token": TOKEN})


def test_elements_are_tagged_and_the_result_is_last(job_elements):
    types = [e["type"] for e in job_elements]
    assert set(types) == {"progress", "segments", "result"}
    assert types.count("result") == 1 and types[-1] == "result"
    for element in job_elements:
        assert set(element) == {"progress": {"type", "stage", "percent"},
                                "segments": {"type", "segments", "final"},
                                "result": {"type", "output"}}[element["type"]]


def test_each_batch_is_streamed_as_soon_as_it_is_decoded_in_time_order(job_elements):
    kinds = [(e["type"], e.get("stage"), e.get("final")) for e in job_elements]
    partial = [i for i, k in enumerate(kinds) if k == ("segments", None, False)]
    transcribed = kinds.index(("progress", "transcription", None))
    # several batches, each sent before the transcription stage is over
    assert len(partial) >= 2 and partial[-1] < transcribed
    segments = [s for i in partial for s in job_elements[i]["segments"]]
    assert all(set(s) == {"start", "end", "text"} and s["text"] for s in segments)
    assert all(s["start"] < s["end"] for s in segments)
    assert all(a["end"] <= b["start"] for a, b in zip(segments, segments[1:], strict=False))


def test_the_final_segments_come_before_the_result_and_are_its_segments(job_elements):
    final = [i for i, e in enumerate(job_elements)
             if e["type"] == "segments" and e["final"]]
    partial_last = max(i for i, e in enumerate(job_elements)
                       if e["type"] == "segments" and not e["final"])
    assert final and min(final) > partial_last and max(final) < len(job_elements) - 1
    output = job_elements[-1]["output"]
    assert [s for i in final for s in job_elements[i]["segments"]] == output["segments"]
    assert all(s["words"] and s["speaker"] for s in output["segments"])
    for element in job_elements:
        if element["type"] == "segments":
            size = len(json.dumps(element, ensure_ascii=False).encode())
            assert size < 300 * 1024  # streaming.MAX_ELEMENT_BYTES plus the element's keys


def test_the_last_element_is_the_plain_handlers_response(job_elements, run_job):
    plain = run_job(JOB | {"huggingface_access_token": TOKEN})
    output = job_elements[-1]["output"]
    assert "error" not in output and output["logs"]
    assert without_logs(output) == without_logs(plain)
    assert "stage transcription" in output["logs"] and "job stream-1 started" in output["logs"]
    assert TOKEN not in json.dumps(job_elements)  # masked in the logs as in a plain job


def test_an_input_error_streams_as_the_last_element_and_the_worker_goes_on(run_job):
    bad = {"audio_file": "sample.wav", "batch_size": 0, "huggingface_access_token": TOKEN}
    elements = streamed(bad, "stream-bad")
    assert [e["type"] for e in elements] == ["result"]
    output = elements[0]["output"]
    assert output["error"] == run_job(bad)["error"] == (
        "input 'batch_size': got 0, expected an integer >= 1 and <= 256.")
    assert "job stream-bad failed" in output["logs"] and TOKEN not in json.dumps(elements)
    after = streamed({"audio_file": "sample.wav", "diarization": False, "align_output": False,
                      "language": "en"}, "stream-after")
    assert "new jersey" in after[-1]["output"]["transcription"].lower()


def test_segments_are_chunked_under_the_limit_in_order():
    import streaming

    segments = [{"start": float(i), "end": i + 0.5, "text": f"word {i} " * 20}
                for i in range(200)]
    limit = 4096
    chunks = list(streaming.chunks(segments, limit))  # type: ignore[arg-type]
    assert len(chunks) > 1 and [s for c in chunks for s in c] == segments
    assert all(len(json.dumps(c).encode()) <= limit for c in chunks)


@pytest.fixture(scope="module")
def long_speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~100 s of real English speech (Debian's Allison prompts): longer than the VAD's first
    block, so a streamed job scores it in two parts."""
    import numpy as np
    import soundfile

    from asr import vad
    from conftest import english_prompts, read_16k

    pieces = []
    for wav, _ in english_prompts(40):
        pieces += [read_16k(wav), np.zeros(8000, dtype="float32")]
    audio = np.concatenate(pieces)
    assert len(audio) / 16000 > vad.FIRST_BLOCK + 30
    path = tmp_path_factory.mktemp("long") / "long.wav"
    soundfile.write(path, audio, 16000)
    return path


def test_the_first_segments_come_before_the_vad_of_the_whole_file_ends(long_speech,
                                                                       run_job, local_file):
    """The VAD scores the file's first block, its windows are decoded and sent, and only then
    is the rest scored: the first `segments` element comes before the `vad` stage's progress.
    The final result is the plain job's."""
    job = {"audio_file": local_file(long_speech), "language": "en", "chunk_size": 10,
           "batch_size": 4, "diarization": False} | NO_SAMPLING
    elements = streamed(job, "stream-long")
    kinds = [(e["type"], e.get("stage"), e.get("final")) for e in elements]
    first = kinds.index(("segments", None, False))
    assert first < kinds.index(("progress", "vad", None))
    stages = [k[1] for k in kinds if k[0] == "progress"]
    assert stages[:5] == ["download", "decode_audio", "model_load", "vad",
                          "language_detection"] and stages.count("vad") == 1
    partial = [s for e in elements if e["type"] == "segments" and not e["final"]
               for s in e["segments"]]
    assert all(a["end"] <= b["start"] for a, b in zip(partial, partial[1:], strict=False))
    output = elements[-1]["output"]
    assert without_logs(output) == without_logs(run_job(job))
