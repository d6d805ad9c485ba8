"""``numerek-counter`` as a process (as systemd runs it), with mock pins pressed from stdin."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tests.harness import ROOT, wait_for
from tests.test_counter_support import BASE, events, issue


def start_counter(server, config: str, tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    """``numerek-counter --mock-pins`` with ``config``, its output in a log file, once it is online."""
    cfg = tmp_path / "counter.toml"
    cfg.write_text(config, encoding="utf-8")
    log = tmp_path / "counter.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "counter.cli", "--mock-pins", "--config", str(cfg)],
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    try:
        wait_for(
            lambda: server.get("/api/devices").json().get("counter-1", {}).get("availability") == "online",
            20,
            "counter-1 online",
        )
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc, log


CONFIG = """
[mqtt]
port = {port}

[[counters]]
id = "1"
[counters.buttons]
next = 17
[counters.display]
kind = "console"
"""


def test_counter_process_calls_a_ticket_logs_the_display_and_says_offline_on_sigterm(server, broker, peer, tmp_path):
    peer.subscribe(f"{BASE}/kiosk/k1/response/#")
    issue(peer, "rej")
    proc, log = start_counter(server, CONFIG.format(port=broker.port), tmp_path)
    try:
        wait_for(lambda: "Stanowisko 1" in log.read_text(), 10, "the display showing the counter's name")
        assert proc.stdin is not None
        proc.stdin.write(b"next\n")
        proc.stdin.flush()
        wait_for(lambda: [e["ticket"] for e in events(server.database, kinds=("call",))] == ["A001"], 10, "A001 called")
        wait_for(lambda: "Numer A001" in log.read_text(), 10, "the display showing A001")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    devices = server.get("/api/devices").json()
    assert devices["counter-1"]["availability"] == "offline"


# The daemon with a fault injected into its MQTT thread (test-only, from outside the package):
# the thread's connect loop raises an error nothing expects, as a bug would.
_INJECTED = """
import sys
import protocol.device

def broken_client(*args, **kwargs):
    raise RuntimeError("injected fault in the MQTT thread")

protocol.device.make_client = broken_client
from counter.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_counter_process_exits_non_zero_when_its_mqtt_thread_dies_so_systemd_restarts_it(broker, tmp_path):
    cfg = tmp_path / "counter.toml"
    cfg.write_text(CONFIG.format(port=broker.port), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-c", _INJECTED, "--mock-pins", "--config", str(cfg)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" in proc.stderr and "injected fault in the MQTT thread" in proc.stderr
    assert "exiting so that systemd restarts the unit" in proc.stderr


LCD_CONFIG = """
[mqtt]
port = {port}

[[counters]]
id = "1"
[counters.buttons]
next = 17
[counters.display]
kind = "lcd"
port = 19
"""


def test_counter_process_without_its_lcd_starts_and_its_buttons_work_logging_the_fault_once(
    server, broker, peer, tmp_path
):
    """No /dev/i2c-19 here: the unit must not exit (and restart-loop); the buttons work."""
    peer.subscribe(f"{BASE}/kiosk/k1/response/#")
    issue(peer, "rej")
    proc, log = start_counter(server, LCD_CONFIG.format(port=broker.port), tmp_path)
    try:
        assert proc.stdin is not None
        proc.stdin.write(b"next\n")
        proc.stdin.flush()
        wait_for(lambda: [e["ticket"] for e in events(server.database, kinds=("call",))] == ["A001"], 10, "A001 called")
        proc.stdin.write(b"state\n")  # what the LED shows, printed by the demo's stdin driver
        proc.stdin.flush()
        wait_for(lambda: "\nerror ()" in log.read_text(), 10, "the LED showing the display error")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert text.count("number display failed") == 1, text
    assert "/dev/i2c-19" in text
