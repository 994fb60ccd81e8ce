"""Headless Chromium for the picture scripts: find it, and run it on a page at a device scale."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

SCALE = 2
"""Device pixels per CSS pixel: sharp on a high-density screen; GitHub shows the picture at its CSS width."""


def find_chromium() -> str:
    """The Chromium binary on PATH, or exit saying how to install it."""
    chromium = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    if chromium is None:
        sys.exit("needs Chromium (Debian: apt-get install chromium)")
    return chromium


def run_chromium(chromium: str, folder: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Chromium headless with a profile in ``folder`` (never the user's), at :data:`SCALE`."""
    return subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--force-device-scale-factor={SCALE}",
            f"--user-data-dir={folder / 'profile'}",
            *arguments,
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )


def output_path(description: str, default: Path, root: Path, argv: list[str] | None = None) -> Path:
    """The ``--output PATH`` a picture script takes (default: where the docs show the picture)."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--output", type=Path, default=default, help=f"the PNG to write (default: {default.relative_to(root)})"
    )
    output: Path = parser.parse_args(argv).output.resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    return output


def body_data(chromium: str, folder: Path, page: Path, width: int) -> dict[str, str]:
    """Pass 1: lay ``page`` out ``width`` CSS pixels wide and read back the ``data-*`` attributes its
    scripts set on ``<body>`` (``data-height``: how tall the content is)."""
    dom = run_chromium(chromium, folder, f"--window-size={width},800", "--dump-dom", page.as_uri()).stdout
    body = re.search(r"<body\b[^>]*>", dom)
    return dict(re.findall(r'(data-[a-z-]+)="([^"]*)"', body.group(0))) if body else {}


def screenshot(chromium: str, folder: Path, page: Path, width: int, height: int, output: Path) -> None:
    """Pass 2: ``page`` screenshot at exactly ``width`` × ``height`` CSS pixels, copied to ``output``."""
    shot = folder / "shot.png"
    run_chromium(chromium, folder, f"--window-size={width},{height}", f"--screenshot={shot}", page.as_uri())
    if not shot.is_file() or shot.stat().st_size == 0:
        sys.exit("Chromium wrote no screenshot")
    shutil.copyfile(shot, output)
