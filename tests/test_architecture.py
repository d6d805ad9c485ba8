"""The layering is checked, not only described (docs/architecture.md).

import-linter's contracts live in pyproject.toml ([tool.importlinter]): device roles never
import the server, the engine stays pure, and web pages ask the office façade instead of
reaching into the engine or the store. A new import that breaks a rule fails here.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.harness import ROOT


def test_the_import_contracts_hold():
    tool = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    result = subprocess.run([tool, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr


def test_no_file_keeps_a_merge_conflict_marker():
    """A merge once committed both sides of docs/protocol.md with git's markers in them."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    marked = []
    for name in files:
        path = ROOT / name
        if path.suffix not in {".py", ".md", ".toml", ".html", ".kv", ".sh", ".cfg", ".txt", ".po", ".pot"}:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        marked += [
            name for line in text.splitlines() if line.startswith(("<<<<<<< ", ">>>>>>> ")) or line == "======="
        ][:1]
    assert not marked, marked
