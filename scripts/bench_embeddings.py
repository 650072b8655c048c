"""Text-embedding throughput: segments per second for each embedder given (default: the two
small test embedders under MODELS_DIR), on the worker's device.

    MODELS_DIR=models .venv/bin/python scripts/bench_embeddings.py [NAME ...]
"""

from __future__ import annotations

import sys
import time

from enrich import text_embeddings
from worker import models

SEGMENT = "Please call Stella and ask her to bring these things with her from the store."


def main(names: list[str]) -> None:
    device = models.device()
    texts = [SEGMENT] * 200
    for name in names or ["all-MiniLM-L6-v2", "use-multilingual-v3"]:
        embedder = text_embeddings.load(name, device)
        embedder.encode(texts[:8])  # warm-up
        start = time.perf_counter()
        embedder.encode(texts)
        seconds = time.perf_counter() - start
        print(f"{name}: {len(texts) / seconds:.0f} segments/s on {device} "
              f"(load {embedder.load_seconds:.1f} s)")


if __name__ == "__main__":
    main(sys.argv[1:])
