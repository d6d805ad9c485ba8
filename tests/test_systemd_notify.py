"""protocol.sdnotify against a real AF_UNIX datagram socket, as systemd's notify socket is."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from protocol import sdnotify
from tests.harness import ROOT, wait_for


@pytest.fixture
def notify_socket(tmp_path, monkeypatch) -> Iterator[socket.socket]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield sock
    sock.close()


def drain(sock: socket.socket) -> list[str]:
    sock.setblocking(False)
    out = []
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except BlockingIOError:
        return out
    finally:
        sock.settimeout(5)


def test_ready_reaches_systemd_with_a_one_line_status(notify_socket):
    assert sdnotify.ready("connected to\nthe broker")
    assert notify_socket.recv(4096).decode().splitlines() == ["READY=1", "STATUS=connected to the broker"]


def test_abstract_namespace_socket_is_supported(monkeypatch):
    name = f"numerek-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sdnotify.watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"


def test_outside_systemd_every_call_is_a_quiet_no_op(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert sdnotify.ready() is False
    assert sdnotify.watchdog() is False
    assert sdnotify.watchdog_interval() is None
    sdnotify.start_watchdog()()  # no thread, and stopping it is harmless


def test_a_vanished_socket_does_not_crash_the_caller(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    assert sdnotify.status("still here") is False


def test_watchdog_interval_belongs_to_the_named_process_only(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert sdnotify.watchdog_interval() == 30.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert sdnotify.watchdog_interval() is None


def test_watchdog_pings_only_while_the_process_is_healthy(notify_socket, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "100000")  # 0.1 s: checks every 0.05 s
    checks: list[bool] = []

    def healthy() -> bool:
        checks.append(len(checks) + 1 in (2, 4))  # healthy at the 2nd and 4th check only
        return checks[-1]

    stop = sdnotify.start_watchdog(healthy)
    wait_for(lambda: len(checks) >= 6, 10, "six health checks")
    stop()
    assert drain(notify_socket).count("WATCHDOG=1") == 2


def test_a_child_process_under_systemd_reports_ready(notify_socket):
    """What a unit's ExecStart= process does: systemd passes NOTIFY_SOCKET in the environment."""
    code = "from protocol import sdnotify; sdnotify.ready('up')"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=os.environ.copy(), check=True, timeout=30)
    assert notify_socket.recv(4096).decode().splitlines()[0] == "READY=1"


SERVER_WIRED = any("sdnotify" in p.read_text() for p in (ROOT / "server").glob("*.py") if p.name != "provision.py")


@pytest.mark.skipif(
    not SERVER_WIRED,
    reason="numerek-server does not call protocol.sdnotify yet: numerek-server.service (Type=notify, "
    "WatchdogSec=30) needs sdnotify.ready() once the broker is connected and start_watchdog(worker alive)",
)
def test_server_tells_systemd_it_is_ready_and_keeps_pinging_the_watchdog(notify_socket, monkeypatch, tmp_path, broker):
    """What numerek-server.service relies on: READY=1 after start, then WATCHDOG=1 within WatchdogSec."""
    from tests.harness import ServerProcess, free_port, write_config

    monkeypatch.setenv("WATCHDOG_USEC", "1000000")  # 1 s: pings at least every 0.5 s
    http_port = free_port()
    server = ServerProcess(write_config(tmp_path / "office.toml", broker.port, http_port), http_port).start()
    try:
        seen: list[str] = []
        while seen.count("WATCHDOG=1") < 2:
            seen += notify_socket.recv(4096).decode().splitlines()  # 5 s timeout per message
        assert "READY=1" in seen and seen.index("READY=1") < seen.index("WATCHDOG=1")
    finally:
        server.stop()


def test_a_device_tells_systemd_whether_it_reaches_the_broker_and_that_it_stops(notify_socket, tmp_path, broker):
    """numerek-counter (as every role, through protocol.device and protocol.bootstrap): STATUS
    lines for `systemctl status` (NotifyAccess=main in the units), STOPPING=1 on SIGTERM."""
    import signal

    cfg = tmp_path / "counter.toml"
    cfg.write_text(
        f'[mqtt]\nport = {broker.port}\n\n[[counters]]\nid = "1"\n[counters.display]\nkind = "memory"\n',
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "counter.cli", "--mock-pins", "--config", str(cfg)],
        cwd=ROOT,
        env={**os.environ},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert notify_socket.recv(4096).decode() == "STATUS=counter-1: connected to the broker"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert "STOPPING=1" in drain(notify_socket)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
