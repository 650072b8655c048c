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
