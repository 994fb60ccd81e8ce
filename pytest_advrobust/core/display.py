"""How text the user controls (image, class and label-file names, baseline entries) is shown in terminal
lines, failure messages and report lines. Pure Python.

A name is data: a file may be called ``x\\n::error title=…::…\\nz.png``. Printed as it is, that name would
start a line of its own, and GitHub's runner executes a line that starts (after spaces) with ``::`` as a
workflow command, and one that holds ``##[`` anywhere as a legacy one (``::stop-commands::`` would even
hide the plugin's own annotations). What is shown is escaped here; the JSON report and the baseline files
keep the real names.
"""

from __future__ import annotations

LEGACY_COMMAND = "##["
"""The runner's legacy command prefix, which it reads anywhere in a line."""
COMMAND = "::"
"""The workflow-command prefix, which the runner reads at the start of a line, after spaces."""


def _defused(text: str) -> str:
    return text.replace(LEGACY_COMMAND, "#\\x23[")


def shown(text: str) -> str:
    """``text`` as part of one line that starts no other line and no workflow command.

    Characters that do not print (``\\n``, ``\\r``, ``\\t``, ESC, ``\\u2028``, a lone surrogate left by an
    undecodable file name) are escaped as ``repr`` escapes them (``x\\n.png`` is shown ``x\\\\n.png``),
    ``##[`` as ``#\\x23[`` and a leading ``::`` as ``\\x3a:``. Everything else, backslashes included, is
    left as is, so ordinary names look as they are; shown text is shown unchanged again.
    """
    text = _defused("".join(char if char.isprintable() else repr(char)[1:-1] for char in text))
    rest = text.lstrip(" ")  # the only spaces left: every other kind is escaped above
    if rest.startswith(COMMAND):
        return text[: len(text) - len(rest)] + "\\x3a" + rest[1:]
    return text


def quoted(text: str | None) -> str:
    """``text`` quoted as ``repr`` quotes it (``'Egyptian cat'``; None as ``None``), with ``##[`` escaped as
    in :func:`shown`."""
    return _defused(repr(text))
