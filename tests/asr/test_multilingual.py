"""Code-switching (`multilingual`, issue 21): each speech window decoded in its own language,
detected from the batch's encoder output; `language` on every segment either way."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

import asr
from asr import decoding, transcription
from conftest import MODELS, NO_SAMPLING, english_prompts, normalize, read_16k, russian_prompts

CYRILLIC = re.compile(r"[\u0400-\u04ff]")
LATIN = re.compile(r"[a-zA-Z]")


@pytest.fixture(scope="module")
def codeswitched_call(media_dir: Path) -> tuple[Path, list[Any]]:
    """A real two-voice call, English and Russian turn by turn (held-out prompts: the bench
    tunes on the dev ones)."""
    import conversations

    mix, turns = conversations.codeswitched(0, "heldout", turns=4)
    path = media_dir / "codeswitched.wav"
    soundfile.write(path, mix.audio, conversations.RATE)
    return path, turns


@pytest.fixture(scope="module")
def russian_call() -> np.ndarray:
    """Debian's recorded Russian prompts, one after another (16 kHz)."""
    return np.concatenate([read_16k(p) for p, _ in russian_prompts(4)])


def turn_of(turns: list[Any], start: float, end: float) -> Any:
    middle = (start + end) / 2
    return min(turns, key=lambda t: max(t.start - middle, 0.0, middle - t.end))


def test_each_turn_of_a_codeswitched_call_is_transcribed_in_its_own_language(
        run_job, codeswitched_call, local_file):
    path, turns = codeswitched_call
    out = run_job({"audio_file": local_file(path), "multilingual": True, "diarization": False,
                   **NO_SAMPLING})
    assert "error" not in out, out
    segments = out["segments"]
    texts: dict[int, list[str]] = {}
    for s in segments:
        turn = turn_of(turns, s["start"], s["end"])
        assert s["language"] == turn.language, (s, turn.text)
        assert 0 < s["language_probability"] <= 1
        texts.setdefault(turns.index(turn), []).append(s["text"])
    assert set(texts) == set(range(len(turns)))  # no turn lost
    for k, turn in enumerate(turns):
        said = " ".join(texts[k])
        if turn.language == "en":  # English words, not a Russian spelling of them
            assert LATIN.search(said) and not CYRILLIC.search(said), said
            words = set(normalize(turn.text).split())
            heard = normalize(said).split()
            assert sum(w in words for w in heard) >= len(heard) / 2, (said, turn.text)
        else:
            assert CYRILLIC.search(said), said
    summary = {row["code"]: row for row in out["languages"]}
    assert set(summary) == {"en", "ru"}
    assert sum(r["segments"] for r in out["languages"]) == len(segments)
    assert out["detected_language"] == out["languages"][0]["code"]  # the most speech
    assert out["languages"][0]["speech_seconds"] >= out["languages"][1]["speech_seconds"] > 0


def test_expected_languages_keep_every_window_of_a_codeswitched_call_in_them(
        run_job, local_file, media_dir):
    """Another held-out call, the two languages given (as the environment would give them):
    no window comes back in a third language (base ranks Ukrainian first on some of the
    short Russian pieces of this call), each segment's text in its language's script."""
    import conversations

    mix, turns = conversations.codeswitched(1, "heldout", turns=4)
    path = media_dir / "codeswitched-expected.wav"
    soundfile.write(path, mix.audio, conversations.RATE)
    out = run_job({"audio_file": local_file(path), "multilingual": True, "diarization": False,
                   "align_output": False, "expected_languages": "ru,en", **NO_SAMPLING})
    assert "error" not in out, out
    assert {s["language"] for s in out["segments"]} == {"ru", "en"}
    assert {row["code"] for row in out["languages"]} == {"ru", "en"}
    for s in out["segments"]:
        assert CYRILLIC.search(s["text"]) if s["language"] == "ru" else (
            LATIN.search(s["text"]) and not CYRILLIC.search(s["text"])), s


def test_without_multilingual_every_segment_carries_the_jobs_language(
        run_job, sample_clip, local_file):
    out = run_job({"audio_file": local_file(sample_clip(8)), "diarization": False})
    assert "error" not in out, out
    assert out["segments"]
    assert all(s["language"] == out["detected_language"] for s in out["segments"])
    assert all("language_probability" not in s for s in out["segments"])
    [row] = out["languages"]
    assert row["code"] == out["detected_language"]
    assert row["segments"] == len(out["segments"]) and row["speech_seconds"] > 0


# --- the batch itself ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def two_languages() -> tuple[Any, Any, np.ndarray]:
    """The real model, a multilingual pipeline (its tokenizer's language is a placeholder:
    every row gets its own), and the log-mel of one English and one Russian real window."""
    import torch
    import whisperx
    from whisperx.audio import N_SAMPLES, log_mel_spectrogram

    from asr.vad import PrecomputedVad

    loaded = asr.load_whisper(str(MODELS / "base"), "int8", "cpu")
    pipeline = whisperx.load_model(
        loaded.path, "cpu", compute_type="int8", model=loaded.model, language="fr",
        asr_options={"temperatures": [0.0, 0.5, 1.0], "multilingual": True},
        vad_model=PrecomputedVad(asr.SpeechWindows([], [], True)))
    clips = [np.concatenate([read_16k(p) for p, _ in english_prompts(2)]),
             np.concatenate([read_16k(p) for p, _ in russian_prompts(2)])]
    features = torch.stack([log_mel_spectrogram(c, n_mels=80, padding=N_SAMPLES - len(c))
                            for c in clips])
    return loaded, pipeline, features.numpy()


@pytest.fixture
def decodes(monkeypatch) -> list[tuple[int, list[list[int]], float]]:
    """Every batched decode: its rows, their prompts and its temperature (the real one runs)."""
    calls: list[tuple[int, list[list[int]], float]] = []
    real = decoding.ThresholdedWhisperModel.decode

    def decode(self, encoder_output, prompts, tokenizer, options, temperature):
        calls.append((encoder_output.shape[0], [list(p) for p in prompts], temperature))
        return real(self, encoder_output, prompts, tokenizer, options, temperature)

    monkeypatch.setattr(decoding.ThresholdedWhisperModel, "decode", decode)
    return calls


def run_batch(two_languages, **thresholds) -> decoding.DecodeStats:
    from dataclasses import replace

    loaded, pipeline, features = two_languages
    stats = decoding.DecodeStats()
    token = decoding.decode_stats.set(stats)
    try:
        loaded.model.generate_segment_batched(features, pipeline.tokenizer,
                                              replace(pipeline.options, **thresholds))
        loaded.model.finish_fallback(stats)
    finally:
        decoding.decode_stats.reset(token)
    return stats


def test_a_batch_mixing_languages_is_decoded_in_one_pass_each_row_in_its_language(
        two_languages, encodes, decodes):
    stats = run_batch(two_languages, log_prob_threshold=None, compression_ratio_threshold=None)
    assert encodes == [2]  # detection read the batch's encoder output: no second pass
    assert [(rows, t) for rows, _, t in decodes] == [(2, 0.0)]  # one generate, both rows
    english, russian = stats.results
    assert (english.language, russian.language) == ("en", "ru")
    assert LATIN.search(english.text) and not CYRILLIC.search(english.text)
    assert CYRILLIC.search(russian.text)
    tokenizer = two_languages[1].tokenizer.tokenizer
    prompts = decodes[0][1]
    en, ru = (tokenizer.token_to_id(f"<|{c}|>") for c in ("en", "ru"))
    assert [(en in p, ru in p) for p in prompts] == [(True, False), (False, True)]


def test_a_windows_fallback_redecode_keeps_its_own_language(two_languages, encodes, decodes,
                                                            monkeypatch):
    monkeypatch.setattr(decoding, "SAMPLING_TOPK", 1)  # the draw is not the subject
    stats = run_batch(two_languages, log_prob_threshold=-0.001, no_speech_threshold=None,
                      best_of=1)
    assert stats.redecoded == 2 and stats.fallback_passes >= 1
    assert encodes == [2]  # the fallback reused the rows
    tokenizer = two_languages[1].tokenizer.tokenizer
    en, ru = (tokenizer.token_to_id(f"<|{c}|>") for c in ("en", "ru"))
    # both rows failed and were re-decoded together, each with its own language token
    _, prompts, temperature = next(d for d in decodes if d[2] > 0)
    assert [(en in p, ru in p) for p in prompts] == [(True, False), (False, True)]
    assert [r.language for r in stats.results] == ["en", "ru"]
    assert all(r.temperature > 0 for r in stats.results)


# --- where a mixed window is cut -------------------------------------------------------------

def test_a_mixed_window_is_cut_at_its_pauses_short_stretches_joining_the_nearer_side():
    speech = [(0.0, 2.0), (2.3, 2.8), (4.0, 7.0), (7.1, 7.4), (9.0, 12.0)]
    assert transcription.pieces((0.0, 12.0), speech) == [(0.0, 2.8), (4.0, 7.4), (9.0, 12.0)]
    assert transcription.pieces((0.0, 2.0), [(0.0, 2.0)]) == [(0.0, 2.0)]  # no pause: whole


def test_an_unsure_piece_is_cut_in_two_where_its_speech_level_dips_most():
    """A piece with no pause left may still hold a turn change the VAD bridged: its level dips
    there without falling below the offset. The cut leaves each half at least MIN_PIECE."""
    times = np.arange(0.0, 6.0, 0.017) + 0.0085
    level = np.full_like(times, 0.95)
    level[np.abs(times - 3.7) < 0.15] = 0.45  # the bridged turn change
    level[np.abs(times - 0.5) < 0.1] = 0.05  # deeper, but too near the start to leave a piece
    halves = transcription.halves((0.0, 6.0), (times, level))
    [(a, cut), (cut2, b)] = halves
    assert (a, b) == (0.0, 6.0) and cut == cut2 and abs(cut - 3.7) < 0.15
    margin = transcription.MIN_PIECE
    assert transcription.halves((0.0, 2 * margin - 0.05), (times, level)) == []  # too short
    assert transcription.halves((0.0, 6.0), None) == []  # fixed windows: no VAD level
    # one sentence: its quietest frame is a gap between words, where the level stays high
    level[:] = 0.97
    level[np.abs(times - 2.0) < 0.05] = transcription.BRIDGED_BELOW + 0.01
    assert transcription.halves((0.0, 6.0), (times, level)) == []


def test_a_piece_held_back_to_be_cut_is_never_lost(monkeypatch):
    """The pipeline gives the spans back rounded to the millisecond (whisperx's output): a
    piece held back as mixed, whose dip is then out of reach of the rounded span, is decoded
    whole. The decoder is a stand-in here: what is tested is which spans reach it."""
    from asr.decoding import WindowResult

    times = np.arange(0.0, 5.0, 0.0001)
    level = np.full_like(times, 0.95)
    level[np.abs(times - 3.00025) < 0.00006] = 0.3  # a dip 1 s before the exact end only
    windows = asr.SpeechWindows([(0.0, 1.4), (1.6, 4.0004)], [(0.0, 4.0004)], True,
                                (times, level))
    decoded: list[tuple[float, float]] = []

    def run(pipeline, model, stats, spans, *args, **kwargs):
        out = []
        for i, (a, b) in enumerate(spans):
            mixed = stats.windows + i in stats.cuttable
            if not mixed:
                decoded.append((a, b))
            out.append(((round(a, 3), round(b, 3)),
                        WindowResult([], "" if mixed else "x", 0.0, 0.0, 0.0, 0.0,
                                     mixed=mixed)))
        stats.windows += len(spans)
        return out

    monkeypatch.setattr(transcription, "run_pipeline", run)
    stats = decoding.DecodeStats()
    done = transcription.decode_mixed(None, None, stats, [((0.0, 4.0004), ("en", "ru"))],
                                      windows, np.zeros(1), 8, "en", "transcribe", 30.0)
    assert transcription.halves((1.6, 4.0004), windows.levels)  # held back to be cut...
    assert not transcription.halves((1.6, 4.0), windows.levels)  # ...out of reach rounded
    assert [span for span, r in done if not r.mixed] == [(0.0, 1.4), (1.6, 4.0)]
    assert decoded[-1] == (1.6, 4.0)


def test_a_cut_piece_takes_one_of_its_windows_languages():
    # a mixed en/ru window: its candidates hold 0.9 of the detector's mass, at most three
    window = [("en", 0.52), ("ru", 0.41), ("uk", 0.04), ("de", 0.01)]
    assert decoding.candidates(window) == ("en", "ru")
    assert decoding.candidates([("en", 0.3), ("ru", 0.3), ("uk", 0.2), ("be", 0.2)]) == (
        "en", "ru", "uk")
    # a short Russian piece alone may rank Ukrainian first: its window ruled that out
    piece = [("uk", 0.48), ("ru", 0.45), ("en", 0.05)]
    assert decoding.pick(piece, ("en", "ru")) == ("ru", 0.45)
    assert decoding.pick(piece, None) == ("uk", 0.48)  # a window of the job's own
    assert decoding.pick([("de", 0.9), ("fr", 0.1)], ("en",)) == ("de", 0.9)  # none allowed
    # ...unless the piece rules them out: a window mostly English may have (en, pl) as its
    # candidates; its short Russian turn is not decoded as Polish
    assert decoding.pick([("ru", 0.93), ("uk", 0.04), ("en", 0.01), ("pl", 0.002)],
                         ("en", "pl")) == ("ru", 0.93)


def test_a_short_english_turn_inside_a_mostly_russian_window_keeps_its_words(
        run_job, media_dir, local_file):
    """A window of ~20 s of Russian and one short English turn: Whisper's detector still gives
    it to Russian with > 0.9, and decoded whole in Russian the English turn was lost."""
    from conftest import Conversation

    ru = [read_16k(p) for p, _ in russian_prompts(6)[2:6]]
    (en_path, en_text), = english_prompts(1, skip=5)
    call = Conversation()
    for audio in ru[:3]:
        call.say(audio, "ru").pause(0.3)
    call.pause(0.4).say(read_16k(en_path), "en").pause(0.7).say(ru[3], "ru").pause(0.5)
    path = call.write(media_dir / "mostly-russian.wav")
    out = run_job({"audio_file": local_file(path), "multilingual": True, "diarization": False,
                   **NO_SAMPLING})
    assert "error" not in out, out
    [(start, end, _)] = [t for t in call.turns if t[2] == "en"]
    english = [s for s in out["segments"] if (s["start"] + s["end"]) / 2 > start
               and (s["start"] + s["end"]) / 2 < end]
    said = " ".join(s["text"] for s in english)
    assert english and all(s["language"] == "en" for s in english), out["segments"]
    words = set(normalize(en_text).split())
    assert sum(w in words for w in normalize(said).split()) >= len(words) / 2, said


def test_turns_that_change_language_after_a_fifth_of_a_second_keep_their_words(
        run_job, media_dir, local_file):
    """Russian and English turns 0.2 s apart: the VAD bridges such a change (its level dips but
    stays above vad_offset), so a cut piece has no pause left and still holds two languages.
    Decoded in one of them, a whole English turn was lost; cut where the level dips, each turn
    keeps its words, in its language."""
    from conftest import Conversation

    ru = russian_prompts(6)[3:6]
    en = english_prompts(2, skip=2)
    call = Conversation()
    said: list[str] = []
    for k, ((path, text), language) in enumerate(
            [(ru[0], "ru"), (en[0], "en"), (ru[1], "ru"), (en[1], "en"), (ru[2], "ru")]):
        if k:
            call.pause(0.2)
        call.say(read_16k(path), language)
        said.append(text)
    path = call.write(media_dir / "bridged-turns.wav")
    out = run_job({"audio_file": local_file(path), "multilingual": True, "diarization": False,
                   **NO_SAMPLING})
    assert "error" not in out, out
    for (start, end, language), text in zip(call.turns, said, strict=True):
        heard = [(w["word"], s["language"]) for s in out["segments"] for w in s["words"]
                 if w.get("start") is not None
                 and start - 0.1 <= (w["start"] + w["end"]) / 2 <= end + 0.1]
        assert {lang for _, lang in heard} == {language}, (text, heard)
        words = normalize(" ".join(w for w, _ in heard)).split()
        reference = normalize(text).split()
        assert sum(w in words for w in reference) >= len(reference) / 2, (text, words)


def test_expected_languages_restrict_the_detectors_ranking():
    ranked = [("uk", 0.5), ("ru", 0.3), ("en", 0.1), ("be", 0.1)]
    assert decoding.restrict(ranked, ("en", "ru")) == [("ru", pytest.approx(0.75)),
                                                       ("en", pytest.approx(0.25))]
    assert decoding.restrict(ranked, ()) == ranked
    assert decoding.restrict(ranked, ("xx",)) == ranked  # nothing of it ranked: all of it
    # a cut piece's candidates then come from the expected languages only
    assert decoding.candidates(decoding.restrict(ranked, ("en", "ru"))) == ("ru", "en")


def test_detection_picks_among_the_expected_languages_only(russian_call):
    """Russian speech, with only English and German expected: one of them, however sure
    the detector is that it is Russian; its probability given that it is one of them."""
    from asr.options import LanguageOptions

    loaded = asr.load_whisper(str(MODELS / "base"), "int8", "cpu")
    windows = asr.SpeechWindows([(0.0, len(russian_call) / 16000)],
                                [(0.0, min(len(russian_call) / 16000, 30.0))], True)
    free = asr.detect_language(loaded, russian_call, windows, LanguageOptions(None, 1, 0.5), [])
    assert free.code == "ru"  # the recording is Russian: the restriction is what's tested
    got = asr.detect_language(loaded, russian_call, windows,
                              LanguageOptions(None, 1, 0.5, expected=("en", "de")), [])
    assert got.code in ("en", "de") and got.detected
    assert got.probability is not None and 0.5 <= got.probability <= 1.0
