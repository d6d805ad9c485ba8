"""Fixtures: a real broker per test, the real server process, MQTT peers."""

from __future__ import annotations

import compileall
import os
import sys
from collections.abc import Iterator

import pytest

from tests.browser import chromium  # noqa: F401  (the worker's headless Chromium, a session fixture)
from tests.harness import ARTIFACTS, ROOT, Broker, Peer, ServerProcess, free_port, write_config

PACKAGES = ("protocol", "server", "notify", "kiosk", "counter", "display", "hardware", "central")

# The tests start hundreds of Python processes (the server, the device apps, the tools). Under
# PYTHONDONTWRITEBYTECODE each of them compiled the project's modules anew (about 0.3 s of CPU per
# server start), and each pytest(-xdist) process rewrote every test module's asserts again (5-6 s):
# the suite's own bytecode is written once per run instead, into the (git-ignored) __pycache__.
sys.dont_write_bytecode = False


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """Twice the cores this process may use: most tests wait for the processes they start (a server
    coming up, a Kivy screen drawn, a broker restarted), so two workers per core keep the cores busy."""
    return 2 * len(os.sched_getaffinity(0))


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("NUMEREK_TEST_CPU"):  # where the CPU goes, test by test (tests/cpu_report.py)
        from pathlib import Path

        from tests.cpu_report import CpuReport

        config.pluginmanager.register(CpuReport(Path(os.environ["NUMEREK_TEST_CPU"])), "numerek-cpu-report")
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return  # the controller (or a plain run) compiles, before any worker starts
    for package in PACKAGES:
        compileall.compile_dir(ROOT / package, quiet=2)


@pytest.fixture
def broker(tmp_path) -> Iterator[Broker]:
    b = Broker(tmp_path).start()
    yield b
    b.stop()


@pytest.fixture
def server(tmp_path, broker) -> Iterator[ServerProcess]:
    """The real numerek-server with the test office (3 services, 3 counters, always open)."""
    cfg = write_config(tmp_path / "office.toml", broker.port, free_port())
    s = ServerProcess(cfg, http_port=int(cfg.read_text().split("[http]")[1].split("port = ")[1].split()[0])).start()
    yield s
    s.stop()


@pytest.fixture
def peer(broker) -> Iterator[Peer]:
    p = Peer(broker.port)
    yield p
    p.close()


@pytest.fixture(scope="session")
def artifacts():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def screen() -> Iterator:
    """A private Xvfb (1280x720); ``screen.display`` is the DISPLAY to give a Kivy app."""
    from tests.harness import VirtualScreen

    s = VirtualScreen()
    yield s
    s.stop()


# Test files with tests of a minute or more on a busy machine, heaviest first (run 1 of the suite in
# parallel, load 15: the Hypothesis state machines 314 s and 207 s, the release tool 300 s, mypy 134 s,
# the kiosk at five panel sizes 35-64 s each, kill -9 recovery, the booking journey). They go first on
# every worker (below), so none of them is left to start at the end.
SLOW_FILES = (
    "test_engine_properties.py",
    "test_booking_properties.py",
    "test_release_update.py",
    "test_code_style.py",
    "test_kiosk.py",
    "test_kiosk_cases.py",
    "test_central_replication.py",
    "test_crash_recovery.py",
    "test_booking_journey.py",
    "test_display.py",
    "test_demo.py",
    "test_central_demo.py",
)


def pytest_unconfigure(config: pytest.Config) -> None:
    """End this process's zygotes (tests/harness.py ``Zygote.close``: their forks' CPU counts then)."""
    from tests.harness import DEVICES, FORKS

    DEVICES.close()
    FORKS.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deal the slow tests out to the workers first, so none is left to start at the end.

    ``--dist worksteal`` gives each worker a contiguous slice of this list and later moves tests
    from the back of a long queue to an idle worker. So the list is cut into the workers' slices
    (the sizes worksteal uses), each slice starting with its share of the slow tests, round robin,
    followed by its share of the others in file order (a file's module fixtures mostly stay on one
    worker). The slow tests of a file with a module-scoped fixture are dealt as one: dealt one by one,
    the release tool's three tests each built its module fixture's release (20 s of CPU) on a worker of
    their own. Every worker computes the same order, as xdist requires.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    if workers < 2:
        return
    slow = sorted((item for item in items if item.path.name in SLOW_FILES), key=lambda i: SLOW_FILES.index(i.path.name))
    units: dict[str, list[pytest.Item]] = {}
    for item in slow:
        units.setdefault(str(item.path) if _shares_a_fixture(item) else item.nodeid, []).append(item)
    dealt = list(units.values())
    rest = [item for item in items if item.path.name not in SLOW_FILES]
    ordered: list[pytest.Item] = []
    remaining = len(items)
    for i in range(workers):
        size = remaining // (workers - i)
        remaining -= size
        mine = [item for unit in dealt[i::workers] for item in unit]
        take = max(0, size - len(mine))
        ordered += mine + rest[:take]
        rest = rest[take:]
    ordered += rest
    assert len(ordered) == len(items)
    items[:] = ordered


def _shares_a_fixture(item: pytest.Item) -> bool:
    """Whether the test uses a fixture that lives for its module (or class): set up once per worker."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(d.scope in ("module", "class", "package") for defs in info.name2fixturedefs.values() for d in defs)
