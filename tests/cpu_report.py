"""Where the suite's CPU goes: each test's own CPU and that of every process it started.

Why: on the project's 2-core machines the suite is CPU-bound (four workers keep both cores
busy), so its wall time follows its CPU seconds, and a test's wall time says little about them
(a Hypothesis state machine waits 87 s on fsync and uses 29 s of CPU). ``NUMEREK_TEST_CPU=<dir>``
makes every pytest process write ``<dir>/<worker>.tsv``: one line per test with the test
process's own CPU (``self``), that of the processes it started and reaped (``children``: tools,
Mosquitto, Xvfb, the Kivy apps, Chromium with its renderers, servers started with exec) and that
of the servers forked by tests/server_zygote.py that ended during the test (``forked``), user +
system seconds, the test's setup and teardown included. The last line, ``<total>``, is the
process's own whole run (collection and session fixtures too). docs/testing.md shows how to sum it.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

import pytest

from tests.harness import FORKS


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


class CpuReport:
    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        self._out = open(folder / f"{worker}.tsv", "w", encoding="utf-8")  # noqa: SIM115 (open for the run)
        self._out.write("test\tself\tchildren\tforked\n")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None):
        before = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN), FORKS.cpu
        yield
        after = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN), FORKS.cpu
        spent = "\t".join(f"{b - a:.3f}" for a, b in zip(before, after, strict=True))
        self._out.write(f"{item.nodeid}\t{spent}\n")
        self._out.flush()

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        spent = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN), FORKS.cpu
        self._out.write("<total>\t" + "\t".join(f"{s:.3f}" for s in spent) + "\n")
        self._out.close()
