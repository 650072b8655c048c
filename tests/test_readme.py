"""The README stays true: its parameter table is the schema's, and every setting is documented."""

from __future__ import annotations

import re

from conftest import ROOT

README = (ROOT / "README.md").read_text()


def test_parameter_table_matches_the_schema() -> None:
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    import params_doc

    assert params_doc.section() in README, "run: python scripts/params_doc.py --write"


def test_every_environment_setting_read_by_the_worker_is_documented() -> None:
    names = set()
    for path in (ROOT / "src").glob("*.py"):
        names |= set(re.findall(r'(?:environ\.get|settings\.flag|_env_float)\(\s*"([A-Z0-9_]+)"',
                                path.read_text()))
    assert names >= {"MODELS_DIR", "LOCAL_INPUT_DIR", "MAX_DOWNLOAD_MB", "ALLOW_PRIVATE_URLS",
                     "HF_HUB_OFFLINE", "OFFLINE_MODE", "WARM_UP"}
    missing = sorted(n for n in names if f"`{n}`" not in README)
    assert not missing, f"document these in README.md: {missing}"


def test_ci_runs_the_readme_test_command() -> None:
    assert "make run" in README and "make test" in README
    assert "make test" in (ROOT / ".ci" / "run").read_text()
