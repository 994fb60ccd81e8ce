"""MkDocs hook: repository files shown verbatim, and API docstrings written with Sphinx roles.

- ``pymdownx.snippets`` (``--8<-- "examples/ci/github-actions.yml"``) reads files relative to the
  repository root, wherever ``mkdocs`` is started from.
- The package's docstrings cross-reference with Sphinx roles (``:class:`ImageSet```), which Markdown
  shows verbatim; mkdocstrings renders them as ``:class:<code>ImageSet</code>``. The role is dropped
  and ``~pkg.mod.name`` is shown as ``name``, as Sphinx would.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|exc|data|obj|const):<code>(~?)([^<]*)</code>")


def on_config(config: Any, **kwargs: Any) -> Any:
    root = str(Path(config.config_file_path).resolve().parent)
    config.mdx_configs.setdefault("pymdownx.snippets", {})["base_path"] = [root]
    return config


def _plain(match: re.Match[str]) -> str:
    short, target = match.groups()
    return f"<code>{target.rsplit('.', 1)[-1] if short else target}</code>"


def on_page_content(html: str, **kwargs: Any) -> str:
    return ROLE.sub(_plain, html)
