"""The managers' notification report (/reports/notices): counts by outcome, kind, channel and day,
SMS parts and cost, the share of tickets that asked to be notified, pick-up notices per week —
and no phone number or address in the page or any export.

The figures are checked on a real SQLite file written by the outbox's own functions, then
end to end: the real server, an SMS provider's API on loopback and its inbound webhook, a
manager's login reading the page and downloading the CSV and XLSX files.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import date, datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
from openpyxl import load_workbook

from notify import optout
from notify import outbox as ob
from notify.message import Channel, NoticeKind
from server.reports import notices as figures
from tests.harness import Peer, wait_for
from tests.notify_support import Provider
from tests.test_notify_optout import SECRET, issue, leave, notify_toml, office, rows

WARSAW = ZoneInfo("Europe/Warsaw")
BASE = "numerek"


def _notice(conn, n: int, kind: NoticeKind, channel: Channel, at: float, state: str, **extra) -> None:
    recipient = f"+4860010020{n}" if channel is Channel.SMS else f"a{n}@example.pl"
    ob.enqueue(conn, notice=f"n{n}", recipient=recipient, channel=channel, kind=kind, lang="pl", payload={}, now=at)
    sets = ", ".join(f"{k} = ?" for k in ("state", *extra))
    conn.execute(f"UPDATE notices SET {sets} WHERE notice = ?", (state, *extra.values(), f"n{n}"))


def test_each_notice_counts_once_by_its_outcome_kind_channel_and_office_day(tmp_path):
    db = tmp_path / "n.db"
    conn = ob.connect(str(db))
    ob.migrate(conn)
    conn.execute("CREATE TABLE tickets (id INTEGER PRIMARY KEY, day TEXT)")
    day1 = datetime(2026, 12, 7, 10, 0, tzinfo=WARSAW).timestamp()
    late = datetime(2026, 12, 7, 23, 30, tzinfo=WARSAW).timestamp()  # 22:30 UTC: still the 7th in the office
    with ob.transaction(conn):
        _notice(conn, 1, NoticeKind.CALLED, Channel.SMS, day1, "sent", delivery="delivered", parts=1)
        _notice(conn, 2, NoticeKind.CALLED, Channel.SMS, day1, "sent", delivery="queued", parts=1)
        _notice(conn, 3, NoticeKind.CALLED, Channel.SMS, late, "failed")
        _notice(conn, 4, NoticeKind.TURN_NEAR, Channel.SMS, day1, "cancelled", reason=optout.OPTED_OUT)
        _notice(conn, 5, NoticeKind.TURN_NEAR, Channel.SMS, day1, "cancelled", reason="called before it went out")
        _notice(conn, 6, NoticeKind.DOCUMENT_READY, Channel.EMAIL, day1, "expired")
        _notice(conn, 7, NoticeKind.DOCUMENT_READY, Channel.SMS, day1, "sent", delivery="failed", parts=2)
        conn.executemany("INSERT INTO tickets (day) VALUES (?)", [("2026-12-07",)] * 4)
        conn.execute("INSERT INTO notify_subscriptions VALUES (1, '2026-12-07', 'sms', 'page')")
    conn.close()

    f = figures.load(db, date(2026, 12, 7), date(2026, 12, 7), WARSAW, part_price=0.16)
    by = {(k, c): (n, p) for k, c, n, p in f.by_kind()}
    called, parts = by[("called", "sms")]
    assert (called["delivered"], called["sent"], called["failed"], parts) == (1, 1, 1, 2)
    near, _ = by[("turn_near", "sms")]
    assert (near["opted_out"], near["cancelled"]) == (1, 1)
    assert by[("document_ready", "email")][0]["expired"] == 1
    assert by[("document_ready", "sms")][0]["failed"] == 1  # a delivery report of failure counts as failed
    assert {r.day for r in f.rows} == {date(2026, 12, 7)}
    assert f.totals()["total"] == 7 and f.totals()["parts"] == 4 and f.cost == 0.64
    assert [(s.tickets, s.sms, s.email, s.share) for s in f.subscriptions] == [(4, 1, 0, 0.25)]


@pytest.fixture
def peer(broker) -> Iterator[Peer]:
    p = Peer(broker.port)
    p.subscribe(f"{BASE}/kiosk/k1/response/#", f"{BASE}/counter/+/reply")
    yield p
    p.close()


@pytest.fixture
def provider() -> Iterator[Provider]:
    p = Provider()
    yield p
    p.stop()


def test_a_manager_reads_sent_and_opted_out_notices_and_the_exports_hold_no_number(tmp_path, broker, peer, provider):
    notify_toml(tmp_path, provider=provider)
    server = office(tmp_path, broker).start()
    try:
        first = issue(peer, "r1")
        second = issue(peer, "r2")
        issue(peer, "r3")
        assert leave(server, first["token"], "600 100 200").status_code == 303  # nobody ahead: "near" at once
        assert leave(server, second["token"], "600 100 201").status_code == 303
        wait_for(
            lambda: rows(server.database, "SELECT COUNT(*) FROM notices WHERE state = 'sent'") == [(2,)],
            30,
            "both turn-near SMS",
        )
        # the first number's holder replies STOP before it is called
        url = f"http://127.0.0.1:{server.http_port}/notify/sms/provider"
        stop = httpx.post(
            url, data={"sms_from": "48600100200", "sms_text": "STOP"}, headers={"X-Numerek-Secret": SECRET}
        )
        assert stop.text == "OK opted_out"
        wait_for(lambda: len(provider.messages) == 3, 30, "the confirmation")

        clerk = server.get("/reports/notices", follow_redirects=False)
        assert clerk.status_code in (303, 403)  # a clerk's login is not a manager's

        from server.auth import Users

        users = Users(server._database())
        users.add("kierownik", "manager", "kierownik-haslo-2026")
        users.close()
        manager = httpx.Client(base_url=server.url, timeout=10)
        login = {"name": "kierownik", "password": "kierownik-haslo-2026"}
        assert manager.post("/login", data=login, follow_redirects=False).status_code == 303
        page = manager.get("/reports/notices")
        assert page.status_code == 200
        assert "Powiadomienia razem: 3" in page.text and "rezygnacja (STOP) 0" in page.text
        assert "Zbliża się kolej" in page.text and "Potwierdzenie rezygnacji (STOP)" in page.text
        by_kind = page.text.split('id="subscriptions"')[1].split("</table>")[0]
        assert "66,7 %" in by_kind  # two of the three tickets asked to be notified

        press = {"v": 1, "id": "n1", "action": "next"}
        peer.publish(f"{BASE}/counter/1/command", press)  # A001 (the opted-out number) called
        peer.expect(f"{BASE}/counter/1/reply", where=lambda d: d["id"] == "n1")
        wait_for(
            lambda: (
                rows(server.database, "SELECT state, reason FROM notices WHERE kind = 'called'")
                == [("cancelled", optout.OPTED_OUT)]
            ),
            30,
            "the call to the opted-out number cancelled at hand-over",
        )
        api = manager.get("/reports/api/notices").json()
        assert api["totals"]["opted_out"] == 1 and api["totals"]["sent"] == 3
        csv_text = manager.get("/reports/notices/export/notices_by_day.csv").text
        assert csv_text.splitlines()[0].startswith("day,kind,channel,total,sent,delivered,failed,expired,opted_out")
        xlsx = manager.get("/reports/notices/export/all.xlsx")
        assert xlsx.status_code == 200
        book = load_workbook(io.BytesIO(xlsx.content), read_only=True)
        cells = " ".join(str(c) for ws in book.worksheets for row in ws.iter_rows(values_only=True) for c in row)
        assert sorted(book.sheetnames) == sorted(figures.TABLES)
        page = manager.get("/reports/notices?lang=en")
        assert "opted out (STOP) 1" in page.text
        for text in (page.text, csv_text, cells, str(api)):
            for needle in ("600100200", "600100201", "600 100 20", "48600"):
                assert needle not in text
        assert manager.get("/reports/notices?since=2026-13-01").status_code == 422
        assert manager.get("/reports/notices/export/contacts.csv").status_code == 404
    finally:
        server.stop()
    assert "600100200" not in server.log() and "600100201" not in server.log()
