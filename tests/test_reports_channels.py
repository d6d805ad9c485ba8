"""Reports by channel and the appointments' figures, read back from the manager's dashboard and
exports of the real server: tickets from the kiosk, the reception and a booking's check-in
(over MQTT and HTTP), a booking that never came, one cancelled, and the appointment called."""

from __future__ import annotations

import csv
import io
import re

from openpyxl import load_workbook

from tests.harness import ServerProcess
from tests.test_booking_checkin import book, kiosk, next_at
from tests.test_counter_support import BASE
from tests.test_reception import MANAGER, office  # noqa: F401  (office: a fixture)


def test_the_reports_count_tickets_by_channel_and_bookings_by_outcome(office, peer):  # noqa: F811
    peer.subscribe(f"{BASE}/kiosk/k1/response/#", f"{BASE}/counter/+/reply/#")
    code, _ = book(office, "2030-01-07", "09:15", 1)
    book(office, "2030-01-07", "09:30", 2)  # never comes
    _, cancelled = book(office, "2030-01-07", "09:45", 3)
    assert office.anonymous_post(cancelled + "/cancel").status_code == 303
    assert kiosk(peer, "in", booking=code)["ticket"]["number"] == "R001"
    assert kiosk(peer, "w1", service="rej")["ticket"]["number"] == "A001"
    assert kiosk(peer, "w2", service="rej")["ticket"]["number"] == "A002"
    r = office.post("/recepcja/numerek", data={"service": "rej"})
    assert 'id="number">A003' in r.text, r.text[:300]
    office.stop()

    # 10:00, the same office: the 09:30 booking's check-in window (late_min 15) has closed.
    later = ServerProcess(office.config, http_port=office.http_port, args=["--clock-start", "2030-01-07T10:00:00"])
    later.start()
    try:
        assert next_at(peer, "1", "n1")["ticket"]["number"] == "R001"  # 45 min after its time: late
        assert next_at(peer, "1", "n2")["ticket"]["number"] == "A001"
        assert next_at(peer, "1", "n3")["ticket"]["number"] == "A002"  # R001 and A001 served
        query = {"from": "2030-01-07", "to": "2030-01-07"}
        page = later.anonymous_get("/reports", params={**query, "lang": "en"}, headers=MANAGER)
        assert page.status_code == 200
        cells = {
            ch: re.search(rf'data-channel="{ch}"><td>[^<]*</td><td class="issued">(\d+)</td>', page.text).group(1)
            for ch in ("kiosk", "reception", "booking")
        }
        assert cells == {"kiosk": "2", "reception": "1", "booking": "1"}
        figure = dict(re.findall(r'data-figure="([a-z_]+)">([^<]*)<', page.text))
        assert figure["walk_ins"] == "3" and figure["appointments"] == "1"
        assert (figure["booked"], figure["cancelled"], figure["checked_in"], figure["booking_no_show"]) == (
            "2",
            "1",
            "1",
            "1",
        )
        assert figure["no_show_share"] == "50.0%"
        assert (figure["called"], figure["punctual"], figure["punctual_share"]) == ("1", "0", "0.0%")

        export = later.anonymous_get("/reports/export/channels.csv", params=query, headers=MANAGER)
        assert export.status_code == 200
        assert list(csv.reader(io.StringIO(export.text))) == [
            ["channel", "issued", "share", "served", "no_show"],
            ["kiosk", "2", "0.5", "1", "0"],
            ["reception", "1", "0.25", "0", "0"],
            ["booking", "1", "0.25", "1", "0"],
        ]
        book_x = later.anonymous_get("/reports/export/all.xlsx", params={**query, "lang": "pl"}, headers=MANAGER)
        wb = load_workbook(io.BytesIO(book_x.content))
        sheet = {row[0]: row[1] for row in wb["appointments"].iter_rows(min_row=2, values_only=True)}
        assert sheet["Odsetek niestawień"] == 0.5 and sheet["Rezerwacje"] == 2
        api = later.anonymous_get("/reports/api/summary", params=query, headers=MANAGER).json()["by_channel"]
        assert api["appointments"]["booking_no_show"] == 1 and api["channels"]["reception"]["issued"] == 1
    finally:
        later.stop()
