"""Seconds per stage of one job, reported as progress while the job runs."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger("worker.predict")


STAGES = ("download", "decode_audio", "model_load", "vad", "language_detection", "transcription",
          "translation", "alignment", "diarization", "speaker_identification",
          "machine_translation", "embeddings")


class Timings(dict):
    """Seconds per stage, in the order the stages ran; reports progress after each."""

    def __init__(self, progress: Callable[[dict[str, Any]], None] | None = None):
        super().__init__()
        self.progress = progress

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self[name] = round(time.perf_counter() - start, 3)
            log.info("stage %s: %.2f s", name, self[name])
        if self.progress:
            done = STAGES.index(name) + 1
            self.progress({"stage": name, "percent": round(100 * done / (len(STAGES) + 1))})
