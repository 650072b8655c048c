"""Shared fixtures: real speech (espeak-ng English, Debian's recorded Russian prompts), the
small real models fetched by scripts/setup.sh, and a way to run jobs through the handler."""

from __future__ import annotations

import contextlib
import functools
import gzip
import http.server
import itertools
import os
import platform
import random
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
import pytest
import requests
import soundfile

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
SAMPLES = ROOT / "samples"
RU_SOUNDS = Path("/usr/share/asterisk/sounds/ru")
RU_TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-ru/core-sounds-ru.txt.gz")
EN_SOUNDS = Path("/usr/share/asterisk/sounds/en_US_f_Allison")  # not the "en" alternative
EN_TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
SAMPLE_RTTM = SAMPLES / "sample.rttm"

ENGLISH_TEXT = (
    "Please call Stella and ask her to bring these things with her from the store. "
    "Six spoons of fresh snow peas, five thick slabs of blue cheese, and maybe a snack for "
    "her brother Bob. We also need a small plastic snake and a big toy frog for the kids."
)

# No temperature fallback: beam search only, no random draw. For jobs whose transcript is
# compared exactly with another job's (a window that fails a threshold is otherwise sampled,
# and two draws differ); on the same machine and threads beam search gives the same text.
NO_SAMPLING = {"temperature_increment_on_fallback": None}

# Environment every in-process job sees: the small real model, offline, CPU.
WORKER_ENV = {
    "MODELS_DIR": str(MODELS),
    "MODEL": "base",
    "COMPUTE_TYPE": "int8",
    "HF_HUB_OFFLINE": "1",
    "LOCAL_INPUT_DIR": str(SAMPLES),
    "CONTAINER_LOG": str(ROOT / ".cache" / "test-container-log.txt"),
}
# Variables from the developer's shell that would change what the tests resolve: every worker
# setting and every parameter's env alias, except what WORKER_ENV sets.
def _cleared_env() -> tuple[str, ...]:
    import rp_schema
    from worker import settings

    names = {settings.env_name(f) for f in settings.WorkerSettings.model_fields}
    names |= {n for p in rp_schema.PARAMS for n in p.env_names}
    names |= {"HUGGING_FACE_HUB_TOKEN", "LANGUAGE"}
    return tuple(sorted(names - set(WORKER_ENV)))


CLEARED_ENV = _cleared_env()


# The one seed of the suite's random draws (TEST_SEED, default 0), printed in pytest's header
# with the CPU and thread settings the floats depend on. Tests never assert on what a draw
# produced, only on properties every draw has; the seed is there to replay a failure.
def _test_seed() -> int:
    value = os.environ.get("TEST_SEED", "0")
    try:
        return int(value)
    except ValueError:
        raise pytest.UsageError(f"TEST_SEED: got {value!r}, expected an integer (the seed of "
                                "the run to replay; 0 by default).") from None


TEST_SEED = _test_seed()
# Environment variables that change how the models compute (threads, CPU kernels).
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
              "CT2_FORCE_CPU_ISA", "CT2_USE_EXPERIMENTAL_PACKED_GEMM", "CT2_USE_MKL")
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni",
              "avx512_bf16", "avx_vnni", "amx_int8", "amx_bf16", "asimd", "sve")


def cpu_description() -> tuple[str, list[str]]:
    """The CPU's model name and its SIMD flags (the kernels CTranslate2 and torch pick)."""
    model, flags = platform.processor() or platform.machine(), []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("", platform.machine()):
                model = value.strip()
            elif key.strip() in ("flags", "Features") and not flags:
                flags = value.split()
    except OSError:
        pass
    return model, [f for f in SIMD_FLAGS if f in flags]


def pytest_report_header(config: pytest.Config) -> list[str]:
    import torch

    model, flags = cpu_description()
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    threads = " ".join(f"{name}={os.environ.get(name, '-')}" for name in THREAD_ENV)
    return [f"TEST_SEED={TEST_SEED} (replay: TEST_SEED={TEST_SEED} on the same CPU and threads,"
            " same tests in the same order)",
            f"cpu: {model} ({platform.machine()}); simd: {' '.join(flags) or '-'}",
            f"cpus: os.cpu_count()={os.cpu_count()} (the Whisper model's cpu_threads), "
            f"usable={affinity}; torch threads={torch.get_num_threads()}; {threads}"]


def pytest_configure(config: pytest.Config) -> None:
    import ctranslate2

    # CTranslate2 seeds each thread's generator once, at that thread's first draw, from the
    # seed set then: so it is set here, before any model runs, and set_random_seed later does
    # not reseed a model that has sampled already. A draw then depends on every draw before
    # it in the session (the tests run before), as well as on the CPU's float results.
    ctranslate2.set_random_seed(TEST_SEED)


# What makes a test a whole job (or a worker process): `make test-fast` leaves these out.
JOB_FIXTURES = {"run_job", "api", "compat_api", "workers", "worker"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks `job` every test under tests/e2e/ and every test that runs a whole job or starts
    a worker; the rest are unit tests of one stage (`make test-fast`: -m "not job and not
    slow")."""
    e2e = ROOT / "tests" / "e2e"
    for item in items:
        if e2e in item.path.parents or JOB_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.job)


@pytest.fixture(autouse=True)
def seeded() -> None:
    """Python's, NumPy's and torch's global generators start each test from TEST_SEED (unlike
    CTranslate2's, see pytest_configure, these can be reseeded)."""
    import torch

    random.seed(TEST_SEED)
    np.random.seed(TEST_SEED)
    torch.manual_seed(TEST_SEED)


def normalize(text: str) -> str:
    text = text.lower().replace("ё", "е")
    text = re.sub(r"[^\w\s']", " ", text)
    return " ".join(text.split())


def wer(reference: str, hypothesis: str) -> float:
    return jiwer.wer(normalize(reference), normalize(hypothesis))


@pytest.fixture(autouse=True)
def worker_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CLEARED_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in WORKER_ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="session")
def assets_ready() -> None:
    if not (MODELS / "base" / "model.bin").is_file() or not (SAMPLES / "sample.wav").is_file():
        pytest.fail("models/samples missing: run `scripts/setup.sh --test` (make test does)")


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def sample_clip(media_dir: Path) -> Callable[[int], Path]:
    """A clip of `seconds` of the real two-speaker sample from 6.5 s on (speech from the
    first word): short jobs for tests that need real speech but not the whole file."""

    def clip(seconds: int) -> Path:
        path = media_dir / f"sample-{seconds}s.wav"
        if not path.exists():
            ffmpeg("-i", str(SAMPLES / "sample.wav"), "-ss", "6.5", "-t", str(seconds), str(path))
        return path

    return clip


@pytest.fixture(scope="session")
def serve_directory() -> Iterator[Callable[[Path], str]]:
    """Serve a directory over HTTP on 127.0.0.1; returns its base URL."""
    servers = []

    def serve(directory: Path) -> str:
        handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                    directory=str(directory))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    for server in servers:
        server.shutdown()


@pytest.fixture(scope="session")
def english_wav(media_dir: Path) -> Path:
    """espeak-ng reading ENGLISH_TEXT: 22.05 kHz, so it also exercises the ffmpeg path."""
    path = media_dir / "english.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), ENGLISH_TEXT],
                   check=True)
    return path


def russian_prompts(limit: int) -> list[tuple[Path, str]]:
    """Debian's recorded Russian telephony prompts with their transcripts: the first `limit`
    (by name) that are full sentences without digits (Whisper may write numbers either way)."""
    return prompts(RU_SOUNDS, RU_TRANSCRIPTS, limit)


def english_prompts(limit: int, skip: int = 0) -> list[tuple[Path, str]]:
    """The same from Debian's English prompts (one speaker, Allison Smith)."""
    return prompts(EN_SOUNDS, EN_TRANSCRIPTS, limit + skip)[skip:]


def prompts(sounds: Path, transcripts: Path, limit: int) -> list[tuple[Path, str]]:
    with gzip.open(transcripts, "rt", encoding="utf-8") as f:
        entries = [line.split(":", 1) for line in f if re.match(r"^[\w-]+: ", line)]
    chosen = []
    for name, text in sorted(entries):
        text = text.strip()
        wav = sounds / f"{name}.wav"
        if wav.is_file() and len(text.split()) >= 5 and not re.search(r"[\d\[\]<>]", text):
            chosen.append((wav, text))
    return chosen[:limit]


@pytest.fixture(scope="session")
def russian_speech(media_dir: Path) -> tuple[Path, str]:
    """~30 s of real Russian human speech (8 kHz telephony recordings) and its transcript."""
    prompts = russian_prompts(8)
    pieces, rate = [], None
    for wav, _ in prompts:
        data, rate_i = soundfile.read(wav, dtype="float32")
        assert rate in (None, rate_i)
        rate = rate_i
        pieces += [data, np.zeros(int(0.6 * rate_i), dtype="float32")]
    path = media_dir / "russian.wav"
    soundfile.write(path, np.concatenate(pieces), rate)
    return path, " ".join(text for _, text in prompts)


_job_ids = itertools.count(1)


@pytest.fixture
def run_job(assets_ready: None) -> Callable[..., dict[str, Any]]:
    """Run one job through the real handler, in this process (models stay warm)."""
    import handler

    def run(job_input: Any) -> dict[str, Any]:
        return handler.handler({"id": f"test-{next(_job_ids)}", "input": job_input})

    return run


@pytest.fixture
def local_file(media_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], str]:
    """Make a file readable as `audio_file` by name (LOCAL_INPUT_DIR points at its folder)."""

    def place(path: Path) -> str:
        monkeypatch.setenv("LOCAL_INPUT_DIR", str(path.parent))
        return path.name

    return place


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args], check=True)


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


def read_16k(path: Path) -> np.ndarray:
    """A recording as 16 kHz mono float32 (ffmpeg resamples the 8 kHz prompts)."""
    from whisperx.audio import load_audio

    return load_audio(str(path), 16000)


class Conversation:
    """Real recordings laid end to end (with pauses) into one 16 kHz track, and the exact
    reference speaker turns of the result."""

    RATE = 16000

    def __init__(self) -> None:
        self.pieces: list[np.ndarray] = []
        self.turns: list[tuple[float, float, str]] = []
        self.length = 0

    def pause(self, seconds: float) -> Conversation:
        self.pieces.append(np.zeros(int(seconds * self.RATE), dtype="float32"))
        self.length += len(self.pieces[-1])
        return self

    def say(self, audio: np.ndarray, speaker: str, turns: list[tuple[float, float]] | None = None
            ) -> Conversation:
        """`audio` by `speaker`; `turns` (s, within `audio`) where they speak, else the span
        between the first and last sample above the noise floor."""
        offset = self.length / self.RATE
        if turns is None:
            loud = np.flatnonzero(np.abs(audio) > 0.02)
            turns = [(loud[0] / self.RATE, (loud[-1] + 1) / self.RATE)] if loud.size else []
        self.turns += [(offset + a, offset + b, speaker) for a, b in turns]
        self.pieces.append(audio.astype("float32"))
        self.length += len(audio)
        return self

    def say_sample(self, start: float, end: float) -> Conversation:
        """pyannote's real two-speaker sample from `start` to `end` s, with its RTTM turns."""
        audio = read_16k(SAMPLES / "sample.wav")[int(start * self.RATE): int(end * self.RATE)]
        offset = self.length / self.RATE
        for line in SAMPLE_RTTM.read_text().splitlines():
            fields = line.split()
            a, b = float(fields[3]), float(fields[3]) + float(fields[4])
            if b > start and a < end:
                self.turns.append((offset + max(a, start) - start, offset + min(b, end) - start,
                                   f"sample-{fields[7]}"))
        self.pieces.append(audio)
        self.length += len(audio)
        return self

    def write(self, path: Path) -> Path:
        soundfile.write(path, np.concatenate(self.pieces), self.RATE)
        return path

    def reference(self):  # -> pyannote.core.Annotation
        from pyannote.core import Annotation, Segment

        annotation = Annotation()
        for a, b, speaker in self.turns:
            annotation[Segment(a, b)] = speaker
        return annotation


@pytest.fixture
def encodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts (batch sizes of) Whisper encoder passes; the real encoder still runs."""
    from asr import decoding

    calls: list[int] = []
    real = decoding.ThresholdedWhisperModel.encode

    def encode(self: Any, features: Any) -> Any:
        calls.append(1 if np.ndim(features) == 2 else len(features))
        return real(self, features)

    monkeypatch.setattr(decoding.ThresholdedWhisperModel, "encode", encode)
    return calls


# --- the worker as a process: runpod's local API on loopback ----------------------------------

def process_env(**extra: str) -> dict[str, str]:
    """The environment a worker or client process gets: the test worker's, without the
    developer's settings."""
    env = {k: v for k, v in os.environ.items() if k not in CLEARED_ENV}
    return env | WORKER_ENV | {"LOCAL_INPUT_DIR": str(ROOT / "samples")} | extra


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def local_api(log: Path, **env: str) -> Iterator[str]:
    """runpod's local API server (`--rp_serve_api`) on a free loopback port; yields its URL.
    Its output goes to `log`: an unread pipe would fill up and block the server."""
    port = free_port()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "src/handler.py", "--rp_serve_api", "--rp_api_host", "127.0.0.1",
             "--rp_api_port", str(port)],
            cwd=ROOT, env=process_env(**env), stdout=out, stderr=subprocess.STDOUT, text=True,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                requests.get(f"{url}/docs", timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.5)
        else:
            proc.kill()
            pytest.fail(f"API server did not start:\n{log.read_text()[-3000:]}")
        try:
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=30)


@pytest.fixture(scope="module")
def api(assets_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with local_api(tmp_path_factory.mktemp("api") / "server.log") as url:
        yield url


# --- a tiny MADLAD-shaped translation model, built here (no MT weights can be downloaded) -----

WORDS = ("hello there how are you today i am fine thank the weather is good we go home now "
         "привет как дела хорошо спасибо hallo wie geht es dir").split()
LANG_TOKENS = ("<2en>", "<2de>", "<2ru>", "<2fr>")


def build_tiny_madlad(root: Path) -> Path:
    import ctranslate2
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {t: i for i, t in enumerate(
        ("<pad>", "</s>", "<unk>", *LANG_TOKENS, ".", "?", ",", *WORDS))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", vocab["</s>"])])
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
        additional_special_tokens=list(LANG_TOKENS))
    source = root / "hf"
    fast.save_pretrained(source)
    transformers.set_seed(0)
    config = transformers.T5Config(
        vocab_size=len(fast), d_model=32, d_ff=64, d_kv=16, num_layers=1, num_heads=2,
        pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    transformers.T5ForConditionalGeneration(config).save_pretrained(source)
    target = root / "tiny-madlad"
    ctranslate2.converters.TransformersConverter(
        str(source), copy_files=["tokenizer.json", "tokenizer_config.json",
                                 "special_tokens_map.json"],
    ).convert(str(target), force=True)
    return target
