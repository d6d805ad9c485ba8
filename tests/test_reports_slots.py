"""Slot utilisation on the manager's dashboard and in the exports of the real server: seats the
booking plan offers, booked, checked in, no-shows, cancelled, per service and day and over the period."""

from __future__ import annotations

import csv
import io
import re

from openpyxl import load_workbook

from server.booking.plan import slots_on
from server.config import load_config
from tests.harness import ServerProcess
from tests.test_booking_checkin import book, kiosk
from tests.test_counter_support import BASE
from tests.test_reception import MANAGER, office  # noqa: F401  (office: a fixture)


def row(page: str, day: str, service: str) -> dict[str, str]:
    m = re.search(rf'data-slot-day="{day}" data-slot-service="{service}">(.*?)</tr>', page, re.S)
    assert m, (day, service)
    return dict(re.findall(r'<td class="([a-z_]+)">([^<]*)</td>', m.group(1)))


def test_managers_see_and_export_how_many_booking_seats_were_offered_booked_and_used(office, peer):  # noqa: F811
    from datetime import date

    peer.subscribe(f"{BASE}/kiosk/k1/response/#")
    code, _ = book(office, "2030-01-07", "09:15", 1)
    book(office, "2030-01-07", "09:30", 2)  # never comes
    _, cancelled = book(office, "2030-01-07", "09:45", 3)
    book(office, "2030-01-08", "10:00", 4)
    assert office.anonymous_post(cancelled + "/cancel").status_code == 303
    assert kiosk(peer, "in", booking=code)["ticket"]["number"] == "R001"
    office.stop()

    # 10:00, the same office: the 09:30 booking's check-in window (late_min 15) has closed.
    later = ServerProcess(office.config, http_port=office.http_port, args=["--clock-start", "2030-01-07T10:00:00"])
    later.start()
    try:
        cfg = load_config(office.config)
        offered = {d: sum(s.capacity for s in slots_on(cfg, "rej", date(2030, 1, d))) for d in (7, 8)}
        assert 90 <= offered[7] <= 96 and offered[8] == offered[7]  # 4 an hour, the test office never closes
        query = {"from": "2030-01-07", "to": "2030-01-08"}
        page = later.anonymous_get("/reports", params={**query, "lang": "en"}, headers=MANAGER).text
        assert "Booking slot utilisation" in page
        monday = row(page, "2030-01-07", "rej")
        shares = {k: float(monday.pop(k).rstrip("%")) for k in ("booked_share", "attended_share")}
        assert monday == {
            "offered": str(offered[7]),
            "booked": "2",
            "checked_in": "1",
            "no_show": "1",
            "cancelled": "1",
        }
        assert abs(shares["booked_share"] - 200 / offered[7]) < 0.06
        assert abs(shares["attended_share"] - 100 / offered[7]) < 0.06
        assert row(page, "2030-01-08", "rej")["booked"] == "1" and row(page, "2030-01-08", "rej")["no_show"] == "0"
        whole = row(page, "period", "rej")
        assert (whole["offered"], whole["booked"], whole["checked_in"]) == (str(offered[7] + offered[8]), "3", "1")
        assert row(page, "period", "all")["cancelled"] == "1"

        export = later.anonymous_get("/reports/export/slots.csv", params=query, headers=MANAGER)
        assert export.status_code == 200
        rows = list(csv.reader(io.StringIO(export.text)))
        assert rows[0] == [
            "day",
            "service",
            "offered",
            "booked",
            "checked_in",
            "no_show",
            "cancelled",
            "booked_share",
            "attended_share",
        ]
        assert rows[1][:7] == ["2030-01-07", "rej", str(offered[7]), "2", "1", "1", "1"]
        assert rows[-1][:4] == ["", "all", str(offered[7] + offered[8]), "3"]
        assert code not in export.text and code.replace("-", "") not in export.text  # counts only
        assert "Osoba" not in export.text and "601" not in export.text

        book_x = later.anonymous_get("/reports/export/all.xlsx", params={**query, "lang": "pl"}, headers=MANAGER)
        sheet = list(load_workbook(io.BytesIO(book_x.content))["slots"].iter_rows(values_only=True))
        assert sheet[0][:4] == ("Dzień", "Sprawa", "Miejsca w planie", "Zarezerwowane")
        assert sheet[1][1:7] == ("rej", offered[7], 2, 1, 1, 1) and abs(sheet[1][7] - 2 / offered[7]) < 1e-3
        api = later.anonymous_get("/reports/api/summary", params=query, headers=MANAGER).json()["slots"]
        assert api["total"]["booked"] == 3 and api["total"]["offered"] == offered[7] + offered[8]
    finally:
        later.stop()
