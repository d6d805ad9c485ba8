"""The reception desk (/recepcja) on the real server: a clerk issues tickets for residents,
books for a caller, looks a booking up and checks it in; a manager lists and exports the day
without personal data."""

from __future__ import annotations

import base64
import re
import sqlite3

import pytest

from tests.harness import ServerProcess, free_port, run_tool, write_config
from tests.test_booking_checkin import BOOKING

MANAGER = {"Authorization": "Basic " + base64.b64encode(b"szef:haslo-szefa-1").decode()}


@pytest.fixture
def office(tmp_path, broker):
    http_port = free_port()
    cfg = write_config(tmp_path / "office.toml", broker.port, http_port)
    cfg.write_text(cfg.read_text(encoding="utf-8") + BOOKING, encoding="utf-8")
    server = ServerProcess(cfg, http_port=http_port, args=["--clock-start", "2030-01-07T09:00:00"]).start()
    added = run_tool(
        "server.auth", "--config", str(cfg), "add", "szef", "--password-stdin", input="haslo-szefa-1\n", timeout=60
    )
    assert added.returncode == 0, added.stderr
    yield server
    server.stop()


def rows(server: ServerProcess, sql: str) -> list[tuple]:
    with sqlite3.connect(server.database) as conn:
        return conn.execute(sql).fetchall()


def test_the_reception_needs_a_clerk_login_and_the_day_list_a_manager(office):
    assert office.anonymous_get("/recepcja", follow_redirects=False).status_code in (303, 307)
    assert office.get("/recepcja").status_code == 200
    assert office.get("/recepcja/rezerwacje").status_code == 403  # a clerk is not a manager
    assert office.anonymous_post("/recepcja/numerek", data={"service": "rej"}, follow_redirects=False).status_code in (
        303,
        307,
    )
    assert rows(office, "SELECT COUNT(*) FROM tickets") == [(0,)]


def test_a_priority_ticket_needs_a_reason_and_the_reason_is_not_stored(office):
    r = office.post("/recepcja/numerek", data={"service": "rej", "priority": "yes"})
    assert r.status_code == 422 and "powód" in r.text
    assert rows(office, "SELECT COUNT(*) FROM tickets") == [(0,)]
    r = office.post("/recepcja/numerek", data={"service": "rej", "priority": "yes", "reason": "disability"})
    assert r.status_code == 200
    assert re.search(r'id="number">A001<', r.text)
    assert rows(office, "SELECT number, priority, origin FROM tickets") == [("A001", 1, "reception")]
    with sqlite3.connect(office.database) as conn:
        dump = "\n".join(conn.iterdump())
    assert "disability" not in dump
    assert office.post("/recepcja/numerek", data={"service": "nope"}).status_code == 409


def test_a_clerk_books_for_a_caller_looks_it_up_and_checks_it_in(office):
    slots = office.get("/recepcja/telefon", params={"service": "rej", "day": "2030-01-07"})
    assert slots.status_code == 200
    assert 'value="2030-01-07T09:15:00+01:00"' in slots.text
    made = office.post(
        "/recepcja/telefon",
        data={
            "service": "rej",
            "slot": "2030-01-07T09:15:00+01:00",
            "name": "Jan Kowalski",
            "contact": "600 100 200",
            "consent": "yes",
        },
    )
    assert made.status_code == 200, made.text[:300]
    code = re.search(r'id="booking-code">([^<]+)<', made.text).group(1)
    assert rows(office, "SELECT channel, status FROM bookings") == [("phone", "booked")]

    found = office.get("/recepcja", params={"kod": code.lower()})
    assert "Jan Kowalski" in found.text and "+48600100200" in found.text  # the clerk verifies who it is
    checked = office.post("/recepcja/numerek", data={"booking": code.replace("-", "")})
    assert re.search(r'id="number">R001<', checked.text), checked.text[:500]
    assert rows(office, "SELECT status, ticket FROM bookings") == [("checked_in", "R001")]
    assert office.get("/recepcja", params={"kod": "ZZZZZZ"}).status_code == 404


def test_a_manager_lists_and_exports_the_day_without_names_or_contacts(office):
    for n, slot in enumerate(("09:15", "09:30")):
        office.post(
            "/recepcja/telefon",
            data={
                "service": "rej",
                "slot": f"2030-01-07T{slot}:00+01:00",
                "name": f"Osoba Testowa {n}",
                "contact": f"+48 601 00000{n}",
                "consent": "yes",
            },
        )
    page = office.anonymous_get("/recepcja/rezerwacje", params={"day": "2030-01-07"}, headers=MANAGER)
    assert page.status_code == 200 and "09:15" in page.text and "09:30" in page.text
    export = office.anonymous_get("/recepcja/rezerwacje.csv", params={"day": "2030-01-07"}, headers=MANAGER)
    assert export.headers["content-type"].startswith("text/csv")
    lines = export.text.strip().splitlines()
    assert lines[0] == "time,service,code,status,channel,ticket" and len(lines) == 3
    assert "Osoba" not in export.text + page.text and "+48" not in export.text + page.text
    assert export.headers["cache-control"] == "no-store"


def test_the_reception_page_passes_axe_and_works_with_the_keyboard(office, artifacts, chromium):
    import json

    from server.auth import SESSION_COOKIE
    from tests.axe import axe_violations
    from tests.harness import wait_for

    page = chromium.open(office.url + "/health")
    try:
        page.call(
            "Network.setCookie",
            {"name": SESSION_COOKIE, "value": office.session_cookie, "url": office.url, "httpOnly": True},
            page.session,
        )
        page.call("Page.navigate", {"url": office.url + "/recepcja"}, page.session)
        wait_for(lambda: page.js("!!document.getElementById('issue')"), 20, "the reception page")
        assert axe_violations(page) == [], "reception"
        page.js("document.getElementById('service').value = 'pj'")
        page.js("document.getElementById('issue').focus()")
        for kind in ("keyDown", "keyUp"):
            page.call(
                "Input.dispatchKeyEvent",
                {"type": kind, "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "text": "\r"},
                page.session,
            )
        wait_for(lambda: page.js("!!document.getElementById('number')"), 20, "the issued number")
        assert page.text("number") == "B001"
        page.screenshot(artifacts / "reception.png")
        violations = axe_violations(page)
        assert violations == [], json.dumps(violations, indent=1)
    finally:
        page.close()
