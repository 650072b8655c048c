"""One long file fanned out across workers (`whisperx-client --split MINUTES`): the pure part.
Where to cut (the middle of the longest pause near each boundary, never inside speech), and
how the chunks' results become one: timestamps offset by each chunk's start, segment ids
renumbered, speakers linked across chunks by their embeddings, the language with the most
speech. No I/O and no models here (splitter.py decodes, runs the VAD and renders)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Cut near each boundary: the longest pause within ±NEAR of the target length; failing that,
# the pause nearest the boundary anywhere in the chunk's second half or later. The last chunk
# is at least TAIL of the target (no sliver of a chunk at the end).
NEAR = 0.2
TAIL = 0.2
# Labels the diarization makes; others are names given by speaker identification
# (speaker_samples), the same person in every chunk by construction.
DIARIZED = re.compile(r"^SPEAKER_\d+$")


@dataclass(frozen=True)
class Chunk:
    index: int
    start: float  # s in the file, on a millisecond (a whole number of 16 kHz samples)
    end: float


def pauses(speech: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The gaps between consecutive speech regions (not before the first or after the last:
    cutting there splits nothing)."""
    regions = sorted(speech)
    gaps, reach = [], regions[0][1] if regions else 0.0
    for start, end in regions[1:]:
        if start > reach:
            gaps.append((reach, start))
        reach = max(reach, end)
    return gaps


def plan(speech: Sequence[tuple[float, float]], duration: float, target_s: float) -> list[Chunk]:
    """Chunks of about `target_s` s covering [0, duration] (the length that divides it evenly),
    each cut in the middle of a pause between speech regions: the longest pause within ±20 % of
    the target length from the last
    cut; with none there, the pause nearest the boundary further on. No pause, no cut: a chunk
    is longer than the target rather than cut inside speech."""
    if target_s <= 0:
        raise ValueError("target_s must be positive")
    # Chunks of equal length nearest the target: the endpoint's wall time is the slowest
    # chunk's, and a short last chunk holds too little of each voice for its speaker
    # embeddings to link (150 s at 60 gave 60 + 60 + 30 s, the last one's voice unlinked).
    target_s = duration / max(1, round(duration / target_s))
    gaps = pauses(speech)
    cuts: list[float] = []
    last = 0.0
    while duration - last > (1 + NEAR) * target_s:
        boundary = last + target_s
        latest = duration - TAIL * target_s

        def middle(gap: tuple[float, float]) -> float:
            return round((gap[0] + gap[1]) / 2, 3)

        near = [g for g in gaps if boundary - NEAR * target_s <= middle(g)
                <= min(boundary + NEAR * target_s, latest)]
        if near:  # the longest; of equals, the nearest the boundary
            gap = max(near, key=lambda g: (round(g[1] - g[0], 3), -abs(middle(g) - boundary)))
        else:
            further = [g for g in gaps if last + target_s / 2 <= middle(g) <= latest]
            if not further:
                break
            gap = min(further, key=lambda g: abs(middle(g) - boundary))
        cuts.append(middle(gap))
        last = cuts[-1]
    edges = [0.0, *cuts, round(duration, 3)]
    return [Chunk(i, a, b) for i, (a, b) in enumerate(zip(edges, edges[1:], strict=False))]


# -- offsetting and relabelling ---------------------------------------------------------------

def _shifted(item: Mapping[str, Any], offset: float, keys: Sequence[str] = ("start", "end")
             ) -> dict[str, Any]:
    out = dict(item)
    for key in keys:
        if isinstance(out.get(key), (int, float)):
            out[key] = round(out[key] + offset, 3)
    return out


def shift_segments(segments: Sequence[Mapping[str, Any]], offset: float) -> list[dict[str, Any]]:
    """Segments (their words, chars and `seek`) moved `offset` s later."""
    out = []
    for segment in segments:
        s = _shifted(segment, offset)
        if "words" in s:
            s["words"] = [_shifted(w, offset) for w in s["words"]]
        if "chars" in s:
            s["chars"] = [_shifted(c, offset) for c in s["chars"]]
        if isinstance(s.get("seek"), int):
            s["seek"] += round(offset * 100)  # 10 ms frames
        out.append(s)
    return out


def shift_turns(turns: Sequence[Mapping[str, Any]], offset: float) -> list[dict[str, Any]]:
    return [_shifted(t, offset) for t in turns]


def relabel_segments(segments: Sequence[Mapping[str, Any]], names: Mapping[str, str]
                     ) -> list[dict[str, Any]]:
    """Segments and their words with each speaker renamed (labels not in `names` kept)."""
    def one(item: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(item)
        if "speaker" in out:
            out["speaker"] = names.get(out["speaker"], out["speaker"])
        return out

    out = []
    for segment in segments:
        s = one(segment)
        if "words" in s:
            s["words"] = [one(w) for w in s["words"]]
        out.append(s)
    return out


def relabel_turns(turns: Sequence[Mapping[str, Any]], names: Mapping[str, str]
                  ) -> list[dict[str, Any]]:
    return [{**t, "speaker": names.get(t["speaker"], t["speaker"])} for t in turns]


def renumber(segments: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{**s, "id": i} for i, s in enumerate(segments)]


# -- linking speakers across chunks -----------------------------------------------------------

@dataclass(frozen=True)
class ChunkSpeaker:
    chunk: int
    label: str  # the chunk's own label
    seconds: float  # speech, the weight of its embedding in a linked speaker's mean
    first: float  # s in the file where it first speaks (orders the merged labels)
    embedding: np.ndarray | None  # None: nothing to link it by, it stays a speaker of its own


@dataclass
class Linked:
    """One person across the file: the chunk speakers linked to it."""

    members: list[ChunkSpeaker]
    name: str = ""
    sums: np.ndarray | None = field(default=None, repr=False)  # seconds-weighted unit vectors

    @property
    def chunks(self) -> set[int]:
        return {m.chunk for m in self.members}

    @property
    def centroid(self) -> np.ndarray | None:
        if self.sums is None:
            return None
        norm = float(np.linalg.norm(self.sums))
        return self.sums / norm if norm > 0 else None

    def mean_embedding(self) -> list[float] | None:
        """The seconds-weighted mean of its members' embeddings (as returned, not normalised:
        the worker's `speaker_embeddings` are means of the same kind)."""
        vectors = [(m.embedding, m.seconds) for m in self.members if m.embedding is not None]
        if not vectors:
            return None
        weights = np.array([max(w, 1e-3) for _, w in vectors])
        mean = np.average(np.stack([v for v, _ in vectors]), axis=0, weights=weights)
        return [round(float(x), 6) for x in mean]


def _unit(v: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(_unit(a), _unit(b)))


def chunk_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """A file's request parameters as each chunk's: the speaker-count bounds are the file's,
    and a chunk may hold fewer people than the file (one voice for ten minutes of a
    three-person hearing). So the file's `num_speakers` or `max_speakers` is each chunk's
    `max_speakers`, and `min_speakers` is not sent (it would make a chunk split one voice
    in two, which linking can't undo: two speakers of one chunk never merge). The file's
    bounds are kept by the merge (`link_speakers`' max_speakers). Every chunk returns its
    speakers' embeddings, to link them by."""
    out = {k: v for k, v in params.items()
           if k not in ("num_speakers", "min_speakers", "max_speakers")}
    most = params.get("num_speakers") or params.get("max_speakers")
    if most is not None:
        out["max_speakers"] = most
    out["return_speaker_embeddings"] = True
    return out


def link_speakers(speakers: Sequence[ChunkSpeaker], threshold: float,
                  max_speakers: int | None = None) -> list[Linked]:
    """Agglomerative linking with a cannot-link rule: every chunk speaker starts alone; the
    two groups whose centroids (seconds-weighted means of unit embeddings) are most similar
    merge while that cosine similarity is >= `threshold`, never two groups that share a chunk
    (the chunk's diarization already said those are different people). With `max_speakers`
    (the file's num_speakers or max_speakers), merging goes on below the threshold while
    there are more diarized groups than that, most similar first, still never two of one
    chunk. Identified names (not SPEAKER_xx) group by name. Groups are named SPEAKER_00, 01,
    ... in order of first speech in the file; a name keeps its name."""
    groups: list[Linked] = []
    named: dict[str, Linked] = {}
    for s in speakers:
        if not DIARIZED.match(s.label):
            group = named.get(s.label)
            if group is None:
                group = named[s.label] = Linked([], name=s.label)
                groups.append(group)
            group.members.append(s)
            continue
        sums = None if s.embedding is None else _unit(s.embedding) * max(s.seconds, 1e-3)
        groups.append(Linked([s], sums=sums))
    while True:
        diarized = sum(1 for g in groups if not g.name)
        floor = threshold if max_speakers is None or diarized <= max_speakers else -2.0
        best: tuple[float, int, int] | None = None
        for i, a in enumerate(groups):
            ca = a.centroid
            if ca is None or a.name:
                continue
            for j in range(i + 1, len(groups)):
                b = groups[j]
                cb = b.centroid
                if cb is None or b.name or a.chunks & b.chunks:
                    continue
                sim = float(np.dot(ca, cb))
                if sim >= floor and (best is None or sim > best[0]):
                    best = (sim, i, j)
        if best is None:
            break
        _, i, j = best
        a, b = groups[i], groups[j]
        a.members += b.members
        a.sums = a.sums + b.sums  # type: ignore[operator]
        del groups[j]
    groups.sort(key=lambda g: min(m.first for m in g.members))
    number = 0
    for g in groups:
        if not g.name:
            g.name = f"SPEAKER_{number:02d}"
            number += 1
    return groups


def names_per_chunk(groups: Sequence[Linked], chunks: int) -> list[dict[str, str]]:
    """For each chunk, its own label -> the merged label."""
    out: list[dict[str, str]] = [{} for _ in range(chunks)]
    for g in groups:
        for m in g.members:
            out[m.chunk][m.label] = g.name
    return out


# -- merging ----------------------------------------------------------------------------------

def chunk_speakers(index: int, chunk: Chunk, result: Mapping[str, Any]) -> list[ChunkSpeaker]:
    """The speakers one chunk's result names (turns, summary or segments), with their
    embeddings (`speaker_embeddings.vectors`) where it returned them."""
    vectors = (result.get("speaker_embeddings") or {}).get("vectors") or {}
    seconds = {s["id"]: float(s.get("speech_seconds") or 0) for s in result.get("speakers") or []}
    first: dict[str, float] = {}
    for t in result.get("speaker_turns") or []:
        first[t["speaker"]] = min(first.get(t["speaker"], float("inf")), float(t["start"]))
    for s in result.get("segments") or []:
        if s.get("speaker") and s.get("start") is not None:
            first[s["speaker"]] = min(first.get(s["speaker"], float("inf")), float(s["start"]))
    labels = sorted(set(seconds) | set(first) | set(vectors),
                    key=lambda label: (first.get(label, float("inf")), label))
    return [ChunkSpeaker(index, label, seconds.get(label, 0.0),
                         chunk.start + first.get(label, 0.0),
                         np.asarray(vectors[label], dtype=np.float64)
                         if vectors.get(label) else None)
            for label in labels]


def speech_seconds(segments: Sequence[Mapping[str, Any]]) -> float:
    return sum(max(0.0, float(s["end"]) - float(s["start"])) for s in segments
               if s.get("start") is not None and s.get("end") is not None)


def language(results: Sequence[Mapping[str, Any]]) -> tuple[str, float | None]:
    """The language with the most speech (segment time), and the speech-weighted mean of the
    chunks' probabilities for it."""
    speech: dict[str, float] = {}
    weighted: dict[str, list[tuple[float, float]]] = {}
    for r in results:
        code = r.get("detected_language")
        if not code:
            continue
        seconds = speech_seconds(r.get("segments") or [])
        speech[code] = speech.get(code, 0.0) + seconds
        if isinstance(r.get("language_probability"), (int, float)):
            weighted.setdefault(code, []).append((float(r["language_probability"]),
                                                  max(seconds, 1e-3)))
    if not speech:
        first = next((r.get("detected_language") for r in results), None)
        return str(first or ""), None
    code = max(speech, key=lambda c: speech[c])
    pairs = weighted.get(code)
    if not pairs:
        return code, None
    total = sum(w for _, w in pairs)
    return code, round(sum(p * w for p, w in pairs) / total, 4)


@dataclass(frozen=True)
class Merged:
    result: dict[str, Any]
    names: list[dict[str, str]]  # per chunk: its label -> the merged label


def merge(chunks: Sequence[Chunk], results: Sequence[Mapping[str, Any]], threshold: float,
          *, duration: float, keep_embeddings: bool, max_speakers: int | None = None
          ) -> Merged:
    """The chunks' results as one result (renderings left to the caller): segments, words
    and turns offset and relabelled, ids 0..n-1, speakers linked (at most `max_speakers`
    diarized ones where the merge can: see link_speakers), the language with the most
    speech. Fields that can't be merged (debug_info, logs, text embeddings) are left out."""
    if len(chunks) != len(results) or not results:
        raise ValueError("one result per chunk")
    speakers = [s for i, (c, r) in enumerate(zip(chunks, results, strict=True))
                for s in chunk_speakers(i, c, r)]
    groups = link_speakers(speakers, threshold, max_speakers)
    names = names_per_chunk(groups, len(chunks))
    segments: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    translated: list[dict[str, Any]] = []
    warnings: list[str] = []
    for i, (c, r) in enumerate(zip(chunks, results, strict=True)):
        segments += relabel_segments(shift_segments(r.get("segments") or [], c.start), names[i])
        turns += relabel_turns(shift_turns(r.get("speaker_turns") or [], c.start), names[i])
        if isinstance(r.get("translated"), Mapping):
            translated += shift_segments(r["translated"].get("segments") or [], c.start)
        warnings += [f"chunk {i} ({c.start:.3f}-{c.end:.3f} s): {w}"
                     for w in r.get("warnings") or []]
    segments = renumber(segments)
    code, probability = language(results)
    first = results[0]
    merged: dict[str, Any] = {
        "segments": segments,
        "detected_language": code,
        "language_probability": probability,
        "duration": round(duration, 3),
        "device": first.get("device"),
        "model": first.get("model"),
    }
    if any("speaker_turns" in r or "speakers" in r for r in results):
        turns.sort(key=lambda t: (t["start"], t["end"]))
        merged["speakers"] = [
            {"id": g.name,
             "speech_seconds": round(sum(m.seconds for m in g.members), 3),
             "segments": sum(1 for s in segments if s.get("speaker") == g.name)}
            for g in sorted(groups, key=lambda g: g.name)]
        merged["speaker_turns"] = turns
    if keep_embeddings:
        vectors = {g.name: v for g in sorted(groups, key=lambda g: g.name)
                   if (v := g.mean_embedding()) is not None}
        model = next((r["speaker_embeddings"].get("model") for r in results
                      if isinstance(r.get("speaker_embeddings"), Mapping)), None)
        merged["speaker_embeddings"] = ({"model": model,
                                         "dimension": len(next(iter(vectors.values()))),
                                         "vectors": vectors} if vectors else None)
    if any("word_timestamps" in r for r in results):
        merged["word_timestamps"] = [{"word": w["word"], "start": w.get("start"),
                                      "end": w.get("end")}
                                     for s in segments for w in s.get("words", [])]
    if any(isinstance(r.get("translated"), Mapping) for r in results):
        meta = next(r["translated"] for r in results if isinstance(r.get("translated"), Mapping))
        merged["translated"] = {"language": meta.get("language"), "model": meta.get("model"),
                                "segments": renumber(translated)}
    dropped = sorted({k for r in results for k in r} & {"embeddings", "debug_info"})
    if dropped:
        warnings.append(f"split: {', '.join(dropped)} not merged (each chunk's result has "
                        "its own)")
    merged["warnings"] = list(dict.fromkeys(warnings))
    return Merged(merged, names)
