#!/usr/bin/env bash
# Builds the worker's images for real with buildah (no Docker daemon, no GPU needed), runs the
# app image's handler on test_input.json inside a container, and checks that the build secret
# (a dummy Hugging Face token) is in no layer and no history entry.
#
# Stand-ins, because this machine reaches only PyPI and Debian's archive: BASE_IMAGE is a Debian
# 12 rootfs made with debootstrap (Python 3.11 is its own); the models are the small real ones
# scripts/setup.sh fetches (models/base as faster-whisper-large-v3-russian, models/nltk_data),
# given to builder/fetch_models.py with --from-dir; alignment and diarization are skipped.
#
#   scripts/image_check.sh                      # ~11 min on 2 cores, ~30 GB under /var/tmp
#   IMAGE_CHECK_KEEP=1 scripts/image_check.sh   # keep rootfs, images and pip cache afterwards
#   IMAGE_CHECK_TEST_INPUT='{"input": {...}}' scripts/image_check.sh  # another job, same checks
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

work="${IMAGE_CHECK_DIR:-/var/tmp/image-check}"
driver="${IMAGE_CHECK_STORAGE_DRIVER:-overlay}"  # vfs works too, copying every layer whole
bh=(buildah --root "$work/storage" --runroot "$work/run" --storage-driver "$driver")
export BUILDAH_ISOLATION=chroot  # no user namespaces or runc needed
base_tag=localhost/whisperx-worker-base
app_tag=localhost/whisperx-worker
fetch_args="--from-dir faster-whisper-large-v3-russian=/local-models/base \
--from-dir punkt_tab=/local-models/nltk_data --skip whisper --skip alignment --skip diarization \
--skip translation --skip embeddings"
mkdir -p "$work/logs"
say() { printf '[image-check %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# Run "$@" with its output in $work/logs/<name>.log; say how long it took.
timed() {
  local name="$1" start=$SECONDS
  shift
  say "$name: started (log: $work/logs/$name.log)"
  if ! "$@" >"$work/logs/$name.log" 2>&1; then
    tail -n 15 "$work/logs/$name.log" | cut -c1-400
    say "$name: FAILED after $((SECONDS - start)) s"
    return 1
  fi
  say "$name: $((SECONDS - start)) s"
}

cleanup() {
  say "cleaning up ${work}"
  "${bh[@]}" rm --all >/dev/null 2>&1 || true
  "${bh[@]}" rmi --all --force >/dev/null 2>&1 || true
  umount "$work/storage/overlay" 2>/dev/null || true  # containers/storage's own bind mount
  # and the Dockerfile's pip cache mount (buildah keeps cache mounts under /var/tmp)
  rm -rf "$work/storage" "$work/run" "$work/rootfs" "$work/ctx" "$work/hf_token" "$work/pip.conf" \
    /var/tmp/buildah-cache/root/.cache/pip /var/tmp/buildah-cache-"$(id -u)"/root/.cache/pip
}

# --- tools and inputs -----------------------------------------------------------------------
if ! command -v buildah >/dev/null || ! command -v debootstrap >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah debootstrap
fi
[[ -f models/base/model.bin && -d models/nltk_data ]] || scripts/setup.sh

if ! "${bh[@]}" inspect --type image localhost/debian-rootfs >/dev/null 2>&1; then
  if [[ ! -d "$work/rootfs" ]]; then  # built aside, so an interrupted run leaves no half rootfs
    rm -rf "$work/rootfs.partial"
    timed debootstrap debootstrap --variant=minbase bookworm "$work/rootfs.partial" \
      http://deb.debian.org/debian
    mv "$work/rootfs.partial" "$work/rootfs"
  fi
  ctr=$("${bh[@]}" from scratch)
  mnt=$("${bh[@]}" mount "$ctr")
  cp -a "$work/rootfs/." "$mnt/"
  "${bh[@]}" umount "$ctr" >/dev/null
  "${bh[@]}" commit -q "$ctr" localhost/debian-rootfs >/dev/null
  "${bh[@]}" rm "$ctr" >/dev/null
  rm -rf "$work/rootfs"
fi

# This machine reaches PyPI through a TLS-intercepting proxy whose CA only the host trusts: hand
# pip the host's bundle for the build's RUN steps (bind mounts: only their empty mount points,
# /etc/pip.conf and /etc/pip-host-ca.crt, stay in the stand-in image).
printf '[global]\ncert = /etc/pip-host-ca.crt\n' >"$work/pip.conf"
host_ca=(-v "$work/pip.conf:/etc/pip.conf:ro" -v /etc/ssl/certs/ca-certificates.crt:/etc/pip-host-ca.crt:ro)

# A fresh dummy token each run: finding it anywhere in storage means the secret leaked.
token="hf_imagecheck$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
(umask 077 && printf '%s' "$token" >"$work/hf_token")

# --- build ----------------------------------------------------------------------------------
# No layer cache for the base: buildah's cache key ignores bind-mounted files (the fetch script),
# and the secret must really be used in this run. (The Dockerfile's pip cache mount saves the
# downloads elsewhere; behind this machine's proxy pip caches nothing, so each run downloads.)
timed build-base "${bh[@]}" bud "${host_ca[@]}" \
  --secret id=hf_token,src="$work/hf_token" \
  --build-context local-models="$(readlink -f "$root/models")" \
  --build-arg BASE_IMAGE=localhost/debian-rootfs \
  --build-arg FETCH_ARGS="$fetch_args" \
  -f Dockerfile.base -t "$base_tag" .
grep -E '^(fetched|loaded|size|FAILED) ' "$work/logs/build-base.log" || true
grep -q 'Hugging Face token: given' "$work/logs/build-base.log" ||
  { say "the hf_token secret did not reach the model step"; exit 1; }

timed build-app "${bh[@]}" bud --layers --build-arg BASE="$base_tag" \
  -f Dockerfile.app -t "$app_tag" .

# A code change: the same tree with one edited source file; only the app steps rerun.
rm -rf "$work/ctx" && mkdir -p "$work/ctx"
git ls-files -z -co --exclude-standard | xargs -0 cp --parents -t "$work/ctx"
change="# code change $(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
echo "$change" >>"$work/ctx/src/handler.py"
timed rebuild-app "${bh[@]}" bud --layers --build-arg BASE="$base_tag" \
  -f Dockerfile.app -t "$app_tag-rebuilt" "$work/ctx"

"${bh[@]}" images --format '{{.Name}}:{{.Tag}}  {{.Size}}' | grep -E 'whisperx|debian-rootfs'

# --- run the image's CMD on test_input.json -------------------------------------------------
mapfile -t cmd < <("${bh[@]}" inspect --type image "$app_tag" |
  python3 -c 'import json, sys; print("\n".join(json.load(sys.stdin)["OCIv1"]["config"]["Cmd"]))')
((${#cmd[@]})) || { say "no CMD in $app_tag"; exit 1; }
[[ -n "${IMAGE_CHECK_TEST_INPUT:-}" ]] && cmd+=(--test_input "$IMAGE_CHECK_TEST_INPUT")
ctr=$("${bh[@]}" from "$app_tag")
say "running ${cmd[*]} in $app_tag"
rc=0
timed run-job "${bh[@]}" run "$ctr" -- "${cmd[@]}" || rc=$?
"${bh[@]}" rm "$ctr" >/dev/null
python3 scripts/check_job_result.py "$work/logs/run-job.log" || rc=1

# --- the secret left no trace ----------------------------------------------------------------
leaks=0
if grep -rlF --binary-files=text -- "$token" "$work/storage" 2>/dev/null; then leaks=1; fi
# The same search does find what a layer holds: the code change made above.
if ! grep -rqF --binary-files=text -- "$change" "$work/storage"; then
  say "token check: the search misses layer contents (the code change was not found)"
  leaks=1
fi
for image in "$base_tag" "$app_tag"; do
  if "${bh[@]}" inspect --type image "$image" | grep -F -- "$token"; then leaks=1; fi
done
if ((leaks)); then
  say "token check: FAILED, the dummy token is in the storage or history above"
else
  say "token check: the dummy token is in no layer under $work/storage and no history entry"
fi

[[ -n "${IMAGE_CHECK_KEEP:-}" ]] || cleanup
if ((rc || leaks)); then say "FAILED"; exit 1; fi
say "OK"
