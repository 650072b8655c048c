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
