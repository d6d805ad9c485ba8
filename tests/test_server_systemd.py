"""The server speaks systemd's notify protocol: READY once connected, watchdog pings."""

from __future__ import annotations

import socket

from tests.harness import ServerProcess, free_port, wait_for, write_config


def test_server_reports_ready_and_pings_the_watchdog(tmp_path, broker):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    received: list[str] = []

    def got(text: str) -> bool:
        try:
            received.append(sock.recv(4096).decode())
        except TimeoutError:
            pass
        return any(text in m for m in received)

    cfg = write_config(tmp_path / "office.toml", broker.port, free_port())
    http_port = int(cfg.read_text().split("[http]")[1].split("port = ")[1].split()[0])
    server = ServerProcess(cfg, http_port, env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"})
    server.env["WATCHDOG_PID"] = ""  # the pid is not known before the start; empty means "this process"
    server.start()
    try:
        wait_for(lambda: got("READY=1"), 15, "READY=1")
        wait_for(lambda: got("WATCHDOG=1"), 15, "WATCHDOG=1")
    finally:
        server.stop()
        sock.close()
