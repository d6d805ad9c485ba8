"""Fixtures: a real broker per test, the real server process, MQTT peers."""

from __future__ import annotations

import compileall
import os
import sys
from collections.abc import Iterator

import pytest

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
