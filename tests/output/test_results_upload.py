"""Results in a bucket and results too big for a RunPod response, against a real
S3-compatible server (moto in server mode on 127.0.0.1) through boto3: no mocked client."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
import requests

from output import delivery

SECRET = "s3cr3t-Bucket-Key-0123456789"
FAST = {"diarization": False, "align_output": False, "language": "en"}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_endpoint, monkeypatch) -> str:
    monkeypatch.setenv("BUCKET_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("BUCKET_ACCESS_KEY_ID", "AKIATESTKEYID")
    monkeypatch.setenv("BUCKET_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("BUCKET_NAME", "transcripts")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id="AKIATESTKEYID",
                 aws_secret_access_key=SECRET, region_name="us-east-1"
                 ).create_bucket(Bucket="transcripts")
    return "transcripts"


@pytest.fixture
def clip(local_file, sample_clip) -> str:
    return local_file(sample_clip(10))


def test_result_uploaded_and_read_back_through_presigned_urls(run_job, clip, bucket):
    result = run_job({"audio_file": clip, "output_format": "srt", "debug": True, **FAST})
    assert "error" not in result, result.get("error")
    urls = result["result_urls"]
    assert urls["bucket"] == bucket and set(urls["urls"]) == {"json", "srt"}
    full = requests.get(urls["urls"]["json"], timeout=10)
    assert full.status_code == 200
    uploaded = full.json()
    assert uploaded["segments"] and uploaded["segments"][0]["text"].strip()
    assert uploaded["duration"] == result["duration"] == 10.0
    assert len(full.content) == urls["bytes"]["json"]
    srt = requests.get(urls["urls"]["srt"], timeout=10).text
    assert srt == uploaded["srt"] and "-->" in srt
    # the response is a summary: no bulky fields, counts instead
    assert "segments" not in result and "srt" not in result and "transcription" not in result
    assert result["summary"]["segments"] == len(uploaded["segments"])
    assert result["detected_language"] == "en"
    # the bucket's secret is nowhere: response, logs, debug_info, the uploaded result
    assert SECRET not in json.dumps(result) and SECRET not in full.text


def test_upload_results_false_returns_inline_even_with_a_bucket(run_job, clip, bucket):
    result = run_job({"audio_file": clip, "upload_results": False, **FAST})
    assert "result_urls" not in result and result["segments"]


def test_upload_results_without_a_bucket_fails_before_any_work(run_job, clip):
    result = run_job({"audio_file": clip, "upload_results": True, **FAST})
    assert result["error"].startswith("upload_results: true needs a bucket, and this worker has "
                                      "none; set BUCKET_ENDPOINT_URL")
    assert "stage download" not in result["logs"]


def test_predictably_too_big_result_fails_before_transcription(run_job, local_file, monkeypatch):
    from conftest import SAMPLES

    monkeypatch.setenv("MAX_RESPONSE_MB", "0.01")  # 30 s with char alignments: > 10 kB
    result = run_job({"audio_file": local_file(SAMPLES / "sample.wav"),
                      "return_char_alignments": True, **FAST})
    assert "over the 0.01 MB a RunPod response can carry (MAX_RESPONSE_MB); configure a " \
           "bucket" in result["error"], result["error"]
    assert "stage transcription" not in result["logs"]


def test_unpredictably_big_result_is_truncated_with_a_warning(run_job, clip, monkeypatch):
    full = run_job({"audio_file": clip, "output_format": "vtt", "language": "en",
                    "diarization": False, "word_timestamps": True})
    assert "error" not in full, full.get("error")
    segments_only = {k: v for k, v in full.items() if k not in delivery.TEXT_FIELDS}
    limit = len(json.dumps(segments_only, default=str)) * 3 // 4
    cut = delivery.truncate({k: v for k, v in full.items() if k != "logs"}, limit)
    assert len(json.dumps(cut, default=str).encode()) <= limit
    assert cut["truncated"] is True and "vtt" not in cut and "transcription" not in cut
    assert len(cut["segments"]) < len(full["segments"])
    assert len(cut["word_timestamps"]) < len(full["word_timestamps"])
    assert any("is over MAX_RESPONSE_MB" in w and "configure a bucket" in w
               for w in cut["warnings"])


def test_failed_upload_returns_the_result_inline_with_a_warning(run_job, clip, bucket,
                                                                monkeypatch):
    monkeypatch.setenv("BUCKET_NAME", "no-such-bucket")
    result = run_job({"audio_file": clip, **FAST})
    assert result["segments"] and "result_urls" not in result
    assert any(w.startswith("upload_results: the upload to the bucket failed (NoSuchBucket: ")
               for w in result["warnings"]), result["warnings"]
    assert SECRET not in json.dumps(result)
