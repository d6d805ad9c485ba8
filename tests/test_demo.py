"""The newcomer's first command: the demo starts, stops, starts again, and never borrows a stranger's broker."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests.harness import ROOT, Broker, Peer, free_port, wait_for


class DemoRun:
    """``numerek-demo`` as a newcomer runs it, without windows and without simulated traffic."""

    def __init__(self, data: Path, mqtt_port: int, http_port: int, *extra: str) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server.demo", "--no-gui", "--no-history", "--pace", "0",
             "--data-dir", str(data), "--mqtt-port", str(mqtt_port), "--http-port", str(http_port), *extra],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
            preexec_fn=ignore_sigint,
        )  # fmt: skip
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def ready(self) -> str:
        """The server's URL once the demo says Ready (or the demo's last words if it stopped)."""
        wait_for(lambda: "Ready." in self.output or self.proc.poll() is not None, 120, "the demo ready")
        assert "Ready." in self.output, self.output
        return re.search(r"Server (http://\S+)", self.output).group(1)

    def pids(self) -> list[int]:
        return [int(p) for p in re.findall(r"started \S+\s+pid (\d+)", self.output)]

    def ctrl_c(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(60)


def ignore_sigint() -> None:
    """Start a demo as a script's background job does (``demo &`` without job control: the
    shell hands it SIGINT ignored): Ctrl-C / SIGINT must stop it all the same."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_the_demo_stopped_and_started_again_at_once_comes_up_and_leaves_nothing_behind(tmp_path):
    mqtt_port, http_port = free_port(), free_port()
    first = DemoRun(tmp_path, mqtt_port, http_port)
    url = first.ready()
    assert httpx.get(url + "/health", timeout=10).json()["status"] == "ok"
    pids = first.pids()
    assert first.ctrl_c() == 0
    assert not [p for p in pids if _alive(p)], "a process of the demo is still running"

    second = DemoRun(tmp_path, mqtt_port, http_port)  # right away: the ports may still be closing
    url = second.ready()
    health = httpx.get(url + "/health", timeout=10).json()
    assert health["status"] == "ok" and health["broker_connected"]
    pids = second.pids()
    assert second.ctrl_c() == 0
    assert not [p for p in pids if _alive(p)]


def test_a_broker_already_on_the_port_is_not_used_and_the_demo_says_so(tmp_path):
    """A Mosquitto service on the machine (or any program) holds the port: the demo runs its
    own broker on another port and tells which; the stranger's broker sees nothing."""
    stranger = Broker(tmp_path).start()
    watcher = Peer(stranger.port)
    watcher.subscribe("#")
    demo = DemoRun(tmp_path / "demo", stranger.port, free_port())
    try:
        url = demo.ready()
        assert f"port {stranger.port} is taken" in demo.output
        assert httpx.get(url + "/health", timeout=10).json()["broker_connected"]
        assert not [t for t, _p, _r in watcher.seen if t.startswith("numerek/")]
    finally:
        demo.ctrl_c()
        watcher.close()
        stranger.stop()


def test_a_demo_that_cannot_start_says_why_in_one_line_and_leaves_no_process(tmp_path):
    bad = tmp_path / "office.toml"
    from server.config import EXAMPLE_CONFIG

    bad.write_text(
        Path(EXAMPLE_CONFIG).read_text(encoding="utf-8").replace("[office]", "[office]\nrecall_guard_s = 999", 1)
    )
    demo = DemoRun(tmp_path / "demo", free_port(), free_port(), "--config", str(bad))
    assert demo.proc.wait(120) != 0
    assert "Traceback" not in demo.output
    assert "numerek-demo:" in demo.output or "recall_guard_s" in demo.output
    assert not [p for p in demo.pids() if _alive(p)]


def test_typing_next_in_the_demo_presses_the_demo_counters_button(tmp_path):
    demo = DemoRun(tmp_path, free_port(), free_port())
    try:
        url = demo.ready()
        name, password = (tmp_path / "clerk-login.txt").read_text().split()
        clerk = httpx.Client(base_url=url, auth=(name, password), timeout=10)
        assert clerk.get("/api/counters/1").json()["status"] == "closed"
        wait_for(
            lambda: any(
                v.get("availability") == "online" and "counter" in d
                for d, v in clerk.get("/api/devices").json().items()
            ),
            60,
            "the demo counter unit online",
        )
        demo.proc.stdin.write("next\n")
        demo.proc.stdin.flush()
        wait_for(lambda: clerk.get("/api/counters/1").json()["status"] == "open", 60, "counter 1 opened by NEXT")
    finally:
        demo.ctrl_c()


@pytest.mark.parametrize("restart", [True])
def test_a_demo_restarted_the_same_day_goes_on_from_where_it_stopped(tmp_path, restart):
    """Before, the demo's clock went back to 10:00 at every start: waits came out negative."""
    first = DemoRun(tmp_path, free_port(), free_port())
    url = first.ready()
    before = httpx.get(url + "/health", timeout=10).json()["server_time"]
    peer_port = int(re.search(r"Broker 127\.0\.0\.1:(\d+)", first.output).group(1))
    peer = Peer(peer_port)
    peer.subscribe("numerek/kiosk/k1/response/#")
    ticket = peer.request(
        "numerek/kiosk/k1/request", {"v": 1, "id": "t1", "service": "rej"}, "numerek/kiosk/k1/response/t1", 30
    )
    assert ticket["ok"]
    peer.close()
    first.ctrl_c()
    second = DemoRun(tmp_path, free_port(), free_port())
    try:
        url = second.ready()
        after = httpx.get(url + "/health", timeout=10).json()["server_time"]
        assert after > before
        queues = httpx.get(url + "/api/queues", timeout=10).json()
        assert all(q["longest_wait_s"] >= 0 for q in queues)
        status = httpx.get(url + f"/api/tickets/{ticket['ticket']['token']}", timeout=10).json()
        assert status["status"] == "waiting"
    finally:
        second.ctrl_c()
