"""``numerek-central-demo`` starts a centre and two branches, and the centre sees both work."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading

import httpx
import pytest

from tests.central_support import PG_BIN
from tests.harness import ROOT, wait_for
from tests.test_demo import ignore_sigint

pytestmark = pytest.mark.skipif(not (PG_BIN / "initdb").exists(), reason="PostgreSQL 15 is installed by .ci/setup")


def test_the_demo_shows_two_working_branches_in_the_centres_live_view(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "central.demo", "--dir", str(tmp_path / "demo"), "--pace", "0.2"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=ignore_sigint,  # as a script's background job starts it: Ctrl-C must still stop it
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()  # type: ignore[arg-type]
    try:
        found = wait_for(
            lambda: (
                next((m for line in lines if (m := re.search(r"Centre: (\S+)\s+\(login: (\S+) (\S+)\)", line))), None)
                or (proc.poll() is not None and pytest.fail("".join(lines)))
            ),
            120,
            "the demo's centre",
        )
        url, name, password = found.groups()
        client = httpx.Client(base_url=url, timeout=10)
        assert client.post("/login", data={"name": name, "password": password}).status_code == 303

        def both_replicating() -> bool:
            live = {b["branch"]: b for b in client.get("/api/live").json()}
            return all(live.get(b, {}).get("last_event_at") and live[b]["in_contact"] for b in ("wola", "mokotow"))

        wait_for(both_replicating, 90, "events of both demo branches at the centre")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    assert proc.returncode == 0, "".join(lines)
