"""Automatic cut-off end to end: a kiosk over real MQTT, the real server process, a real SQLite file.

The passport service closes 40 minutes from now (the server's clock) and has ``auto_cutoff``;
one counter serves it. Tickets are taken until the people waiting fill the time to closing:
then the server refuses with ``cut_off`` and its retained services message says the service
is cut off and when it opens next, which is what the kiosk turns into "zapraszamy jutro od …".
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from tests.harness import ALWAYS_OPEN, Peer, ServerProcess, free_port, midday_zone, write_config

BASE = "numerek"


def office_closing_soon(path, mqtt_port: int, http_port: int) -> tuple[object, datetime]:
    """The test office; passports close today 40 minutes from now, every day, with ``auto_cutoff``."""
    zone = midday_zone()  # the office's day has hours behind it and ahead of it, whenever this runs
    now = datetime.now(ZoneInfo(zone))
    closes = (now + timedelta(minutes=40)).replace(second=0, microsecond=0)
    cfg = write_config(path, mqtt_port, http_port)
    text = cfg.read_text(encoding="utf-8").replace('timezone = "Europe/Warsaw"', f'timezone = "{zone}"', 1)
    assert f'timezone = "{zone}"' in text
    head, passports = text.split('id = "pasz"')
    days = ", ".join(f'{d} = "00:00-{closes:%H:%M}"' for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"))
    passports = passports.replace(f"hours = {ALWAYS_OPEN}", f"hours = {{ {days} }}", 1)
    passports = passports.replace("target_wait_min = 40", "target_wait_min = 40\nauto_cutoff = true", 1)
    cfg.write_text(head + 'id = "pasz"' + passports, encoding="utf-8")
    return cfg, closes


def test_a_kiosk_is_refused_with_cut_off_once_the_queue_runs_to_closing_and_told_when_to_come_back(tmp_path, broker):
    http_port = free_port()
    cfg, closes = office_closing_soon(tmp_path / "office.toml", broker.port, http_port)
    server = ServerProcess(cfg, http_port=http_port).start()
    peer = Peer(broker.port)
    try:
        peer.subscribe(f"{BASE}/kiosk/k1/response/#", f"{BASE}/counter/3/reply/#", f"{BASE}/services")
        opened = peer.request(
            f"{BASE}/counter/3/command",
            {"v": 1, "id": "open", "action": "open"},
            response_topic=f"{BASE}/counter/3/reply/open",
            timeout=30,
        )
        assert opened["ok"], opened
        answers = []
        for i in range(40):  # one counter, about 5 minutes a client with no history: full within ~8
            rid = f"t{i}"
            answer = peer.request(
                f"{BASE}/kiosk/k1/request",
                {"v": 1, "id": rid, "service": "pasz", "priority": False},
                response_topic=f"{BASE}/kiosk/k1/response/{rid}",
                timeout=30,
            )
            answers.append(answer)
            if not answer["ok"]:
                break
        refused = answers[-1]
        assert not refused["ok"] and refused["error"]["code"] == "cut_off", refused
        assert f"{closes:%H:%M}" in refused["error"]["message"]
        assert 1 <= len(answers) - 1 < 40, "some tickets were issued before the cut-off"

        def passports(msg: dict) -> dict:
            return next(s for s in msg["services"] if s["id"] == "pasz")

        listed = peer.expect(f"{BASE}/services", timeout=30, where=lambda m: passports(m)["reason"] == "cut_off")
        info = passports(listed)
        assert info["available"] is False
        tomorrow = datetime.fromisoformat(info["next_opening"]).astimezone(closes.tzinfo)
        assert tomorrow.date() == closes.date() + timedelta(days=1) and (tomorrow.hour, tomorrow.minute) == (0, 0)
        others = [s for s in listed["services"] if s["id"] != "pasz"]
        assert all(s["available"] for s in others), "services without auto_cutoff keep issuing"
    finally:
        peer.close()
        server.stop()
