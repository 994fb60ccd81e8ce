"""The docs site: its options table is generated from the options table in the code, and it builds with
``mkdocs build --strict`` (no warning: no broken link, anchor or docstring)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

from helpers import grid_images, tiny_cnn
from pytest_advrobust import attack
from pytest_advrobust.core.settings import OPTIONS

ROOT = Path(__file__).parents[1]
HOOK = ROOT / "docs" / "hooks" / "options_page.py"


def load_hook() -> ModuleType:
    """docs/hooks/ is not a package: load the hook from its file, as mkdocs does."""
    spec = importlib.util.spec_from_file_location("options_page", HOOK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hook = load_hook()


def table_rows(table: str) -> dict[str, list[str]]:
    """The generated table's rows by their CLI flag, each split into its cells."""
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        rows[cells[0].strip("`")] = cells
    return rows


def test_the_options_table_has_a_row_per_option_with_its_spellings_and_default() -> None:
    rows = table_rows(hook.options_table())
    assert list(rows) == [option.cli for option in OPTIONS]
    for option in OPTIONS:
        cli, ini, marker, metavar, default, meaning = rows[option.cli]
        assert cli == f"`{option.cli}`"
        assert ini == f"`{option.ini}`"
        assert marker == (f"`{option.name}`" if option.per_test else "—"), option.name
        assert metavar == f"`{option.metavar}`"
        assert default == hook.cell_text(option.shown_default)
        assert meaning == hook.cell_text(option.help)


def test_cells_hold_no_raw_html_or_column_breaks() -> None:
    assert hook.cell_text("a <arch>@<file> | b\n  c") == "a &lt;arch&gt;@&lt;file&gt; \\| b c"


def test_the_hook_fills_the_options_page_only() -> None:
    options_page = SimpleNamespace(file=SimpleNamespace(src_uri=hook.PAGE))
    other_page = SimpleNamespace(file=SimpleNamespace(src_uri="index.md"))
    filled = hook.on_page_markdown(f"# Options\n\n{hook.MARKER}\n", page=options_page)
    assert hook.MARKER not in filled and all(option.cli in filled for option in OPTIONS)
    assert hook.on_page_markdown(hook.MARKER, page=other_page) == hook.MARKER


def test_the_options_page_keeps_its_marker() -> None:
    assert hook.MARKER in (ROOT / "docs" / hook.PAGE).read_text(encoding="utf-8")


def _documented_keys(page: str) -> set[str]:
    """The keys named in the first cell of a table row (``| `label`, `label_name` | ...``)."""
    rows = re.findall(r"^\| ([^|]*`[^|]*)\|", page, re.MULTILINE)
    return {key for row in rows for key in re.findall(r"`([^`]+)`", row)}


@pytest.mark.filterwarnings("ignore:one FGSM step succeeded")
def test_the_json_report_page_names_every_key_a_run_writes() -> None:
    documented = _documented_keys((ROOT / "docs" / "reference" / "json-report.md").read_text(encoding="utf-8"))
    result = attack(tiny_cnn(seed=1), grid_images(4, seed=1), epsilon=0.05, steps=2, eot=2, targets="top-2")
    report = result.report()
    written = set(report.settings.to_json()) | {key for record in report.images for key in record.to_json()}
    assert {"draws", "flip_draws", "runner_ups_tried", "eot", "profile"} <= written
    assert written - documented == set()


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    pytest.importorskip("material", reason='the site needs the docs extra: pip install -e ".[docs]" (.ci/run does)')
    pytest.importorskip("mkdocstrings", reason='the site needs the docs extra: pip install -e ".[docs]"')
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},  # no banner about mkdocs 2 in a failure's output
    )
    assert build.returncode == 0, build.stdout + build.stderr
    options_page = (tmp_path / "reference" / "options" / "index.html").read_text(encoding="utf-8")
    missing = [option.cli for option in OPTIONS if f"<code>{option.cli}</code>" not in options_page]
    assert not missing, f"the built options page lacks {missing}"
