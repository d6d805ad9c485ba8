"""Managers' figures of residents' notifications: what was sent, what arrived, what it cost.

Read from the outbox's rows (``notices``: kind, channel, state, delivery, parts, reason; the
recipient is never read), ``notify_subscriptions`` (which tickets asked to be notified, no
contact), ``notify_pickups`` (the clerks' "document ready") and ``tickets`` (how many were
issued a day). So no figure, page or export here holds a phone number or an address, and the
figures survive the contacts' erasure (docs/notifications.md, "Personal data").

Why a module and a page of their own (``/reports/notices``, server/reports/notices_web.py)
rather than more columns in ``ReportData.summary``: these tables exist only with ``[notify]``,
their day is the notice's (not the ticket's), and the dashboard's figures are cached by the
queue's events, which a delivery report does not change.

Outcome of a notice (one of, in this order):

* ``opted_out`` — cancelled because its number had replied STOP (notify/optout.py);
* ``delivered`` — sent and the gateway reported delivery;
* ``sent`` — handed over; no delivery report (yet), or the gateway cannot tell;
* ``failed`` — refused by the gateway or given up after retries; also a later delivery
  report of failure;
* ``expired`` — its moment passed before it could go out (quiet hours, a gateway down);
* ``cancelled`` — pointless before it went out (the ticket was called or ended first);
* ``unknown`` — a crash during the hand-over: may or may not have gone out;
* ``waiting`` — not sent yet.
"""

from __future__ import annotations

import sqlite3
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from server.reports.exports import Column, Table

OUTCOMES = ("sent", "delivered", "failed", "expired", "opted_out", "cancelled", "unknown", "waiting")
KIND_NAMES: dict[str, tuple[str, str]] = {
    "turn_near": ("Zbliża się kolej", "Turn near"),
    "called": ("Wezwanie", "Called"),
    "document_ready": ("Dokument do odbioru", "Pick-up ready"),
    "booking_confirmed": ("Potwierdzenie rezerwacji", "Booking confirmation"),
    "booking_reminder": ("Przypomnienie o rezerwacji", "Booking reminder"),
    "optout_confirmed": ("Potwierdzenie rezygnacji (STOP)", "Opt-out confirmation (STOP)"),
    "test": ("Wiadomość testowa", "Test message"),
}
OPTED_OUT_REASON = "opted out"  # notify.optout.OPTED_OUT (the web layer does not import notify/)


def outcome(state: str, delivery: str | None, reason: str | None) -> str:
    if state == "cancelled":
        return "opted_out" if reason == OPTED_OUT_REASON else "cancelled"
    if state == "sent":
        if delivery == "delivered":
            return "delivered"
        if delivery == "failed":
            return "failed"
        return "sent"
    if state in ("failed", "expired", "unknown"):
        return state
    return "waiting"  # pending, sending


@dataclass
class NoticeRow:
    """One day × kind × channel: how many notices ended how, and the SMS parts handed over."""

    day: date
    kind: str
    channel: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    parts: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def handed_over(self) -> int:
        """Sent, delivered or failed after hand-over: what the gateway was given (and charged)."""
        return self.counts["sent"] + self.counts["delivered"] + self.counts["failed"]


@dataclass
class SubscriptionDay:
    day: date
    tickets: int
    sms: int
    email: int

    @property
    def share(self) -> float | None:
        return (self.sms + self.email) / self.tickets if self.tickets else None


@dataclass
class PickupWeek:
    week: date  # Monday
    announced: int  # cases a clerk or a list marked ready (one row per new notice)
    sms: int
    email: int
    handed_over: int  # of those, notices sent (any later delivery)
    ready_to_pickup_median_h: float | None = None
    ready_to_pickup_p90_h: float | None = None
    picked_up: int = 0


@dataclass
class NoticeFigures:
    since: date
    until: date  # inclusive
    rows: list[NoticeRow]
    subscriptions: list[SubscriptionDay]
    pickups: list[PickupWeek]
    part_price: float

    def totals(self) -> dict[str, int]:
        out = dict.fromkeys(OUTCOMES, 0)
        for r in self.rows:
            for k, v in r.counts.items():
                out[k] += v
        out["parts"] = sum(r.parts for r in self.rows)
        out["total"] = sum(r.total for r in self.rows)
        return out

    def by_kind(self) -> list[tuple[str, str, dict[str, int], int]]:
        """(kind, channel, outcome counts, parts) over the whole period."""
        acc: dict[tuple[str, str], tuple[dict[str, int], list[int]]] = {}
        for r in self.rows:
            counts, parts = acc.setdefault((r.kind, r.channel), (dict.fromkeys(OUTCOMES, 0), [0]))
            for k, v in r.counts.items():
                counts[k] += v
            parts[0] += r.parts
        return [(k, c, counts, parts[0]) for (k, c), (counts, parts) in sorted(acc.items())]

    @property
    def cost(self) -> float:
        return round(self.totals()["parts"] * self.part_price, 2)


def _has(conn: sqlite3.Connection, table: str) -> bool:
    return (
        conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone() is not None
    )


def _bounds(since: date, until: date, tz: ZoneInfo) -> tuple[float, float]:
    start = datetime.combine(since, datetime.min.time(), tz).timestamp()
    end = datetime.combine(until + timedelta(days=1), datetime.min.time(), tz).timestamp()
    return start, end


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(0.9 * len(ordered) + 0.5) - 1))]


def load(database: Path | str, since: date, until: date, tz: ZoneInfo, part_price: float = 0.0) -> NoticeFigures:
    """The figures of ``since``..``until`` (office days, inclusive) from a read-only connection."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return _load(conn, since, until, tz, part_price)
    finally:
        conn.close()


def _load(conn: sqlite3.Connection, since: date, until: date, tz: ZoneInfo, part_price: float) -> NoticeFigures:
    start, end = _bounds(since, until, tz)
    rows: dict[tuple[date, str, str], NoticeRow] = {}
    if _has(conn, "notices"):
        for created, kind, channel, state, delivery, reason, parts in conn.execute(
            """SELECT created_at, kind, channel, state, delivery, reason, parts FROM notices
               WHERE created_at >= ? AND created_at < ? AND kind != 'test'""",
            (start, end),
        ):
            day = datetime.fromtimestamp(created, tz).date()
            row = rows.setdefault((day, kind, channel), NoticeRow(day, kind, channel))
            row.counts[outcome(state, delivery, reason)] += 1
            if state in ("sent", "unknown") and parts:
                row.parts += parts
    subscriptions: list[SubscriptionDay] = []
    if _has(conn, "notify_subscriptions"):
        issued = dict(
            conn.execute(
                "SELECT day, COUNT(*) FROM tickets WHERE day >= ? AND day <= ? GROUP BY day",
                (since.isoformat(), until.isoformat()),
            ).fetchall()
        )
        subscribed: dict[str, dict[str, int]] = defaultdict(lambda: {"sms": 0, "email": 0})
        for day_s, channel, n in conn.execute(
            "SELECT day, channel, COUNT(*) FROM notify_subscriptions WHERE day >= ? AND day <= ? GROUP BY day, channel",
            (since.isoformat(), until.isoformat()),
        ):
            subscribed[day_s][channel] = n
        for day_s in sorted(set(issued) | set(subscribed)):
            s = subscribed.get(day_s, {"sms": 0, "email": 0})
            subscriptions.append(SubscriptionDay(date.fromisoformat(day_s), issued.get(day_s, 0), s["sms"], s["email"]))
    pickups: list[PickupWeek] = []
    if _has(conn, "notify_pickups"):
        weeks: dict[date, PickupWeek] = {}
        for at, channel, state in conn.execute(
            """SELECT p.at, p.channel, (SELECT n.state FROM notices n WHERE n.notice = p.notice ORDER BY n.id LIMIT 1)
               FROM notify_pickups p WHERE p.at >= ? AND p.at < ?""",
            (start, end),
        ):
            day = datetime.fromtimestamp(at, tz).date()
            monday = day - timedelta(days=day.weekday())
            w = weeks.setdefault(monday, PickupWeek(monday, 0, 0, 0, 0))
            w.announced += 1
            if channel == "sms":
                w.sms += 1
            else:
                w.email += 1
            w.handed_over += state == "sent"
        for monday, hours in pickup_waits(conn, start, end, tz).items():
            w = weeks.setdefault(monday, PickupWeek(monday, 0, 0, 0, 0))
            w.picked_up = len(hours)
            w.ready_to_pickup_median_h = round(statistics.median(hours), 1)
            w.ready_to_pickup_p90_h = round(_p90(hours), 1)
        pickups = [weeks[k] for k in sorted(weeks)]
    ordered = sorted(rows.values(), key=lambda r: (r.day, r.kind, r.channel))
    return NoticeFigures(since, until, ordered, subscriptions, pickups, part_price)


def pickup_waits(conn: sqlite3.Connection, start: float, end: float, tz: ZoneInfo) -> dict[date, list[float]]:
    """Hours from "ready" to the resident's arrival for it, per week of the "ready".

    An arrival is the pick-up ticket the kiosk issued from the case reference
    (``pickup_arrivals``, written with the ticket: server/kiosk_cases.py). A document handed
    over without that ticket is not seen here; the page counts only the cases that came
    through the kiosk, and says so."""
    if not _has(conn, "pickup_arrivals"):
        return {}
    out: dict[date, list[float]] = defaultdict(list)
    for ready, arrived in conn.execute(
        "SELECT ready_at, arrived_at FROM pickup_arrivals WHERE ready_at >= ? AND ready_at < ?", (start, end)
    ):
        day = datetime.fromtimestamp(ready, tz).date()
        out[day - timedelta(days=day.weekday())].append(max(0.0, arrived - ready) / 3600.0)
    return out


# ---------------------------------------------------------------------- exports


OUTCOME_COLUMNS = [
    Column("sent", "Wysłane (bez raportu)", "Sent (no report)"),
    Column("delivered", "Doręczone", "Delivered"),
    Column("failed", "Nieudane", "Failed"),
    Column("expired", "Przeterminowane", "Expired"),
    Column("opted_out", "Rezygnacja (STOP)", "Opted out (STOP)"),
    Column("cancelled", "Anulowane", "Cancelled"),
    Column("unknown", "Nieznany los", "Unknown"),
    Column("waiting", "Czekają", "Waiting"),
]
TABLES = ("notices_by_day", "notices_by_kind", "subscriptions", "pickups")


def _kind(kind: str, lang: str) -> str:
    pl, en = KIND_NAMES.get(kind, (kind, kind))
    return en if lang == "en" else pl


def tables(f: NoticeFigures, lang: str = "pl") -> dict[str, Table]:
    """The page's tables for CSV/XLSX (column names in ``lang``; no contact in any of them)."""
    by_day = Table(
        "notices_by_day",
        [
            Column("day", "Dzień", "Day", "date"),
            Column("kind", "Rodzaj", "Kind", "text"),
            Column("channel", "Kanał", "Channel", "text"),
            Column("total", "Razem", "Total"),
            *OUTCOME_COLUMNS,
            Column("sms_parts", "Części SMS", "SMS parts"),
        ],
        [[r.day, _kind(r.kind, lang), r.channel, r.total, *(r.counts[o] for o in OUTCOMES), r.parts] for r in f.rows],
    )
    by_kind = Table(
        "notices_by_kind",
        [
            Column("kind", "Rodzaj", "Kind", "text"),
            Column("channel", "Kanał", "Channel", "text"),
            Column("total", "Razem", "Total"),
            *OUTCOME_COLUMNS,
            Column("sms_parts", "Części SMS", "SMS parts"),
            Column("cost", "Koszt (zł)", "Cost (PLN)", "number"),
        ],
        [
            [_kind(k, lang), c, sum(n.values()), *(n[o] for o in OUTCOMES), p, round(p * f.part_price, 2)]
            for k, c, n, p in f.by_kind()
        ],
    )
    subs = Table(
        "subscriptions",
        [
            Column("day", "Dzień", "Day", "date"),
            Column("tickets", "Bilety", "Tickets"),
            Column("sms", "Zapisy SMS", "SMS subscriptions"),
            Column("email", "Zapisy e-mail", "E-mail subscriptions"),
            Column("share", "Udział", "Share", "share"),
        ],
        [[s.day, s.tickets, s.sms, s.email, s.share] for s in f.subscriptions],
    )
    picks = Table(
        "pickups",
        [
            Column("week", "Tydzień (poniedziałek)", "Week (Monday)", "date"),
            Column("announced", "Powiadomienia o odbiorze", "Pick-up notices"),
            Column("sms", "SMS", "SMS"),
            Column("email", "E-mail", "E-mail"),
            Column("handed_over", "Wysłane", "Sent"),
            Column("picked_up", "Odebrane", "Picked up"),
            Column("median_h", "Mediana do odbioru (h)", "Median to pick-up (h)", "number"),
            Column("p90_h", "90. percentyl do odbioru (h)", "90th percentile to pick-up (h)", "number"),
        ],
        [
            [
                w.week,
                w.announced,
                w.sms,
                w.email,
                w.handed_over,
                w.picked_up,
                w.ready_to_pickup_median_h,
                w.ready_to_pickup_p90_h,
            ]
            for w in f.pickups
        ],
    )
    return {t.name: t for t in (by_day, by_kind, subs, picks)}


def as_json(f: NoticeFigures) -> dict[str, Any]:
    return {
        "since": f.since.isoformat(),
        "until": f.until.isoformat(),
        "totals": f.totals(),
        "cost": f.cost,
        "by_kind": [{"kind": k, "channel": c, **counts, "sms_parts": p} for k, c, counts, p in f.by_kind()],
        "by_day": [
            {"day": r.day.isoformat(), "kind": r.kind, "channel": r.channel, **r.counts, "sms_parts": r.parts}
            for r in f.rows
        ],
        "subscriptions": [
            {"day": s.day.isoformat(), "tickets": s.tickets, "sms": s.sms, "email": s.email, "share": s.share}
            for s in f.subscriptions
        ],
        "pickups": [
            {
                "week": w.week.isoformat(),
                "announced": w.announced,
                "sms": w.sms,
                "email": w.email,
                "handed_over": w.handed_over,
                "picked_up": w.picked_up,
                "median_h": w.ready_to_pickup_median_h,
                "p90_h": w.ready_to_pickup_p90_h,
            }
            for w in f.pickups
        ],
    }
