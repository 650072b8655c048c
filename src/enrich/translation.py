"""Machine translation of the transcript's segments into any language (CTranslate2).

Model kinds and how each is told the languages:
- madlad (T5, MADLAD-400): the source text is prefixed with the target token `<2de>`;
- nllb (NLLB-200): source token `rus_Cyrl`, target prefix `deu_Latn` (FLORES-200 codes);
- m2m100: source token `__ru__`, target prefix `__de__`;
- marian (opus-mt pair models): one fixed source -> target pair; multi-target ones (en-zle)
  need the manifest's `source_prefix` (`>>rus<<`) in front of the source.

Segments are split into sentences (NLTK punkt) and long sentences into pieces of at most
MAX_SOURCE_TOKENS, translated in one `translate_batch`, and rejoined per segment, so segment
ids, timings and speakers are those of the source. Fillers ("угу", "mm-hmm") are passed through.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import ctranslate2

from asr import Segment
from worker import models
from worker.errors import InputError

MAX_SOURCE_TOKENS = 200  # pieces longer than this are split on word boundaries
MAX_LENGTH_RATIO = 3.0  # output tokens per input token above this: a repetition loop
REPETITION_PENALTY = 1.2
BEAM_SIZE = 4
MAX_BATCH = 32

FILLERS = frozenset("""
угу ага мм ммм хм э эм эээ а ну mm mm-hmm mhm hmm hm uh uh-huh um umm er erm ah oh ok okay
""".split())

# Whisper code -> FLORES-200 code (NLLB). Script is the one the language is usually written in.
FLORES = {
    "af": "afr_Latn", "am": "amh_Ethi", "ar": "arb_Arab", "as": "asm_Beng", "az": "azj_Latn",
    "ba": "bak_Cyrl", "be": "bel_Cyrl", "bg": "bul_Cyrl", "bn": "ben_Beng", "bo": "bod_Tibt",
    "bs": "bos_Latn", "ca": "cat_Latn", "cs": "ces_Latn", "cy": "cym_Latn", "da": "dan_Latn",
    "de": "deu_Latn", "el": "ell_Grek", "en": "eng_Latn", "es": "spa_Latn", "et": "est_Latn",
    "eu": "eus_Latn", "fa": "pes_Arab", "fi": "fin_Latn", "fo": "fao_Latn", "fr": "fra_Latn",
    "gl": "glg_Latn", "gu": "guj_Gujr", "ha": "hau_Latn", "he": "heb_Hebr", "hi": "hin_Deva",
    "hr": "hrv_Latn", "ht": "hat_Latn", "hu": "hun_Latn", "hy": "hye_Armn", "id": "ind_Latn",
    "is": "isl_Latn", "it": "ita_Latn", "ja": "jpn_Jpan", "jw": "jav_Latn", "ka": "kat_Geor",
    "kk": "kaz_Cyrl", "km": "khm_Khmr", "kn": "kan_Knda", "ko": "kor_Hang", "lb": "ltz_Latn",
    "ln": "lin_Latn", "lo": "lao_Laoo", "lt": "lit_Latn", "lv": "lvs_Latn", "mg": "plt_Latn",
    "mi": "mri_Latn", "mk": "mkd_Cyrl", "ml": "mal_Mlym", "mn": "khk_Cyrl", "mr": "mar_Deva",
    "ms": "zsm_Latn", "mt": "mlt_Latn", "my": "mya_Mymr", "ne": "npi_Deva", "nl": "nld_Latn",
    "nn": "nno_Latn", "no": "nob_Latn", "oc": "oci_Latn", "pa": "pan_Guru", "pl": "pol_Latn",
    "ps": "pbt_Arab", "pt": "por_Latn", "ro": "ron_Latn", "ru": "rus_Cyrl", "sa": "san_Deva",
    "sd": "snd_Arab", "si": "sin_Sinh", "sk": "slk_Latn", "sl": "slv_Latn", "sn": "sna_Latn",
    "so": "som_Latn", "sr": "srp_Cyrl", "su": "sun_Latn", "sv": "swe_Latn", "sw": "swh_Latn",
    "ta": "tam_Taml", "te": "tel_Telu", "tg": "tgk_Cyrl", "th": "tha_Thai", "tk": "tuk_Latn",
    "tl": "tgl_Latn", "tr": "tur_Latn", "tt": "tat_Cyrl", "uk": "ukr_Cyrl", "ur": "urd_Arab",
    "uz": "uzn_Latn", "vi": "vie_Latn", "yi": "ydd_Hebr", "yo": "yor_Latn", "zh": "zho_Hans",
    "yue": "yue_Hant",
}

# Whisper code -> NLTK punkt_tab language; others are split with the English rules.
PUNKT = {"cs": "czech", "da": "danish", "nl": "dutch", "en": "english", "et": "estonian",
         "fi": "finnish", "fr": "french", "de": "german", "el": "greek", "it": "italian",
         "ml": "malayalam", "no": "norwegian", "pl": "polish", "pt": "portuguese",
         "ru": "russian", "sl": "slovene", "es": "spanish", "sv": "swedish", "tr": "turkish"}


@dataclass(frozen=True)
class MTModel:
    name: str
    kind: str  # madlad | nllb | m2m100 | marian
    path: str
    translator: ctranslate2.Translator
    tokenizer: Any
    compute_type: str
    pair: tuple[str, str] | None  # marian: (source, target) Whisper codes
    load_seconds: float
    vocab: dict[str, int]
    source_prefix: str = ""  # marian multi-target models: ">>rus<<"

    def target_token(self, language: str) -> str | None:
        """The model's own token for a Whisper code or an own code; None if it has none."""
        vocab = self.vocab
        candidates = {
            "madlad": (f"<2{language}>", language),
            "nllb": (FLORES.get(language, ""), language),
            "m2m100": (f"__{language}__", language),
        }.get(self.kind, ())
        return next((c for c in candidates if c and c in vocab and
                     (self.kind != "madlad" or c.startswith("<2"))), None)


@dataclass(frozen=True)
class TranslateOptions:
    target: str  # `translate_to`: a language code or name
    model: str  # `translation_model`: a name in MODELS_DIR/translation or a directory


@dataclass(frozen=True)
class Translated:
    language: str
    model: str
    segments: list[Segment]
    kept_source: int  # pieces whose translation was rejected (length ratio) and kept as is


# --- model resolution and loading ---------------------------------------------------------

TRANSLATION_DIR = "translation"  # MODELS_DIR/translation/<name>: where the image bakes them


def _is_model(path: Path) -> bool:
    try:
        return (path / "model.bin").is_file()
    except OSError:  # e.g. a request's name longer than the filesystem allows
        return False


def available() -> list[str]:
    """Names that resolve here: the manifest's models that are present, and other folders
    under MODELS_DIR/translation."""
    return models.available("translation", _is_model, (TRANSLATION_DIR,))


def resolve(name: str) -> tuple[str, dict[str, Any]]:
    """(local dir, manifest entry) of a translation model: the one lookup (load() and the
    job's preflight use it). Filesystem checks only."""
    path, entry = models.require("translation", name, _is_model, (TRANSLATION_DIR,),
                                 "translation_model", "a CTranslate2 translation model")
    return str(path), entry


def _kind(path: str, entry: dict[str, Any], tokenizer: Any) -> str:
    if entry.get("kind"):
        return entry["kind"]
    vocab = tokenizer.get_vocab()
    if "<2en>" in vocab:
        return "madlad"
    if "eng_Latn" in vocab:
        return "nllb"
    if "__en__" in vocab:
        return "m2m100"
    return "marian"


def compute_type(kind: str, device: str, warnings: list[str]) -> str:
    """int8 on the CPU; on CUDA int8_float16, except MADLAD (T5), whose float16 activations
    overflow into garbage: int8_bfloat16 where the GPU has bfloat16 (compute capability
    >= 8.0), else float32."""
    if device != "cuda":
        return "int8"
    if kind != "madlad":
        return "int8_float16"
    major, _ = ctranslate2.get_cuda_device_capability(0)
    if major >= 8:
        return "int8_bfloat16"
    warnings.append("translation: this GPU has no bfloat16 (compute capability < 8.0) and "
                    "MADLAD gives garbage in float16; running it in float32 (slower).")
    return "float32"




def load(name: str, device: str, warnings: list[str]) -> MTModel:
    """The translation model, kept warm in the worker's model cache (MAX_LOADED_MODELS)."""
    path, entry = resolve(name)

    def make() -> MTModel:
        from transformers import AutoTokenizer

        start = time.perf_counter()
        tokenizer = AutoTokenizer.from_pretrained(path)
        kind = _kind(path, entry, tokenizer)
        ctype = compute_type(kind, device, warnings)
        translator = ctranslate2.Translator(path, device=device, compute_type=ctype)
        pair = tuple(entry["pair"]) if entry.get("pair") else _marian_pair(path)
        return MTModel(name, kind, path, translator, tokenizer, ctype, pair,
                       time.perf_counter() - start, tokenizer.get_vocab(),
                       entry.get("source_prefix", ""))

    return models.cache().get("translation", (path, device), make)[0]


def _marian_pair(path: str) -> tuple[str, str] | None:
    config = Path(path) / "tokenizer_config.json"
    if config.is_file():
        data = json.loads(config.read_text())
        if data.get("source_lang") and data.get("target_lang"):
            return data["source_lang"], data["target_lang"]
    return None


# --- the translation itself -------------------------------------------------------------

def target_language(model: MTModel, requested: str) -> tuple[str, str | None]:
    """(Whisper-style code for the output, the model's own target token) or InputError."""
    from worker.languages import normalize_language

    code = normalize_language(requested) or requested
    if model.kind == "marian":
        if model.pair and code == model.pair[1]:
            return code, None
        raise InputError(
            f"translate_to: {requested!r} is not what translation_model {model.name!r} "
            f"translates into (it is a pair model: {_pair_text(model)}). Use its target "
            "language, or a multilingual model (docs/translation-and-embeddings.md lists them).")
    token = model.target_token(code) or model.target_token(requested)
    if token is None:
        raise InputError(
            f"translate_to: {requested!r} is not a language translation_model {model.name!r} "
            "knows. Give an ISO 639-1 code (de, fr, ja, ...) or the model's own code "
            "(MADLAD: <2de>, NLLB: deu_Latn, M2M100: __de__); "
            "docs/translation-and-embeddings.md says where each model's list is.")
    own = {v: k for k, v in FLORES.items()}.get(token) or re.sub(r"^<2|>$|^__|__$", "", token)
    return own, token


def _pair_text(model: MTModel) -> str:
    return f"{model.pair[0]} -> {model.pair[1]}" if model.pair else "fixed pair"


def run(options: TranslateOptions, segments: list[Segment], source: str, device: str,
        warnings: list[str]) -> Translated | None:
    """The job's machine translation: the model from the cache, then every segment."""
    return translate(load(options.model, device, warnings), segments, source, options.target,
                     warnings)


def translate(model: MTModel, segments: list[Segment], source: str, requested: str,
              warnings: list[str]) -> Translated | None:
    """Translated segments (ids, timings and speakers of the source), or None (no-op)."""
    language, token = target_language(model, requested)
    if language == source:
        warnings.append(f"translate_to: the audio is already in {source!r}; nothing to "
                        "translate.")
        return None
    if model.kind == "marian" and model.pair and model.pair[0] != source:
        warnings.append(f"translation: {model.name!r} translates {_pair_text(model)} but the "
                        f"audio is {source!r}; the translation may be poor.")
    pieces: list[tuple[int, str]] = []  # (segment index, text to translate)
    for index, segment in enumerate(segments):
        for piece in split(segment.get("text", ""), source, model.tokenizer):
            pieces.append((index, piece))
    to_run = [(i, p) for i, p in pieces if not is_filler(p)]
    outputs = _run(model, [p for _, p in to_run], source, token)
    kept = sum(1 for _, ok in outputs if not ok)
    if kept:
        warnings.append(f"translation: {kept} sentence(s) came out much longer than the source "
                        "(a repetition loop); the source text was kept for them.")
    texts: dict[int, list[str]] = {}
    results = iter(outputs)
    for index, piece in pieces:
        texts.setdefault(index, []).append(piece if is_filler(piece) else next(results)[0])
    out: list[Segment] = []
    for index, segment in enumerate(segments):
        out.append(cast(Segment, {  # speaker is None where the source had none
            "id": segment.get("id", index), "start": segment.get("start"),
            "end": segment.get("end"), "speaker": segment.get("speaker"),
            "text": " ".join(t for t in texts.get(index, []) if t).strip()}))
    return Translated(language, model.name, out, kept)


def is_filler(text: str) -> bool:
    words = re.findall(r"[\w-]+", text.lower())
    return not words or all(w in FILLERS for w in words)


def split(text: str, language: str, tokenizer: Any) -> list[str]:
    """Sentences (punkt), and sentences longer than MAX_SOURCE_TOKENS cut on word boundaries."""
    text = text.strip()
    if not text:
        return []
    out = []
    for sentence in _sentences(text, language):
        words, piece = sentence.split(), list[str]()
        for word in words:
            if piece and len(tokenizer.tokenize(" ".join([*piece, word]))) > MAX_SOURCE_TOKENS:
                out.append(" ".join(piece))
                piece = []
            piece.append(word)
        if piece:
            out.append(" ".join(piece))
    return out


def _sentences(text: str, language: str) -> list[str]:
    import nltk

    models.use_nltk_data()
    try:
        return nltk.sent_tokenize(text, language=PUNKT.get(language, "english"))
    except LookupError:  # no punkt_tab in this image: one piece per segment
        return [text]


def _run(model: MTModel, texts: list[str], source: str,
         target_token: str | None) -> list[tuple[str, bool]]:
    """(translation, accepted) per text; a rejected one (too long: a loop) is the source."""
    if not texts:
        return []
    tok = model.tokenizer
    if model.kind in ("nllb", "m2m100"):
        tok.src_lang = FLORES.get(source, source) if model.kind == "nllb" else source
    prefix = f"{target_token} " if model.kind == "madlad" else ""
    if model.source_prefix:
        prefix = f"{model.source_prefix} "
    sources = [tok.convert_ids_to_tokens(tok.encode(prefix + t)) for t in texts]
    target_prefix = ([[target_token]] * len(texts)
                     if model.kind in ("nllb", "m2m100") else None)
    longest = max(len(s) for s in sources)
    results = model.translator.translate_batch(
        sources, target_prefix=target_prefix, beam_size=BEAM_SIZE, max_batch_size=MAX_BATCH,
        batch_type="examples", repetition_penalty=REPETITION_PENALTY, no_repeat_ngram_size=4,
        max_decoding_length=int(MAX_LENGTH_RATIO * longest) + 10,
    )
    out = []
    for text, src, result in zip(texts, sources, results, strict=True):
        hyp = result.hypotheses[0]
        if len(hyp) > MAX_LENGTH_RATIO * len(src) + 5:
            out.append((text, False))
            continue
        ids = tok.convert_tokens_to_ids(hyp)
        out.append((tok.decode(ids, skip_special_tokens=True).strip(), True))
    return out


def cant_translate_warning(model_name: str, model_path: str) -> str | None:
    """Whisper models that were not trained to translate: turbo and the Russian fine-tune."""
    name = f"{model_name} {model_path}".lower()
    if "turbo" in name or "russian" in name:
        return (f"task=translate: model {model_name!r} was not trained to translate speech "
                "(its English may be poor or still in the source language); use "
                "`translate_to: en` (machine translation of the transcript) instead.")
    return None
