"""The README stays true: its parameter table is the schema's, and every setting is documented."""

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
        names = set(re.findall(r'environ(?:\.get|\.setdefault|\[)\(?\s*"([A-Z0-9_]+)"',
                               path.read_text()))
        assert names <= allowed, f"{path.name} reads {names - allowed}: add to WorkerSettings"


def test_ci_runs_the_readme_test_command() -> None:
    assert "make run" in README and "make test" in README
    assert "make test" in (ROOT / ".ci" / "run").read_text()
