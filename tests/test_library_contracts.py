"""The library internals the worker relies on (src/worker/compat/), pinned: an upgrade that
moves one fails here, by name, instead of deep inside a job. (whisperx's decoding hook is
pinned in test_decoding.py, senko's clustering hook in test_diarization.py.)"""

from __future__ import annotations

import asyncio
import inspect

import aiohttp
import numpy as np
import torch
import torchaudio
from aiohttp import web

from worker.compat import pyannote as compat_pyannote
from worker.compat import runpod as compat_runpod
from worker.compat import torchaudio as compat_torchaudio


def test_pyannote_pipeline_embedding_model_is_what_it_clusters_with():
    from diarization import campplus

    pipeline = campplus.CampplusDiarization("cpu").model  # pyannote's SpeakerDiarization
    model = compat_pyannote.embedding_model(pipeline)
    vectors = np.asarray(model(torch.zeros(2, 1, 32000) + 0.01 * torch.randn(2, 1, 32000)))
    assert vectors.shape == (2, model.dimension)
    from pyannote.audio.pipelines.speaker_diarization import SpeakerDiarization

    assert "self._embedding = PretrainedSpeakerEmbedding(" in inspect.getsource(
        SpeakerDiarization.__init__)


def test_pyannote_vad_scores_through_its_segmentation_inference():
    from pyannote.audio.pipelines import VoiceActivityDetection

    source = inspect.getsource(VoiceActivityDetection.apply)
    assert "self._segmentation(" in source and "hook=hook" in source


def test_torchaudio_bundle_file_name():
    bundle = torchaudio.pipelines.WAV2VEC2_ASR_BASE_960H  # whisperx's English default
    assert compat_torchaudio.bundle_file(bundle) == "wav2vec2_fairseq_base_ls960_asr_ls960.pth"


def test_runpod_raw_status_keeps_a_failed_jobs_error():
    from runpod.endpoint.asyncio.asyncio_runner import Job

    async def status(request: web.Request) -> web.Response:
        assert request.path == "/ep/status/j1"
        return web.json_response({"id": "j1", "status": "FAILED", "error": "audio_file: bad"})

    async def run() -> dict:
        app = web.Application()
        app.router.add_get("/ep/status/j1", status)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            async with aiohttp.ClientSession() as session:
                job = Job("ep", "j1", session, {})
                job.endpoint_url_base = f"http://127.0.0.1:{port}"
                return await compat_runpod.raw_status(job)
        finally:
            await runner.cleanup()

    assert asyncio.run(run())["error"] == "audio_file: bad"
