"""Check-in over real MQTT with the real server: book on the site, check in at the kiosk's
topic, and a counter's NEXT calls the appointment at its time, ahead of walk-ins."""

from __future__ import annotations

import re
import sqlite3

from tests.harness import Peer, ServerProcess, free_port, write_config
from tests.test_counter_support import BASE

BOOKING = """
[booking]
per_address = "100/minute"
early_min = 30
late_min = 15
call_window_min = 5

[booking.plans.rej]
slot_min = 15
per_hour = 4
notice_min = 0
days_ahead = 3
"""
START = "2030-01-07T09:00:00"  # a Monday, office time


def book(server: ServerProcess, day: str, hhmm: str, n: int) -> tuple[str, str]:
    """Book through the public form; (code as shown, the booking's link)."""
    r = server.anonymous_post(
        f"/rezerwacja/rej/{day}",
        data={"slot": f"{day}T{hhmm}:00+01:00", "name": f"Osoba {n}", "contact": f"+48 601 {n:06d}", "consent": "yes"},
    )
    assert r.status_code == 303, r.text[:500]
    link = r.headers["location"].split("?")[0]
    code = re.search(r'id="code">([^<]+)<', server.anonymous_get(link).text).group(1)
    return code, link


def kiosk(peer: Peer, rid: str, **fields) -> dict:
    return peer.request(
        f"{BASE}/kiosk/k1/request", {"v": 1, "id": rid, **fields}, response_topic=f"{BASE}/kiosk/k1/response/{rid}"
    )


def next_at(peer: Peer, counter: str, rid: str) -> dict:
    return peer.request(
        f"{BASE}/counter/{counter}/command",
        {"v": 1, "id": rid, "action": "next"},
        response_topic=f"{BASE}/counter/{counter}/reply/{rid}",
    )


def test_a_booked_resident_checks_in_at_the_kiosk_and_is_called_at_their_time_ahead_of_walk_ins(tmp_path, broker, peer):
    http_port = free_port()
    cfg = write_config(tmp_path / "office.toml", broker.port, http_port)
    cfg.write_text(cfg.read_text(encoding="utf-8") + BOOKING, encoding="utf-8")
    peer.subscribe(f"{BASE}/kiosk/k1/response/#", f"{BASE}/counter/+/reply/#", f"{BASE}/zone/hall/call")
    server = ServerProcess(cfg, http_port=http_port, args=["--clock-start", START]).start()
    try:
        code, _ = book(server, "2030-01-07", "09:15", 1)
        later_code, _ = book(server, "2030-01-07", "11:00", 2)
        tomorrow_code, _ = book(server, "2030-01-08", "09:00", 3)
        cancelled_code, cancelled_link = book(server, "2030-01-07", "09:30", 4)
        assert server.anonymous_post(cancelled_link + "/cancel").status_code == 303

        refusals = {
            "not-a-code": "booking_unknown",
            "ZZZ-ZZZ": "booking_unknown",
            tomorrow_code: "booking_other_day",
            later_code: "booking_too_early",
            cancelled_code: "booking_cancelled",
        }
        for n, (typed, expected) in enumerate(refusals.items()):
            reply = kiosk(peer, f"bad{n}", booking=typed)
            assert not reply["ok"] and reply["error"]["code"] == expected, (typed, reply)
        assert "10:30" in kiosk(peer, "early-again", booking=later_code)["error"]["message"]  # when to come back

        # Typed as a resident would, lower case with the dash; then a walk-in rush.
        reply = kiosk(peer, "in1", booking=code.lower())
        assert reply["ok"], reply
        ticket = reply["ticket"]
        assert ticket["number"] == "R001" and ticket["service"] == "rej"
        assert ticket["appointment_at"].startswith("2030-01-07T09:15:00")
        assert kiosk(peer, "in2", booking=code)["ticket"]["number"] == "R001"  # a second print, not a second ticket
        walk_ins = [kiosk(peer, f"w{i}", service="rej")["ticket"]["number"] for i in range(2)]
        assert walk_ins == ["A001", "A002"]
        with sqlite3.connect(server.database) as conn:
            assert conn.execute(
                "SELECT status, ticket FROM bookings WHERE code = ?", (code.replace("-", ""),)
            ).fetchone() == (
                "checked_in",
                "R001",
            )

        # 09:00: the appointment's call window (09:10) has not come: NEXT takes the first walk-in.
        assert next_at(peer, "1", "n1")["ticket"]["number"] == "A001"
    finally:
        server.stop()

    # 09:11, the same office restored from its file: NEXT calls the appointment before A002.
    later = ServerProcess(cfg, http_port=http_port, args=["--clock-start", "2030-01-07T09:11:00"]).start()
    try:
        called = next_at(peer, "1", "n2")
        assert called["ok"] and called["ticket"]["number"] == "R001", called
        call = peer.expect(f"{BASE}/zone/hall/call", 10, where=lambda m: m.get("ticket") == "R001")
        assert call["counter"] == "1"
        assert next_at(peer, "1", "n3")["ticket"]["number"] == "A002"  # walk-ins keep flowing
    finally:
        later.stop()
