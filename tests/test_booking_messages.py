"""A booking's confirmation and reminder through the notification outbox, on real parts: the
real server process (its clock started where the test says), Mosquitto, aiosmtpd as the
office's relay; bookings made with the public form and the reception's phone form over HTTP."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import ServerProcess, free_port, wait_for, write_config
from tests.notify_support import GammuDaemon, read_smsbackup
from tests.test_notify_server import NOTIFY_SECTION, Relay, notify_toml, rows


@pytest.fixture
def relay() -> Iterator[Relay]:
    r = Relay(free_port())
    yield r
    r.stop()


BOOKING = """
[booking]
per_address = "100/minute"
remind_hours = 24

[booking.plans.rej]
slot_min = 15
per_hour = 4
notice_min = 0
days_ahead = 3
"""
JAN, ANNA, EWA, OLA = "jan.kowalski@example.pl", "anna.nowak@example.pl", "ewa@example.pl", "ola@example.pl"


def office(tmp_path: Path, broker, relay, start: str) -> ServerProcess:
    http_port = free_port()
    cfg = write_config(tmp_path / "office.toml", broker.port, http_port)
    notify_toml(tmp_path, smtp_port=relay.port)
    cfg.write_text(cfg.read_text(encoding="utf-8") + NOTIFY_SECTION.format(retention=24) + BOOKING, encoding="utf-8")
    return ServerProcess(cfg, http_port=http_port, args=["--clock-start", start])


def book(server: ServerProcess, day: str, hhmm: str, contact: str, lang: str = "pl") -> str:
    """Book through the public form as a browser does; the booking's link."""
    r = server.anonymous_post(
        f"/rezerwacja/rej/{day}?lang={lang}",
        data={"slot": f"{day}T{hhmm}:00+01:00", "name": "Jan Kowalski", "contact": contact, "consent": "yes"},
    )
    assert r.status_code == 303, r.text[:500]
    return r.headers["location"].split("?")[0]


def mails_to(relay, address: str) -> list:
    return [m for m, e in zip(relay.messages(), relay.mailbox.envelopes, strict=True) if address in e.rcpt_tos]


def test_a_booking_is_confirmed_once_reminded_the_day_before_and_a_cancelled_one_is_never_reminded(
    tmp_path, broker, relay
):
    relay.start()
    server = office(tmp_path, broker, relay, "2030-01-07T09:00:00").start()  # a Monday
    try:
        jan = book(server, "2030-01-08", "10:00", JAN)
        wait_for(lambda: len(mails_to(relay, JAN)) == 1, 30, "the confirmation")
        anna = book(server, "2030-01-08", "10:15", ANNA, lang="en")
        wait_for(lambda: len(mails_to(relay, ANNA)) == 1, 30, "the second confirmation")
        assert server.anonymous_post(anna + "/cancel").status_code == 303
        # The clerk books a caller by phone (the reception's form): confirmed the same way.
        r = server.post(
            "/recepcja/telefon",
            data={
                "service": "rej",
                "slot": "2030-01-08T11:00:00+01:00",
                "name": "Ewa",
                "contact": EWA,
                "consent": "yes",
            },
        )
        assert r.status_code == 200 and 'id="booking-code"' in r.text, r.text[:500]
        wait_for(lambda: len(mails_to(relay, EWA)) == 1, 30, "the phone booking's confirmation")
        # A phone number while the office has no SMS gateway: booked, and no message written.
        book(server, "2030-01-08", "11:15", "600 100 200")
    finally:
        server.stop()

    [confirmation] = mails_to(relay, JAN)
    body = confirmation.get_body(("plain",)).get_content()
    code = rows(server.database, "SELECT code FROM bookings WHERE contact = ?", (JAN,))[0][0]
    assert confirmation["Subject"] == "Wizyta zarezerwowana"
    assert "Rejestracja pojazdów" in body and "wt. 8 sty, 10:00" in body
    assert f"Kod {code[:3]}-{code[3:]}" in body and f"{jan}?lang=pl" in body
    assert mails_to(relay, ANNA)[0]["Subject"] == "Appointment booked"
    assert rows(server.database, "SELECT COUNT(*) FROM notices WHERE recipient LIKE '+48%'") == [(0,)]
    assert rows(server.database, "SELECT COUNT(*) FROM bookings WHERE status = 'booked'") == [(3,)]

    # The next morning's run: 10:30 on the day before, past both reminders' moment (24 h before).
    later = office(tmp_path, broker, relay, "2030-01-07T10:30:00").start()
    try:
        wait_for(lambda: len(mails_to(relay, JAN)) == 2, 30, "the reminder")
        # A barrier: a new booking's confirmation is due after the cancelled reminder would have
        # been (the outbox sends in order of due time), so once it is here, that one is not coming.
        book(later, "2030-01-08", "12:00", OLA)
        wait_for(lambda: len(mails_to(relay, OLA)) == 1, 30, "the barrier's confirmation")
    finally:
        later.stop()
    reminder = mails_to(relay, JAN)[1]
    assert reminder["Subject"] == "Przypomnienie o wizycie"
    assert "przypominamy" in reminder.get_body(("plain",)).get_content()
    assert len(mails_to(relay, ANNA)) == 1  # the confirmation only: the cancelled visit's reminder never went out
    assert len(mails_to(relay, EWA)) == 1  # her reminder is due at 11:00
    states = dict(rows(later.database, "SELECT notice, state FROM notices WHERE notice LIKE 'booking:%:reminder:%'"))
    assert sorted(states.values()) == ["cancelled", "pending", "pending", "sent"]
    assert not re.search(r"kowalski|nowak|600 ?100 ?200", (tmp_path / "server.log").read_text(encoding="utf-8"))


def test_a_booking_with_a_mobile_number_is_confirmed_by_sms_through_gammu_smsd(tmp_path, broker):
    smsd = GammuDaemon(tmp_path / "gammu").start()
    http_port = free_port()
    cfg = write_config(tmp_path / "office.toml", broker.port, http_port)
    notify_toml(tmp_path, smsd=smsd)
    cfg.write_text(cfg.read_text(encoding="utf-8") + NOTIFY_SECTION.format(retention=24) + BOOKING, encoding="utf-8")
    server = ServerProcess(cfg, http_port=http_port, args=["--clock-start", "2030-01-07T09:00:00"]).start()
    try:
        link = book(server, "2030-01-08", "10:00", "600 100 200")
        wait_for(lambda: len(smsd.sent()) == 1, 60, "the confirmation transmitted by gammu-smsd")
    finally:
        server.stop()
        smsd.stop()
    [sms] = [read_smsbackup(p) for p in smsd.sent()]
    assert sms.number == "+48600100200"
    assert sms.text.startswith("Urząd Testowy: rezerwacja Rejestracja pojazdów, wt. 8 sty, 10:00")
    assert sms.text.endswith(f"{link}?lang=pl") and sms.parts == 3  # UCS-2 with the link: docs/booking.md
    log = (tmp_path / "server.log").read_text(encoding="utf-8")
    assert "600100200" not in log and "600 100 200" not in log
