"""GitHub Actions workflow commands: ``::error file=…,line=…,title=…::message`` lines on stdout, which the
runner turns into annotations on the run's page and on the pull request's diff; and the job summary,
which it renders on the run's page. Pure Python.

Escaping follows the runner's rules: ``%``, ``\\r`` and ``\\n`` in the message, and also ``:`` and ``,`` in
property values (``file``, ``title``), which would otherwise end them.
"""

from __future__ import annotations

from pathlib import Path


def escape_data(text: str) -> str:
    """A message as one workflow-command line (a multi-line message stays multi-line on the page)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A property value (``file=``, ``title=``): data escaping plus ``:`` and ``,``."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def error_command(message: str, *, file: str, line: int, title: str) -> str:
    """An error annotation on ``file`` (relative to the repository root) at 1-based ``line``."""
    return f"::error file={escape_property(file)},line={line},title={escape_property(title)}::{escape_data(message)}"


def append_step_summary(path: Path, markdown: str) -> None:
    """Append ``markdown`` to the step's job summary (``$GITHUB_STEP_SUMMARY``): what other steps and
    other runs of the step wrote is kept, a blank line apart."""
    separator = "\n" if path.exists() and path.stat().st_size else ""
    with path.open("a", encoding="utf-8") as summary:
        summary.write(separator + markdown)
