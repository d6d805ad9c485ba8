"""The public booking site (/rezerwacja) on the real server: a resident books on a phone,
forms refuse bad input with nothing booked, 100 residents at once never overbook a slot."""

from __future__ import annotations

import json
import re
import sqlite3
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest

from tests.browser import CHROMIUM, Page
from tests.harness import Broker, ServerProcess, free_port, wait_for, write_config

BOOKING = """
[booking]
per_address = "5/minute"
per_contact = 2
retention_days = 7

[booking.plans.rej]
slot_min = 15
per_hour = 8
notice_min = 0
days_ahead = 4
"""
"""2 residents per 15-minute slot; a client address may try 5 bookings a minute (tests use
X-Forwarded-For from 127.0.0.1, a trusted proxy, to be many residents)."""


def start_booking_office(tmp: Path, extra: str = BOOKING) -> tuple[Broker, ServerProcess]:
    broker = Broker(tmp).start()
    port = free_port()
    cfg = write_config(tmp / "office.toml", broker.port, port)
    cfg.write_text(cfg.read_text(encoding="utf-8") + extra, encoding="utf-8")
    return broker, ServerProcess(cfg, http_port=port).start()


@pytest.fixture(scope="module")
def office(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("booking")
    broker, server = start_booking_office(tmp)
    yield server
    server.stop()
    broker.stop()


_addresses = iter(range(1, 60000))


def resident() -> dict[str, str]:
    """Headers of a new resident's phone (its own address, as the trusted proxy says)."""
    n = next(_addresses)
    return {"X-Forwarded-For": f"10.{n // 65536}.{n // 256 % 256}.{n % 256}"}


def phone(n: int) -> str:
    return f"+48 601 {n:06d}"


def first_day_and_slots(server: ServerProcess, service: str = "rej", day_index: int = 0) -> tuple[str, list[str]]:
    """The ``day_index``-th whole day offered (0 to 3) and its free times.

    Why not today: the office is open round the clock, and late in the evening today has only
    its last few times left, or none (then it is not offered at all); the four days after it
    (``days_ahead = 4``) are always whole."""
    days = re.findall(
        rf"/rezerwacja/{service}/(\d{{4}}-\d\d-\d\d)", server.anonymous_get(f"/rezerwacja/{service}").text
    )
    assert len(days) in (4, 5), days
    day = days[len(days) - 4 + day_index]
    page = server.anonymous_get(f"/rezerwacja/{service}/{day}").text
    return day, re.findall(r'name="slot" value="([^"]+)"', page)


def book(server: ServerProcess, day: str, slot: str, n: int, headers: dict | None = None, **extra):
    data = {"slot": slot, "name": f"Osoba {n}", "contact": phone(n), "consent": "yes", **extra}
    return server.anonymous_post(f"/rezerwacja/rej/{day}", data=data, headers=headers or resident())


def rows(server: ServerProcess, sql: str, args: tuple = ()) -> list[tuple]:
    with sqlite3.connect(server.database) as conn:
        return conn.execute(sql, args).fetchall()


# --------------------------------------------------------------------------- a resident on a phone


def loaded(page: Page, path_start: str) -> None:
    wait_for(
        lambda: page.js(
            f"location.pathname.startsWith({json.dumps(path_start)}) && document.readyState === 'complete'"
        ),
        20,
        f"{path_start} loaded",
    )


def press(page: Page, key: str, code: int, text: str = "") -> None:
    for kind in ("keyDown", "keyUp"):
        page.call(
            "Input.dispatchKeyEvent",
            {"type": kind, "key": key, "code": key, "windowsVirtualKeyCode": code, **({"text": text} if text else {})},
            page.session,
        )


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_a_resident_books_a_visit_on_a_phone_and_every_step_passes_axe(office, artifacts, chromium):
    from tests.axe import axe_violations

    page = chromium.open(f"{office.url}/rezerwacja?lang=pl")
    try:
        page.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True},
            page.session,
        )
        loaded(page, "/rezerwacja")
        assert page.js("document.documentElement.lang") == "pl"
        assert page.js("document.querySelector('h1').textContent") == "Rezerwacja wizyty"
        assert axe_violations(page) == []
        page.js("document.querySelector('a.choice[href^=\"/rezerwacja/rej\"]').click()")
        loaded(page, "/rezerwacja/rej")
        wait_for(lambda: page.js("!!document.querySelector('ul.days a.choice')"), 20, "the days")
        assert axe_violations(page) == []
        page.js("document.querySelectorAll('ul.days a.choice')[1].click()")  # tomorrow: no race with the clock
        wait_for(lambda: page.js("!!document.querySelector('input[name=slot]')"), 20, "the slots")
        assert axe_violations(page) == []

        # An attempt without consent: the error summary names it; nothing is booked.
        page.js("document.querySelector('input[name=slot]').click()")
        page.js("document.getElementById('name').value = 'Anna Nowak'")
        page.js("document.getElementById('contact').value = '600 200 300'")
        page.js("document.querySelector('form').submit()")
        wait_for(lambda: page.js("!!document.getElementById('errors')"), 20, "the error summary")
        assert "Bez zgody" in page.text("errors")
        assert page.js("document.getElementById('name').value") == "Anna Nowak"  # kept, not typed again
        assert axe_violations(page) == []
        assert rows(office, "SELECT COUNT(*) FROM bookings WHERE contact = '+48600200300'") == [(0,)]

        # With the keyboard alone: focus the consent box, Space ticks it, Enter in a field sends the form.
        page.js("document.getElementById('consent').focus()")
        press(page, " ", 32, " ")
        assert page.js("document.getElementById('consent').checked") is True
        page.js("document.getElementById('name').focus()")
        press(page, "Enter", 13, "\r")
        wait_for(lambda: page.js("location.pathname.startsWith('/wizyta/')"), 20, "the booking's page")
        loaded(page, "/wizyta/")
        code = page.text("code")
        assert re.fullmatch(r"[2-9A-HJKMNP-Z]{3}-[2-9A-HJKMNP-Z]{3}", code), code
        assert page.js("document.querySelector('svg.qr').getAttribute('role')") == "img"
        assert page.text("status") == "zarezerwowana"
        assert page.js("document.getElementById('ics').getAttribute('href')").endswith("/ics")
        page.screenshot(artifacts / "booking_result_phone.png")
        assert axe_violations(page) == []
        assert rows(office, "SELECT code, status FROM bookings WHERE contact = '+48600200300'") == [
            (code.replace("-", ""), "booked")
        ]

        # In Ukrainian, the same booking's page.
        page.js("location.search = '?lang=uk'")
        wait_for(lambda: page.js("document.documentElement.lang") == "uk", 20, "Ukrainian")
        assert page.js("document.querySelector('h1').textContent") == "Ваш візит заброньовано"
        assert axe_violations(page) == []
    finally:
        page.close()


# --------------------------------------------------------------------------- forms and refusals


def test_bad_input_lists_every_problem_and_books_nothing(office):
    day, slots = first_day_and_slots(office, day_index=1)
    before = rows(office, "SELECT COUNT(*) FROM bookings")
    r = office.anonymous_post(
        f"/rezerwacja/rej/{day}?lang=en", data={"slot": slots[0], "name": "J", "contact": "12"}, headers=resident()
    )
    assert r.status_code == 422
    for text in ("Without your consent", "Give your full name", "valid phone number or e-mail"):
        assert text in r.text
    r = office.anonymous_post(f"/rezerwacja/rej/{day}?lang=en", data={"slot": "tomorrow"}, headers=resident())
    assert r.status_code == 422 and "Choose a time." in r.text
    r = book(office, day, "2026-01-01T08:00:00+01:00", 900)
    assert r.status_code == 409 and "Tej godziny nie można już zarezerwować" in r.text
    assert rows(office, "SELECT COUNT(*) FROM bookings") == before


def test_a_form_sent_from_another_site_is_refused(office):
    day, slots = first_day_and_slots(office, day_index=1)
    before = rows(office, "SELECT COUNT(*) FROM bookings")
    r = book(office, day, slots[-1], 901, headers={**resident(), "Origin": "https://evil.example"})
    assert r.status_code == 403
    assert rows(office, "SELECT COUNT(*) FROM bookings") == before


def test_one_address_may_try_only_a_few_bookings_a_minute(office):
    day, slots = first_day_and_slots(office, day_index=2)
    same = resident()
    answers = [book(office, day, slots[n], 910 + n, headers=same, consent="").status_code for n in range(6)]
    assert answers == [422] * 5 + [429]


def test_the_booking_page_gives_ics_cancel_and_move_and_is_never_cached(office):
    day, slots = first_day_and_slots(office, day_index=3)
    r = book(office, day, slots[0], 920)
    assert r.status_code == 303
    link = r.headers["location"].split("?")[0]
    page = office.anonymous_get(link)
    assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "no-referrer"
    assert "Osoba 920" not in page.text  # the page shows the visit, not the person
    ics = office.anonymous_get(link + "/ics")
    assert ics.headers["content-type"].startswith("text/calendar")
    code = re.search(r'id="code">([^<]+)<', page.text).group(1)
    assert f"Booking code: {code}" in ics.text and "DTSTART:" in ics.text and "Osoba" not in ics.text

    refused = office.anonymous_post(link + "/move", data={"slot": "not-a-time"})
    assert refused.status_code == 409 and "Wybierz godzinę" in refused.text
    moved = office.anonymous_post(link + "/move", data={"slot": slots[1]})
    assert moved.status_code == 303 and "note=moved" in moved.headers["location"]
    starts = rows(office, "SELECT starts_at FROM bookings WHERE code = ?", (code.replace("-", ""),))[0][0]
    assert starts == pytest.approx(datetime.fromisoformat(slots[1]).timestamp())

    gone = office.anonymous_post(link + "/cancel")
    assert gone.status_code == 303
    assert rows(office, "SELECT status, name, contact FROM bookings WHERE code = ?", (code.replace("-", ""),)) == [
        ("cancelled", None, None)
    ]
    assert "odwołana" in office.anonymous_get(link).text


def test_an_unknown_booking_link_is_a_404(office):
    r = office.anonymous_get("/wizyta/" + "x" * 32, headers=resident())
    assert r.status_code == 404 and "Nie ma takiej rezerwacji" in r.text


# --------------------------------------------------------------------------- 100 at once


def test_a_hundred_residents_booking_one_slot_at_once_never_overbook_it(office, artifacts):
    day, slots = first_day_and_slots(office, day_index=1)
    slot = slots[-1]  # capacity 2

    def attempt(n: int) -> tuple[int, float]:
        started = time.perf_counter()
        r = book(office, day, slot, 1000 + n, headers={"X-Forwarded-For": f"10.99.{n // 250}.{n % 250 + 1}"})
        return r.status_code, time.perf_counter() - started

    with ThreadPoolExecutor(100) as pool:
        results = list(pool.map(attempt, range(100)))
    codes = [c for c, _ in results]
    assert codes.count(303) == 2 and codes.count(409) == 98, codes
    start = datetime.fromisoformat(slot).timestamp()
    assert rows(office, "SELECT COUNT(*) FROM bookings WHERE starts_at = ? AND status != 'cancelled'", (start,)) == [
        (2,)
    ]
    times = sorted(t * 1000 for _, t in results)
    figures = {
        "attempts": 100,
        "booked": 2,
        "median_ms": round(statistics.median(times)),
        "p95_ms": round(times[94]),
        "max_ms": round(times[-1]),
    }
    (artifacts / "booking_100_at_once.json").write_text(json.dumps(figures))
    print("booking 100 at once:", figures)


def test_the_demo_books_a_few_visits_through_the_public_form(office):
    from server.demo import seed_bookings

    day = first_day_and_slots(office, day_index=2)[0]
    made = seed_bookings(office.url, "rej", day, count=2)
    assert len(made) == 2
    for at, code, link in made:
        assert re.fullmatch(r"\d\d:\d\d", at) and len(code) == 7
        assert code in office.anonymous_get(link[len(office.url) :]).text
