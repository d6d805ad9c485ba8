"""The tools the tests run are the tools a user runs: a fork of the server zygote (tests/harness.py
``run_tool``, ``start_tool``) answers as ``python -m <tool>`` started fresh does — exit status,
stdout, stderr, what it reads on stdin, what it writes to its log, how a signal ends it."""

from __future__ import annotations

import signal
import sqlite3
import sys
from contextlib import closing
from pathlib import Path

from server.store import Store
from tests.harness import FORKS, ROOT, ForkedProcess, free_port, run_tool, start_tool, wait_for, write_config

BIN = Path(sys.executable).parent


def both(monkeypatch, *args, **kw):
    """The same tool run twice: forked from the zygote, then with exec (NUMEREK_TEST_EXEC=1)."""
    before = FORKS.cpu
    forked = run_tool(*args, **kw)
    assert FORKS.cpu > before, "the zygote did not run it"
    with monkeypatch.context() as m:
        m.setenv("NUMEREK_TEST_EXEC", "1")
        fresh = run_tool(*args, **kw)
    return forked, fresh


def test_a_forked_tool_exits_and_prints_as_the_tool_started_fresh(monkeypatch, tmp_path):
    example = str(ROOT / "counter" / "examples" / "counter.toml")
    forked, fresh = both(monkeypatch, "counter.cli", "--config", example, "--check")
    assert (forked.returncode, forked.stdout, forked.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr)
    assert forked.returncode == 0 and "OK" in forked.stdout

    missing = str(tmp_path / "nowhere" / "users.db")
    forked, fresh = both(monkeypatch, "server.auth", "--database", missing, "list")
    assert (forked.returncode, forked.stdout, forked.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr)
    assert forked.returncode == 2 and "does not exist" in forked.stderr and "Traceback" not in forked.stderr


def test_a_forked_tool_reads_its_stdin_and_a_script_runs_as_its_shebang_runs_it(monkeypatch, tmp_path):
    database = tmp_path / "users.db"
    for name in ("anna.k", "jan.n"):
        done = run_tool(
            "server.auth", "--database", str(database), "add", name, "--password-stdin", input="haslo-12345\n"
        )
        assert done.returncode == 0, done.stderr
    with closing(sqlite3.connect(database)) as conn:
        assert [name for (name,) in conn.execute("SELECT name FROM users ORDER BY name")] == ["anna.k", "jan.n"]
    forked, fresh = both(monkeypatch, BIN / "numerek-provision", "--help")
    assert (forked.returncode, forked.stdout, forked.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr)
    assert forked.returncode == 0 and forked.stdout.startswith("usage: numerek-provision")


def test_a_background_tool_appends_to_its_log_and_a_signal_ends_it_as_it_ends_the_fresh_one(monkeypatch, tmp_path):
    """A replicator whose broker is not there: it says what it replicates and keeps trying, until SIGTERM."""
    cfg = write_config(tmp_path / "office.toml", free_port(), free_port())
    Store(str(tmp_path / "numerek.db")).close()
    codes = []
    for fork in (True, False):
        if not fork:
            monkeypatch.setenv("NUMEREK_TEST_EXEC", "1")
        log = tmp_path / f"replicator-{fork}.log"
        log.write_text("an earlier run\n")
        proc = start_tool("server.replicate", "--config", str(cfg), "--branch", "wola", log=log)
        assert isinstance(proc, ForkedProcess) == fork
        wait_for(lambda log=log: "replicating branch wola" in log.read_text(), 60, "the replicator's first line")
        assert log.read_text().startswith("an earlier run\n") and proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        codes.append(proc.wait(60))
    assert codes[0] == codes[1], codes
