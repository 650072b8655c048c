# syntax=docker/dockerfile:1
# App image: the worker's code on top of the base image (Dockerfile.base), which holds the stack
# and the models. A code change rebuilds only this, in seconds.
#
#   DOCKER_BUILDKIT=1 docker build -f Dockerfile.app --build-arg BASE=whisperx-worker-base \
#       -t whisperx-worker .
ARG BASE=whisperx-worker-base:latest
FROM ${BASE}
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
