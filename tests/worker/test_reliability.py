"""Faults and isolation: GPU errors (injected into the real ASR call), temp-file cleanup,
concurrent jobs' logs, progress updates."""

from __future__ import annotations

import inspect
import tempfile
import threading
from pathlib import Path

import pytest
import torch

from asr import transcription

FAST = {"diarization": False, "align_output": False, "language": "en"}
DIARIZE = {"language": "en", "align_output": False, "diarization_backend": "campplus"}


@pytest.fixture
def short(local_file, sample_clip) -> str:
    return local_file(sample_clip(4))


def batch_size_of(function, args, kwargs) -> int:
    """The batch_size a call of `function` got, however it was passed."""
    return inspect.signature(function).bind(*args, **kwargs).arguments["batch_size"]


def fail_first_call(monkeypatch, exc: BaseException) -> list[int]:
    """Make the decoding raise `exc` once, then run for real; returns the batch sizes."""
    real, calls = transcription.decode_windows, []

    def flaky(*args, **kwargs):
        calls.append(batch_size_of(real, args, kwargs))
        if len(calls) == 1:
            raise exc
        return real(*args, **kwargs)

    monkeypatch.setattr(transcription, "decode_windows", flaky)
    return calls


def test_out_of_memory_retries_once_with_half_the_batch(run_job, short, monkeypatch):
    calls = fail_first_call(monkeypatch, torch.cuda.OutOfMemoryError("CUDA out of memory."))
    result = run_job({"audio_file": short, "batch_size": 16} | FAST)
    assert "error" not in result, result["error"]
    assert calls == [16, 8]
    assert ("transcription ran out of GPU memory at batch_size=16; retried with batch_size=8. "
            "Lower batch_size to avoid the retry.") in result["warnings"]
    assert "hello" in result["transcription"].lower()


def _not_loaded():
    raise AssertionError("the campplus pipeline runs from the model cache")


def _oom_in_pyannote(monkeypatch, times: int
                     ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The diarization pipeline's own call (pyannote SpeakerDiarization.apply) runs out of GPU
    memory `times` times, then runs for real; returns the batch sizes it was called with, and
    those the cached pipeline held during each call."""
    from pyannote.audio.pipelines import SpeakerDiarization

    from worker import models

    real, calls, shared = SpeakerDiarization.apply, [], []

    def flaky(self, *args, **kwargs):
        calls.append((self.segmentation_batch_size, self.embedding_batch_size))
        # what the cached pipeline, which other jobs share, holds while this call runs
        cached = models.cache().get("diarize", ("campplus", "cpu"), _not_loaded)[0].model
        shared.append((cached.segmentation_batch_size, cached.embedding_batch_size))
        if len(calls) <= times:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(SpeakerDiarization, "apply", flaky)
    return calls, shared


def test_out_of_memory_in_diarization_is_retried_with_smaller_batches(run_job, short,
                                                                      monkeypatch):
    calls, shared = _oom_in_pyannote(monkeypatch, times=1)
    result = run_job({"audio_file": short} | DIARIZE)
    assert "error" not in result, result["error"]
    assert calls == [(32, 32), (16, 16)]
    # the retry's smaller batches are the job's own: the cached pipeline never changes
    assert shared == [(32, 32), (32, 32)]
    assert ("diarization ran out of GPU memory at batch_size=32; retried with batch_size=16. "
            "Lower batch_size to avoid the retry.") in result["warnings"]
    assert result["speakers"] and all(s.get("speaker") for s in result["segments"])
    # the shared pipeline keeps its batch sizes for the next job
    again, _ = _oom_in_pyannote(monkeypatch, times=0)
    assert run_job({"audio_file": short} | DIARIZE)["speakers"]
    assert again == [(32, 32)]


def test_out_of_memory_twice_in_diarization_is_a_warning_not_a_failure(run_job, short,
                                                                       monkeypatch):
    calls, _ = _oom_in_pyannote(monkeypatch, times=2)
    result = run_job({"audio_file": short} | DIARIZE)
    assert "error" not in result, result["error"]
    assert len(calls) == 2 and "speakers" not in result
    assert any(w.startswith("speaker diarization failed (OutOfMemoryError: CUDA out of memory")
               for w in result["warnings"]), result["warnings"]
    assert result["segments"]


def test_ctranslate2_out_of_memory_is_recognised(run_job, short, monkeypatch):
    calls = fail_first_call(monkeypatch, RuntimeError("CUDA failed with error out of memory"))
    assert "error" not in run_job({"audio_file": short} | FAST)
    assert calls == [32, 16]


def test_unrecoverable_cuda_error_asks_runpod_to_replace_the_worker(run_job, short,
                                                                    monkeypatch):
    fail_first_call(monkeypatch, RuntimeError(
        "CUDA error: an illegal memory access was encountered"))
    result = run_job({"audio_file": short} | FAST)
    assert result["refresh_worker"] is True
    assert result["error"].startswith("GPU failure (RuntimeError): CUDA error: an illegal memory "
                                      "access was encountered. This worker is being replaced")


def test_unexpected_exception_is_an_error_and_the_next_job_runs(run_job, short, monkeypatch):
    fail_first_call(monkeypatch, ValueError("boom"))
    result = run_job({"audio_file": short} | FAST)
    assert result["error"].startswith("internal error (ValueError): boom.")
    assert "refresh_worker" not in result
    assert "Traceback" in result["logs"]  # the job's own logs keep the detail
    assert "error" not in run_job({"audio_file": short} | FAST)


def test_job_temp_files_are_removed_on_success_and_failure(run_job, short):
    def leftovers() -> set[Path]:
        return set(Path(tempfile.gettempdir()).glob("whisperx-job-*"))

    before = leftovers()
    assert "error" not in run_job({"audio_file": short} | FAST)
    assert "error" in run_job({"audio_base64": "bm90IGF1ZGlv"} | FAST)
    assert leftovers() == before


def test_concurrent_jobs_keep_their_logs_apart(short):
    import handler

    results: dict[str, dict] = {}

    def run(job_id: str) -> None:
        results[job_id] = handler.handler({"id": job_id, "input": {"audio_file": short} | FAST})

    threads = [threading.Thread(target=run, args=(f"parallel-{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for job_id, result in results.items():
        assert "error" not in result, result["error"]
        assert f"job {job_id} started" in result["logs"]
        others = [j for j in results if j != job_id]
        assert not any(f"job {other} " in result["logs"] for other in others)


def test_progress_is_reported_after_each_stage_on_runpod(run_job, short, monkeypatch):
    import runpod

    sent = []
    monkeypatch.setenv("RUNPOD_WEBHOOK_POST_OUTPUT", "https://api.runpod.invalid/done")
    monkeypatch.setattr(runpod.serverless, "progress_update", lambda job, p: sent.append(p))
    assert "error" not in run_job({"audio_file": short} | FAST)
    stages = [p["stage"] for p in sent]
    assert stages == ["download", "decode_audio", "model_load", "vad", "language_detection",
                      "transcription"]
    percents = [p["percent"] for p in sent]
    assert percents == sorted(percents) and 0 < percents[0] and percents[-1] < 100


def test_no_progress_posts_outside_runpod(run_job, short, monkeypatch):
    import runpod

    monkeypatch.delenv("RUNPOD_WEBHOOK_POST_OUTPUT", raising=False)
    monkeypatch.setattr(runpod.serverless, "progress_update",
                        lambda job, p: pytest.fail("progress posted outside RunPod"))
    assert "error" not in run_job({"audio_file": short} | FAST)


def test_pyannote_batch_size_view_shares_models_and_leaves_the_pipeline_alone():
    """Contract of worker.compat.pyannote: pyannote keeps the segmentation batch size on an
    Inference registered in the pipeline's `_inferences`; the per-call view must not write
    through to the cached pipeline."""
    from diarization import campplus
    from worker.compat import pyannote as compat_pyannote

    pipeline = campplus.build_pipeline("cpu")
    before = pipeline.segmentation_batch_size, pipeline.embedding_batch_size
    view = compat_pyannote.with_batch_sizes(pipeline, 3, 5)
    assert (view.segmentation_batch_size, view.embedding_batch_size) == (3, 5)
    assert (pipeline.segmentation_batch_size, pipeline.embedding_batch_size) == before
    assert view._segmentation.model is pipeline._segmentation.model  # weights shared
    assert view._segmentation is not pipeline._segmentation
