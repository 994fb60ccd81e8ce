"""Headless Chromium for the picture scripts: find it, and run it on a page at a device scale."""

from __future__ import annotations

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
