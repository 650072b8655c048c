# The README's two commands: `make run` and `make test`. Both set everything up first.
LOCAL_ENV = MODELS_DIR=models MODEL=base HF_HUB_OFFLINE=1 LOCAL_INPUT_DIR=samples
# `make run REQUEST=my_request.json` runs another request; the full result goes to output.json.
REQUEST ?= test_input.json

.PHONY: run test test-fast lint soak bench stream-bench diarization-bench transcript-der-bench \
	codeswitch-bench split-bench image-check

run:
	scripts/setup.sh
	$(LOCAL_ENV) .venv/bin/python scripts/run_local.py $(REQUEST)

test:
	scripts/setup.sh --test
	$(MAKE) lint
	.venv/bin/python -m pytest

# The unit tests of every stage, no whole jobs: a quick check while changing one package.
test-fast:
	scripts/setup.sh --test
	.venv/bin/python -m pytest -q -m "not job and not slow"

lint:
	.venv/bin/ruff check src tests scripts
	.venv/bin/mypy

# Heavier checks, not part of `make test`.
soak:
	scripts/setup.sh
	.venv/bin/python scripts/soak.py --jobs 200

# Speed and memory: writes BENCHMARKS.md + BENCHMARKS.png (docs/long-audio-and-benchmarks.md).
bench:
	scripts/setup.sh
	.venv/bin/python scripts/bench.py

# Streaming (STREAM_RESULTS): time to the first segments vs the whole job, streamed vs plain
# job time, on 10 and 60 min of real speech (docs/scale-out.md#streaming).
stream-bench:
	scripts/setup.sh --test
	.venv/bin/python scripts/stream_bench.py

# DER per condition per token-free diarization candidate, then the default's steps replayed
# with DER's parts, the count error and WDER (where transcript-der-bench captured the jobs)
# (docs/diarization.md).
diarization-bench:
	scripts/setup.sh --test
	.venv/bin/python scripts/diarization_bench.py --split heldout
	.venv/bin/python scripts/diarization_bench.py --split heldout --replay

# WDER (ours, the previous assignment, the hand-built assembly) and DER of speaker_turns and of
# the transcript's segments, from whole default jobs
# (docs/diarization.md).
transcript-der-bench:
	scripts/setup.sh --test
	.venv/bin/python scripts/transcript_der_bench.py --split heldout

# One long file as one job vs as --split chunks: overhead, WER, DER, 3-hour wall-time table
# (docs/scale-out.md, "Splitting one long file").
split-bench:
	scripts/setup.sh --test
	.venv/bin/python scripts/split_bench.py

# Code-switching (multilingual): WER against each turn transcribed alone, turns with the right
# language, one-language cost of the mode (docs/decoding.md#multilingual-code-switching).
codeswitch-bench:
	scripts/setup.sh --test
	.venv/bin/python scripts/codeswitch_bench.py --split heldout

# Builds and runs the images for real with buildah (root, ~30 GB, ~11 min); see docs/image.md.
image-check:
	scripts/image_check.sh
