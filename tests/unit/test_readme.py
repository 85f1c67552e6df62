"""The README is part of the product: its reference table and its commands must match the code."""

from __future__ import annotations

from pathlib import Path

from vlp.platform.spec.readme_sync import synced

README = Path(__file__).resolve().parents[2] / "README.md"


def test_spec_reference_is_current():
    text = README.read_text()
    assert synced(text) == text, "run: .venv/bin/python -m vlp.platform.spec.readme_sync README.md"


def test_readme_names_the_two_commands_and_ci_runs_the_test_one():
    text = README.read_text()
    assert "./dev.sh quickstart" in text and "./dev.sh test" in text
    assert "./dev.sh test" in (README.parent / ".ci" / "run").read_text()
