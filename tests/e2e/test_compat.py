"""Requests written for the workers people switch from (issue 10 items 1, 3, 4, 7, 10): inline
audio in audio_file, distil model names, subtitle limits on a real transcript, malformed URLs."""

from __future__ import annotations

import base64
import re

import pytest

from conftest import MODELS

FAST = {"diarization": False, "align_output": False, "language": "en"}


def ok(result: dict) -> dict:
    assert "error" not in result, result
    return result


# --- item 10: malformed URLs ---------------------------------------------------------------

@pytest.mark.parametrize(("url", "error"), [
    ("http://host:99999/a.wav",
     "audio_file: the URL's port is not a number from 0 to 65535; fix the URL."),
    ("http://host:abc/a.wav",
     "audio_file: the URL's port is not a number from 0 to 65535; fix the URL."),
    ("http://[::1/a.wav",
     "audio_file: not a valid URL (Invalid IPv6 URL); send an http(s) URL like "
     "https://host/file.wav."),
    ("http://[zz]/a.wav",
     "audio_file: not a valid URL ('zz' does not appear to be an IPv4 or IPv6 address); send "
     "an http(s) URL like https://host/file.wav."),
    ("http:///a.wav",
     "audio_file: the URL has no host name; send a URL like https://host/file.wav."),
    ("https://:80/a.wav",
     "audio_file: the URL has no host name; send a URL like https://host/file.wav."),
    ("http://host..com/a.wav",
     "audio_file: the host name 'host..com' is not valid (an empty or over-long label); fix "
     "the URL."),
    ("http://" + "a" * 70 + ".com/a.wav",
     f"audio_file: the host name '{'a' * 70}.com' is not valid (an empty or over-long label); "
     "fix the URL."),
    ("http://exa mple.com/a.wav",
     "audio_file: the URL contains spaces or control characters; percent-encode them (%20)."),
    ("http://a\uff03b/a.wav",
     "audio_file: not a valid URL (netloc 'a\uff03b' contains invalid characters under NFKC "
     "normalization); send an http(s) URL like https://host/file.wav."),
])
def test_malformed_url_is_an_input_error_naming_audio_file(run_job, url, error):
    assert run_job({"audio_file": url} | FAST)["error"] == error


def test_malformed_redirect_target_is_an_input_error(run_job, monkeypatch):
    """A redirect hop is checked like the first URL: its bad port is not an internal error."""
    import http.server
    import threading

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:99999/a.wav")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("ALLOW_PRIVATE_URLS", "true")
    try:
        result = run_job({"audio_file": f"http://127.0.0.1:{server.server_address[1]}/x"}
                         | FAST)
    finally:
        server.shutdown()
    assert result["error"] == (
        "audio_file: the URL's port is not a number from 0 to 65535; fix the URL.")


# --- item 3: base64 and data URIs in audio_file ----------------------------------------------

@pytest.fixture(scope="module")
def clip_b64(sample_clip) -> str:
    return base64.b64encode(sample_clip(8).read_bytes()).decode()


@pytest.mark.parametrize("form", ["data_uri", "raw", "raw_wrapped"])
def test_audio_file_takes_inline_audio(run_job, clip_b64, form):
    value = {"data_uri": f"data:audio/wav;base64,{clip_b64}", "raw": clip_b64,
             "raw_wrapped": "\n".join(clip_b64[i:i + 76] for i in range(0, len(clip_b64), 76))
             }[form]
    result = ok(run_job({"audio_file": value, "debug": True} | FAST))
    assert result["debug_info"]["audio"]["source"] == "base64"
    assert "new jersey" in result["transcription"].lower()
    # the parameter report never echoes the whole file
    assert result["debug_info"]["params"]["audio_file"]["value"] == f"<{len(value)} characters>"


def test_local_file_name_wins_over_base64_look_alike(run_job, tmp_path, monkeypatch,
                                                      sample_clip):
    name = "A" * 80  # base64 alphabet, long enough to be base64, but a file of that name exists
    (tmp_path / name).write_bytes(sample_clip(8).read_bytes())
    monkeypatch.setenv("LOCAL_INPUT_DIR", str(tmp_path))
    result = ok(run_job({"audio_file": name, "debug": True} | FAST))
    assert result["debug_info"]["audio"]["source"] == "local"


@pytest.mark.parametrize(("value", "error"), [
    ("data:audio/wav,UklGRg==",
     "audio_file: a data: URI must be base64-encoded, like 'data:audio/wav;base64,UklGR...'."),
    ("data:audio/wav;base64,%%%not-base64%%%",
     "audio_file: not valid base64. Encode the file's bytes with standard base64 (e.g. "
     "`base64 -w0 file.wav`)."),
    ("QUJD" * 20,  # valid base64, taken as base64, but of bytes that are no media file
     "audio: not a readable audio or video file ("),
])
def test_bad_inline_audio_names_the_problem(run_job, value, error):
    assert run_job({"audio_file": value} | FAST)["error"].startswith(error)


def test_inline_audio_respects_max_download_mb(run_job, clip_b64, monkeypatch):
    monkeypatch.setenv("MAX_DOWNLOAD_MB", "0.1")
    assert run_job({"audio_file": f"data:audio/wav;base64,{clip_b64}"} | FAST)["error"] == (
        "audio_file: the inline file is larger than MAX_DOWNLOAD_MB=0.1; send a smaller file "
        "or a URL.")
    assert run_job({"audio_base64": clip_b64} | FAST)["error"] == (
        "audio_base64: the inline file is larger than MAX_DOWNLOAD_MB=0.1; send a smaller "
        "file or a URL.")


# --- item 4: distil models --------------------------------------------------------------------

@pytest.mark.parametrize("name", ["distil-large-v3", "distil-large-v2", "distil-small.en"])
def test_distil_names_map_to_what_the_image_holds(run_job, sample_clip, local_file, tmp_path,
                                                 monkeypatch, name):
    (tmp_path / "large-v3-turbo").symlink_to(MODELS / "base")
    monkeypatch.setenv("MODELS_DIR", str(tmp_path))
    result = ok(run_job({"audio_file": local_file(sample_clip(8)), "model": name} | FAST))
    assert (f"model '{name}' is not in this image; using 'large-v3-turbo' instead."
            in result["warnings"])
    assert "new jersey" in result["transcription"].lower()


def test_baked_distil_model_is_used_by_its_name(run_job, sample_clip, local_file, tmp_path,
                                               monkeypatch):
    (tmp_path / "distil-large-v3").symlink_to(MODELS / "base")  # where fetch_models puts it
    monkeypatch.setenv("MODELS_DIR", str(tmp_path))
    result = ok(run_job({"audio_file": local_file(sample_clip(8)), "model": "distil-large-v3",
                         "debug": True} | FAST))
    assert not [w for w in result["warnings"] if "not in this image" in w]
    assert result["debug_info"]["model"]["path"] == str(tmp_path / "distil-large-v3")


# --- item 7: subtitle limits on a real transcript ---------------------------------------------

CUE_TIME = re.compile(r"^(\S+) --> (\S+)$")


def parse_cues(text: str) -> list[tuple[float, float, list[str]]]:
    """(start, end, lines) of each SRT or VTT cue."""
    def seconds(stamp: str) -> float:
        parts = stamp.replace(",", ".").split(":")
        return sum(float(p) * 60 ** i for i, p in enumerate(reversed(parts)))

    cues = []
    for block in text.strip().split("\n\n"):
        lines = block.splitlines()
        at = next((i for i, line in enumerate(lines) if CUE_TIME.match(line)), None)
        if at is None:
            continue  # the WEBVTT header
        start, end = CUE_TIME.match(lines[at]).groups()
        cues.append((seconds(start), seconds(end), lines[at + 1:]))
    return cues


def test_subtitle_limits_hold_on_a_real_transcript(run_job):
    """The whole 30 s two-speaker recording, diarized, with real word timings, under limits:
    both the requested vtt and the official worker's srt `transcription` keep them."""
    limited = ok(run_job({
        "audio_file": "sample.wav", "language": "en", "align_output": True,
        "diarization": True, "diarization_backend": "campplus", "output_format": "vtt",
        "transcription": "srt", "max_line_width": 32, "max_line_count": 2,
        "max_cue_duration": 3.0}))
    for field in ("vtt", "transcription"):
        check_limits(limited, field)


def check_limits(limited: dict, field: str) -> None:
    cues = parse_cues(limited[field])
    words = [w for s in limited["segments"] for w in s.get("words", [])]
    assert len(words) > 50 and len(cues) > len(limited["segments"])  # cues were really cut
    for start, end, lines in cues:
        text = " ".join(lines)
        single_word = len(re.sub(r"^\[[^\]]+\]: ", "", text).split()) == 1
        assert 1 <= len(lines) <= 2, lines
        assert all(len(line) <= 32 for line in lines) or single_word, lines
        assert end - start <= 3.0 + 1e-3 or single_word, (start, end, lines)
        assert len(set(re.findall(r"\[(SPEAKER_\d+)\]", text))) <= 1, lines
    # nothing lost or reordered: the cues hold every word of the transcript, in order
    spoken = [w["word"].strip() for w in words if w.get("start") is not None]
    shown = " ".join(" ".join(lines) for _, _, lines in cues)
    assert re.sub(r"\[SPEAKER_\d+\]: ", "", shown).split() == spoken


def test_highlight_words_gives_one_karaoke_cue_per_word(run_job, sample_clip, local_file):
    result = ok(run_job({"audio_file": local_file(sample_clip(8)), "output_format": "vtt",
                         "highlight_words": True, "align_output": True, "diarization": False,
                         "language": "en"}))
    cues = parse_cues(result["vtt"])
    timed = [w for s in result["segments"] for w in s["words"] if w.get("start") is not None]
    assert len(cues) == len(timed) > 10
    for (start, end, lines), word in zip(cues, timed, strict=True):
        assert re.findall(r"<u>(.*?)</u>", " ".join(lines)) == [word["word"].strip()]
        assert (start, end) == (round(word["start"], 3), round(word["end"], 3))


def test_max_line_count_alone_wraps_at_42_characters(run_job, sample_clip, local_file):
    result = ok(run_job({"audio_file": local_file(sample_clip(8)), "output_format": "srt",
                         "max_line_count": 1} | FAST))
    cues = parse_cues(result["srt"])
    assert len(cues) > len(result["segments"])
    assert all(len(lines) == 1 and len(lines[0]) <= 42 for _, _, lines in cues), cues


def test_without_limits_srt_keeps_one_cue_per_segment(run_job, sample_clip, local_file):
    result = ok(run_job({"audio_file": local_file(sample_clip(8)), "output_format": "srt"}
                        | FAST))
    assert len(parse_cues(result["srt"])) == len(result["segments"])
