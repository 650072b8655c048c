"""pyannote.audio internals the worker relies on."""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Any


def with_batch_sizes(pipeline: Any, segmentation: int, embedding: int) -> Any:
    """A per-call view of a cached SpeakerDiarization with its own batch sizes; the models
    (and their weights) are shared, the cached pipeline is left as it is for other jobs.

    pyannote keeps `segmentation_batch_size` on its segmentation Inference (a property) and
    registers Inference attributes in the pipeline's `_inferences` dict, so the view gets its
    own dict and its own shallow copy of that Inference."""
    view = copy.copy(pipeline)
    inferences = OrderedDict(pipeline.__dict__["_inferences"])
    inferences["_segmentation"] = copy.copy(inferences["_segmentation"])
    view.__dict__["_inferences"] = inferences
    view.segmentation_batch_size = segmentation
    view.embedding_batch_size = embedding
    return view


def embedding_model(pipeline: Any) -> Any:
    """The embedding model a SpeakerDiarization pipeline clusters with (callable on a
    (batch, 1, samples) waveform tensor). pyannote keeps it in `_embedding` (private)."""
    return pipeline._embedding


def segmentation_scores(vad_pipeline: Any, file: dict[str, Any], hook: Any) -> Any:
    """What applying pyannote's VoiceActivityDetection pipeline scores a file with: its
    segmentation Inference (`_segmentation`, private), called with a progress `hook`."""
    return vad_pipeline._segmentation(file, hook=hook)


def segmentation_grid(vad_pipeline: Any, sample_rate: int) -> tuple[int, int, int]:
    """The segmentation Inference's chunks: their length and step (samples), and how many it
    scores per batch (its `slide`)."""
    inference = vad_pipeline._segmentation
    return (inference.model.audio.get_num_samples(inference.duration),
            round(inference.step * sample_rate), inference.batch_size)


def segmentation_chunks(vad_pipeline: Any, file: dict[str, Any], hook: Any) -> Any:
    """The segmentation Inference's raw per-chunk outputs over a file (its `slide` with
    `skip_aggregation`): what `segmentation_scores` aggregates. A view of the Inference, so
    the shared one is left as it is."""
    inference = copy.copy(vad_pipeline._segmentation)
    inference.skip_aggregation = True
    return inference(file, hook=hook)


def aggregate_chunks(vad_pipeline: Any, chunks: Any, num_samples: int, sample_rate: int) -> Any:
    """`segmentation_scores` of a file of `num_samples` from its chunks' raw outputs
    (`segmentation_chunks`, over the file or its consecutive parts): the last step of the
    Inference's `slide` (pyannote.audio 4.0, core/inference.py), line for line."""
    from pyannote.core import Segment, SlidingWindow, SlidingWindowFeature

    inference = vad_pipeline._segmentation
    outputs = chunks.data
    if inference.pre_aggregation_hook is not None:
        outputs = inference.pre_aggregation_hook(outputs)
    aggregated = inference.aggregate(
        SlidingWindowFeature(outputs, SlidingWindow(start=0.0, duration=inference.duration,
                                                    step=inference.step)),
        inference.model.receptive_field, warm_up=inference.warm_up, hamming=True, missing=0.0)
    window_size, step_size, _ = segmentation_grid(vad_pipeline, sample_rate)
    if num_samples < window_size or (num_samples - window_size) % step_size > 0:
        aggregated.data = aggregated.crop(Segment(0.0, num_samples / sample_rate), mode="loose")
    return aggregated
