"""ruff (lint and format) and mypy are part of the test command, so style and type problems fail CI like a broken test.

The versions are pinned in pyproject.toml's [dev] extra: a new ruff release must not turn
a green main red, and everyone formats with the same rules.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.harness import ROOT


def _ruff() -> str:
    return shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff") or "ruff"


def test_ruff_finds_no_problems():
    result = subprocess.run([_ruff(), "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_file_is_formatted_as_ruff_format_would():
    result = subprocess.run([_ruff(), "format", "--check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_no_type_errors():
    """mypy (pinned; strict for protocol/ and the engine, see [tool.mypy]) over every package.

    No cache read: an old cache once hid an error that a clean checkout showed. And none written
    (``--cache-dir /dev/null``, mypy's documented way): nobody reads it, and writing it was 3 of
    mypy's 18 s of CPU."""
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", os.devnull],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
