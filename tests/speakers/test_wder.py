"""The WDER metric the benches report (scripts/wder.py), on hand-built cases."""

from __future__ import annotations

import pytest

import wder

REFERENCE = [(0.0, 2.0, "alice"), (2.5, 4.0, "bob"), (5.0, 6.0, "alice")]


def test_labels_do_not_matter_only_the_one_to_one_mapping():
    words = [(0.1, 0.5, "S1"), (0.6, 1.0, "S1"), (2.6, 3.0, "S0"), (5.1, 5.5, "S1")]
    result = wder.score(REFERENCE, words)
    assert (result.wrong, result.counted, result.words) == (0, 4, 4)
    assert result.wder == 0.0


def test_a_word_on_the_other_speaker_is_wrong():
    words = [(0.1, 0.5, "A"), (0.6, 1.0, "A"), (2.6, 3.0, "B"), (3.1, 3.5, "A")]
    assert wder.score(REFERENCE, words).wrong == 1


def test_mapping_is_one_to_one_and_maximises_right_words():
    # two hypothesis speakers both mostly on alice: only one may map to her, the other goes to
    # bob (Hungarian), so B's alice words are wrong and its bob word is right
    words = [(0.1, 0.3, "A"), (0.4, 0.6, "A"), (0.7, 0.9, "A"), (1.0, 1.2, "B"),
             (1.3, 1.5, "B"), (2.6, 2.8, "B")]
    result = wder.score(REFERENCE, words)
    assert (result.wrong, result.counted) == (2, 6)


def test_one_speaker_for_everyone_loses_the_minority():
    words = [(0.1, 0.5, "A"), (0.6, 1.0, "A"), (2.6, 3.0, "A"), (5.1, 5.5, "A")]
    assert wder.score(REFERENCE, words).wrong == 1


def test_words_outside_reference_speech_are_not_counted():
    words = [(0.1, 0.5, "A"), (4.2, 4.8, "B"), (7.0, 7.5, None)]
    result = wder.score(REFERENCE, words)
    assert (result.wrong, result.counted, result.words) == (0, 1, 3)


def test_a_counted_word_without_a_speaker_is_wrong():
    assert wder.score(REFERENCE, [(0.1, 0.5, "A"), (0.6, 1.0, None)]).wrong == 1


def test_a_word_brushing_a_turn_change_belongs_to_the_turn_it_sits_in():
    # 0.2 s in bob's turn, 0.05 s in alice's: bob's word only
    assert wder.reference_speakers(1.95, 2.7, REFERENCE) == {"bob"}
    words = [(0.1, 0.5, "A"), (0.6, 1.0, "A"), (1.95, 2.7, "A"), (3.0, 3.5, "B")]
    assert wder.score(REFERENCE, words).wrong == 1


def test_in_overlap_either_voice_is_right():
    overlap = [(0.0, 3.0, "alice"), (2.0, 5.0, "bob")]
    assert wder.reference_speakers(2.2, 2.8, overlap) == {"alice", "bob"}
    words = [(0.5, 1.0, "A"), (2.2, 2.8, "A"), (2.3, 2.9, "B"), (4.0, 4.5, "B")]
    assert wder.score(overlap, words).wrong == 0


def test_scores_add_up_over_recordings():
    first = wder.score(REFERENCE, [(0.1, 0.5, "A"), (2.6, 3.0, "A")])
    second = wder.score(REFERENCE, [(0.1, 0.5, "A"), (0.6, 0.9, "A")])
    total = first + second
    assert (total.wrong, total.counted) == (1, 4)
    assert total.wder == pytest.approx(0.25)


def test_timed_words_from_a_response_skip_untimed_ones():
    segments = [{"words": [{"word": "hi", "start": 0.1, "end": 0.3, "speaker": "S0"},
                           {"word": "42"},
                           {"word": "there", "start": 0.4, "end": 0.6}]},
                {"text": "no words"}]
    assert wder.timed_words(segments) == [(0.1, 0.3, "S0"), (0.4, 0.6, None)]
