"""The README's parameter table, generated from src/rp_schema.py (the one source of truth).

    python scripts/params_doc.py          # print the table
    python scripts/params_doc.py --write  # replace it in README.md
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from rp_schema import PARAMS  # noqa: E402

START, END = "<!-- params:start -->", "<!-- params:end -->"


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


def section() -> str:
    return f"{START}\n{table()}\n{END}"


def write() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    readme.write_text(pattern.sub(lambda _: section(), text))


if __name__ == "__main__":
    write() if "--write" in sys.argv else print(table())
