"""MkDocs hook: the options reference page's table, generated from the options table in the code.

``docs/reference/options.md`` holds the marker ``<!-- options-table -->``; at build time it is replaced
by :func:`options_table`, rendered from :data:`pytest_advrobust.core.settings.OPTIONS` (the one home of
every setting's spellings, default and help text), so the page can never disagree with ``pytest --help``.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any

MARKER = "<!-- options-table -->"
PAGE = "reference/options.md"
HEADER = (
    "| CLI | ini | marker keyword | value | default | meaning and units |",
    "|---|---|---|---|---|---|",
)


def cell_text(text: str) -> str:
    """Text safe inside a Markdown table cell: no raw HTML (``<arch>``), no column breaks, one line."""
    return html.escape(" ".join(text.split()), quote=False).replace("|", "\\|")


def _code(text: str) -> str:
    return f"`{text}`"


def option_row(option: Any) -> str:
    """One row: CLI flag, ini key, marker keyword (— for session-wide settings), metavar, default, help."""
    marker = _code(option.name) if option.per_test else "—"
    cells = (
        _code(option.cli),
        _code(option.ini),
        marker,
        _code(option.metavar),
        cell_text(option.shown_default),
        cell_text(option.help),
    )
    return "| " + " | ".join(cells) + " |"


def options_table(options: Iterable[Any] | None = None) -> str:
    """The Markdown table of every option, in the order of the options table (``OPTIONS`` by default)."""
    if options is None:
        from pytest_advrobust.core.settings import OPTIONS

        options = OPTIONS
    return "\n".join([*HEADER, *(option_row(option) for option in options)]) + "\n"


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    """Replace the marker on the options page; a page that lost its marker fails the build."""
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        from mkdocs.exceptions import PluginError

        raise PluginError(f"{PAGE} must contain {MARKER} (where the generated options table goes)")
    return markdown.replace(MARKER, options_table())
