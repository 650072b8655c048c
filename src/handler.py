"""RunPod serverless entry point: validate the request, run the job, return output + logs.

Every failure becomes `{"error": "...", "logs": "..."}` and the worker keeps serving; a job's
temporary files are removed whatever happens. With `STREAM_RESULTS=true` the worker runs
`stream_handler` instead, which yields the job's progress and segments as they come and the
same response last (streaming.py).
"""

from __future__ import annotations

import logging
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NotRequired, TypedDict

import runpod

import predict
import rp_schema
import streaming
from worker import gpu_faults, heap, job_logs, settings
from worker.errors import JobError

log = logging.getLogger("worker.handler")


class RunpodJob(TypedDict):
    """What RunPod hands the handler: the job id and the request's `input` (validated by
    rp_schema.resolve, so any JSON value may arrive here)."""

    id: str
    input: Any
    webhook: NotRequired[str]


# runpod's worker config (start()): read by runpod after every job, so a streamed job can still
# ask for its worker to be replaced (refresh_worker), which a generator's output can't.
_config: dict[str, Any] = {}


def handler(job: RunpodJob) -> dict[str, Any]:
    return _run(job, _progress(job))


def stream_handler(job: RunpodJob) -> Iterator[streaming.Element]:
    """The handler as a generator (STREAM_RESULTS=true): the job's elements as they come,
    `{"type": "result", "output": <handler(job)'s response>}` last (streaming.py). Progress
    goes to the stream, as elements, instead of runpod's progress_update."""

    def run(progress: streaming.ProgressCallback,
            on_segments: predict.SegmentsCallback) -> dict[str, Any]:
        output = _run(job, progress, on_segments)
        if output.pop("refresh_worker", False):
            _config["refresh_worker"] = True  # runpod stops this worker after the job
        return output

    yield from streaming.elements(run)


def _run(job: RunpodJob, progress: Callable[[dict[str, Any]], None] | None,
         on_segments: predict.SegmentsCallback | None = None) -> dict[str, Any]:
    job_logs.install()  # once per process; each job's lines are captured from here on
    raw = job.get("input")
    secrets = job_logs.job_secrets(raw)  # this job's only; masked in its logs and errors
    with job_logs.capture(secrets) as lines:
        log.info("job %s started", job.get("id"))
        try:
            resolved = rp_schema.resolve(raw)
            with tempfile.TemporaryDirectory(prefix="whisperx-job-") as workdir:
                output = predict.predict(resolved, Path(workdir), progress, on_segments)
            log.info("job %s done: %d segments, language %s, %.1f s of audio, %d speakers, "
                     "%d warnings", job.get("id"), len(output.get("segments", ())),
                     output["detected_language"], output["duration"],
                     len(output.get("speakers", [])), len(output["warnings"]))
        except JobError as exc:
            log.error("job %s failed: %s", job.get("id"), exc)
            output = {"error": str(exc)}
        except Exception as exc:  # the worker must survive anything a job does
            if gpu_faults.is_fatal(exc):
                log.exception("job %s hit an unrecoverable GPU error", job.get("id"))
                output = {"error": f"GPU failure ({type(exc).__name__}): {exc}. This worker is "
                          "being replaced; retry the job.", "refresh_worker": True}
            else:
                log.exception("job %s crashed", job.get("id"))
                output = {"error": f"internal error ({type(exc).__name__}): {exc}. The input was "
                          "accepted but processing failed; retry, and report it if it repeats."}
        log.info("job %s finished", job.get("id"))
    heap.release()  # what the job freed goes back to the OS, not held for the next one
    output["logs"] = "\n".join(lines)
    return job_logs.redact_output(output, secrets)


def _progress(job: RunpodJob) -> Callable[[dict[str, Any]], None] | None:
    """Stage-by-stage progress for /status while the job runs (only on RunPod, where the
    worker has a URL to post it to)."""
    if not settings.get().runpod_webhook_post_output:
        return None
    return lambda update: runpod.serverless.progress_update(job, update)


def _warm_up() -> None:
    """Preload the default model; a failure here is logged and left to the first job."""
    try:
        defaults = rp_schema.resolve({"audio_file": "warm-up"})
        predict.warm_up(defaults.values.model, defaults.values.compute_type,
                        diarize=defaults.values)
    except Exception as exc:
        log.warning("warm-up skipped: %s", exc)


def start() -> None:
    """The worker's start-up: logging, the warm-up, then runpod's job loop."""
    job_logs.install()
    if "--rp_serve_api" in sys.argv:  # the local API, also at RunPod's /<endpoint id>/ paths
        import local_api

        local_api.install()
    if settings.get().warm_up:
        _warm_up()
    _config.update(config())
    runpod.serverless.start(_config)


def config() -> dict[str, Any]:
    """runpod's worker config: the plain handler, or (STREAM_RESULTS=true) the generator, whose
    elements /runsync and /status then return as one list."""
    if settings.get().stream_results:
        return {"handler": stream_handler, "return_aggregate_stream": True}
    return {"handler": handler}


if __name__ == "__main__":
    start()
