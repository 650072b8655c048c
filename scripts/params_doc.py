"""What is generated from the parameter table and the worker settings, each from its one
source: src/rp_schema.py (PARAMS) and src/worker/settings.py (WorkerSettings). That is the
README's two tables and rp_schema's `JobInput` dataclass (typed fields a type checker reads).

    python scripts/params_doc.py          # print the tables
    python scripts/params_doc.py --write  # replace them in README.md and src/rp_schema.py
"""

from __future__ import annotations

import json
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

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


JOB_START, JOB_END = "# <job-input:start>", "# <job-input:end>"


def _annotation(tp: Any, choices: tuple[str, ...] = ()) -> str:
    """A parameter's type as source text; choices become a Literal."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _annotation(typing.get_args(tp)[0], choices)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_annotation(a, choices) for a in typing.get_args(tp))
    if tp is type(None):
        return "None"
    if choices and tp is str:
        return "Literal[" + ", ".join(repr(c) for c in choices) + "]"
    if origin is not None:
        return f"{origin.__name__}[{', '.join(_annotation(a) for a in typing.get_args(tp))}]"
    return "list[Any]" if tp is list else tp.__name__


def _field(name: str, annotation: str, default: str) -> str:
    line = f"    {name}: {annotation} = {default}"
    if len(line) <= 100 or "[" not in annotation:
        return line
    head, _, inner = annotation.partition("[")  # Literal[...]: one choice a line
    items = "".join(f"        {item.strip()},\n" for item in inner.rstrip("]").split(","))
    return f"    {name}: {head}[\n{items}    ] = {default}"


def job_input_class() -> str:
    """rp_schema.JobInput: one frozen, typed attribute per entry of PARAMS, in order."""
    fields = "\n".join(_field(p.name, _annotation(p.type, p.choices), repr(p.default))
                       for p in PARAMS)
    return (f"{JOB_START} (generated from PARAMS: python scripts/params_doc.py --write)\n"
            "@dataclass(frozen=True)\n"
            "class JobInput:\n"
            '    """A job\'s resolved parameters: one typed attribute per entry of PARAMS."""\n\n'
            f"{fields}\n{JOB_END}")


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
    schema = ROOT / "src" / "rp_schema.py"
    source = schema.read_text()
    pattern = re.compile(re.escape(JOB_START) + ".*?" + re.escape(JOB_END), re.S)
    schema.write_text(pattern.sub(lambda _: job_input_class(), source))


if __name__ == "__main__":
    write() if "--write" in sys.argv else print(f"{table()}\n\n{settings_table()}")
