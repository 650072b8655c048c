"""--split: each file decoded here with the worker's own decoder (inputs.media), its speech
found with Silero VAD (find_speech), cut into chunk files at pauses (split.plan), and once
every chunk has a result, the results merged (split.merge) and rendered with the worker's
renderer. Needs the worker's packages (faster-whisper, whisperx, ffmpeg), not only the
client's.

The output folder holds, per split file, `<name>.chunks/plan.json` (the cuts: a rerun reuses
them without decoding), `<name>.chunks/NNN.json` (each chunk's result: a rerun skips done
chunks) and, while chunks are pending, their audio under `.split-audio/`."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from . import split
from .sources import Item
from .store import FORMAT_FIELDS, Store

Codec = Literal["flac", "opus"]
SUFFIX: dict[str, str] = {"flac": "flac", "opus": "ogg"}
RATE = 16000
# Whisper's text joins for the official worker's `translation` field (its own English pass,
# rendered by each chunk); subtitles of it can't be re-timed from text.
JOINERS = {"plain_text": " ", "formatted_text": "\n"}
MIN_PAUSE_MS = 300  # speakers/identify.py's; shorter gaps are inside a phrase
PAD_MS = 100


@dataclass(frozen=True)
class Settings:
    minutes: float
    codec: Codec
    link_threshold: float | None  # None: the job's speaker_match_threshold


@dataclass
class Prepared:
    """A file cut into chunks; `items` are the chunk jobs (done ones included: the runner
    skips those)."""

    item: Item
    key: str
    chunks: list[split.Chunk]
    items: list[Item]
    duration: float


def job_input(params: dict[str, Any]) -> Any:
    """The parameters as the worker resolves them (its defaults; the worker's environment may
    differ, which only matters for the VAD parameters the cuts use)."""
    import rp_schema

    return rp_schema.resolve({"audio_file": "split.wav", **params}, environ={}).values


def chunk_key(sha256: str, chunk: split.Chunk) -> str:
    return f"chunk:{sha256}:{chunk.start:.3f}-{chunk.end:.3f}"


def chunk_name(name: str, chunk: split.Chunk) -> str:
    return f"{name}.chunks/{chunk.index:03d}"


def find_speech(waveform: np.ndarray) -> list[tuple[float, float]]:
    """Speech regions by Silero VAD (faster-whisper's `get_speech_timestamps`, as the worker's
    speaker identification finds a sample's speech): ~0.1 s per 30 s of audio on a CPU, where
    the worker's pyannote scorer (asr/vad.py) takes ~7 s, ~45 min for a 3-hour file. Pauses
    of MIN_PAUSE_MS or more count; PAD_MS of each pause stays with the speech beside it."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    stamps = get_speech_timestamps(waveform, VadOptions(
        min_silence_duration_ms=MIN_PAUSE_MS, speech_pad_ms=PAD_MS))
    return [(s["start"] / RATE, s["end"] / RATE) for s in stamps]


def encode(samples: np.ndarray, path: Path, codec: Codec) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # the decoder's int16 / 32768, back to the same int16 samples
    pcm = np.clip(np.round(samples * 32768), -32768, 32767).astype("<i2").tobytes()
    args = ["-c:a", "flac"] if codec == "flac" else ["-c:a", "libopus", "-b:a", "48k"]
    part = path.with_name(path.name + ".part" + path.suffix)
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "s16le", "-ar",
                    str(RATE), "-ac", "1", "-i", "-", *args, str(part)], input=pcm, check=True)
    part.replace(path)


class Splitter:
    def __init__(self, store: Store, params: dict[str, Any], settings: Settings) -> None:
        self.store, self.params, self.s = store, params, settings
        self.job = job_input(params)
        self.audio_root = store.folder / ".split-audio"

    @property
    def threshold(self) -> float:
        if self.s.link_threshold is not None:
            return self.s.link_threshold
        return float(self.job.speaker_match_threshold)

    def _plan_path(self, item: Item) -> Path:
        return self.store.folder / f"{item.name}.chunks" / "plan.json"

    def _saved_plan(self, item: Item) -> tuple[list[split.Chunk], float] | None:
        try:
            saved = json.loads(self._plan_path(item).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if saved.get("sha256") != item.sha256 or saved.get("params") != self.store.params:
            return None
        return ([split.Chunk(i, a, b) for i, (a, b) in enumerate(saved["chunks"])],
                float(saved["duration"]))

    def prepare(self, item: Item) -> Prepared | None:
        """Cut a file into chunk jobs; None when its merged result is there already. Raises
        the worker's AudioError for a file that doesn't decode."""
        item.hash_file()
        key = item.key()
        previous = self.store.previous(key)
        if previous is not None and previous["status"] == "done":
            return None
        assert item.sha256 and item.path
        audio_dir = self.audio_root / item.sha256[:16]
        saved = self._saved_plan(item)
        waveform: np.ndarray | None = None
        if saved is None:
            from inputs import Source, load

            audio = load(Source(item.path, "local", item.name))
            waveform = audio.waveform
            speech = find_speech(waveform)
            chunks = split.plan(speech, audio.duration, self.s.minutes * 60)
            duration = audio.duration
            path = self._plan_path(item)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({
                "sha256": item.sha256, "params": self.store.params, "minutes": self.s.minutes,
                "duration": round(duration, 3), "chunks": [[c.start, c.end] for c in chunks],
                "speech": [[round(a, 3), round(b, 3)] for a, b in speech]}, indent=1))
        else:
            chunks, duration = saved
        items = []
        for chunk in chunks:
            ckey = chunk_key(item.sha256, chunk)
            path = audio_dir / f"{chunk.index:03d}.{SUFFIX[self.s.codec]}"
            done = self.store.previous(ckey)
            if (done is None or done["status"] != "done") and not path.is_file():
                if waveform is None:
                    from inputs import Source, load

                    waveform = load(Source(item.path, "local", item.name)).waveform
                encode(waveform[round(chunk.start * RATE):round(chunk.end * RATE)], path,
                       self.s.codec)
            items.append(Item(name=chunk_name(item.name, chunk), kind="chunk", path=path,
                              size=path.stat().st_size if path.is_file() else None,
                              chunk_key=ckey))
        return Prepared(item, key, chunks, items, duration)

    def merge(self, prepared: Prepared) -> str | None:
        """Merge a file's chunk results into its result; returns why not, or None."""
        results: list[dict[str, Any]] = []
        attempts: list[dict[str, Any]] = []
        for chunk, chunk_item in zip(prepared.chunks, prepared.items, strict=True):
            record = self.store.previous(chunk_item.key())
            if record is None or record["status"] != "done":
                return (f"chunk {chunk.index} ({chunk.start:.3f}-{chunk.end:.3f} s) has no "
                        "result; rerun to send it again")
            results.append(json.loads((self.store.folder / record["result"]).read_text(
                encoding="utf-8")))
            attempts += [{**a, "chunk": chunk.index} for a in record.get("attempts", [])]
        merged = split.merge(prepared.chunks, results, self.threshold,
                             duration=prepared.duration,
                             keep_embeddings=bool(self.job.return_speaker_embeddings),
                             max_speakers=self.job.num_speakers or self.job.max_speakers)
        result = self._render(merged.result, results)
        result["input_sha256"] = prepared.item.sha256
        result["split"] = {
            "minutes": self.s.minutes, "link_threshold": self.threshold,
            "chunks": [{"index": c.index, "start": c.start, "end": c.end,
                        "result": chunk_name(prepared.item.name, c) + ".json",
                        "speakers": merged.names[c.index]} for c in prepared.chunks]}
        texts = {f: result[f] for f in FORMAT_FIELDS if isinstance(result.get(f), str)}
        self.store.done(prepared.item.name, prepared.key, result, texts, attempts)
        shutil.rmtree(self.audio_root / str(prepared.item.sha256)[:16], ignore_errors=True)
        return None

    def _render(self, merged: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, Any]:
        """The renderings the job asked for, from the merged segments, in the order the
        worker's response has its fields."""
        from output.formats import render
        from output.subtitles import Rules

        job = self.job
        rules = Rules.of(job.max_line_width, job.max_line_count, job.max_cue_duration,
                         job.highlight_words)
        segments, code = merged["segments"], merged["detected_language"]
        out = {k: merged[k] for k in ("segments", "detected_language", "language_probability",
                                      "duration")}
        out["transcription"] = render(job.transcription, segments, code, rules)
        translations = [r.get("translation") for r in results]
        out["translation"] = None
        warnings = list(merged["warnings"])
        if any(isinstance(t, str) for t in translations):
            if job.translation in JOINERS:
                out["translation"] = JOINERS[job.translation].join(
                    t.strip() for t in translations if isinstance(t, str) and t.strip())
            else:
                warnings.append(f"split: translation as {job.translation} is not merged "
                                "(each chunk's result has its own); ask for plain_text")
        out |= {k: merged[k] for k in ("device", "model", "speakers", "speaker_turns",
                                       "speaker_embeddings", "word_timestamps") if k in merged}
        if job.output_format != "json":
            out[job.output_format] = render(job.output_format, segments, code, rules)
        if "translated" in merged:
            translated = merged["translated"]
            if job.output_format != "json":
                translated[job.output_format] = render(
                    job.output_format, translated["segments"], translated["language"], rules)
            out["translated"] = translated
        out["warnings"] = warnings
        return out
