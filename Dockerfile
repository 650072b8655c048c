# syntax=docker/dockerfile:1
# Single-step build: Dockerfile.base followed by Dockerfile.app in one file, for builders that
# take one Dockerfile (the RunPod Hub builds `Dockerfile`). tests/test_image_files.py fails when
# it drifts from the two. Same secret and build arguments as Dockerfile.base:
#
#   DOCKER_BUILDKIT=1 docker build --secret id=hf_token,src=$HOME/.cache/huggingface/token \
#       -t whisperx-worker .
ARG BASE_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04

# Local model directories for `fetch_models.py --from-dir`: empty unless the build is given
# `--build-context local-models=DIR`, whose files then appear under /local-models.
FROM scratch AS local-models

FROM ${BASE_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PATH=/opt/venv/bin:$PATH \
    MODELS_DIR=/models

# OS packages and the Python stack in one step: few, big layers. python3.11 is Ubuntu 22.04's
# (universe) and Debian 12's own package. The pip cache mount keeps downloads out of the layer.
RUN --mount=type=bind,source=requirements.lock,target=/tmp/requirements.lock \
    --mount=type=cache,target=/root/.cache/pip \
    apt-get update \
    && apt-get install -y --no-install-recommends \
        python3.11 python3.11-venv ffmpeg libsndfile1 ca-certificates \
    && apt-get clean && rm -rf /var/lib/apt/lists/* \
    && python3.11 -m venv /opt/venv \
    && pip install --no-deps -r /tmp/requirements.lock \
    && pip check

# Every model, fetched and then loaded offline by one script. The Hugging Face token is a build
# secret: mounted for this step only, it is in no layer, ARG, ENV or history entry.
ARG FETCH_ARGS=""
# Languages whose wav2vec2 alignment model is baked (docs/image.md lists sizes); others fall back to
# Whisper's cross-attention word timings.
ARG ALIGN_LANGUAGES="ru en de fr es it"
RUN --mount=type=bind,source=builder/fetch_models.py,target=/build/builder/fetch_models.py \
    --mount=type=bind,source=scripts/fetch_assets.py,target=/build/scripts/fetch_assets.py \
    --mount=type=bind,source=src/worker/model_manifest.json,target=/build/src/worker/model_manifest.json \
    --mount=type=bind,from=local-models,target=/local-models \
    --mount=type=secret,id=hf_token \
    --mount=type=cache,target=/root/.cache/pip \
    PYTHONDONTWRITEBYTECODE=1 python /build/builder/fetch_models.py --models-dir /models \
        --token-file /run/secrets/hf_token --align-languages "$ALIGN_LANGUAGES" $FETCH_ARGS

# --- the app (Dockerfile.app) ---
ENV HF_HUB_OFFLINE=1 \
    PYANNOTE_METRICS_ENABLED=false \
    MODELS_DIR=/models \
    LOCAL_INPUT_DIR=/app/samples
WORKDIR /app
# test_input.json's sample.wav: pyannote.audio's two-speaker recording, already in the stack.
RUN mkdir -p samples \
    && cp /opt/venv/lib/python3.11/site-packages/pyannote/audio/sample/sample.wav samples/
COPY test_input.json ./
COPY src/ src/
# Jobs run as an unprivileged user: code and models stay root-owned and read-only to it; the
# caches libraries write (Hugging Face, numba's JIT, matplotlib) go to its home and /tmp.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin worker
ENV HOME=/home/worker \
    HF_HOME=/home/worker/.cache/huggingface \
    NUMBA_CACHE_DIR=/tmp/numba-cache \
    MPLCONFIGDIR=/tmp/matplotlib \
    CONTAINER_LOG=/home/worker/container_log.txt
USER worker
CMD ["python", "-u", "src/handler.py"]
