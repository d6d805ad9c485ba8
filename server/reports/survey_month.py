"""The after-visit survey's figures inside the monthly report (server/reports/monthly.py).

Per service for the month: answer sets, the means of the three 1–5 questions and the share
of settled matters — the same figures as the managers' ``/reports/survey`` page
(server/survey.py), read here through a read-only connection of the report's own. Empty
when the office has no survey (no ``survey_answers`` table) or nobody answered: the report
then has no survey section at all.

Kept apart from ``ReportData.summary`` because the answers are stored per day and service
only (anonymous by construction), not per ticket, so they fit none of the summary's tables.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import date

from server.catalogue import table

TEXTS: dict[str, dict[str, str]] = {
    lang: {key.removeprefix("survey."): row[lang] for key, row in table("reports").items() if key.startswith("survey.")}
    for lang in ("pl", "en")
}
"""The page's texts from the reports catalogue (server/locale/reports.pot, ``survey.*``)."""


@dataclass(frozen=True)
class SurveyRow:
    service: str
    answers: int
    overall: float
    wait: float
    courtesy: float
    settled_share: float


def month_rows(database: str, first: date, last: date) -> list[SurveyRow]:
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'survey_answers'").fetchone() is None:
            return []
        rows = conn.execute(
            """SELECT service, COUNT(*), AVG(overall), AVG(wait), AVG(courtesy), AVG(settled)
               FROM survey_answers WHERE day >= ? AND day <= ? GROUP BY service ORDER BY service""",
            (first.isoformat(), last.isoformat()),
        ).fetchall()
    finally:
        conn.close()
    return [SurveyRow(s, n, round(a, 2), round(b, 2), round(c, 2), round(d, 3)) for s, n, a, b, c, d in rows]


def texts(lang: str) -> dict[str, str]:
    return TEXTS["en" if lang == "en" else "pl"]
