"""Bookings as plain models: the plan's slots, codes, contacts, the store's rules under concurrency."""

from __future__ import annotations

import logging
import multiprocessing
import sqlite3
import threading
from datetime import date, timedelta

import pytest

from server.booking import codes, plan
from server.booking.contact import ContactError, clean_contact
from server.booking.desk import BookingDesk
from server.booking.store import BookingError, BookingStore
from server.config import ConfigError, parse_config
from tests.booking_support import BOOKING_OFFICE, booking_config, local, make_desk
from tests.engine_support import FakeClock

PHONE = "600 100 200"


def phone(n: int) -> str:
    """A distinct valid Polish mobile number per ``n`` (0-999)."""
    return f"+48 601 {n:06d}"


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("[booking.plans.pj]", "[booking.plans.nope]"), "unknown service 'nope'"),
        (("per_contact = 2", 'per_contact = 2\nprefix = "A"'), "prefix 'A' is a service's prefix"),
        (("slot_min = 15", "slot_min = 3"), "booking.plans.rej.slot_min"),
        (("retention_days = 14", "retention_days = -1"), "booking.retention_days"),
        (("per_contact = 2", "per_contact = 2\nper_address = 'lots'"), "booking.per_address"),
        (("days_ahead = 14", "days_ahed = 14"), "booking.plans.rej.days_ahed"),
    ],
)
def test_a_bad_booking_setting_is_named_in_the_error(change, message):
    text = BOOKING_OFFICE.replace(*change, 1)
    assert text != BOOKING_OFFICE
    with pytest.raises(ConfigError) as err:
        parse_config(text)
    assert message in str(err.value)


def test_an_office_without_a_booking_section_takes_no_bookings(tmp_path):
    from tests.engine_support import office_config

    cfg = office_config()
    desk = make_desk(tmp_path / "b.db", cfg=cfg)
    assert desk.services() == []
    assert plan.slots_on(cfg, "rej", date(2026, 11, 24)) == []


# ---------------------------------------------------------------- the plan


def test_slots_follow_the_service_hours_and_spread_the_hourly_capacity():
    cfg = booking_config()
    slots = plan.slots_on(cfg, "rej", date(2026, 11, 24))  # Tuesday, 08:00-16:00
    assert slots[0].label == "08:00" and slots[-1].end.strftime("%H:%M") == "16:00"
    assert len(slots) == 32
    assert [s.capacity for s in slots[:4]] == [1, 2, 1, 2]  # 6 an hour in 15-minute slots
    assert sum(s.capacity for s in slots) == 6 * 8


def test_a_fractional_hourly_capacity_leaves_empty_slots_out():
    cfg = booking_config()
    slots = plan.slots_on(cfg, "pj", date(2026, 11, 24))  # 3 an hour in 20-minute slots: 1 each
    assert [s.label for s in slots[:3]] == ["08:00", "08:20", "08:40"]
    cfg2 = booking_config().model_copy(deep=True)
    two = cfg2.booking.plans["pj"].model_copy(update={"per_hour": 2})
    cfg2 = cfg2.model_copy(
        update={"booking": cfg2.booking.model_copy(update={"plans": {**cfg2.booking.plans, "pj": two}})}
    )
    labels = [s.label for s in plan.slots_on(cfg2, "pj", date(2026, 11, 24))]
    assert labels[:4] == ["08:20", "08:40", "09:20", "09:40"]  # 0, 1, 1 per hour: 08:00 has room for nobody


def test_no_slots_on_polish_public_holidays_weekends_and_office_closures():
    cfg = booking_config()
    assert plan.closed_reason(cfg, date(2026, 11, 11)) == "Narodowe Święto Niepodległości"
    assert plan.slots_on(cfg, "rej", date(2026, 11, 11)) == []  # a Wednesday, a holiday
    assert plan.slots_on(cfg, "rej", date(2026, 11, 12)) != []
    assert plan.slots_on(cfg, "rej", date(2026, 4, 6)) == []  # Easter Monday (moves every year)
    assert plan.slots_on(cfg, "rej", date(2026, 11, 28)) == []  # Saturday: the service is closed
    assert plan.closed_reason(cfg, date(2026, 11, 27)) == "closure"
    assert plan.slots_on(cfg, "rej", date(2026, 11, 27)) == []


def test_holidays_can_be_turned_off_for_an_office_that_opens_on_them():
    cfg = parse_config(BOOKING_OFFICE.replace("[booking]\n", "[booking]\nholidays = 'DE'\n", 1))
    assert plan.slots_on(cfg, "rej", date(2026, 11, 11)) != []  # not a holiday in Germany
    none = parse_config(BOOKING_OFFICE.replace("[booking]\n", "[booking]\nholidays = ''\n", 1))
    assert none.booking.holidays is None and plan.slots_on(none, "rej", date(2026, 11, 11)) != []


def test_slots_can_be_booked_only_with_notice_and_not_too_far_ahead(tmp_path):
    clock = FakeClock()  # Monday 2026-11-23 09:00
    desk = make_desk(tmp_path / "b.db", clock)
    today = desk.slots("rej", date(2026, 11, 23))
    assert today[0].label == "10:00"  # notice_min = 60
    days = desk.days("rej")
    assert days[0] == date(2026, 11, 23) and days[-1] == date(2026, 12, 7)  # 14 days ahead
    assert date(2026, 11, 27) not in days and date(2026, 11, 28) not in days
    with pytest.raises(BookingError) as err:
        desk.book("rej", local(desk.config, "2026-11-23 09:30"), "Jan Kowalski", PHONE)
    assert err.value.code == "slot_unavailable"
    with pytest.raises(BookingError) as err:
        desk.book("rej", local(desk.config, "2026-12-08 10:00"), "Jan Kowalski", PHONE)
    assert err.value.code == "slot_unavailable"
    with pytest.raises(BookingError) as err:
        desk.book("rej", local(desk.config, "2026-11-24 10:05"), "Jan Kowalski", PHONE)  # not a slot's start
    assert err.value.code == "slot_unavailable"


# ---------------------------------------------------------------- codes and contacts


def test_booking_codes_avoid_characters_that_are_misread():
    assert not set("0O1IL") & set(codes.ALPHABET)
    drawn = {codes.new_code() for _ in range(2000)}
    assert len(drawn) == 2000 and all(len(c) == 6 and set(c) <= set(codes.ALPHABET) for c in drawn)
    assert codes.normalize(" k7m-4px ") == "K7M4PX"
    assert codes.display("K7M4PX") == "K7M-4PX"
    assert codes.normalize("K7M-4P0") is None and codes.normalize("K7M4P") is None


def test_phone_numbers_are_normalised_and_bad_contacts_refused():
    assert clean_contact("600 100 200") == ("+48600100200", "phone")
    assert clean_contact("+48 600-100-200") == ("+48600100200", "phone")
    assert clean_contact("Jan.Kowalski@Example.PL") == ("jan.kowalski@example.pl", "email")
    for bad in ("123", "not an address", "jan@", ""):
        with pytest.raises(ContactError):
            clean_contact(bad)


# ---------------------------------------------------------------- booking


def test_a_booked_slot_cannot_be_booked_twice(tmp_path):
    desk = make_desk(tmp_path / "b.db")
    at = local(desk.config, "2026-11-24 10:00")  # capacity 1
    first = desk.book("rej", at, "Jan Kowalski", phone(1))
    assert first.status == "booked" and len(first.code) == 6
    with pytest.raises(BookingError) as err:
        desk.book("rej", at, "Anna Nowak", phone(2))
    assert err.value.code == "slot_full"
    assert len(desk.on_day(date(2026, 11, 24))) == 1
    assert [s.label for s in desk.slots("rej", date(2026, 11, 24))][:2] == ["08:00", "08:15"]
    assert "10:00" not in [s.label for s in desk.slots("rej", date(2026, 11, 24))]


def test_one_contact_may_hold_only_a_few_upcoming_bookings(tmp_path):
    desk = make_desk(tmp_path / "b.db")
    desk.book("rej", local(desk.config, "2026-11-24 10:00"), "Jan Kowalski", "600 100 200")
    desk.book("rej", local(desk.config, "2026-11-25 10:00"), "Jan Kowalski", "+48600100200")
    with pytest.raises(BookingError) as err:
        desk.book("pj", local(desk.config, "2026-11-26 10:00"), "Jan K.", "600-100-200")
    assert err.value.code == "contact_limit"
    assert len(desk.on_day(date(2026, 11, 26))) == 0


def test_a_cancelled_booking_frees_its_seat_and_forgets_the_person(tmp_path):
    desk = make_desk(tmp_path / "b.db")
    at = local(desk.config, "2026-11-24 10:00")
    b = desk.book("rej", at, "Jan Kowalski", phone(1))
    cancelled = desk.cancel(b.token)
    assert cancelled.status == "cancelled" and cancelled.name is None and cancelled.contact is None
    again = desk.book("rej", at, "Anna Nowak", phone(2))
    assert again.starts_at == at
    with pytest.raises(BookingError):
        desk.cancel(b.token)  # twice: refused, nothing changes


def test_a_booking_moves_to_a_free_slot_and_keeps_its_code(tmp_path):
    desk = make_desk(tmp_path / "b.db")
    b = desk.book("rej", local(desk.config, "2026-11-24 10:00"), "Jan Kowalski", phone(1))
    desk.book("rej", local(desk.config, "2026-11-24 11:00"), "Anna Nowak", phone(2))
    with pytest.raises(BookingError) as err:
        desk.move(b.token, local(desk.config, "2026-11-24 11:00"))  # full
    assert err.value.code == "slot_full"
    assert desk.by_token(b.token).starts_at == local(desk.config, "2026-11-24 10:00")
    moved = desk.move(b.token, local(desk.config, "2026-11-25 09:00"))
    assert moved.code == b.code and moved.day == date(2026, 11, 25)
    assert desk.slots("rej", date(2026, 11, 24))[0].label == "08:00"
    assert "10:00" in [s.label for s in desk.slots("rej", date(2026, 11, 24))]  # the old seat is free again


def test_personal_data_is_erased_the_configured_number_of_days_after_the_visit(tmp_path):
    clock = FakeClock()
    desk = make_desk(tmp_path / "b.db", clock)
    b = desk.book("rej", local(desk.config, "2026-11-24 10:00"), "Jan Kowalski", phone(1))
    clock.advance(timedelta(days=15).total_seconds())  # 2026-12-08: 14 days after the visit
    assert desk.erase_due() == 0
    clock.advance(timedelta(days=1).total_seconds())
    assert desk.erase_due() == 1
    kept = desk.by_token(b.token)
    assert kept.name is None and kept.contact is None and kept.code == b.code  # the statistics stay
    raw = sqlite3.connect(tmp_path / "b.db").execute("SELECT name, contact FROM bookings").fetchall()
    assert raw == [(None, None)]


def test_the_server_erases_on_a_schedule_from_its_start(tmp_path):
    clock = FakeClock()
    desk = make_desk(tmp_path / "b.db", clock)
    desk.book("rej", local(desk.config, "2026-11-24 10:00"), "Jan Kowalski", phone(1))
    clock.advance(timedelta(days=20).total_seconds())
    later = BookingDesk(BookingStore(str(tmp_path / "b.db")), lambda: desk.config, clock)
    later.start()
    try:
        from tests.harness import wait_for

        wait_for(lambda: later.on_day(date(2026, 11, 24))[0].name is None, 10, "the erasure at start")
    finally:
        later.stop()


def test_names_and_contacts_never_reach_the_log(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    desk = make_desk(tmp_path / "b.db")
    b = desk.book("rej", local(desk.config, "2026-11-24 10:00"), "Zofia Wiśniewska", "zofia@example.pl")
    desk.move(b.token, local(desk.config, "2026-11-24 11:00"))
    desk.cancel(b.token)
    text = caplog.text + repr(b)
    assert "booking" in caplog.text
    assert "Wiśniewska" not in text and "zofia@" not in text and b.token not in text


# ---------------------------------------------------------------- concurrency


def test_many_threads_never_book_a_slot_over_its_capacity(tmp_path):
    path = tmp_path / "b.db"
    desk = make_desk(path)
    at = local(desk.config, "2026-11-24 10:15")  # capacity 2
    barrier = threading.Barrier(40)
    results: list[str] = []

    def attempt(n: int) -> None:
        # each thread its own connection: SQLite, not our lock, must keep the order
        own = BookingDesk(BookingStore(str(path), migrate=False), lambda: desk.config, desk._now)
        barrier.wait()
        try:
            own.book("rej", at, f"Osoba {n}", phone(n))
            results.append("ok")
        except BookingError as exc:
            results.append(exc.code)
        finally:
            own.store.close()

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results.count("ok") == 2 and results.count("slot_full") == 38
    assert len(desk.on_day(date(2026, 11, 24))) == 2


def _process_attempts(path: str, first: int, count: int, start, queue) -> None:
    from tests.booking_support import booking_config, local
    from tests.engine_support import FakeClock

    cfg = booking_config()
    desk = BookingDesk(BookingStore(path, migrate=False), lambda: cfg, FakeClock())
    start.wait()
    for n in range(first, first + count):
        try:
            desk.book("rej", local(cfg, "2026-11-24 10:15"), f"Osoba {n}", phone(n))
            queue.put("ok")
        except BookingError as exc:
            queue.put(exc.code)


def test_many_processes_never_book_a_slot_over_its_capacity(tmp_path):
    path = str(tmp_path / "b.db")
    make_desk(tmp_path / "b.db").store.close()
    ctx = multiprocessing.get_context("spawn")
    start, queue = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_process_attempts, args=(path, p * 10, 10, start, queue)) for p in range(6)]
    for p in procs:
        p.start()
    start.set()
    results = [queue.get(timeout=120) for _ in range(60)]
    for p in procs:
        p.join(60)
    assert results.count("ok") == 2 and results.count("slot_full") == 58
    rows = sqlite3.connect(path).execute("SELECT COUNT(*) FROM bookings").fetchone()[0]
    assert rows == 2


def test_the_database_refuses_a_second_booking_in_the_same_seat(tmp_path):
    make_desk(tmp_path / "b.db").book("rej", local(booking_config(), "2026-11-24 10:00"), "Jan Kowalski", phone(1))
    conn = sqlite3.connect(tmp_path / "b.db")
    row = conn.execute("SELECT service, day, starts_at, ends_at, seat FROM bookings").fetchone()
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO bookings (code, token, service, day, starts_at, ends_at, seat, status, channel, created_at)"
            " VALUES ('ZZZZZZ', 'x', ?, ?, ?, ?, ?, 'booked', 'online', 0)",
            row,
        )
