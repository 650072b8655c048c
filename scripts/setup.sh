#!/usr/bin/env bash
# Installs what the worker needs on a fresh Debian/Ubuntu machine; idempotent and quick when
# nothing changed. `--test` adds what the tests need (espeak-ng, and Debian's recorded prompt
# voices: Russian, English, French, Italian, Spanish, for real multi-voice conversations).
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(ffmpeg)
if [[ "${1:-}" == "--test" ]]; then
  apt_packages+=(espeak-ng asterisk-core-sounds-ru-wav asterisk-core-sounds-ru
                asterisk-core-sounds-en-wav asterisk-core-sounds-en asterisk-core-sounds-fr-wav
                asterisk-core-sounds-it-wav asterisk-prompt-it-menardi-wav
                asterisk-prompt-fr-armelle asterisk-prompt-es-co)
fi
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  sudo=""
  [[ "$(id -u)" -ne 0 ]] && sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  # One package per call: some voice packages can't be resolved together in one transaction.
  for pkg in "${missing[@]}"; do
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$pkg"
  done
fi

# The virtual environment is rebuilt only when requirements.lock changes.
python="${PYTHON:-python3}"
want="$(sha256sum requirements.lock | cut -d' ' -f1)"
if [[ "$(cat .venv/.lock-sha256 2>/dev/null)" != "$want" ]]; then
  echo "setup: installing requirements.lock into .venv (first time: ~8 min, ~8 GB)"
  rm -rf .venv
  "$python" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q --no-deps -r requirements.lock
  .venv/bin/pip check
  echo "$want" > .venv/.lock-sha256
fi
# The worker's own code (src/), importable by tests and scripts from anywhere, and the
# project's console scripts (whisperx-client).
root="$(pwd)"
if ! (cd / && "$root/.venv/bin/python" -c "import predict" 2>/dev/null) \
    || [[ ! -x .venv/bin/whisperx-client ]]; then
  .venv/bin/pip install -q --no-deps -e .
fi

.venv/bin/python scripts/fetch_assets.py
