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
    """Seconds per stage, in the order the stages ran; reports progress after each.

    Streaming runs some stages in parts (the VAD's first block, then its rest inside the
    transcription): a stage's seconds add up over its parts and leave out the stages run
    inside it, and a part with `report=False` sends no progress (its last part does)."""

    def __init__(self, progress: Callable[[dict[str, Any]], None] | None = None):
        super().__init__()
        self.progress = progress
        self._inner: list[float] = []  # per open stage: seconds of the stages inside it

    @contextmanager
    def stage(self, name: str, report: bool = True) -> Iterator[None]:
        start = time.perf_counter()
        self._inner.append(0.0)
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            inner = self._inner.pop()
            if self._inner:
                self._inner[-1] += elapsed
            self[name] = round(self.get(name, 0.0) + elapsed - inner, 3)
            log.info("stage %s: %.2f s", name, self[name])
        if report:
            self.report(name)

    def report(self, name: str) -> None:
        """Progress: `name` is done."""
        if self.progress:
            done = STAGES.index(name) + 1
            self.progress({"stage": name, "percent": round(100 * done / (len(STAGES) + 1))})
