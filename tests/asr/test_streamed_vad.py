"""Streaming's VAD in two parts (vad.head, vad.rest): the first block's chunks scored first,
the rest's after, is exactly the one-part pass, and the first block's fixed windows are the
whole file's first windows, on a real recording longer than two blocks."""

from __future__ import annotations

import numpy as np
import pytest

import asr
from asr import vad
from conftest import read_16k, russian_prompts

DEFAULT = vad.VadParams(onset=0.5, offset=0.363, min_duration_on=0.08, min_duration_off=0.08,
                        pad_onset=0.0, pad_offset=0.0)
PADDED = vad.VadParams(onset=0.5, offset=0.363, min_duration_on=0.5, min_duration_off=1.0,
                       pad_onset=2.0, pad_offset=0.2)


@pytest.fixture(scope="module")
def recording() -> tuple[np.ndarray, object]:
    """~4 min of real Russian speech (Debian's prompts, half-second pauses) and its
    one-part VAD scores."""
    pieces = []
    for wav, _ in russian_prompts(50):
        pieces += [read_16k(wav), np.zeros(8000, dtype="float32")]
    audio = np.concatenate(pieces)
    assert len(audio) / 16000 > 2 * (vad.FIRST_BLOCK + 5)
    return audio, vad.scores(asr.load_vad("cpu"), audio)


def test_scores_from_the_two_parts_are_the_one_pass_scores(recording):
    audio, whole = recording
    scorer = asr.load_vad("cpu")
    first = vad.head(scorer, audio, DEFAULT, 30.0)
    assert first is not None and 0 < first.next_sample < len(audio) / 2
    stitched = vad.rest_scores(scorer, audio, first)
    assert stitched.data.shape == whole.data.shape
    assert np.array_equal(stitched.data, whole.data)  # bit for bit, not approximately
    assert (stitched.sliding_window.start, stitched.sliding_window.step) == (
        whole.sliding_window.start, whole.sliding_window.step)
    assert vad.rest(scorer, audio, first, DEFAULT, 30.0, len(audio) / 16000) == \
        vad.windows_from_scores(whole, DEFAULT, 30.0, len(audio) / 16000)


@pytest.mark.parametrize("params", [DEFAULT, PADDED], ids=["default", "padded"])
@pytest.mark.parametrize("chunk_size", [30.0, 8.0])
@pytest.mark.parametrize("block", [60.0])
def test_the_first_blocks_windows_are_the_whole_files_first_windows(recording, params,
                                                                     chunk_size, block):
    audio, whole = recording
    first = vad.head(asr.load_vad("cpu"), audio, params, chunk_size, block)
    assert first is not None
    full = vad.windows_from_scores(whole, params, chunk_size, len(audio) / 16000)
    fixed = first.windows
    assert fixed.windows or chunk_size > block / 2  # a window must close inside the block
    assert fixed.windows == full.windows[: len(fixed.windows)]
    cut = fixed.windows[-1][1] if fixed.windows else 0.0
    assert fixed.speech == [(a, min(b, cut)) for a, b in full.speech if a < cut]
    assert len(fixed.windows) < len(full.windows)
    # the windows end inside the block's final frames (before the rest's first chunk)
    assert all(end < first.next_sample / 16000 for _, end in fixed.windows)


def test_a_file_too_short_for_two_parts_has_no_head():
    audio = np.zeros(int((vad.FIRST_BLOCK + 5) * 16000), dtype="float32")
    assert vad.head(asr.load_vad("cpu"), audio, DEFAULT, 30.0) is None
