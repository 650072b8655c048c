"""The RunPod Hub files, .runpod/hub.json and .runpod/tests.json, generated from src/rp_schema.py
(every parameter with an environment variable becomes an endpoint setting with the schema's
default, choices and bounds) and src/worker/model_manifest.json (the models the image holds).

    python scripts/runpod_hub.py           # write both files
    python scripts/runpod_hub.py --check   # exit 1 if they differ from what the schema gives
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from rp_schema import PARAMS, Param

ROOT = Path(__file__).resolve().parent.parent

MANIFEST = json.loads((ROOT / "src" / "worker" / "model_manifest.json").read_text())
HUB, TESTS = ROOT / ".runpod" / "hub.json", ROOT / ".runpod" / "tests.json"

# torch 2.8.0 (cu128) and the CUDA 12.8.1 base image need a driver for CUDA 12.8 or newer.
CUDA_VERSIONS = ["12.8", "12.9"]
# large-v3 in float16 + wav2vec2-large + pyannote take ~6 GB: 16 GB cards and up.
GPU_IDS = "AMPERE_16,AMPERE_24,ADA_24"
TEST_GPU = "NVIDIA GeForce RTX 4090"
# The image (~21 GB: CUDA runtime, the stack, three large-v3-size models) plus room for inputs.
CONTAINER_DISK_GB = 40
# Settings shown by default; the rest are under "advanced".
MAIN = {"model", "compute_type", "batch_size", "align_output", "diarization", "output_format"}
# Models a request can name in this image (it runs offline: HF_HUB_OFFLINE=1).
CHOICES = {"model": tuple(MANIFEST["whisper"]),
           "diarization_model": tuple(MANIFEST["diarization"])}
PRESETS = [
    ("Russian: large-v3 Russian fine-tune", {"MODEL": "faster-whisper-large-v3-russian"}),
    ("Multilingual: large-v3", {"MODEL": "large-v3"}),
    ("Fast: large-v3-turbo, no diarization",
     {"MODEL": "large-v3-turbo", "DIARIZATION": False}),
    ("Transcript only: no alignment or diarization",
     {"ALIGN_OUTPUT": False, "DIARIZATION": False}),
]
# What the Hub runs after each release; sample.wav ships in the image (LOCAL_INPUT_DIR).
TEST_CASES = [
    ("test_input", json.loads((ROOT / "test_input.json").read_text())["input"], 300_000),
    ("official_worker_request", {
        "audio": "https://github.com/runpod-workers/sample-inputs/raw/main/audio/gettysburg.wav",
        "model": "large-v3", "transcription": "plain text", "translate": False,
        "word_timestamps": True, "diarization": False,
    }, 300_000),
    ("diarized_markdown", {"audio_file": "sample.wav", "language": "en",
                           "output_format": "markdown", "num_speakers": 2}, 300_000),
]


def value_type(p: Param) -> Any:
    """int for `int | None`, and so on."""
    return next((a for a in getattr(p.type, "__args__", ()) if a is not type(None)), p.type)


def env_input(p: Param) -> dict[str, Any]:
    inner = value_type(p)
    kind = {bool: "boolean", int: "number", float: "number"}.get(inner, "string")
    field: dict[str, Any] = {"name": p.name.replace("_", " ").capitalize(), "type": kind,
                             "description": p.doc}
    choices = p.choices or CHOICES.get(p.name, ())
    if choices:
        field["options"] = [{"label": c, "value": c} for c in choices]
    if kind == "number":
        for key, bound in (("min", p.ge if p.ge is not None else p.gt),
                           ("max", p.le if p.le is not None else p.lt)):
            if bound is not None:
                field[key] = bound
    if p.default is not None:
        field["default"] = p.default
    if kind == "boolean":
        field |= {"trueValue": "true", "falseValue": "false"}
    field["advanced"] = p.name not in MAIN
    return field


def hub() -> dict[str, Any]:
    env = [{"key": p.env_names[0], "input": env_input(p)} for p in PARAMS if p.env_names]
    return {
        "title": "WhisperX (faster-whisper large-v3, Russian fine-tune)",
        "description": "Batched WhisperX transcription and translation with word timestamps "
                       "(wav2vec2 alignment) and pyannote speaker diarization; models baked "
                       "in, runs offline. Accepts the official faster-whisper worker's requests.",
        "type": "serverless",
        "category": "audio",
        "config": {
            "runsOn": "GPU",
            "containerDiskInGb": CONTAINER_DISK_GB,
            "gpuCount": 1,
            "gpuIds": GPU_IDS,
            "allowedCudaVersions": CUDA_VERSIONS,
            "presets": [{"name": name, "defaults": values} for name, values in PRESETS],
            "env": env,
        },
    }


def tests() -> dict[str, Any]:
    return {
        "tests": [{"name": name, "input": payload, "timeout": timeout}
                  for name, payload, timeout in TEST_CASES],
        "config": {"gpuTypeId": TEST_GPU, "gpuCount": 1, "allowedCudaVersions": CUDA_VERSIONS},
    }


def rendered() -> dict[Path, str]:
    return {path: json.dumps(content, indent=2, ensure_ascii=False) + "\n"
            for path, content in ((HUB, hub()), (TESTS, tests()))}


def main() -> None:
    files = rendered()
    if "--check" in sys.argv:
        stale = [p for p, text in files.items() if not p.is_file() or p.read_text() != text]
        if stale:
            names = ", ".join(str(p.relative_to(ROOT)) for p in stale)
            sys.exit(f"{names} differ from the schema; run: python scripts/runpod_hub.py")
        print("RunPod Hub files match the schema")
        return
    for path, text in files.items():
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
