"""Results too big for a RunPod response, and results in a bucket.

With a bucket (BUCKET_ENDPOINT_URL + keys, runpod `rp_upload`'s convention and its boto3
client), the full result is uploaded (`result.json` and the output_format file) and the
response is a summary with presigned URLs. Without one, a job whose result can be predicted
to exceed MAX_RESPONSE_MB fails before transcription; a result that turns out too big is
truncated with a warning.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from worker import settings
from worker.errors import InputError, brief

from .options import OutputOptions

log = logging.getLogger("worker.results_upload")

# Bulky fields: dropped from an upload's inline summary, cut first when truncating.
TEXT_FIELDS = ("transcription", "translation", "srt", "vtt", "txt", "markdown")
LIST_FIELDS = ("segments", "word_timestamps")
CONTENT_TYPES = {"json": "application/json", "srt": "application/x-subrip", "vtt": "text/vtt",
                 "txt": "text/plain", "markdown": "text/markdown"}
# Result bytes per second of audio, half of what pyannote's dense two-speaker conversation
# (2.4 words/s) gives: segment text 36 (each text rendering ~20 more), words 160, word_timestamps
# 122, wav2vec2 chars ~700 (12 chars/s). Halved so that only jobs sure to overflow unless the
# audio is mostly silence are refused before transcription.
BYTES_PER_SECOND = {"base": 20, "words": 80, "word_timestamps": 60, "chars": 350}


@dataclass(frozen=True)
class Bucket:
    endpoint_url: str
    access_key_id: str
    secret_access_key: str
    name: str
    expiry_s: int


def target(options: OutputOptions) -> Bucket | None:
    """Where this job's result goes: a bucket, or None for an inline response. Checked before
    any work, so upload_results=true without a bucket fails at once."""
    cfg = settings.get()
    secret = cfg.bucket_secret_access_key.get_secret_value() if cfg.bucket_secret_access_key \
        else None  # masked in every log line and output by job_logs (SECRET_ENV)
    endpoint, key_id = cfg.bucket_endpoint_url, cfg.bucket_access_key_id
    configured = bool(endpoint and key_id and secret)
    if options.upload and not configured:
        raise InputError(
            "upload_results: true needs a bucket, and this worker has none; set "
            "BUCKET_ENDPOINT_URL, BUCKET_ACCESS_KEY_ID and BUCKET_SECRET_ACCESS_KEY on the "
            "endpoint, or send upload_results: false.")
    if not (endpoint and key_id and secret) or options.upload is False:
        return None
    return Bucket(endpoint, key_id, secret,
                  cfg.bucket_name or time.strftime("%m-%y"), cfg.upload_url_expiry_s)


def limit_bytes() -> int:
    return int(settings.get().max_response_mb * 1_000_000)


def predicted_bytes(options: OutputOptions, duration: float) -> int:
    per_second = BYTES_PER_SECOND["base"] * (
        2 + (options.format != "json") + options.whisper_translation)
    if options.words:
        per_second += BYTES_PER_SECOND["words"]
    if options.word_timestamps:
        per_second += BYTES_PER_SECOND["word_timestamps"]
    if options.char_alignments:
        per_second += BYTES_PER_SECOND["chars"]
    return int(per_second * duration)


def check_size(options: OutputOptions, duration: float, bucket: Bucket | None) -> None:
    """Refuse, before the GPU works, a job whose inline result can't fit."""
    if bucket is not None:
        return
    predicted, limit = predicted_bytes(options, duration), limit_bytes()
    if predicted > limit:
        raise InputError(
            f"audio: {duration / 60:.0f} min with these options gives a result of at least "
            f"{predicted / 1e6:.1f} MB, over the {limit / 1e6:g} MB a RunPod response can carry "
            "(MAX_RESPONSE_MB); configure a bucket (BUCKET_ENDPOINT_URL, see README), or turn "
            "off return_char_alignments/word_timestamps, or split the audio.")


def _size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, default=str).encode())


def finish(output: dict[str, Any], output_format: str, bucket: Bucket | None) -> dict[str, Any]:
    """The response: an upload summary with URLs, the output itself, or it truncated."""
    if bucket is not None:
        try:
            return _upload(output, output_format, bucket)
        except Exception as exc:  # the transcript is done: return it inline rather than lose it
            log.warning("upload to %s failed: %s", bucket.endpoint_url, brief(exc))
            output["warnings"].append(
                f"upload_results: the upload to the bucket failed ({type(exc).__name__}: "
                f"{brief(exc)}); the result is returned inline instead.")
    return truncate(output, limit_bytes())


def _upload(output: dict[str, Any], output_format: str, bucket: Bucket) -> dict[str, Any]:
    from runpod.serverless.utils.rp_upload import get_boto_client

    client, _ = get_boto_client({"endpointUrl": bucket.endpoint_url,
                                 "accessId": bucket.access_key_id,
                                 "accessSecret": bucket.secret_access_key})
    prefix = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:12]}"
    files = {"json": json.dumps(output, ensure_ascii=False, default=str).encode()}
    if output_format != "json":
        files[output_format] = output[output_format].encode()
    urls, sizes = {}, {}
    for kind, body in files.items():
        key = f"{prefix}/result.{'md' if kind == 'markdown' else kind}"
        client.put_object(Bucket=bucket.name, Key=key, Body=body,
                          ContentType=CONTENT_TYPES[kind] + "; charset=utf-8")
        urls[kind] = client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket.name, "Key": key}, ExpiresIn=bucket.expiry_s)
        sizes[kind] = len(body)
    log.info("result uploaded to bucket %s as %s/ (%d bytes)", bucket.name, prefix,
             sum(sizes.values()))
    summary = {k: v for k, v in output.items() if k not in TEXT_FIELDS + LIST_FIELDS}
    segments = output["segments"]
    summary["summary"] = {
        "segments": len(segments),
        "words": sum(len(s.get("words", [])) for s in segments),
        "speakers": sorted({s["speaker"] for s in segments if s.get("speaker")}),
    }
    summary["result_urls"] = {"bucket": bucket.name, "prefix": prefix, "urls": urls,
                              "bytes": sizes, "expires_in_s": bucket.expiry_s}
    return summary


def truncate(output: dict[str, Any], limit: int) -> dict[str, Any]:
    """Fit the response under `limit` bytes: drop the text renderings, then keep the longest
    prefix of segments (and word timestamps up to its end) that fits; say so in a warning."""
    if _size(output) <= limit:
        return output
    dropped = [k for k in TEXT_FIELDS if output.get(k)]
    out = {k: v for k, v in output.items() if k not in dropped}
    total, budget = len(output["segments"]), limit - 2000  # room for the warning
    lo, hi = 0, total
    while lo < hi:  # the largest prefix length that fits
        mid = (lo + hi + 1) // 2
        if _size(_prefix(out, mid)) <= budget:
            lo = mid
        else:
            hi = mid - 1
    out = _prefix(out, lo)
    end = out["segments"][-1]["end"] if out["segments"] else 0.0
    out["truncated"] = True
    out["warnings"] = [*output["warnings"], (
        f"the result ({_size(output) / 1e6:.1f} MB) is over MAX_RESPONSE_MB "
        f"({limit / 1e6:g} MB): returned {lo} of {total} segments (up to {end:.1f} s)"
        + (f" and dropped {', '.join(dropped)}" if dropped else "")
        + "; configure a bucket (BUCKET_ENDPOINT_URL) to get the full result.")]
    return out


def _prefix(out: dict[str, Any], count: int) -> dict[str, Any]:
    segments = out["segments"][:count]
    cut = dict(out, segments=segments)
    if out.get("word_timestamps") is not None:
        end = segments[-1]["end"] if segments else 0.0
        cut["word_timestamps"] = [w for w in out["word_timestamps"]
                                  if (w.get("start") or 0.0) <= end]
    return cut
