"""The after-visit survey: four questions, one answer set per ticket, anonymous.

Why anonymous by construction and not by promise: the answers are kept with the day and the
service only. Which tickets have answered is a separate table keyed by the SHA-256 of the
ticket's token, ``WITHOUT ROWID`` (stored in hash order, so it keeps no order of arrival
that could be lined up with the answers' order). So the file can say "this ticket answered"
(to refuse a second set) but not "this ticket answered this". No free text: a comment box
collects names and phone numbers.

Its tables have their own schema version (``survey_schema``), like the outbox's, created at
start when ``[survey]`` is configured.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

QUESTIONS: dict[str, dict[str, str]] = {
    # id -> the question per language; every answer is 1-5 except "settled" (1 yes, 0 no)
    "overall": {
        "pl": "Jak oceniasz wizytę w urzędzie?",
        "en": "How was your visit to the office?",
        "uk": "Як ви оцінюєте візит до установи?",
    },
    "wait": {
        "pl": "Czy czas oczekiwania był do przyjęcia?",
        "en": "Was the waiting time acceptable?",
        "uk": "Чи прийнятним був час очікування?",
    },
    "courtesy": {
        "pl": "Jak oceniasz uprzejmość i pomoc urzędnika?",
        "en": "How helpful and polite was the clerk?",
        "uk": "Як ви оцінюєте ввічливість і допомогу працівника?",
    },
    "settled": {
        "pl": "Czy udało się załatwić sprawę?",
        "en": "Was your matter settled?",
        "uk": "Чи вдалося вирішити вашу справу?",
    },
}
SCALE = ("overall", "wait", "courtesy")


def migrate(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS survey_schema (version INTEGER NOT NULL)")
        if conn.execute("SELECT version FROM survey_schema").fetchone() is None:
            conn.execute("CREATE TABLE survey_done (token_hash TEXT PRIMARY KEY) WITHOUT ROWID")
            conn.execute(
                """CREATE TABLE survey_answers (
                       day TEXT NOT NULL, service TEXT NOT NULL,
                       overall INTEGER NOT NULL CHECK (overall BETWEEN 1 AND 5),
                       wait INTEGER NOT NULL CHECK (wait BETWEEN 1 AND 5),
                       courtesy INTEGER NOT NULL CHECK (courtesy BETWEEN 1 AND 5),
                       settled INTEGER NOT NULL CHECK (settled IN (0, 1)))"""
            )
            conn.execute("CREATE INDEX survey_answers_day ON survey_answers (day, service)")
            conn.execute("INSERT INTO survey_schema (version) VALUES (1)")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


class SurveyError(ValueError):
    """``code``: "not_finished", "too_late", "answered", "invalid"."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def check_answers(form: dict[str, str]) -> dict[str, int]:
    """Every question answered with an allowed value, or SurveyError("invalid")."""
    out: dict[str, int] = {}
    for q in QUESTIONS:
        allowed = ("0", "1") if q == "settled" else ("1", "2", "3", "4", "5")
        value = form.get(q, "")
        if value not in allowed:
            raise SurveyError("invalid")
        out[q] = int(value)
    return out


@dataclass(frozen=True)
class ServiceResult:
    service: str
    answers: int
    means: dict[str, float]  # the 1-5 questions
    settled_share: float


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Survey:
    def __init__(self, path: str, days: int, today: Callable[[], date]) -> None:
        self.days = days
        self.today = today
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA busy_timeout=5000")
        self.conn.execute("PRAGMA synchronous=FULL")
        migrate(self.conn)
        self._lock = threading.Lock()

    def close(self) -> None:
        self.conn.close()

    def answered(self, token: str) -> bool:
        with self._lock:
            row = self.conn.execute("SELECT 1 FROM survey_done WHERE token_hash = ?", (_hash(token),)).fetchone()
        return row is not None

    def open_for(self, status: str, issued: datetime) -> str | None:
        """Why this ticket may not answer now, or None."""
        if status != "finished":
            return "not_finished"
        if (self.today() - issued.date()).days > self.days:
            return "too_late"
        return None

    def answer(self, token: str, status: str, issued: datetime, service: str, form: dict[str, str]) -> None:
        """Record one answer set for a finished ticket; SurveyError says why not (nothing stored)."""
        why = self.open_for(status, issued)
        if why is not None:
            raise SurveyError(why)
        values = check_answers(form)
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                cur = self.conn.execute(
                    "INSERT INTO survey_done (token_hash) VALUES (?) ON CONFLICT DO NOTHING", (_hash(token),)
                )
                if cur.rowcount == 0:
                    raise SurveyError("answered")
                self.conn.execute(
                    "INSERT INTO survey_answers (day, service, overall, wait, courtesy, settled) VALUES (?, ?, ?, ?, ?, ?)",
                    (issued.date().isoformat(), service, *(values[q] for q in QUESTIONS)),
                )
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise

    def results(self, first: date, last: date) -> list[ServiceResult]:
        with self._lock:
            rows = self.conn.execute(
                """SELECT service, COUNT(*), AVG(overall), AVG(wait), AVG(courtesy), AVG(settled)
                   FROM survey_answers WHERE day >= ? AND day <= ? GROUP BY service ORDER BY service""",
                (first.isoformat(), last.isoformat()),
            ).fetchall()
        return [
            ServiceResult(s, n, {"overall": a, "wait": b, "courtesy": c}, settled) for s, n, a, b, c, settled in rows
        ]


def month_bounds(month: str, today: date) -> tuple[date, date]:
    """``YYYY-MM`` (this month if empty or malformed) → its first and last day."""
    try:
        first = datetime.strptime(month, "%Y-%m").date()
    except ValueError:
        first = today.replace(day=1)
    after = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return first, after - timedelta(days=1)


def as_dict(r: ServiceResult) -> dict[str, Any]:
    return {"service": r.service, "answers": r.answers, **r.means, "settled_share": r.settled_share}
