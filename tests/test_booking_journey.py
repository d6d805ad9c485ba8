"""A booked visit from end to end, as the resident and the clerk live it, on real parts only:
the resident books on a phone-sized page in headless Chromium, arrives, types the code on the
Kivy kiosk's keypad under Xvfb (the ticket printed on escpos' Dummy printer), and the counter's
NEXT calls the appointment at its time ahead of the walk-ins who came earlier, while walk-ins
keep flowing. The halves alone: tests/test_booking_site.py, tests/test_booking_checkin.py,
tests/test_kiosk.py."""

from __future__ import annotations

import re

import pytest

from tests.browser import CHROMIUM
from tests.harness import Peer, ServerProcess, free_port, wait_for, write_config
from tests.test_booking_checkin import BOOKING, next_at
from tests.test_booking_site import loaded
from tests.test_counter_support import BASE
from tests.test_kiosk import Kiosk
from tests.test_kiosk_cases import type_keys

START = "2030-01-07T09:10:30"
"""A Monday, office time: the 09:15 slot is bookable (no notice asked), its check-in is open
(30 minutes before) and its call window (5 minutes before) has just opened."""


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_a_resident_books_on_a_phone_checks_in_at_the_kiosk_and_is_called_before_earlier_walk_ins(
    tmp_path, broker, screen, artifacts, request, chromium
):
    http_port = free_port()
    cfg = write_config(tmp_path / "office.toml", broker.port, http_port)
    cfg.write_text(cfg.read_text(encoding="utf-8") + BOOKING, encoding="utf-8")
    server = ServerProcess(cfg, http_port=http_port, args=["--clock-start", START]).start()
    peer = Peer(broker.port)
    peer.subscribe(f"{BASE}/kiosk/+/response/#", f"{BASE}/counter/+/reply/#", f"{BASE}/zone/hall/call")
    page = chromium.open(f"{server.url}/rezerwacja/rej/2030-01-07?lang=pl")
    kiosk = None
    try:
        # On the phone: the 09:15 slot, name, number, consent, send.
        page.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True},
            page.session,
        )
        loaded(page, "/rezerwacja/rej")
        slot = "input[name=slot][value^='2030-01-07T09:15']"
        wait_for(lambda: page.js(f'!!document.querySelector("{slot}")'), 20, "the 09:15 slot")
        page.js(f'document.querySelector("{slot}").click()')
        page.js("document.getElementById('name').value = 'Anna Nowak'")
        page.js("document.getElementById('contact').value = '600 200 300'")
        page.js("document.getElementById('consent').click()")
        page.js("document.querySelector('form').submit()")
        wait_for(lambda: page.js("location.pathname.startsWith('/wizyta/')"), 20, "the booking's page")
        loaded(page, "/wizyta/")
        code = page.text("code")
        assert code is not None and re.fullmatch(r"[2-9A-HJKMNP-Z]{3}-[2-9A-HJKMNP-Z]{3}", code), code
        page.screenshot(artifacts / "journey_booked.png")

        # Two walk-ins arrive before the resident does.
        walk_ins = []
        for i in range(2):
            reply = peer.request(
                f"{BASE}/kiosk/k2/request",
                {"v": 1, "id": f"w{i}", "service": "rej"},
                response_topic=f"{BASE}/kiosk/k2/response/w{i}",
            )
            walk_ins.append(reply["ticket"]["number"])
        assert walk_ins == ["A001", "A002"]

        # At the kiosk: "Mam rezerwację", the code on the touch keypad, confirm.
        kiosk = Kiosk(
            tmp_path,
            screen,
            broker.port,
            server.url,
            'type = "dummy"\ndummy_output = "printed.bin"',
            artifacts / "kiosk" / request.node.name,
            bookings=True,
        )
        kiosk.wait_home()
        kiosk.tap("booking")
        kiosk.wait("the keypad", lambda e: e["screen"] == "booking")
        type_keys(kiosk, code.replace("-", ""))  # a repeated character ("VKK") is clicked again in place
        kiosk.wait("the code typed", lambda e: code in e["texts"])
        kiosk.tap("confirm")
        shown = kiosk.wait("the ticket", lambda e: e["screen"] == "ticket" and e["printer"] is not None, since_tap=True)
        assert shown["ticket"] == "R001"
        assert "Wizyta umówiona na 09:15" in shown["texts"]
        printed = kiosk.output.read_bytes()
        assert b"R001" in printed and b"Godzina wizyty: 09:15" in printed

        # The clerk presses NEXT: the appointment first, then the walk-ins in their order.
        called = [next_at(peer, "1", f"n{i}")["ticket"]["number"] for i in range(3)]
        assert called == ["R001", "A001", "A002"]
        hall = peer.expect(f"{BASE}/zone/hall/call", 10, where=lambda m: m.get("ticket") == "R001")
        assert hall["counter"] == "1"
    finally:
        if kiosk is not None:
            kiosk.stop()
        page.close()
        peer.close()
        server.stop()
