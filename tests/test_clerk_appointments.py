"""The clerk panel marks appointment tickets: in headless Chromium against the real server, a
booking checked in at the kiosk shows "wizyta 09:15" in the waiting list and, once called, on
the current ticket; walk-ins carry no mark."""

from __future__ import annotations

import pytest

from tests.browser import CHROMIUM
from tests.harness import ServerProcess, free_port, wait_for, write_config
from tests.test_booking_checkin import BOOKING, book, kiosk
from tests.test_clerk_panel import panel_command
from tests.test_counter_support import BASE


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_the_clerk_panel_marks_an_appointment_ticket_with_its_booked_time(tmp_path, broker, peer, artifacts, chromium):
    http_port = free_port()
    cfg = write_config(tmp_path / "office.toml", broker.port, http_port)
    cfg.write_text(cfg.read_text(encoding="utf-8") + BOOKING, encoding="utf-8")
    peer.subscribe(f"{BASE}/kiosk/k1/response/#")
    server = ServerProcess(cfg, http_port=http_port, args=["--clock-start", "2030-01-07T09:11:00"]).start()
    page = None
    try:
        code, _ = book(server, "2030-01-07", "09:15", 1)  # 09:11: its call window (from 09:10) is open
        assert kiosk(peer, "w1", service="rej")["ticket"]["number"] == "A001"
        assert kiosk(peer, "in", booking=code)["ticket"]["number"] == "R001"
        assert server.get("/api/counters/1/appointments").json() == {"R001": "09:15"}
        assert server.anonymous_get("/api/counters/1/appointments").status_code == 401

        page = chromium.open(f"{server.url}/clerk/1", login=server.CLERK)
        rows = "[...document.querySelectorAll('#waiting-list tr')].map(r => r.cells[0].textContent)"
        wait_for(lambda: any("R001" in r for r in page.js(rows) or []), 15, "the waiting list drawn")
        listed = {r[:4]: r for r in page.js(rows)}
        assert "wizyta 09:15" in listed["R001"] and "wizyta" not in listed["A001"]
        assert page.js("document.getElementById('ticket-appointment').hidden") is True

        assert panel_command(server, "1", "call", ticket="R001", current="")[0] == 200
        wait_for(lambda: page.text("ticket") == "R001", 15, "the called appointment drawn")
        wait_for(lambda: page.text("ticket-appointment") == "wizyta 09:15", 15, "the current ticket's mark")
        page.screenshot(artifacts / "clerk_panel_appointment.png")
    finally:
        if page is not None:
            page.close()
        server.stop()
