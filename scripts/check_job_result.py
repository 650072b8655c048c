"""Check the log of a local RunPod run (`python -u src/handler.py` on test_input.json): the job
completed and returned transcript text. Prints a short summary; exits 1 otherwise.

    python scripts/check_job_result.py run.log

The RunPod SDK logs the result as a Python repr, cut in the middle past 4096 characters, so the
fields are read from the text that is there rather than parsed whole.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def summarize(log: str) -> tuple[bool, list[str]]:
    lines = []
    done = re.search(r"Job (\S+) completed successfully\.", log)
    failed = re.search(r"Job (\S+) failed with error: (.*)", log)
    # The logger cuts a long result in two, with a "...TRUNCATED..." line between the halves.
    start = log.find("Job result: ")
    result = log[start:log.find("Local testing complete", start)] if start >= 0 else ""
    # repr quotes a string with ' or, when it holds a ', with "
    texts = [(a or b).strip() for a, b in re.findall(
        r"""'text': (?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")""", result)]
    # The worker's own log lines (container output) say what the cut result may not; inside
    # the repr a line ends at an escaped newline, hence [^\\\n].
    for pattern in (r"worker\.handler: (job \S+ done: [^\\\n]*)",
                    r"worker\.media: (audio: [^\\\n]*)",
                    r"worker\.asr: ((?:detected language|transcribe:) [^\\\n]*)",
                    r"worker\.predict: (stage \w+: [^\\\n]*)",
                    r"WARNING worker\.\w+: ([^\\\n]*)"):
        lines += dict.fromkeys(m.strip() for m in re.findall(pattern, log))
    if texts:
        lines.append(f"segments shown: {len(texts)}; first: {texts[0][:120]!r}")
    if failed:
        lines.append(f"job {failed.group(1)} failed: {failed.group(2)[:300]}")
    ok = bool(done) and not failed and any(texts)
    lines.append(f"job result: {'OK' if ok else 'FAILED'}")
    return ok, lines


def main() -> None:
    ok, lines = summarize(Path(sys.argv[1]).read_text(errors="replace"))
    print("\n".join(lines))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
