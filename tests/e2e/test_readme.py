"""The README stays true: its parameter table is the schema's, every setting is documented, its
Layout names every package, and its links and docs/ pages point at things that exist."""

from __future__ import annotations

import re

from conftest import ROOT

README = (ROOT / "README.md").read_text()


def test_parameter_table_matches_the_schema() -> None:

    import params_doc

    assert params_doc.section() in README, "run: python scripts/params_doc.py --write"
    assert params_doc.settings_section() in README, "run: python scripts/params_doc.py --write"


def test_the_worker_reads_its_environment_only_through_the_settings_object() -> None:
    # Every env read outside settings.py must be a job parameter's (rp_schema) or set a
    # third-party default; new worker settings go into WorkerSettings, which documents them.
    allowed = {"PYANNOTE_METRICS_ENABLED", "TOKENIZERS_PARALLELISM", "HF_TOKEN",
               "HUGGINGFACE_ACCESS_TOKEN", "HUGGING_FACE_HUB_TOKEN"}
    for path in (ROOT / "src").rglob("*.py"):
        if path.name in ("settings.py", "rp_schema.py"):
            continue
        if path.is_relative_to(ROOT / "src" / "client"):
            continue  # the bulk client runs on the user's machine, not in the worker
        names = set(re.findall(r'environ(?:\.get|\.setdefault|\[)\(?\s*"([A-Z0-9_]+)"',
                               path.read_text()))
        assert names <= allowed, f"{path.name} reads {names - allowed}: add to WorkerSettings"


def test_ci_runs_the_readme_test_command() -> None:
    assert "make run" in README and "make test" in README
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def _section(text: str, heading: str) -> str:
    """The body of the `## heading` section, up to the next `## ` heading."""
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def test_layout_names_every_package() -> None:
    # A new stage package (src/<name>/__init__.py) must get its line in the README's Layout.
    layout = _section(README, "Layout")
    packages = sorted(init.parent.relative_to(ROOT / "src").as_posix()
                      for init in (ROOT / "src").rglob("__init__.py"))
    assert packages, "no packages found under src/"
    missing = [name for name in packages if f"src/{name}/" not in layout]
    assert not missing, f"the README's Layout section doesn't name {missing}"


def _anchor(heading: str) -> str:
    # GitHub's heading ids: lowercase, punctuation dropped, spaces to hyphens.
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_between_readme_and_docs_resolve() -> None:
    # Notes moved out of the README into docs/: every relative link, and its #anchor, must land.
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+://", target):
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{page.name}: {target}")
            elif anchor and file.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", file.read_text(), re.M)
                if anchor not in {_anchor(h) for h in headings}:
                    broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, broken


def test_files_named_in_readme_and_docs_exist() -> None:
    # Modules move between packages; a page naming src/x.py after the move misleads.
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    named = {(page.name, path) for page in pages for path in re.findall(
        r"\b((?:src|scripts|tests|builder)/[\w./-]+\.(?:py|json|sh))", page.read_text())}
    assert named
    missing = sorted(f"{page}: {path}" for page, path in named if not (ROOT / path).exists())
    assert not missing, missing


def test_job_input_is_generated_from_the_parameter_table() -> None:
    import dataclasses

    import params_doc
    import rp_schema

    assert params_doc.job_input_class() in (ROOT / "src" / "rp_schema.py").read_text(), \
        "run: python scripts/params_doc.py --write"
    fields = dataclasses.fields(rp_schema.JobInput)
    assert [(f.name, f.default) for f in fields] == [(p.name, p.default) for p in rp_schema.PARAMS]
