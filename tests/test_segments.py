"""Each segment's decoding fields are its own when a window is cut into several segments
(sentences, speakers): its tokens, their mean log-probability, the compression ratio of its
text; `seek`, `temperature` and `no_speech_prob` stay the window's."""

from __future__ import annotations

import math

import pytest
from faster_whisper.transcribe import get_compression_ratio
from tokenizers import Tokenizer

from asr import transcription
from asr.decoding import WindowResult
from conftest import MODELS, SAMPLES
from output import segments


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.from_file(str(MODELS / "base" / "tokenizer.json"))


def squash(text: str) -> str:
    return "".join(text.split())


def window(tokenizer: Tokenizer, text: str, start: float = 0.0, end: float = 30.0,
           logprobs: list[float] | None = None) -> transcription.Window:
    """A decoder result the test builds: `text`'s real tokens, with chosen log-probs."""
    tokens = tokenizer.encode(text, add_special_tokens=False).ids
    logprobs = logprobs or [-0.01 * (i + 1) for i in range(len(tokens))]
    result = WindowResult(tokens, tokenizer.decode(tokens), -0.5, 0.02, 1.5, 0.2,
                          token_logprobs=tuple(logprobs))
    return transcription.window(start, end, result, 100, tokenizer.decode)


def check_partition(cut: list[segments.Segment], w: transcription.Window, tokenizer: Tokenizer
                    ) -> None:
    """The properties every cut of a window has (the issue's list), pieces in text order."""
    assert [t for s in cut for t in s["tokens"]] == list(w.tokens)  # all of them, once
    offset = 0
    for s in cut:
        assert squash(tokenizer.decode(s["tokens"])) == squash(s["text"])
        own = w.token_logprobs[offset: offset + len(s["tokens"])]
        offset += len(s["tokens"])
        assert s["avg_logprob"] == round(sum(own) / len(own), 4)
        assert s["compression_ratio"] == round(get_compression_ratio(s["text"]), 4)
        assert (s["seek"], s["temperature"], s["no_speech_prob"]) == (
            w.seek, w.temperature, round(w.no_speech_prob, 4))


def test_sentences_and_speaker_runs_share_out_their_window(tokenizer):
    text = " Hello. Hello. Oh, hello, I didn't know you were there. Neither did I. Okay."
    w = window(tokenizer, text, 6.7, 29.9)
    pieces = [{"start": 6.7, "end": 7.2, "text": "Hello.", "speaker": "A"},
              {"start": 7.3, "end": 8.0, "text": "Hello.", "speaker": "B"},  # a repeat
              {"start": 8.1, "end": 9.0, "text": "Oh, hello,", "speaker": "A"},
              {"start": 9.0, "end": 12.0, "text": "I didn't know you were there.",
               "speaker": "B"},
              {"start": 12.5, "end": 13.0, "text": "Neither did I. Okay.", "speaker": "A"}]
    cut = segments.partition(pieces, [w])
    check_partition(cut, w, tokenizer)
    assert [s["text"] for s in cut] == [p["text"] for p in pieces]
    assert [s["speaker"] for s in cut] == ["A", "B", "A", "B", "A"]
    # the pieces' own means of the log-probs the test chose (-0.01 per token), not the
    # window's -0.5 (" were", " ", "there": a whitespace-only token goes with the next)
    assert [s["avg_logprob"] for s in cut] == [-0.015, -0.035, -0.065, -0.13, -0.205]


def test_pieces_out_of_order_or_untimed_still_get_their_own_tokens(tokenizer):
    # whisperx's aligner sorts sentences by time, which can swap two; an untimed piece
    # follows the one before it
    w = window(tokenizer, " One two three. Four five. Six seven eight nine.")
    pieces = [{"start": 5.0, "end": 6.0, "text": "Four five."},
              {"start": 1.0, "end": 2.0, "text": "One two three."},
              {"start": None, "end": None, "text": "Six seven eight nine."}]
    cut = segments.partition(pieces, [w])
    check_partition(sorted(cut, key=lambda s: w.text.index(s["text"])), w, tokenizer)


def test_a_window_that_stays_whole_keeps_faster_whispers_values(tokenizer):
    w = window(tokenizer, " Just one sentence here.")
    (whole,) = segments.partition([{"start": 0.5, "end": 3.0, "text": w.text}], [w])
    assert whole["tokens"] == list(w.tokens)
    assert (whole["avg_logprob"], whole["compression_ratio"]) == (-0.5, 1.5)
    assert w.segment() == {"start": 0.0, "end": 30.0, "text": w.text, "seek": 0,
                           "tokens": list(w.tokens), "temperature": 0.2, "avg_logprob": -0.5,
                           "compression_ratio": 1.5, "no_speech_prob": 0.02}


def test_language_without_spaces_and_characters_split_across_tokens(tokenizer):
    text = "我们今天去公园。你想一起去吗？好的，我们走吧。"
    tokens = tokenizer.encode(text, add_special_tokens=False).ids
    w = window(tokenizer, text)
    assert "".join(w.token_text) == tokenizer.decode(tokens) == text
    # byte-level BPE cuts some characters across tokens: those carry ""
    assert "" in w.token_text and len(w.token_text) == len(tokens)
    pieces = [{"start": 0.0, "end": 1.0, "text": "我们今天去公园。"},
              {"start": 1.0, "end": 2.0, "text": "你想一起去吗？"},
              {"start": 2.0, "end": 3.0, "text": "好的，我们走吧。"}]
    check_partition(segments.partition(pieces, [w]), w, tokenizer)


def test_pieces_find_their_window_and_ids_are_renumbered(tokenizer):
    windows = [window(tokenizer, " First window. Still first.", 0.0, 10.0),
               window(tokenizer, " Second window here. Its end.", 12.0, 20.0)]
    pieces = [{"id": 7, "start": 1.0, "end": 4.0, "text": "First window."},
              {"start": 4.0, "end": 10.2, "text": "Still first."},  # overruns the edge
              {"start": 9.9, "end": 10.4, "text": "Second window here."},  # midpoint in w0
              {"start": 13.0, "end": 19.0, "text": "Its end."}]
    out = segments.number(segments.partition(pieces, windows))
    assert [s["id"] for s in out] == [0, 1, 2, 3] and list(out[0])[0] == "id"
    assert [s["seek"] for s in out] == [0, 0, 1200, 1200]
    check_partition(out[:2], windows[0], tokenizer)
    check_partition(out[2:], windows[1], tokenizer)


def test_diarized_window_cut_into_many_segments_each_with_its_own_fields(
        run_job, local_file, tokenizer):
    """pyannote's call with diarization and word timestamps: its windows are cut into
    sentences and speaker runs, and each piece's fields are its own."""
    sample = local_file(SAMPLES / "sample.wav")
    # temperature 0 only: both jobs decode the same windows (no sampled fallback)
    decode = {"audio_file": sample, "language": "en", "temperature_increment_on_fallback": None}
    windows = run_job(decode | {"align_output": False, "diarization": False})
    diarized = run_job(decode | {"diarization": True, "word_timestamps": True})
    assert "error" not in windows and "error" not in diarized
    by_seek: dict[int, list[dict]] = {}
    for s in diarized["segments"]:
        by_seek.setdefault(s["seek"], []).append(s)
    assert max(len(cut) for cut in by_seek.values()) >= 3  # the case: 16 pieces
    assert {s["seek"] for s in windows["segments"]} == set(by_seek)
    for w in windows["segments"]:
        cut = by_seek[w["seek"]]
        assert [t for s in cut for t in s["tokens"]] == w["tokens"]
        for s in cut:
            assert squash(tokenizer.decode(s["tokens"])) == squash(s["text"]), s
            assert s["compression_ratio"] == round(get_compression_ratio(s["text"]), 4)
            assert (s["temperature"], s["no_speech_prob"]) == (w["temperature"],
                                                              w["no_speech_prob"])
            assert s["avg_logprob"] < 0
        if len(cut) >= 3:  # their own log-probs: not one value copied to every piece
            assert len({s["avg_logprob"] for s in cut}) > 1


# --- word probability (issue 21 §3) -----------------------------------------------------------

def test_each_word_gets_the_mean_probability_of_the_tokens_that_spell_it(tokenizer):
    text = " Hello, world. It's unbelievable."
    tokens = tokenizer.encode(text, add_special_tokens=False).ids
    logprobs = [-0.1 * (i + 1) for i in range(len(tokens))]
    w = window(tokenizer, text, logprobs=logprobs)
    words = [{"word": word, "start": float(i), "end": i + 0.5}
             for i, word in enumerate(text.split())]
    pieces = [{"start": 0.0, "end": 1.6, "text": "Hello, world.", "words": words[:2]},
              {"start": 2.0, "end": 3.6, "text": "It's unbelievable.", "words": words[2:]}]
    cut = segments.partition(pieces, [w])
    # the expected shares, from the tokens' own texts: each word owns the tokens whose first
    # non-space character lies in it
    spans, owner, pos = [], [], 0
    flat = "".join(squash(t) for t in w.token_text)
    for word in text.split():
        spans.append((flat.index(word, pos), flat.index(word, pos) + len(word)))
        pos = spans[-1][1]
    pos = 0
    for t in w.token_text:
        owner.append(next(k for k, (a, b) in enumerate(spans) if a <= pos < b)
                     if squash(t) else None)
        pos += len(squash(t))
    got = [word["probability"] for s in cut for word in s["words"]]
    for k, p in enumerate(got):
        mine = [math.exp(lp) for lp, o in zip(logprobs, owner, strict=True) if o == k]
        assert p == round(sum(mine) / len(mine), 4)
    assert all(0.0 < p <= 1.0 for p in got) and len(got) == 4
    # a multi-token word: "unbelievable." spans several tokens, all of them counted
    assert sum(o == 3 for o in owner) >= 2


def test_words_that_already_have_a_probability_keep_it(tokenizer):
    w = window(tokenizer, " Keep mine.")
    words = [{"word": "Keep", "start": 0.0, "end": 0.4, "probability": 0.25},
             {"word": "mine.", "start": 0.5, "end": 0.9}]
    (whole,) = segments.partition([{"start": 0.0, "end": 1.0, "text": w.text, "words": words}],
                                  [w])
    assert whole["words"][0]["probability"] == 0.25
    assert 0.0 < whole["words"][1]["probability"] <= 1.0
