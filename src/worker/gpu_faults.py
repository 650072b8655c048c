"""Telling GPU failures apart: out-of-memory is worth one retry with half the batch; a
broken CUDA context (illegal access, device-side assert) poisons the process, so the job
fails with `refresh_worker` and RunPod replaces the worker."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from typing import TypeVar

import torch

log = logging.getLogger("worker.gpu")
T = TypeVar("T")

_FATAL_MARKERS = (
    "illegal memory access", "device-side assert", "unspecified launch failure",
    "CUBLAS_STATUS_EXECUTION_FAILED", "CUDNN_STATUS_EXECUTION_FAILED", "misaligned address",
    "uncorrectable ECC", "cudaErrorLaunchFailure", "CUDA driver error",
)


def is_oom(exc: BaseException) -> bool:
    # torch raises OutOfMemoryError; CTranslate2 raises RuntimeError("... out of memory").
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def is_fatal(exc: BaseException) -> bool:
    return not is_oom(exc) and any(m.lower() in str(exc).lower() for m in _FATAL_MARKERS)


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def retry_on_oom(stage: str, run: Callable[[int], T], batch_size: int,
                 warnings: list[str]) -> T:
    """run(batch_size); on out-of-memory, once more with half the batch size (or, for a stage
    without batches, batch_size 1, just after freeing what can be freed)."""
    try:
        return run(batch_size)
    except Exception as exc:
        if not is_oom(exc):
            raise
        smaller = max(1, batch_size // 2)
        log.warning("%s ran out of GPU memory at batch_size=%d; retrying at %d", stage,
                    batch_size, smaller)
        free_memory()
        warnings.append(
            f"{stage} ran out of GPU memory at batch_size={batch_size}; retried with "
            f"batch_size={smaller}. Lower batch_size to avoid the retry." if smaller < batch_size
            else f"{stage} ran out of GPU memory; retried once after freeing GPU memory.")
        return run(smaller)
