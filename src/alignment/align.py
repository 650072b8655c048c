"""Word timestamps: whisperx's wav2vec2 forced alignment, or, when no alignment model can be
had for the language (or alignment fails), Whisper's own cross-attention alignment of the
same text (faster-whisper's `find_alignment`). A job never fails for want of word timings."""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torchaudio
import whisperx
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer
from huggingface_hub import try_to_load_from_cache
from whisperx.alignment import DEFAULT_ALIGN_MODELS_HF, DEFAULT_ALIGN_MODELS_TORCH
from whisperx.utils import LANGUAGES_WITHOUT_SPACES

from asr import Loaded, Segment, Task
from worker import SAMPLE_RATE, gpu_faults
from worker.compat import torchaudio as compat_torchaudio
from worker.errors import brief
from worker.models import MANIFEST, cache, models_dir, offline, use_nltk_data

log = logging.getLogger("worker.alignment")

# Alignment models and NLTK's punkt_tab (sentence splitting) are baked under MODELS_DIR.
ALIGN_DIR = "alignment"

PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"
SENTENCE_END = (".", "!", "?", "…", "。", "！", "？")


@dataclass(frozen=True)
class AlignOptions:
    model: str | None  # a wav2vec2 CTC model; None: the language's default
    interpolate_method: Literal["nearest", "linear", "ignore"]  # words wav2vec2 can't time
    return_char_alignments: bool
    batch_size: int  # windows per pass of the Whisper fallback


@dataclass(frozen=True)
class Aligned:
    segments: list[Segment]
    method: Literal["wav2vec2", "whisper", "none"]  # whisper: cross-attention; none: no text
    model: str | None


def default_align_model(language: str) -> str | None:
    """The image's model for the language (manifest), else whisperx's default."""
    return (MANIFEST["alignment"].get(language) or DEFAULT_ALIGN_MODELS_TORCH.get(language)
            or DEFAULT_ALIGN_MODELS_HF.get(language))


@dataclass(frozen=True)
class Choice:
    """The wav2vec2 model a job's language aligns with, or why there is none (the warning:
    Whisper's cross-attention times the words instead)."""
    name: str | None  # None exactly when `unavailable` says why
    unavailable: str | None = None


def choose(align_model: str | None, language: str) -> Choice:
    """The one lookup of an alignment model (align() and the job's preflight use it):
    `align_model`, else the language's default; offline, only one that is here."""
    name = align_model or default_align_model(language)
    if name is None:
        return Choice(None, (
            f"no alignment model for language '{language}'; word timings come from Whisper's "
            "cross-attention (set align_model to a wav2vec2 CTC model for this language)."))
    if offline() and not is_available_offline(name):
        # Offline, a model that isn't baked can't be had: don't try the network for it.
        return Choice(None, (
            f"alignment model '{name}' for language '{language}' is not in this image "
            f"({models_dir() / ALIGN_DIR}) and downloads are off; word timings come from "
            "Whisper's cross-attention (bake it with the image's ALIGN_LANGUAGES)."))
    return Choice(name)


def align(
    segments: list[Segment], audio: np.ndarray, language: str, options: AlignOptions,
    whisper: Loaded, task: Task, speech: list[tuple[float, float]], warnings: list[str],
) -> Aligned:
    try:
        return _align(segments, audio, language, options, whisper, task, speech, warnings)
    finally:
        if whisper.device == "cuda":  # torch stage: give its cached GPU blocks back
            gpu_faults.free_memory()


def _align(
    segments: list[Segment], audio: np.ndarray, language: str, options: AlignOptions,
    whisper: Loaded, task: Task, speech: list[tuple[float, float]], warnings: list[str],
) -> Aligned:
    if not segments:
        return Aligned(segments, "none", None)
    use_nltk_data()  # whisperx splits sentences with punkt_tab

    def fallback() -> Aligned:
        timed = whisper_word_timings(whisper, segments, audio, language, task, speech,
                                     options.batch_size)
        return Aligned(timed, "whisper", None)

    choice = choose(options.model, language)
    if choice.unavailable is not None:
        warnings.append(choice.unavailable)
        return fallback()
    name = choice.name
    try:
        (model, metadata), _ = cache().get(
            "align", (name, whisper.device),
            lambda: whisperx.load_align_model(
                language, whisper.device, model_name=name,
                model_dir=str(models_dir() / ALIGN_DIR), model_cache_only=offline(),
            ),
        )
        result = gpu_faults.retry_on_oom(  # wav2vec2 runs one segment at a time: no batch
            "alignment", lambda _: whisperx.align(
                segments, model, metadata, audio, whisper.device,
                interpolate_method=options.interpolate_method,
                return_char_alignments=options.return_char_alignments,
            ), 1, warnings)
        cleaned = [_clean(s) for s in result["segments"]]  # whisperx's untyped dicts
        return Aligned(cast(list[Segment], cleaned), "wav2vec2", name)
    except Exception as exc:  # a missing model or a failure inside alignment
        if gpu_faults.is_fatal(exc):  # a broken CUDA context must reach the handler
            raise
        reason = brief(exc) or type(exc).__name__
        # Usually just a model that can't be had offline: the reason, not a traceback.
        log.warning("alignment with %s failed: %s", name, reason)
        log.debug("alignment failure", exc_info=True)
        warnings.append(
            f"word alignment with '{name}' failed ({reason}); word timings come from "
            "Whisper's cross-attention instead."
        )
        return fallback()


def is_available_offline(name: str) -> bool:
    """Whether whisperx.load_align_model can load `name` without the network: a local
    directory, a torchaudio bundle whose weights are in MODELS_DIR/alignment, or a Hugging
    Face id in that cache."""
    if Path(name).is_dir():
        return True
    cache = models_dir() / ALIGN_DIR
    bundle = getattr(torchaudio.pipelines, name, None) if name.isupper() else None
    if bundle is not None:
        return (cache / compat_torchaudio.bundle_file(bundle)).is_file()
    try:
        return isinstance(try_to_load_from_cache(name, "config.json", cache_dir=cache), str)
    except ValueError:  # not a valid repository id either (e.g. a path that doesn't exist)
        return False


def _clean(segment: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe numbers (whisperx leaves numpy floats and NaN for unplaceable words)."""
    def num(v: Any) -> Any:
        return round(float(v), 3) if v is not None and np.isfinite(v) else None

    out = {"start": num(segment["start"]), "end": num(segment["end"]),
           "text": segment["text"].strip()}
    out["words"] = [
        {k: (num(v) if k in ("start", "end", "score") else v) for k, v in w.items()}
        for w in segment.get("words", [])
    ]
    if "chars" in segment:
        out["chars"] = [
            {k: (num(v) if k in ("start", "end", "score") else v) for k, v in c.items()}
            for c in segment["chars"]
        ]
    return out


def whisper_word_timings(
    whisper: Loaded, segments: list[Segment], audio: np.ndarray, language: str, task: str,
    speech: list[tuple[float, float]], batch_size: int = 8,
) -> list[Segment]:
    """Word timings for the transcribed text from Whisper's cross-attention, with
    faster-whisper's own post-processing (`add_word_timestamps`: DTW over the alignment heads,
    median-duration clipping of words at pauses, punctuation merging), windows encoded in
    batches; then every word is kept inside the job's VAD speech. The text is unchanged."""
    model = whisper.model
    tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task=task,
                          language=language)
    fps = model.frames_per_second
    out: list[Segment] = []
    last_speech = 0.0
    for first in range(0, len(segments), batch_size):
        batch = segments[first: first + batch_size]
        features, frames = [], []
        for segment in batch:
            start, end = segment["start"] or 0.0, segment["end"] or 0.0  # windows are timed
            window = audio[int(start * SAMPLE_RATE): int(end * SAMPLE_RATE)]
            mel = model.feature_extractor(window)
            frames.append(min(mel.shape[-1], model.feature_extractor.nb_max_frames))
            features.append(pad_or_trim(mel))
        # One window per group; add_word_timestamps fills each group's "words".
        groups = [[{"start": s["start"], "end": s["end"], "seek": round(s["start"] * fps),
                    "tokens": s.get("tokens") or tokenizer.encode(" " + s["text"].strip())}]
                  for s in batch]
        last_speech = model.add_word_timestamps(
            groups, tokenizer, model.encode(np.stack(features)), frames,
            PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS, last_speech,
        ) or last_speech
        for segment, group in zip(batch, groups, strict=True):
            # faster-whisper's word probability; `score` holds it too (there is no wav2vec2
            # score to give), as it did before words had `probability`
            words = [{"word": w["word"].strip(), "start": float(w["start"]),
                      "end": float(w["end"]), "score": round(float(w["probability"]), 3),
                      "probability": round(float(w["probability"]), 4)}
                     for w in group[0].get("words", []) if w["word"].strip()]
            # a window's words stay in that window's speech (or, without VAD, in the window)
            start, end = segment["start"] or 0.0, segment["end"] or 0.0
            inside = [(max(a, start), min(b, end)) for a, b in speech if a < end and b > start]
            words = clip_to_speech(words, inside or [(start, end)])
            out.extend(_sentences(words, language) or [cast(Segment, {
                "start": segment["start"], "end": segment["end"], "text": segment["text"],
                "words": words})])
    return out


def clip_to_speech(words: list[dict[str, Any]], speech: list[tuple[float, float]]
                   ) -> list[dict[str, Any]]:
    """Each word inside one VAD speech region: the one it overlaps most, else the nearest
    (moved to that region's edge, at most as long as the region). No word then spans a pause
    or sits in silence, and words stay in order."""
    starts = [a for a, _ in speech]
    previous_end = 0.0
    for word in words:
        start, end = word["start"], word["end"]
        lo = max(0, bisect.bisect_right(starts, start) - 1)
        hi = bisect.bisect_left(starts, end) + 1
        region = max(speech[lo:hi] or speech[-1:],
                     key=lambda r: (min(end, r[1]) - max(start, r[0]), -_gap(r, start, end)))
        a, b = region
        if min(end, b) >= max(start, a):  # overlaps (or, zero-length, lies in) the region
            start, end = max(start, a), min(end, b)
        elif end <= a:
            start, end = a, min(b, a + (end - start))
        else:
            start, end = max(a, b - (end - start)), b
        start = max(start, min(previous_end, end))
        word["start"], word["end"] = round(start, 3), round(max(start, end), 3)
        previous_end = word["end"]
    return words


def _gap(region: tuple[float, float], start: float, end: float) -> float:
    return max(region[0] - end, start - region[1], 0.0)


def _sentences(words: list[dict[str, Any]], language: str) -> list[Segment]:
    """Re-cut a window's words into sentences, as whisperx's aligner does, so subtitles and
    speaker labels follow sentences rather than 30 s VAD windows."""
    joiner = "" if language in LANGUAGES_WITHOUT_SPACES else " "
    sentences, current = [], []
    for i, word in enumerate(words):
        current.append(word)
        if word["word"].endswith(SENTENCE_END) or i == len(words) - 1:
            sentences.append({"start": current[0]["start"], "end": current[-1]["end"],
                              "text": joiner.join(w["word"] for w in current),
                              "words": current})
            current = []
    return cast(list[Segment], sentences)
