"""axe-core (Deque's accessibility rules engine) for the page tests, fetched from the npm registry.

Why fetched and not vendored: it is test tooling only (never served by Numerek), 560 KB, and
MPL-licensed; ``npm pack`` brings the pinned release into ``tests/.cache`` once, and later
runs use that copy. The script is run inside Debian's Chromium on the real page.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

from tests.harness import ROOT

AXE_VERSION = "4.10.3"
CACHE = ROOT / "tests" / ".cache"


def axe_script() -> str:
    """The text of axe.min.js of :data:`AXE_VERSION` (fetched with ``npm pack`` on first use)."""
    target = CACHE / f"axe-core-{AXE_VERSION}.min.js"
    if target.exists():
        return target.read_text(encoding="utf-8")
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:  # parallel workers: one fetches, the others wait for it
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.exists():
            _fetch(target)
    return target.read_text(encoding="utf-8")


def _fetch(target: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise AssertionError("npm is needed once to fetch axe-core for the accessibility tests (apt-get install npm)")
    done = subprocess.run(
        [npm, "pack", f"axe-core@{AXE_VERSION}", "--pack-destination", str(CACHE), "--silent"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise AssertionError(f"npm pack axe-core@{AXE_VERSION} failed: {done.stderr[-1000:]}")
    with tarfile.open(CACHE / f"axe-core-{AXE_VERSION}.tgz") as tgz:
        member = tgz.extractfile("package/axe.min.js")
        assert member is not None
        partial = target.with_suffix(".part")
        partial.write_bytes(member.read())
        partial.rename(target)


WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def axe_violations(page) -> list[dict]:
    """Run axe's WCAG 2.1 A and AA rules on the page open in ``page`` (a tests/browser.py Page)."""
    page.js(axe_script())
    result = page.call(
        "Runtime.evaluate",
        {
            "expression": f"axe.run(document, {{runOnly: {{type: 'tag', values: {json.dumps(WCAG_AA)}}}}})"
            ".then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, "
            "nodes: v.nodes.map(n => n.target.join(' '))})))",
            "awaitPromise": True,
            "returnByValue": True,
        },
        page.session,
    )
    return result["result"]["value"]
