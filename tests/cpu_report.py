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


def summary(folder: Path, top: int = 25) -> str:
    """A Markdown table of the files that spent the most CPU (``python -m tests.cpu_report <dir>``)."""
    files: dict[str, list[float]] = {}
    for tsv in sorted(folder.glob("*.tsv")):
        for line in tsv.read_text(encoding="utf-8").splitlines()[1:]:
            name, *spent = line.split("\t")
            if name == "<total>" or len(spent) != 3:
                continue
            row = files.setdefault(name.split("::")[0], [0.0, 0.0, 0.0, 0])
            for i, value in enumerate(spent):
                row[i] += float(value)
            row[3] += 1
    total = sum(sum(row[:3]) for row in files.values())
    lines = [
        f"{len(files)} files, {sum(int(row[3]) for row in files.values())} tests, {total:.0f} s of CPU in tests",
        "",
        "| file | tests | CPU s | share | test process | its children | forked servers |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in sorted(files.items(), key=lambda kv: -sum(kv[1][:3]))[:top]:
        cpu = sum(row[:3])
        lines.append(
            f"| {name} | {int(row[3])} | {cpu:.0f} | {cpu / total:.0%} | {row[0]:.0f} | {row[1]:.0f} | {row[2]:.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(summary(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 25))
