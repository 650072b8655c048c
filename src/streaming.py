"""The streamed shape of a job (`STREAM_RESULTS=true`, handler.stream_handler): what a client
reading RunPod's `/stream/{id}` gets, element by element.

Every element is a dict tagged by `type`:

- `{"type": "progress", "stage": ..., "percent": ...}` after each stage (worker/timings.py);
- `{"type": "segments", "segments": [{"start", "end", "text"}, ...], "final": false}`: the
  windows of each decoded batch, as soon as the batch is decoded, in time order;
- `{"type": "segments", "segments": [...], "final": true}`: after alignment and diarization,
  the response's segments (words, speakers), in order, over as many elements as their size
  needs (not sent when the result is uploaded to a bucket);
- `{"type": "result", "output": {...}}`, always last: exactly the non-streamed handler's
  response, or its error object (`{"error": ..., "logs": ...}`).

A `segments` element stays under MAX_ELEMENT_BYTES, far below RunPod's per-message limit
(1 MB): a batch or a final list larger than that is sent as several elements.

runpod decides once per worker, from the handler's type, whether it streams: with a generator
handler `/runsync` and `/status` return the list of every element (`return_aggregate_stream`),
so streaming is the operator's choice for the whole endpoint, never a request's.
"""

from __future__ import annotations

import contextvars
import json
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, Literal, TypedDict

from asr import Segment
from predict import SegmentsCallback

# JSON bytes of one segments element at most (a segment larger than this goes alone).
MAX_ELEMENT_BYTES = 256 * 1024


class Progress(TypedDict):
    type: Literal["progress"]
    stage: str
    percent: int


class Segments(TypedDict):
    type: Literal["segments"]
    segments: list[Segment]
    final: bool


class Result(TypedDict):
    type: Literal["result"]
    output: dict[str, Any]


Element = Progress | Segments | Result
ProgressCallback = Callable[[dict[str, Any]], None]


def chunks(segments: list[Segment], limit: int = MAX_ELEMENT_BYTES) -> Iterator[list[Segment]]:
    """The segments in order, in runs whose JSON stays under `limit` bytes."""
    run: list[Segment] = []
    size = 0
    for segment in segments:
        # a copy: the job goes on with its segments while the element waits to be sent
        text = json.dumps(segment, ensure_ascii=False)
        if run and size + len(text.encode()) + 2 > limit:
            yield run
            run, size = [], 0
        run.append(json.loads(text))
        size += len(text.encode()) + 2  # ", " between segments
    if run:
        yield run


def elements(run: Callable[[ProgressCallback, SegmentsCallback], dict[str, Any]]
             ) -> Iterator[Element]:
    """Run the job (`run(progress, on_segments)`, returning the response) on a thread of its
    own and yield its elements as it produces them, the result last. The job's context
    (its log capture, its secrets) goes with it to that thread."""
    pending: queue.SimpleQueue[Element | None] = queue.SimpleQueue()

    def progress(update: dict[str, Any]) -> None:
        pending.put(Progress(type="progress", stage=update["stage"], percent=update["percent"]))

    def on_segments(segments: list[Segment], final: bool) -> None:
        for part in chunks(segments):
            pending.put(Segments(type="segments", segments=part, final=final))

    def job() -> None:
        try:
            pending.put(Result(type="result", output=run(progress, on_segments)))
        finally:
            pending.put(None)

    threading.Thread(target=contextvars.copy_context().run, args=(job,), name="job",
                     daemon=True).start()
    last: Element | None = None
    while (element := pending.get()) is not None:
        yield (last := element)
    if last is None or last["type"] != "result":  # run raised: the handler catches what a job does
        raise RuntimeError("the job ended without a result; see the worker's log")
