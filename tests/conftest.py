"""Fixtures: a real broker per test, the real server process, MQTT peers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness import ARTIFACTS, Broker, Peer, ServerProcess, free_port, write_config


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
