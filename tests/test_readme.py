"""The README tells the truth: every option is in its table, and CI runs its test command."""

from __future__ import annotations

from pathlib import Path

from pytest_advrobust.core.settings import OPTIONS

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_option_is_in_the_options_table() -> None:
    for option in OPTIONS:
        assert f"| `{option.cli}` | `{option.ini}` |" in README, option.name


def test_ci_runs_the_readme_test_command() -> None:
    command = 'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[test,examples]" && python -m pytest'
    assert command in README
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert command in ci
