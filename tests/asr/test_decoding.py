"""The job's one VAD pass, language detection on its windows, batched fallback decoding,
enable_vad=false and the official worker's per-segment fields: real speech, real models."""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
import torch
from tokenizers import Tokenizer
from whisperx.asr import FasterWhisperPipeline
from whisperx.asr import WhisperModel as WhisperxModel

import asr
from asr import decoding, transcription, vad
from asr.decoding import WindowResult
from conftest import ENGLISH_TEXT, MODELS, NO_SAMPLING, SAMPLES, TEST_SEED, ffmpeg, normalize, wer

FAST = {"diarization": False, "align_output": False, "debug": True}
SANE_WER = 0.3  # base int8 on CPU: 0.12 at temperature 0 on whole VAD windows


def words(result: dict) -> str:
    return " ".join(s["text"] for s in result["segments"])


@pytest.fixture(scope="module")
def english_16k(english_wav: Path, media_dir: Path) -> tuple[np.ndarray, Path]:
    path = media_dir / "english-16k.wav"
    ffmpeg("-i", str(english_wav), "-ar", "16000", "-ac", "1", str(path))
    return soundfile.read(path, dtype="float32")[0], path


@pytest.fixture(scope="module")
def sample_scores():
    """Real pyannote VAD scores of the real two-speaker sample (30 s)."""

    audio, _ = soundfile.read(SAMPLES / "sample.wav", dtype="float32")
    scores = asr.load_vad("cpu")({"waveform": torch.from_numpy(audio).unsqueeze(0),
                                      "sample_rate": 16000})
    return scores, len(audio) / 16000


def vad_params(onset=0.3, offset=0.25, on=0.0, off=0.0, pad_on=0.0, pad_off=0.0) -> vad.VadParams:
    return vad.VadParams(onset, offset, on, off, pad_on, pad_off)


def merge(regions: list[tuple[float, float]], gap: float = 0.0) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for a, b in sorted(regions):
        if out and a - out[-1][1] <= gap:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def close(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> bool:
    return len(a) == len(b) and np.allclose(np.array(a), np.array(b), atol=1e-6)


# --- the whisperx / faster-whisper contract decoding.py and vad.py rely on ---------------

def test_pipeline_contract_we_override_is_unchanged():
    # We override WhisperModel.generate_segment_batched; the pipeline calls it so and reads
    # only `text` and `avg_logprob` from it.
    params = list(inspect.signature(WhisperxModel.generate_segment_batched).parameters)
    assert params == ["self", "features", "tokenizer", "options", "encoder_output"]
    assert list(inspect.signature(decoding.ThresholdedWhisperModel.generate_segment_batched)
                .parameters) == params
    forward = inspect.getsource(FasterWhisperPipeline._forward)
    assert ("generate_segment_batched(model_inputs['inputs'], self.tokenizer, self.options)"
            in forward)
    # Its VAD: preprocess_audio, __call__, merge_chunks on the object we hand it; one output
    # segment per window, in window order (our per-window results are zipped with them).
    source = inspect.getsource(FasterWhisperPipeline.transcribe)
    for needle in ("issubclass(type(self.vad_model), Vad)",
                   "waveform = self.vad_model.preprocess_audio(audio)",
                   "merge_chunks =  self.vad_model.merge_chunks",
                   "vad_segments = self.vad_model(", "text = out['text']",
                   "avg_logprob = out['avg_logprob']"):
        assert needle in source, needle


# --- the VAD rules, on real VAD scores of real speech ---------------------------------------

def test_vad_scores_with_heap_trimming_are_whisperx_vad_scores(sample_scores, monkeypatch):
    """vad.scores calls the Inference inside whisperx's VAD pipeline directly (to trim the
    heap after each batch): the same scores as whisperx's own call, and the heap trimmed."""
    from worker import heap

    audio, _ = soundfile.read(SAMPLES / "sample.wav", dtype="float32")
    trims = []
    monkeypatch.setattr(heap, "release", lambda: trims.append(1) or True)
    ours = vad.scores(asr.load_vad("cpu"), audio)
    theirs, _ = sample_scores
    assert ours.data.shape == theirs.data.shape
    assert np.allclose(ours.data, theirs.data, atol=1e-6)
    assert ours.sliding_window.step == theirs.sliding_window.step
    assert trims  # after each batch (one or two here: 21 chunks of 10 s)


def test_padding_and_min_duration_rules_on_real_vad_scores(sample_scores):
    scores, duration = sample_scores
    base = vad.windows_from_scores(scores, vad_params(), 30, duration).speech
    assert len(base) >= 3  # the sample has short and long turns, with pauses between

    padded = vad.windows_from_scores(scores, vad_params(pad_on=0.4, pad_off=0.3), 30, duration)
    expected = merge([(max(0.0, a - 0.4), min(duration, b + 0.3)) for a, b in base])
    assert close(padded.speech, expected), (padded.speech, expected)

    long_only = vad.windows_from_scores(scores, vad_params(on=1.0), 30, duration).speech
    assert close(long_only, [(a, b) for a, b in base if b - a >= 1.0])
    assert len(long_only) < len(base)

    bridged = vad.windows_from_scores(scores, vad_params(off=1.0), 30, duration).speech
    assert close(bridged, merge(base, gap=1.0))
    assert len(bridged) < len(base)


def test_long_regions_are_cut_at_the_quietest_frame(sample_scores):
    scores, duration = sample_scores
    result = vad.windows_from_scores(scores, vad_params(), 5, duration)
    windows = result.windows
    assert all(0 < b - a <= 5 + 1e-6 for a, b in windows), windows
    assert all(b1 <= a2 for (_, b1), (a2, _) in zip(windows, windows[1:], strict=False))
    # every speech region is covered by windows
    for a, b in result.speech:
        assert any(wa <= a + 1e-6 for wa, _ in windows) and any(wb >= b - 1e-6
                                                                 for _, wb in windows)
    # the longest region: contiguous pieces, each cut at the lowest score in its second half
    a, b = max(result.speech, key=lambda r: r[1] - r[0])
    assert b - a > 10
    frames = scores.sliding_window
    times = np.array([frames[i].middle for i in range(scores.data.shape[0])])
    level = scores.data.max(axis=1)
    pieces = vad._split(a, b, times, level, 5)
    assert pieces[0][0] == a and pieces[-1][1] == b and len(pieces) >= 3
    for (s, cut), (nxt, _) in zip(pieces, pieces[1:], strict=False):
        assert cut == nxt and cut - s <= 5
        half = (times > s + 2.5) & (times < s + 5)
        assert level[times == cut][0] == level[half].min()


def test_fixed_windows_cover_the_audio_evenly():
    w = vad.fixed(65.0, 30)
    assert w.windows == [(0.0, 21.667), (21.667, 43.333), (43.333, 65.0)]
    assert w.speech == [(0.0, 65.0)] and w.vad is False
    assert vad.fixed(30.0, 30).windows == [(0.0, 30.0)]
    assert vad.fixed(0.0, 30).windows == []


# --- the silence and fallback rules (faster-whisper's) --------------------------------------

def test_silence_and_fallback_rules():
    options = asr_options(log_prob_threshold=-1.0, no_speech_threshold=0.6,
                          compression_ratio_threshold=2.4, temperatures=[0.0, 0.5, 1.0])

    def result(lp, nsp, cr=1.0, t=0.0):
        return WindowResult([1], " x", lp, nsp, cr, t)

    silent = result(-1.5, 0.9)
    assert not decoding.needs_fallback(silent, options)  # silence is not re-decoded...
    chosen = decoding.choose([silent], options)
    assert chosen.silent and chosen.text == ""  # ...and dropped
    confident = decoding.choose([result(-0.3, 0.9)], options)
    assert not confident.silent and confident.text == " x"  # confident text is kept
    assert decoding.needs_fallback(result(-1.5, 0.1), options)
    assert decoding.needs_fallback(result(-0.2, 0.1, cr=3.0), options)
    # every temperature failed: the best log-prob under the ratio threshold, at the last t
    tries = [result(-1.2, 0.1, cr=3.0, t=0.0), result(-1.4, 0.1, t=0.5),
             result(-1.3, 0.1, t=1.0)]
    best = decoding.choose(tries, options)
    assert (best.avg_logprob, best.temperature) == (-1.3, 1.0)


def asr_options(**kw):
    from faster_whisper.transcribe import TranscriptionOptions

    fields = {f: None for f in TranscriptionOptions.__dataclass_fields__}
    return TranscriptionOptions(**(fields | kw))


# --- through the handler ---------------------------------------------------------------------

GREEDY = {"best_of": 1}  # ctranslate2 takes top-k 1 for greedy search: one hypothesis


@pytest.fixture
def greedy_sampling(monkeypatch) -> dict[str, int]:
    """Sampling at temperature > 0 that can draw only one outcome (top-k 1: every sample is the
    greedy decode, scored as at temperature 1), for tests whose subject is not the draw: a
    seed can't make ctranslate2's draws the same on another CPU or thread layout (nor after
    other tests sampled, see conftest.pytest_configure). Returns the job keys it needs."""
    monkeypatch.setattr(decoding, "SAMPLING_TOPK", 1)
    return GREEDY


@pytest.fixture
def fallbacks(monkeypatch) -> list[tuple[list[WindowResult], WindowResult, Any]]:
    """Every re-decoded window as the real fallback left it: its tries, its result, and the
    job's options."""
    seen: list[tuple[list[WindowResult], WindowResult, Any]] = []
    real = decoding.ThresholdedWhisperModel.fallback

    def fallback(self, stats, queued):
        real(self, stats, queued)
        _, _, options = stats.context
        seen.extend((list(p.tries), stats.results[p.index], options) for p in queued)

    monkeypatch.setattr(decoding.ThresholdedWhisperModel, "fallback", fallback)
    return seen


@pytest.mark.parametrize("force", [{"log_prob_threshold": -0.01},
                                   {"compression_ratio_threshold": 0.5}])
def test_failing_windows_are_redecoded_together_reusing_the_encoder_output(
        run_job, english_16k, local_file, encodes, force, monkeypatch, greedy_sampling):
    monkeypatch.setattr(decoding, "STABLE_SIMILARITY", 1.01)  # no early stop: every pass runs
    result = run_job({"audio_file": local_file(english_16k[1]), "language": "en",
                      "chunk_size": 6, "temperature_increment_on_fallback": 0.5} | FAST | force
                     | greedy_sampling)
    assert "error" not in result, result.get("error")
    decode = result["debug_info"]["decode"]
    assert decode["windows"] >= 3
    # every window failed at every temperature: one batched pass per temperature (0.5, 1.0)
    # and fallback batch (2 x batch_size sampled sequences), not one per window, and the
    # batch was encoded once
    assert decode["redecoded"] == decode["windows"]
    best_of = result["debug_info"]["model"]["asr_options"]["best_of"]
    group = decoding.fallback_batch(decode["batch_size"], asr_options(best_of=best_of))
    assert decode["fallback_passes"] == 2 * -(-decode["windows"] // group)
    assert encodes == [decode["windows"]]
    assert {s["temperature"] for s in result["segments"]} == {1.0}
    assert wer(ENGLISH_TEXT, words(result)) <= SANE_WER, words(result)


def assert_fallback_rule(tries: list[WindowResult], result: WindowResult, options: Any,
                         limit: int) -> bool:
    """The fallback of one window followed rules 3-4 of decoding.py, whatever its samples
    said: it went up the schedule one temperature at a time while each try failed and did not
    repeat the one before; it stopped at a try that passed, or repeated the one before
    (stable), or at the last temperature; a last try that failed left the best try by
    log-probability (under the ratio threshold if any is), reported at the last temperature.
    Returns whether it stopped as stable."""
    schedule = options.temperatures
    assert [t.temperature for t in tries] == schedule[: len(tries)] and len(tries) >= 2
    assert decoding.needs_fallback(tries[0], options)  # why it was queued
    for before, try_ in zip(tries, tries[1:-1], strict=False):
        assert decoding.needs_fallback(try_, options)
        assert not decoding.is_stable(before, try_, limit)
    last = tries[-1]
    failed = decoding.needs_fallback(last, options)
    stable = failed and decoding.is_stable(tries[-2], last, limit)
    assert not failed or stable or len(tries) == len(schedule)
    kept = last
    if failed:
        cr = options.compression_ratio_threshold
        pool = [t for t in tries if cr is None or t.compression_ratio <= cr] or tries
        kept = max(pool, key=lambda t: t.avg_logprob)
    assert (result.tokens, result.avg_logprob) == (kept.tokens, kept.avg_logprob)
    assert result.silent == decoding.is_silence(kept.no_speech_prob, kept.avg_logprob, options)
    assert result.text == ("" if result.silent else kept.text)
    assert result.temperature == last.temperature
    return stable


@pytest.mark.parametrize("sampling", ["greedy", "sampled"])
def test_a_stable_window_stops_its_fallback_and_keeps_its_best_try(
        run_job, english_16k, local_file, encodes, fallbacks, monkeypatch, sampling):
    # clear read speech said confidently: a threshold every window fails at every temperature
    # (as repetitive real speech fails the gzip rule); a re-decode that says the same words
    # is stable and stops the window's fallback
    greedy = {}
    if sampling == "greedy":  # every sample the same: the second re-decode repeats the first
        monkeypatch.setattr(decoding, "SAMPLING_TOPK", 1)
        greedy = GREEDY
    result = run_job({"audio_file": local_file(english_16k[1]), "language": "en",
                      "chunk_size": 6, "compression_ratio_threshold": 0.5} | FAST | greedy)
    assert "error" not in result, result.get("error")
    decode = result["debug_info"]["decode"]
    assert decode["redecoded"] == decode["windows"] == len(fallbacks) >= 3
    assert encodes == [decode["windows"]]
    model = asr.load_whisper(str(MODELS / "base"), "int8", "cpu").model
    limit = decoding.token_limit(model.max_length, 4)  # no initial prompt: the SOT sequence
    # the rule held for every window, whatever the samples were (sampled: the real draw, of
    # which a seed fixes nothing across machines), and `stable` counts the windows it stopped
    stable = [assert_fallback_rule(tries, r, options, limit) for tries, r, options in fallbacks]
    assert decode["stable"] == sum(stable)
    best_of = result["debug_info"]["model"]["asr_options"]["best_of"]
    group = decoding.fallback_batch(decode["batch_size"], asr_options(best_of=best_of))
    groups = -(-decode["windows"] // group)
    longest = max(len(tries) for tries, _, _ in fallbacks) - 1
    assert groups <= decode["fallback_passes"] <= groups * longest  # batched, never per window
    if sampling == "greedy":
        # forced: the re-decodes at 0.2 and 0.4 are the same decode, so every window is stable
        # by 0.4 and keeps its best try (no window goes on to 1.0), and that try is real text
        assert decode["stable"] == decode["windows"]
        assert all(len(tries) <= 3 for tries, _, _ in fallbacks)
        assert decode["fallback_passes"] <= 2 * groups
        assert max(s["temperature"] for s in result["segments"]) <= 0.4
        assert wer(ENGLISH_TEXT, words(result)) <= SANE_WER, words(result)


def test_stability_is_the_same_words_and_never_a_loop_at_the_length_limit():
    def result(text, tokens=10):
        return WindowResult([1] * tokens, text, -0.2, 0.0, 3.0, 0.2)

    said = " Enter the operator number and press pound. Enter the operator number."
    assert decoding.is_stable(result(said), result(said.upper().replace(".", ",")), 100)
    one_word = said.replace("press", "pressed")  # one sampled spelling: the same text
    assert decoding.is_stable(result(said), result(one_word), 100)
    assert not decoding.is_stable(result(said), result(" Thank you for calling."), 100)
    assert not decoding.is_stable(result(said), result(said, tokens=100), 100)  # a loop
    assert not decoding.is_stable(result(""), result(""), 100)
    # a stable window that still fails keeps its best try, at the last temperature tried
    options = asr_options(log_prob_threshold=-1.0, no_speech_threshold=0.6,
                          compression_ratio_threshold=2.4, temperatures=[0.0, 0.2, 0.4])
    first = WindowResult([1], said, -0.1, 0.0, 3.0, 0.0)
    second = WindowResult([1], one_word, -0.3, 0.0, 3.0, 0.2)
    chosen = decoding.choose([first, second], options)
    assert (chosen.text, chosen.temperature) == (said, 0.2)


@pytest.mark.parametrize("prompt_words", [0, 40])
def test_the_length_limit_is_where_ctranslate2_stops_a_decode(english_16k, prompt_words):
    """A decode that runs to the limit is a loop (never stable): the limit must be the one
    ctranslate2 applies, half of max_length (224 for Whisper), not max_length."""
    from faster_whisper.audio import pad_or_trim


    model = asr.load_whisper(str(MODELS / "base"), "int8", "cpu").model
    features = pad_or_trim(model.feature_extractor(english_16k[0][: 30 * 16000]))
    encoded = model.encode(features[None])
    sot = [50258, 50259, 50359, 50363]  # <|startoftranscript|><|en|><|transcribe|><|notimestamps|>
    previous = model.hf_tokenizer.encode(" one" * prompt_words, add_special_tokens=False).ids
    prompt = ([50361] + previous + sot) if previous else sot  # <|startofprev|> ...
    for max_length in (20, 60, 100):
        ids = model.model.generate(encoded, [prompt], max_length=max_length, beam_size=1,
                                   suppress_blank=False)[0].sequences_ids[0]
        limit = decoding.token_limit(max_length, len(prompt))
        assert len(ids) == limit, (max_length, len(prompt), len(ids))


@pytest.mark.parametrize("sampling", ["greedy", "sampled"])
def test_temperature_above_zero_samples_every_window_in_one_batch(
        run_job, english_16k, local_file, encodes, monkeypatch, sampling):
    greedy = {}
    if sampling == "greedy":
        monkeypatch.setattr(decoding, "SAMPLING_TOPK", 1)
        greedy = GREEDY
    # every window fails log_prob_threshold, but there is no fallback schedule to go on with
    result = run_job({"audio_file": local_file(english_16k[1]), "language": "en",
                      "chunk_size": 6, "temperature": 0.4, "log_prob_threshold": -0.01,
                      "temperature_increment_on_fallback": None} | FAST | greedy)
    assert "error" not in result, result.get("error")
    decode = result["debug_info"]["decode"]
    assert decode["redecoded"] == 0 and decode["fallback_passes"] == 0
    assert encodes == [decode["windows"]]
    assert {s["temperature"] for s in result["segments"]} == {0.4}
    if sampling == "greedy":
        # only where the decode can't be a bad draw: real sampling at 0.4 gave WER 0.16-0.24
        # in 11 draws of 12 here, and 2.86 (a repetition loop) in one
        assert wer(ENGLISH_TEXT, words(result)) <= SANE_WER, words(result)


@pytest.fixture(scope="module")
def speech_then_noise(english_16k, media_dir) -> Path:
    """16.8 s of speech, then 20 s of faint noise (a room with nobody talking), drawn from
    TEST_SEED: its windows are silence by a margin (seed 0: no-speech 0.82-0.86 against 0.6,
    log-prob -1.9 against -1; seeds 1 and 2 dropped them too)."""
    audio, _ = english_16k
    noise = 0.003 * np.random.default_rng(TEST_SEED).standard_normal(20 * 16000)
    path = media_dir / "speech-then-noise.wav"
    soundfile.write(path, np.concatenate([audio, noise.astype("float32")]), 16000)
    return path


def test_enable_vad_false_decodes_fixed_windows_and_drops_the_silent_ones(
        run_job, speech_then_noise, english_16k, local_file):
    result = run_job({"audio_file": local_file(speech_then_noise), "enable_vad": False,
                      "chunk_size": 10} | FAST)
    assert "error" not in result, result.get("error")
    decode = result["debug_info"]["decode"]
    assert decode["enable_vad"] is False
    assert decode["windows"] == math.ceil(result["duration"] / 10)
    assert decode["dropped_as_silence"] >= 1
    speech_end = len(english_16k[0]) / 16000
    assert all(s["start"] < speech_end for s in result["segments"]), result["segments"]
    assert result["segments"][0]["start"] == 0.0  # no VAD: windows start at 0
    assert wer(ENGLISH_TEXT, words(result)) <= SANE_WER, words(result)
    assert not any("enable_vad" in w for w in result["warnings"])


def test_segments_carry_the_official_worker_fields_through_alignment(run_job, local_file,
                                                                     sample_clip):
    clip = local_file(sample_clip(16))
    # the two jobs' windows are compared token for token: beam search only, no draw
    windows = run_job({"audio_file": clip, "language": "en", "chunk_size": 8} | FAST
                      | NO_SAMPLING)
    aligned = run_job({"audio_file": clip, "language": "en", "chunk_size": 8,
                       "align_output": True, "diarization": False, "debug": True}
                      | NO_SAMPLING)
    tokenizer = Tokenizer.from_file(str(MODELS / "base" / "tokenizer.json"))
    by_seek = {}
    for result in (windows, aligned):
        segments = result["segments"]
        assert [s["id"] for s in segments] == list(range(len(segments)))
        for s in segments:
            assert set(s) >= {"id", "seek", "start", "end", "text", "tokens", "temperature",
                              "avg_logprob", "compression_ratio", "no_speech_prob"}
    for s in windows["segments"]:
        assert s["seek"] == round(s["start"] * 100)  # frames (10 ms) of the window start
        assert tokenizer.decode(s["tokens"]).strip() == s["text"]
        assert s["temperature"] == 0.0 and 0 <= s["no_speech_prob"] <= 1
        by_seek[s["seek"]] = s
    # alignment re-cut the windows into sentences; they share out their window's tokens
    assert len(aligned["segments"]) > len(windows["segments"])
    pieces: dict[int, list[int]] = {}
    for s in aligned["segments"]:
        parent = by_seek[s["seek"]]
        assert parent["start"] <= s["start"] and s["end"] <= parent["end"] + 0.01
        assert normalize(tokenizer.decode(s["tokens"])) == normalize(s["text"])
        assert normalize(s["text"]) in normalize(parent["text"])
        pieces.setdefault(s["seek"], []).extend(s["tokens"])
    assert pieces == {seek: s["tokens"] for seek, s in by_seek.items()}


# --- language detection on the job's windows -------------------------------------------------

@pytest.fixture(scope="module")
def russian_after_silence(russian_speech, media_dir) -> Path:
    audio, rate = soundfile.read(russian_speech[0], dtype="float32")
    path = media_dir / "russian-after-silence.wav"
    soundfile.write(path, np.concatenate([np.zeros(40 * rate, dtype="float32"), audio]), rate)
    return path


def test_language_is_detected_on_the_first_speech_window(run_job, russian_after_silence,
                                                         local_file):
    result = run_job({"audio_file": local_file(russian_after_silence)} | FAST)
    assert "error" not in result, result.get("error")
    assert result["detected_language"] == "ru" and result["language_probability"] > 0.9
    language = result["debug_info"]["language"]
    assert language["detected"] is True and language["windows"] == 1
    assert result["segments"][0]["start"] >= 39.5  # the silence gave no window


def test_language_majority_over_max_tries_windows(run_job, russian_speech, local_file):
    result = run_job({"audio_file": local_file(russian_speech[0]), "chunk_size": 8,
                      "language_detection_min_prob": 1.0, "language_detection_max_tries": 2}
                     | FAST)
    assert result["detected_language"] == "ru"
    assert result["debug_info"]["language"]["windows"] == 2


def test_no_speech_means_no_detection_on_padding(run_job, media_dir, local_file):
    path = media_dir / "silence-6s.wav"
    soundfile.write(path, np.zeros(16000 * 6, dtype="float32"), 16000, subtype="PCM_16")
    result = run_job({"audio_file": local_file(path)} | FAST)
    assert "error" not in result, result.get("error")
    assert result["segments"] == [] and result["transcription"] == ""
    assert result["detected_language"] == asr.NO_SPEECH_LANGUAGE == "en"
    assert result["language_probability"] is None
    assert result["debug_info"]["language"] == {
        "code": "en", "probability": None, "detected": False, "windows": 0}
    assert ("language detection skipped: no speech; detected_language is 'en' by default."
            in result["warnings"])
    assert result["debug_info"]["decode"]["windows"] == 0


# --- one VAD pass per job ----------------------------------------------------------------------

def test_one_vad_pass_serves_detection_transcription_translation_and_the_retry(
        run_job, russian_speech, local_file, monkeypatch):
    vad_calls, batches = [], []
    real_vad, real_transcribe = vad.scores, transcription.decode_windows

    def counting_vad(*args, **kwargs):
        vad_calls.append(1)
        return real_vad(*args, **kwargs)

    def oom_once(*args, **kwargs):
        batches.append(inspect.signature(real_transcribe).bind(*args, **kwargs)
                       .arguments["batch_size"])
        if len(batches) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory.")
        return real_transcribe(*args, **kwargs)

    monkeypatch.setattr(vad, "scores", counting_vad)
    monkeypatch.setattr(transcription, "decode_windows", oom_once)
    result = run_job({"audio_file": local_file(russian_speech[0]), "translate": True,
                      "temperature_increment_on_fallback": None} | FAST)
    assert "error" not in result, result.get("error")
    assert result["detected_language"] == "ru" and result["translation"]
    assert batches == [32, 16, 32]  # OOM, retry, translation pass
    assert vad_calls == [1]


# --- a mixed batch: only the failing windows are decoded again ------------------------------

@pytest.fixture
def batched_run(english_16k):
    """Runs the model's batched decoding on real 5 s windows of English speech the way
    whisperx's pipeline does, `batch` windows per call, then finishes the job's fallback."""
    from dataclasses import replace

    import whisperx
    from whisperx.audio import N_SAMPLES, log_mel_spectrogram


    loaded = asr.load_whisper(str(MODELS / "base"), "int8", "cpu")
    audio, _ = english_16k
    windows = vad.fixed(len(audio) / 16000, 5)
    pipeline = whisperx.load_model(
        loaded.path, "cpu", compute_type="int8", model=loaded.model, language="en",
        asr_options={"temperatures": [0.0, 0.5, 1.0]}, vad_model=vad.PrecomputedVad(windows))
    features = torch.stack([
        log_mel_spectrogram(clip, n_mels=80, padding=N_SAMPLES - clip.shape[0])
        for clip in (audio[int(a * 16000): int(b * 16000)] for a, b in windows.windows)])

    def run(batch: int | None = None, score_tokens: bool = False, **thresholds):
        stats = decoding.DecodeStats(score_tokens=score_tokens)
        token = decoding.decode_stats.set(stats)
        batch = batch or len(features)
        texts: list[str] = []
        try:
            for first in range(0, len(features), batch):
                texts += loaded.model.generate_segment_batched(
                    features[first: first + batch], pipeline.tokenizer,
                    replace(pipeline.options, **thresholds))["text"]
            loaded.model.finish_fallback(stats)
        finally:
            decoding.decode_stats.reset(token)
        return texts, stats

    return run, len(features)


def logprob_threshold_between(stats) -> tuple[float, list[int]]:
    """A log-prob threshold between the windows' own, in the widest gap that leaves at least
    two windows below it and one above: a window that fails it, fails it by a margin (the
    same window decoded in another batch may score a little differently)."""
    logprobs = [r.avg_logprob for r in stats.results]
    ranked = sorted(logprobs)
    k = max(range(2, len(ranked)), key=lambda k: ranked[k] - ranked[k - 1])
    threshold = (ranked[k - 1] + ranked[k]) / 2
    return threshold, [i for i, lp in enumerate(logprobs) if lp < threshold]


def test_only_failing_windows_are_redecoded_from_their_rows_of_the_encoder_output(
        batched_run, encodes):
    run, n = batched_run
    plain, stats_first = run(log_prob_threshold=None, compression_ratio_threshold=None)
    threshold, failing = logprob_threshold_between(stats_first)
    _, stats = run(log_prob_threshold=threshold, no_speech_threshold=None)
    assert 0 < len(failing) < n and stats_first.redecoded == 0
    assert stats.redecoded == len(failing) and stats.fallback_passes >= 1
    assert encodes == [n] * 2  # one encoder pass per call: rows were reused
    for i, result in enumerate(stats.results):
        if i not in failing:  # passing windows keep their first result
            assert result.text == plain[i] and result.temperature == 0.0
        else:
            assert result.temperature > 0


def test_every_windows_final_tokens_get_their_log_probabilities(batched_run, encodes):
    """For cutting windows into segments: passing windows and those the fallback chose all
    carry one log-probability per token, from no extra encoder pass."""
    run, n = batched_run
    _, plain = run(log_prob_threshold=None, compression_ratio_threshold=None)
    assert all(r.token_logprobs == () for r in plain.results)  # not asked: not scored
    threshold, failing = logprob_threshold_between(plain)
    _, stats = run(score_tokens=True, log_prob_threshold=threshold,
                   no_speech_threshold=None)
    assert stats.redecoded == len(failing) > 0
    assert sum(encodes) == 2 * n  # each window encoded once per run
    for r in stats.results:
        assert len(r.token_logprobs) == len(r.tokens) > 0
        assert all(-50 < lp <= 0 for lp in r.token_logprobs)
    assert {i for i, r in enumerate(stats.results) if r.temperature > 0} == set(failing)


def test_failing_windows_of_different_batches_are_redecoded_together(
        batched_run, encodes, monkeypatch):
    run, n = batched_run
    batch, best_of = 1, 1  # one window per pipeline batch; a fallback batch of 2 windows
    # first tries decoded as in the run below (one window per batch): the same scores
    _, stats_first = run(batch, log_prob_threshold=None, compression_ratio_threshold=None)
    threshold, failing = logprob_threshold_between(stats_first)
    assert decoding.fallback_batch(batch, asr_options(best_of=best_of)) == 2
    assert len(failing) >= 2
    sizes: list[tuple[float, int]] = []
    real = decoding.ThresholdedWhisperModel.decode

    def decode(self, encoder_output, prompt, tokenizer, options, temperature):
        sizes.append((temperature, encoder_output.shape[0]))
        return real(self, encoder_output, prompt, tokenizer, options, temperature)

    monkeypatch.setattr(decoding.ThresholdedWhisperModel, "decode", decode)
    monkeypatch.setattr(decoding, "STABLE_SIMILARITY", 1.01)  # no early stop: every pass runs
    encodes.clear()
    _, stats = run(batch, best_of=best_of, log_prob_threshold=threshold,
                   no_speech_threshold=None)
    # windows that failed their first try in different batches wait for each other: the first
    # fallback pass (0.5) takes two of them at a time, the last one what is left at the end
    firsts = [size for t, size in sizes if t == 0.5]
    assert sum(firsts) == len(failing) == stats.redecoded
    assert firsts == [2] * (len(failing) // 2) + [1] * (len(failing) % 2)
    assert len(encodes) == n  # and nothing was encoded again
    assert all(stats.results[i].temperature > 0 for i in failing)


def test_a_fallback_batch_samples_at_most_twice_batch_size_sequences():
    assert decoding.fallback_batch(8, asr_options(best_of=5)) == 3
    assert decoding.fallback_batch(16, asr_options(best_of=5)) == 6
    assert decoding.fallback_batch(8, asr_options(best_of=1)) == 16
    assert decoding.fallback_batch(1, asr_options(best_of=5)) == 1


def test_taking_rows_copies_them_from_the_encoder_output():

    model = asr.load_whisper(str(MODELS / "base"), "int8", "cpu").model
    rng = np.random.default_rng(0)
    features = rng.standard_normal((3, 80, 3000)).astype("float32")
    full = model.encode(features)
    rows, memory = model.take(full, features, [0, 2])
    assert memory is not None  # taken from the batch's output, not encoded again
    assert np.array_equal(np.asarray(rows), np.asarray(full)[[0, 2]])
