"""The README's parameter and worker-settings tables, generated from their one source each:
src/rp_schema.py (PARAMS) and src/worker/settings.py (WorkerSettings).

    python scripts/params_doc.py          # print the tables
    python scripts/params_doc.py --write  # replace them in README.md
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from rp_schema import PARAMS
from worker.settings import WorkerSettings, env_name

ROOT = Path(__file__).resolve().parent.parent

START, END = "<!-- params:start -->", "<!-- params:end -->"
SETTINGS_START, SETTINGS_END = "<!-- settings:start -->", "<!-- settings:end -->"


def table() -> str:
    rows = [
        "| parameter | default | env | accepts | what it does |",
        "|---|---|---|---|---|",
    ]
    for p in PARAMS:
        name = f"`{p.name}`" + "".join(f"<br>`{k}`" for k in p.keys)
        env = "<br>".join(f"`{n}`" for n in p.env_names) or "—"
        default = f"`{json.dumps(p.default)}`"
        rows.append(f"| {name} | {default} | {env} | {p.allowed} | {p.doc} |")
    return "\n".join(rows)


def settings_table() -> str:
    rows = ["| variable | default | what it does |", "|---|---|---|"]
    for name, info in WorkerSettings.model_fields.items():
        default = "unset" if info.default is None else f"`{json.dumps(info.default, default=str)}`"
        rows.append(f"| `{env_name(name)}` | {default} | {info.description} |")
    return "\n".join(rows)


def section() -> str:
    return f"{START}\n{table()}\n{END}"


def settings_section() -> str:
    return f"{SETTINGS_START}\n{settings_table()}\n{SETTINGS_END}"


def write() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    for start, end, body in ((START, END, section()),
                             (SETTINGS_START, SETTINGS_END, settings_section())):
        pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
        text = pattern.sub(lambda _, body=body: body, text)
    readme.write_text(text)


if __name__ == "__main__":
    write() if "--write" in sys.argv else print(f"{table()}\n\n{settings_table()}")
