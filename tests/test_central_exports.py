"""The centre's XLSX and PDF (central/summary.py): the branch report's own export and PDF code
fed from PostgreSQL, with the branches compared; read back with openpyxl and poppler's
pdftotext."""

from __future__ import annotations

import io
import random
import shutil
import subprocess
from datetime import date, timedelta

import pytest
from openpyxl import load_workbook

from central import summary
from central.store import CentralStore
from tests.central_support import PG_BIN, Feed, Postgres

pytestmark = pytest.mark.skipif(
    not (PG_BIN / "initdb").exists() or shutil.which("pdftotext") is None,
    reason="PostgreSQL 15 and poppler-utils are installed by .ci/setup",
)

NOV = [date(2026, 11, 2) + timedelta(days=i) for i in range(5)]
OCT = [date(2026, 10, 5) + timedelta(days=i) for i in range(3)]
NAMES = {"wola": "Urząd Dzielnicy Wola", "ursus": "Urząd Dzielnicy Ursus"}


@pytest.fixture(scope="module")
def store():
    pg = Postgres().start()
    s = CentralStore(pg.create_db("central"))
    s.migrate()
    rng = random.Random(5)
    for branch, per_day in (("wola", 30), ("ursus", 12)):
        feed = Feed(s, branch)
        for day in OCT + NOV:
            feed.day(day, per_day, rng)
        feed.send()
    yield s
    s.close()
    pg.destroy()


def _own(store: CentralStore, branch: str | None, first: date, last: date) -> tuple[int, int]:
    row = store.conn.execute(
        "SELECT count(*), count(finished_at) FROM tickets WHERE day BETWEEN %s AND %s AND (%s::text IS NULL OR branch = %s)",
        (first, last, branch, branch),
    ).fetchone()
    return int(row[0]), int(row[1])


def test_the_centres_workbook_compares_the_branches_on_the_branch_reports_figures(store):
    f = summary.figures(store.conn, NOV[0], NOV[-1], None, NAMES)
    wb = load_workbook(io.BytesIO(summary.xlsx(f, "pl")), read_only=True)
    assert wb.sheetnames == ["branches", "totals", "by_service", "by_day", "heatmap"]
    rows = list(wb["branches"].iter_rows(values_only=True))
    header = rows[0]
    assert header[:4] == ("Oddział (id)", "Oddział", "Wydane bilety", "Obsłużeni")
    got = {r[0]: r for r in rows[1:]}
    assert set(got) == {"wola", "ursus"}
    for branch in NAMES:
        issued, served = _own(store, branch, NOV[0], NOV[-1])
        assert got[branch][1] == NAMES[branch]
        assert (got[branch][2], got[branch][3]) == (issued, served) == (150 if branch == "wola" else 60, served)
    median_col = header.index("Czas oczekiwania – mediana [s]")
    assert all(isinstance(r[median_col], float) and r[median_col] > 0 for r in rows[1:])
    totals = {r[0]: (r[1] if len(r) > 1 else None) for r in wb["totals"].iter_rows(values_only=True)}
    assert totals["Wydane bilety"] == 210
    days = list(wb["by_day"].iter_rows(values_only=True))[1:]
    assert [d[0].date() for d in days] == NOV and sum(d[1] for d in days) == 210


def test_one_branchs_workbook_holds_that_branch_only(store):
    f = summary.figures(store.conn, NOV[0], NOV[-1], "ursus", NAMES)
    wb = load_workbook(io.BytesIO(summary.xlsx(f, "en")), read_only=True)
    rows = list(wb["branches"].iter_rows(values_only=True))
    assert rows[0][:3] == ("Branch (id)", "Branch", "Tickets issued")
    assert [r[0] for r in rows[1:]] == ["ursus"] and rows[1][2] == 60
    services = list(wb["by_service"].iter_rows(values_only=True))[1:]
    assert sum(r[4] for r in services) == 60  # "Tickets issued" after id, names and target


def test_the_centres_pdf_is_the_branch_monthly_report_with_the_branches_compared(store, tmp_path):
    now = summary.figures(store.conn, date(2026, 11, 1), date(2026, 11, 30), None, NAMES)
    before = summary.figures(store.conn, date(2026, 10, 1), date(2026, 10, 31), None, NAMES)
    (tmp_path / "r.pdf").write_bytes(summary.pdf(now, before, "pl"))
    text = subprocess.run(
        ["pdftotext", "-layout", str(tmp_path / "r.pdf"), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "Wszystkie oddziały / All branches" in text
    assert "listopad 2026" in text.lower()
    assert "Oddziały" in text
    wola = next(line for line in text.splitlines() if line.strip().startswith("Urząd Dzielnicy Wola"))
    assert wola.split()[3] == "150"  # "Urząd Dzielnicy Wola 150 …": its tickets issued in November
    ursus = next(line for line in text.splitlines() if line.strip().startswith("Urząd Dzielnicy Ursus"))
    assert ursus.split()[3] == "60"
