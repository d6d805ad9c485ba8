"""The real server: bookings made and cancelled on the public site move a walk-in's printed wait."""

from __future__ import annotations

from tests.harness import ServerProcess, free_port, write_config
from tests.test_booking_checkin import START, book, kiosk, next_at
from tests.test_counter_support import BASE

BOOKING = """
[booking]
per_address = "100/minute"
per_contact = 5

[booking.plans.rej]
slot_min = 5
per_hour = 60
notice_min = 0
days_ahead = 3
"""


def test_bookings_for_the_next_minutes_make_a_walk_ins_printed_wait_longer_and_cancelling_them_gives_it_back(
    tmp_path, broker, peer
):
    http_port = free_port()
    cfg = write_config(tmp_path / "office.toml", broker.port, http_port)
    cfg.write_text(cfg.read_text(encoding="utf-8") + BOOKING, encoding="utf-8")
    peer.subscribe(f"{BASE}/kiosk/k1/response/#", f"{BASE}/counter/+/reply/#")
    server = ServerProcess(cfg, http_port=http_port, args=["--clock-start", START]).start()
    try:
        for i in range(6):
            assert kiosk(peer, f"w{i}", service="rej")["ok"]
        for counter in ("1", "2"):  # both registration counters open and busy; four residents wait
            assert next_at(peer, counter, f"n{counter}")["ok"]
        links = [book(server, "2030-01-07", "09:05" if n < 5 else "09:10", n)[1] for n in range(6)]
        with_bookings = kiosk(peer, "after-booking", service="rej")["ticket"]
        for link in links:
            assert server.anonymous_post(link + "/cancel").status_code == 303
        after_cancel = kiosk(peer, "after-cancel", service="rej")["ticket"]
        # one more resident is ahead of the second walk-in, yet it waits less: the six visits are off
        assert after_cancel["estimated_wait_min"] < with_bookings["estimated_wait_min"], (with_bookings, after_cancel)
        assert after_cancel["estimated_wait_range_min"][1] <= with_bookings["estimated_wait_range_min"][1]
        log = (tmp_path / "server.log").read_text(encoding="utf-8")
        assert "Osoba" not in log and "601" not in log  # no names or contacts on the way
    finally:
        server.stop()
