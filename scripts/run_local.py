"""`make run`: one job through the worker's handler, in this process, on test_input.json (or the
request file given), as runpod's local test mode (`python src/handler.py`) runs it, but
readable: the full result goes to output.json and a short summary to the terminal.

    python scripts/run_local.py [REQUEST.json] [--output output.json]

REQUEST.json holds `{"input": {...}}` as sent to RunPod. Exits 1 when the job fails, with its
error in full (runpod's local mode prints results as Python dicts cut at 4096 characters).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

PREVIEW_LINES = 12  # of the srt/vtt/txt/markdown rendering
PREVIEW_SEGMENTS = 5  # of the transcript, when no rendering was asked for
RENDERINGS = ("srt", "vtt", "txt", "markdown")


def load_request(path: Path) -> dict[str, Any]:
    """The request as RunPod's local test mode reads it; a clear error when it isn't one."""
    try:
        request = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SystemExit(f"{path}: cannot read a JSON request ({exc}).") from None
    if not isinstance(request, dict) or request.get("input") is None:
        raise SystemExit(f'{path}: expected a request {{"input": {{"audio_file": ...}}}}, '
                         f"as sent to RunPod.")
    return request


def summary(result: dict[str, Any], seconds: float) -> list[str]:
    """What a person reads first: language, length, speakers, warnings, stage timings and the
    start of the transcript."""
    lines = [f"completed in {seconds:.1f} s"]
    probability = result.get("language_probability")
    lines.append(f"language: {result.get('detected_language')}" + (
        f" (probability {probability:.2f})" if probability is not None else
        " (set by the request)"))
    lines.append(f"audio: {result.get('duration', 0):.1f} s, "
                 f"{len(result.get('segments', []))} segments")
    speakers = result.get("speakers")
    lines.append(f"speakers: {len(speakers)}: " + ", ".join(
        f"{s['id']} ({s['speech_seconds']:.1f} s)" for s in speakers)
        if speakers else "speakers: not diarized")
    warnings = result.get("warnings") or []
    lines.append(f"warnings: {len(warnings)}" if warnings else "warnings: none")
    lines += [f"  - {w}" for w in warnings]
    timings = (result.get("debug_info") or {}).get("timings")
    lines.append("timings: " + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items())
                 if timings else 'timings: send "debug": true for stage timings')
    if "result_urls" in result:
        lines.append("uploaded: " + ", ".join(
            f"{kind} {url}" for kind, url in result["result_urls"]["urls"].items()))
    rendering = next((k for k in RENDERINGS if isinstance(result.get(k), str)), None)
    if rendering:
        text = result[rendering].splitlines()
        lines.append(f"{rendering} (first {min(len(text), PREVIEW_LINES)} of {len(text)} "
                     "lines):")
        lines += [f"  {line}" for line in text[:PREVIEW_LINES]]
    else:
        segments = result.get("segments", [])
        lines.append(f"transcript (first {min(len(segments), PREVIEW_SEGMENTS)} of "
                     f"{len(segments)} segments):")
        lines += [f"  [{s['start']:.1f}-{s['end']:.1f}] "
                  + (f"{s['speaker']}: " if s.get("speaker") else "") + s["text"].strip()
                  for s in segments[:PREVIEW_SEGMENTS]]
    return lines


def container_log() -> str | None:
    """Where the worker also writes every log line (CONTAINER_LOG), if anywhere."""
    from worker import settings

    try:
        path = settings.get().container_log
    except settings.SettingsError:
        return None
    return str(path.resolve()) if path else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("request", nargs="?", type=Path, default=ROOT / "test_input.json",
                        help="request file (default: test_input.json)")
    parser.add_argument("--output", type=Path, default=ROOT / "output.json",
                        help="where the full result goes (default: output.json)")
    args = parser.parse_args(argv)
    request = load_request(args.request)

    import handler  # after the request is known good: this loads torch & co

    job_id = str(request.get("id", "local_test"))  # runpod's local test mode's id
    start = time.perf_counter()
    result = handler.handler({"id": job_id, "input": request["input"]})
    seconds = time.perf_counter() - start
    args.output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n",
                           encoding="utf-8")

    log_file = container_log()
    where = (f"logs: this job's in {args.output} (\"logs\")"
             + (f", every worker line in {log_file}" if log_file else ""))
    if "error" in result:
        print(f"\njob {job_id} FAILED after {seconds:.1f} s: {result['error']}\n"
              f"full result: {args.output}\n{where}", file=sys.stderr)
        return 1
    print(f"\njob {job_id} " + "\n".join(summary(result, seconds)))
    print(f"full result: {args.output} ({args.output.stat().st_size:,} bytes)\n{where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
