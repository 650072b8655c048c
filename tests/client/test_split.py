"""The pure part of `whisperx-client --split` (client/split.py) on hand-built results: where
cuts go, offsets, renumbering, speaker linking. The run through real workers is in
tests/client/test_bulk_client.py."""

from __future__ import annotations

import numpy as np
import pytest

from client import split
from client.split import Chunk, ChunkSpeaker


def test_cuts_go_in_the_middle_of_the_longest_pause_near_each_boundary() -> None:
    # speech with pauses at 50-51 (1 s), 58-60.5 (2.5 s, the longest near 60), 64-64.4
    speech = [(1.0, 50.0), (51.0, 58.0), (60.5, 64.0), (64.4, 130.0), (131.0, 170.0)]
    chunks = split.plan(speech, 175.0, 60.0)
    assert chunks[0] == Chunk(0, 0.0, 59.25)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert chunks[-1].end == 175.0
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert a.end == b.start
        assert not any(s < a.end < e for s, e in speech)  # never inside speech
    # the next boundary (119.25) has no pause within ±12 s: the nearest pause further on
    assert chunks[1] == Chunk(1, 59.25, 130.5)


def test_no_pause_no_cut_and_no_sliver_at_the_end() -> None:
    assert split.plan([(0.5, 299.0)], 300.0, 60.0) == [Chunk(0, 0.0, 300.0)]
    assert split.plan([], 10.0, 60.0) == [Chunk(0, 0.0, 10.0)]
    # a pause 5 s before the end is not cut at: the last chunk would be a sliver
    assert split.plan([(0.0, 64.0), (65.0, 70.0)], 70.0, 60.0) == [Chunk(0, 0.0, 70.0)]


def test_chunks_share_the_file_evenly_rather_than_end_in_a_short_one() -> None:
    # 150 s with a pause every 10 s, chunks of about 60 s: two of ~75 s, not 60 + 60 + 30
    speech = [(t + 0.5, t + 9.5) for t in range(0, 150, 10)]
    chunks = split.plan(speech, 150.0, 60.0)
    assert len(chunks) == 2 and all(60 <= c.end - c.start <= 90 for c in chunks)
    # 300 s: five of ~60 s, each within ±20 % of it
    chunks = split.plan([(t + 0.5, t + 9.5) for t in range(0, 300, 10)], 300.0, 60.0)
    assert len(chunks) == 5 and all(48 <= c.end - c.start <= 72 for c in chunks)


def test_offsets_reach_segments_words_chars_seek_and_turns() -> None:
    segments = [{"id": 0, "start": 1.0, "end": 2.5, "text": "hi", "seek": 100,
                 "words": [{"word": "hi", "start": 1.0, "end": 2.5, "speaker": "SPEAKER_00"},
                           {"word": "?"}],
                 "chars": [{"char": "h", "start": 1.0, "end": 1.2}], "speaker": "SPEAKER_00"},
                {"id": 1, "start": None, "end": None, "text": "untimed"}]
    out = split.shift_segments(segments, 100.25)
    assert out[0]["start"] == 101.25 and out[0]["end"] == 102.75 and out[0]["seek"] == 10125
    assert out[0]["words"][0]["start"] == 101.25 and out[0]["words"][1] == {"word": "?"}
    assert out[0]["chars"][0]["end"] == 101.45
    assert out[1]["start"] is None
    assert segments[0]["start"] == 1.0  # the input is not changed
    turns = split.shift_turns([{"start": 0.5, "end": 1.0, "speaker": "SPEAKER_01"}], 10.0)
    assert turns == [{"start": 10.5, "end": 11.0, "speaker": "SPEAKER_01"}]


def _vec(*xs: float) -> np.ndarray:
    return np.array(xs, dtype=float)


def test_linking_joins_the_same_voice_and_never_two_speakers_of_one_chunk() -> None:
    a, b, c = _vec(1, 0, 0), _vec(0, 1, 0), _vec(0, 0, 1)
    speakers = [
        ChunkSpeaker(0, "SPEAKER_00", 10, 0.0, a + _vec(0, 0.1, 0)),
        ChunkSpeaker(0, "SPEAKER_01", 8, 2.0, b),
        ChunkSpeaker(1, "SPEAKER_00", 9, 60.0, b + _vec(0.1, 0, 0)),  # chunk 0's SPEAKER_01
        ChunkSpeaker(1, "SPEAKER_01", 9, 61.0, a),  # chunk 0's SPEAKER_00
        ChunkSpeaker(2, "SPEAKER_00", 5, 120.0, c),  # somebody new
        ChunkSpeaker(2, "SPEAKER_01", 5, 121.0, a + _vec(0, 0, 0.05)),
        ChunkSpeaker(2, "SPEAKER_02", 1, 122.0, None),  # no embedding: a speaker of its own
    ]
    groups = split.link_speakers(speakers, threshold=0.72)
    names = split.names_per_chunk(groups, 3)
    assert names[0] == {"SPEAKER_00": "SPEAKER_00", "SPEAKER_01": "SPEAKER_01"}
    assert names[1] == {"SPEAKER_00": "SPEAKER_01", "SPEAKER_01": "SPEAKER_00"}
    assert names[2] == {"SPEAKER_00": "SPEAKER_02", "SPEAKER_01": "SPEAKER_00",
                        "SPEAKER_02": "SPEAKER_03"}
    # two of one chunk never merge, however alike
    same = [ChunkSpeaker(0, "SPEAKER_00", 5, 0.0, a), ChunkSpeaker(0, "SPEAKER_01", 5, 1.0, a)]
    assert len(split.link_speakers(same, 0.72)) == 2
    # below the threshold: not linked
    apart = [ChunkSpeaker(0, "SPEAKER_00", 5, 0.0, a),
             ChunkSpeaker(1, "SPEAKER_00", 5, 9.0, a + _vec(0, 1.2, 0))]  # cosine 0.64
    assert len(split.link_speakers(apart, 0.72)) == 2
    assert len(split.link_speakers(apart, 0.6)) == 1


def _result(language: str, segments: list[dict], turns: list[dict],
            vectors: dict[str, list[float]]) -> dict:
    speakers = sorted({t["speaker"] for t in turns})
    return {"segments": segments, "detected_language": language, "language_probability": 0.9,
            "duration": 60.0, "speaker_turns": turns, "warnings": ["w"],
            "speakers": [{"id": s, "speech_seconds": sum(t["end"] - t["start"] for t in turns
                                                        if t["speaker"] == s), "segments": 1}
                         for s in speakers],
            "speaker_embeddings": {"model": "CAM++", "dimension": 2, "vectors": vectors},
            "word_timestamps": [], "debug_info": {}}


def test_merge_renumbers_offsets_relabels_and_picks_the_language_with_most_speech() -> None:
    seg = {"text": "x", "words": [{"word": "x", "start": 0.0, "end": 1.0,
                                   "speaker": "SPEAKER_00"}]}
    r0 = _result("en", [{**seg, "id": 0, "start": 0.0, "end": 1.0, "speaker": "SPEAKER_00"},
                        {**seg, "id": 1, "start": 2.0, "end": 20.0, "speaker": "SPEAKER_01"}],
                 [{"start": 0.0, "end": 1.0, "speaker": "SPEAKER_00"},
                  {"start": 2.0, "end": 20.0, "speaker": "SPEAKER_01"}],
                 {"SPEAKER_00": [1.0, 0.0], "SPEAKER_01": [0.0, 1.0]})
    r1 = _result("de", [{**seg, "id": 0, "start": 0.5, "end": 3.0, "speaker": "SPEAKER_00"}],
                 [{"start": 0.5, "end": 3.0, "speaker": "SPEAKER_00"}],
                 {"SPEAKER_00": [0.1, 1.0]})  # chunk 0's SPEAKER_01
    chunks = [Chunk(0, 0.0, 30.0), Chunk(1, 30.0, 45.0)]
    merged = split.merge(chunks, [r0, r1], 0.72, duration=45.0, keep_embeddings=True)
    out = merged.result
    assert [s["id"] for s in out["segments"]] == [0, 1, 2]
    assert [(s["start"], s["speaker"]) for s in out["segments"]] == [
        (0.0, "SPEAKER_00"), (2.0, "SPEAKER_01"), (30.5, "SPEAKER_01")]
    assert out["segments"][2]["words"][0] == {"word": "x", "start": 30.0, "end": 31.0,
                                              "speaker": "SPEAKER_01"}
    assert out["speaker_turns"][-1] == {"start": 30.5, "end": 33.0, "speaker": "SPEAKER_01"}
    assert out["speakers"] == [{"id": "SPEAKER_00", "speech_seconds": 1.0, "segments": 1},
                               {"id": "SPEAKER_01", "speech_seconds": 20.5, "segments": 2}]
    assert out["detected_language"] == "en"  # 19 s of English speech, 2.5 s of German
    assert out["duration"] == 45.0
    vectors = out["speaker_embeddings"]["vectors"]
    assert vectors["SPEAKER_01"] == pytest.approx([2.5 / 20.5 * 0.1, 1.0], abs=1e-6)
    assert "chunk 1 (30.000-45.000 s): w" in out["warnings"]
    assert merged.names[1] == {"SPEAKER_00": "SPEAKER_01"}
    assert "debug_info" not in out
    with pytest.raises(ValueError, match="one result per chunk"):
        split.merge(chunks, [r0], 0.72, duration=45.0, keep_embeddings=False)


def test_chunks_get_the_files_count_as_an_upper_bound_only() -> None:
    # a chunk may hold fewer people than the file: a lower bound would split one voice in two
    assert split.chunk_params({"num_speakers": 3, "diarization": True}) == {
        "diarization": True, "max_speakers": 3, "return_speaker_embeddings": True}
    assert split.chunk_params({"min_speakers": 2, "max_speakers": 4}) == {
        "max_speakers": 4, "return_speaker_embeddings": True}
    assert split.chunk_params({"min_speakers": 2}) == {"return_speaker_embeddings": True}


def test_the_files_max_speakers_links_the_most_alike_below_the_threshold() -> None:
    a, b = _vec(1, 0, 0), _vec(0, 1, 0)
    speakers = [ChunkSpeaker(0, "SPEAKER_00", 10, 0.0, a),
                ChunkSpeaker(0, "SPEAKER_01", 10, 1.0, b),
                # chunk 1: chunk 0's SPEAKER_00 in a noisier room (cosine 0.6, below 0.72)
                ChunkSpeaker(1, "SPEAKER_00", 10, 60.0, a + _vec(0, 0, 1.33)),
                ChunkSpeaker(1, "SPEAKER_01", 10, 61.0, b)]
    assert len(split.link_speakers(speakers, 0.72)) == 3
    groups = split.link_speakers(speakers, 0.72, max_speakers=2)
    assert split.names_per_chunk(groups, 2) == [
        {"SPEAKER_00": "SPEAKER_00", "SPEAKER_01": "SPEAKER_01"},
        {"SPEAKER_00": "SPEAKER_00", "SPEAKER_01": "SPEAKER_01"}]
    # never two speakers of one chunk, whatever the bound
    three = [ChunkSpeaker(0, f"SPEAKER_0{i}", 5, float(i), v) for i, v in enumerate((a, b, a + b))]
    assert len(split.link_speakers(three, 0.72, max_speakers=1)) == 3
