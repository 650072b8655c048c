"""The output folder: one JSON per input plus its subtitle/text file, `index.jsonl` (what is
done, by input key and parameters hash: what a rerun skips) and `failures.jsonl`."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no lock; don't run two clients on one folder
    fcntl = None  # type: ignore[assignment]

# The result fields holding an output_format rendering, and the file suffix for each.
FORMAT_FIELDS = {"srt": "srt", "vtt": "vtt", "txt": "txt", "markdown": "md"}


def params_hash(params: dict[str, Any]) -> str:
    text = json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Busy(Exception):
    """Another client run holds the output folder."""


class Store:
    def __init__(self, folder: Path, params: dict[str, Any]) -> None:
        self.folder = folder
        self.params = params_hash(params)
        folder.mkdir(parents=True, exist_ok=True)
        self.index_path = folder / "index.jsonl"
        self.records: dict[tuple[str, str], dict[str, Any]] = {}
        if self.index_path.exists():
            for line in self.index_path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                    self.records[(record["key"], record["params"])] = record
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by a crash
        self.index = self.index_path.open("a", encoding="utf-8")
        if fcntl is not None:
            try:
                fcntl.flock(self.index, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                self.index.close()
                raise Busy(f"another whisperx-client run is writing to {folder}; wait for it "
                           "or use another --out folder.") from None

    def close(self) -> None:
        self.index.close()

    def previous(self, key: str) -> dict[str, Any] | None:
        """This input's record under these parameters: done (its result file still there), or
        failed for good with an input error."""
        record = self.records.get((key, self.params))
        if record is None:
            return None
        if record["status"] == "done" and not (self.folder / record["result"]).is_file():
            return None
        return record

    def _write(self, rel: str, text: str) -> None:
        path = self.folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)  # a crash leaves no half-written result

    def _append(self, record: dict[str, Any]) -> None:
        self.records[(record["key"], record["params"])] = record
        self.index.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.index.flush()

    def done(self, name: str, key: str, result: dict[str, Any], texts: dict[str, str],
             attempts: list[dict[str, Any]]) -> dict[str, Any]:
        """Write the result and its format files, then record it as done."""
        files = []
        for field, text in texts.items():
            rel = f"{name}.{FORMAT_FIELDS[field]}"
            self._write(rel, text)
            files.append(rel)
        self._write(f"{name}.json", json.dumps(result, ensure_ascii=False, indent=1))
        record = {"status": "done", "input": name, "key": key, "params": self.params,
                  "result": f"{name}.json", "files": files,
                  "duration": result.get("duration"), "attempts": attempts,
                  "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        self._append(record)
        return record

    def failed_for_good(self, name: str, key: str, error: str,
                        attempts: list[dict[str, Any]]) -> None:
        """An input error: the same input and parameters fail the same way, so a rerun skips
        it (--retry-failed sends it again)."""
        self._append({"status": "input_error", "input": name, "key": key,
                      "params": self.params, "error": error, "attempts": attempts,
                      "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})

    def write_failures(self, failures: list[dict[str, Any]]) -> Path:
        path = self.folder / "failures.jsonl"
        self._write(path.name, "".join(json.dumps(f, ensure_ascii=False) + "\n"
                                       for f in failures))
        return path
