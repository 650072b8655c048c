"""Word timestamps: whisperx's wav2vec2 forced alignment, or, when no alignment model can be
had for the language (or alignment fails), Whisper's own cross-attention alignment of the
same text (faster-whisper's `find_alignment`). A job never fails for want of word timings."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import nltk
import numpy as np
import whisperx
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import merge_punctuations
from whisperx.alignment import DEFAULT_ALIGN_MODELS_HF, DEFAULT_ALIGN_MODELS_TORCH
from whisperx.audio import SAMPLE_RATE
from whisperx.utils import LANGUAGES_WITHOUT_SPACES

import gpu_faults
from errors import brief
from models import CACHE, MANIFEST, Loaded, models_dir, offline

log = logging.getLogger("worker.alignment")

# Alignment models and NLTK's punkt_tab (sentence splitting) are baked under MODELS_DIR.
ALIGN_DIR = "alignment"
nltk.data.path.insert(0, str(models_dir() / "nltk_data"))

PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"
SENTENCE_END = (".", "!", "?", "…", "。", "！", "？")


@dataclass(frozen=True)
class Aligned:
    segments: list[dict[str, Any]]
    method: str  # "wav2vec2" | "whisper" (cross-attention)
    model: str | None


def default_align_model(language: str) -> str | None:
    """The image's model for the language (manifest), else whisperx's default."""
    return (MANIFEST["alignment"].get(language) or DEFAULT_ALIGN_MODELS_TORCH.get(language)
            or DEFAULT_ALIGN_MODELS_HF.get(language))


def align(
    segments: list[dict[str, Any]], audio: np.ndarray, language: str, job: Any,
    whisper: Loaded, task: str, warnings: list[str],
) -> Aligned:
    if not segments:
        return Aligned(segments, "none", None)
    name = job.align_model or default_align_model(language)
    if name is None:
        warnings.append(
            f"no alignment model for language '{language}'; word timings come from Whisper's "
            "cross-attention (set align_model to a wav2vec2 CTC model for this language)."
        )
        return Aligned(whisper_word_timings(whisper, segments, audio, language, task),
                       "whisper", None)
    try:
        (model, metadata), _ = CACHE.get(
            "align", (name, whisper.device),
            lambda: whisperx.load_align_model(
                language, whisper.device, model_name=name,
                model_dir=str(models_dir() / ALIGN_DIR), model_cache_only=offline(),
            ),
        )
        result = whisperx.align(
            segments, model, metadata, audio, whisper.device,
            interpolate_method=job.interpolate_method,
            return_char_alignments=job.return_char_alignments,
        )
        return Aligned([_clean(s) for s in result["segments"]], "wav2vec2", name)
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
        return Aligned(whisper_word_timings(whisper, segments, audio, language, task),
                       "whisper", None)


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
    whisper: Loaded, segments: list[dict[str, Any]], audio: np.ndarray, language: str, task: str,
) -> list[dict[str, Any]]:
    """Word timings for the given text from Whisper's cross-attention (DTW over the alignment
    heads), one window per segment: the text stays exactly what was transcribed."""
    model = whisper.model
    tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task=task,
                          language=language)
    out = []
    for segment in segments:
        start, end = segment["start"], segment["end"]
        window = audio[int(start * SAMPLE_RATE): int(end * SAMPLE_RATE)]
        features = model.feature_extractor(window)
        num_frames = min(features.shape[-1], model.feature_extractor.nb_max_frames)
        tokens = tokenizer.encode(" " + segment["text"].strip())
        alignment = model.find_alignment(
            tokenizer, [tokens], model.encode(pad_or_trim(features)), num_frames
        )[0]
        merge_punctuations(alignment, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS)
        words = [
            {"word": w["word"].strip(),
             "start": round(float(min(start + w["start"], end)), 3),
             "end": round(float(min(start + w["end"], end)), 3),
             "score": round(float(w["probability"]), 3)}
            for w in alignment if w["word"].strip()
        ]
        out.extend(_sentences(words, language) or [
            {"start": start, "end": end, "text": segment["text"], "words": words}])
    return out


def _sentences(words: list[dict[str, Any]], language: str) -> list[dict[str, Any]]:
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
    return sentences
