"""The centre's XLSX and PDF (central/summary.py): the branch report's own export and PDF code
fed from PostgreSQL, with the branches compared; read back with openpyxl and poppler's
pdftotext."""

from __future__ import annotations

import io
import random
import shutil
import subprocess
from datetime import UTC, date, datetime, timedelta

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
def pg():
    p = Postgres().start()
    yield p
    p.destroy()


@pytest.fixture(scope="module")
def store(pg):
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


def _visits_with_transfers_and_no_shows(feed: Feed, day: date, n: int, rng: random.Random) -> None:
    """Tickets the plain feed lacks: transferred then served, called and not come, never called."""
    for _ in range(n):
        feed.ticket += 1
        t = feed.ticket
        t0 = datetime(day.year, day.month, day.day, 9, tzinfo=UTC) + timedelta(seconds=rng.uniform(0, 6 * 3600))
        feed.event(day, t0, "issue", t, "rej")
        kind = rng.choice(["transfer", "no_show", "waiting"])
        if kind == "waiting":
            continue
        called = t0 + timedelta(seconds=rng.expovariate(1 / 400))
        feed.event(day, called, "call", t, "rej")
        if kind == "no_show":
            feed.event(day, called + timedelta(seconds=60), "no_show", t, "rej")
        else:
            feed.event(day, called + timedelta(seconds=120), "transfer", t, "kasa")
            feed.event(day, called + timedelta(seconds=500), "call", t, "kasa")
            feed.event(day, called + timedelta(seconds=520), "start", t, "kasa")
            feed.event(day, called + timedelta(seconds=800), "finish", t, "kasa")


def _same_block(a, b, where: str) -> None:
    """Counts equal; times equal to PostgreSQL's float8 arithmetic (a microsecond's millionth)."""
    da, db = a.model_dump(), b.model_dump()
    for part in ("wait", "service_time"):
        for key, va in da.pop(part).items():
            vb = db[part].pop(key)
            assert (va is None) == (vb is None), (where, part, key)
            if va is not None:
                assert va == pytest.approx(vb, rel=1e-12, abs=1e-9), (where, part, key, va, vb)
        db.pop(part)
    assert da == db, where


def test_the_exports_figures_from_the_roll_up_equal_the_ones_from_every_ticket(pg):
    """Every figure of the XLSX and the PDF (counts, mean, median, p90 and max of waits and
    service times, by day, the arrivals' heatmap) read from the daily roll-up is the one the
    tickets give, for three branches over rolled-up days and a day still arriving."""
    store = CentralStore(pg.create_db("from_the_roll_up"))
    store.migrate()
    try:
        rng = random.Random(17)
        days = [date(2026, 11, 2) + timedelta(days=i) for i in range(4)]
        feeds = {b: Feed(store, b) for b in ("wola", "ursus", "bemowo")}
        for day in days[:3]:
            for f in feeds.values():
                f.day(day, rng.randint(20, 60), rng)
                _visits_with_transfers_and_no_shows(f, day, 15, rng)
                f.send()
        # The fourth day is today: still arriving, half of it at the centre; one branch has
        # not sent it at all (its last day stays open, so its third day is not rolled up).
        for b in ("wola", "ursus"):
            feeds[b].day(days[3], 30, rng)
            _visits_with_transfers_and_no_shows(feeds[b], days[3], 10, rng)
            feeds[b].send()
        assert store.roll_up() == 3 + 3 + 2  # every closed day; bemowo's third is its newest
        dirty = store.conn.execute("SELECT branch, day FROM ticket_days_dirty ORDER BY 1, 2").fetchall()
        assert dirty == [("bemowo", days[2]), ("ursus", days[3]), ("wola", days[3])]
        rolled = store.conn.execute("SELECT count(DISTINCT (branch, day)) FROM ticket_days").fetchone()[0]
        assert rolled == 8

        for branch in (None, "wola", "bemowo"):
            got = summary.figures(store.conn, days[0], days[-1], branch, NAMES)
            want = summary.figures_exact(store.conn, days[0], days[-1], branch, NAMES)
            assert want.summary.totals.issued > 0 and want.summary.totals.transferred > 0
            assert want.summary.totals.no_show > 0 and want.summary.totals.not_called > 0
            _same_block(got.summary.totals, want.summary.totals, f"{branch} totals")
            assert [s.service for s in got.summary.by_service] == [s.service for s in want.summary.by_service]
            for g, w in zip(got.summary.by_service, want.summary.by_service, strict=True):
                _same_block(g, w, f"{branch} {w.service}")
            assert [b[:2] for b in got.branches] == [b[:2] for b in want.branches]
            for g, w in zip(got.branches, want.branches, strict=True):
                _same_block(g[2], w[2], f"{branch} branch {w[0]}")
            assert len(got.summary.by_day) == len(want.summary.by_day)
            for g, w in zip(got.summary.by_day, want.summary.by_day, strict=True):
                assert (g.day, g.issued, g.served, g.no_show) == (w.day, w.issued, w.served, w.no_show)
                assert g.wait_mean_s == pytest.approx(w.wait_mean_s, rel=1e-12)
            assert got.summary.arrivals_heatmap == want.summary.arrivals_heatmap
            assert summary.xlsx(got) and summary.pdf(got, None)

        # The rolled-up days come from the roll-up: without their tickets, the same figures.
        whole = summary.figures(store.conn, days[0], days[-1], None, NAMES)
        with store.conn.transaction(force_rollback=True):
            store.conn.execute("DELETE FROM tickets WHERE (branch, day) IN (SELECT branch, day FROM ticket_days)")
            assert summary.figures(store.conn, days[0], days[-1], None, NAMES) == whole

        # A late event for a rolled-up day: the export says what the tickets say at once.
        late = store.conn.execute(
            "SELECT ticket_id FROM tickets WHERE branch = 'wola' AND day = %s AND status = 'waiting' LIMIT 1",
            (days[0],),
        ).fetchone()[0]
        feeds["wola"].event(days[3], datetime(2026, 11, 5, 14, tzinfo=UTC), "call", late, "rej")
        feeds["wola"].send()
        got = summary.figures(store.conn, days[0], days[-1], "wola", NAMES)
        want = summary.figures_exact(store.conn, days[0], days[-1], "wola", NAMES)
        _same_block(got.summary.totals, want.summary.totals, "after the late call")
    finally:
        store.close()


def test_days_rolled_up_before_the_exports_figures_existed_are_rolled_up_again_on_upgrade(pg):
    """A centre upgraded from a roll-up without waits: its old rows are marked and redone, so
    the exports never read a day without its waits."""
    store = CentralStore(pg.create_db("upgrade"))
    store.migrate()
    try:
        feed = Feed(store, "wola")
        rng = random.Random(3)
        for day in NOV[:3]:
            feed.day(day, 20, rng)
        feed.send()
        assert store.roll_up() == 2
        # As the previous version left them: no exports' columns.
        store.conn.execute("UPDATE ticket_days SET no_show = NULL, waits = NULL, service_times = NULL, arrivals = NULL")
        store.migrate()
        dirty = store.conn.execute("SELECT day FROM ticket_days_dirty WHERE branch = 'wola' ORDER BY day").fetchall()
        assert [d for (d,) in dirty] == NOV[:3]  # the two old rows, and the open day
        got = summary.figures(store.conn, NOV[0], NOV[2], None, NAMES)
        _same_block(
            got.summary.totals, summary.figures_exact(store.conn, NOV[0], NOV[2], None, NAMES).summary.totals, ""
        )
        assert store.roll_up() == 2
        assert store.conn.execute("SELECT count(*) FROM ticket_days WHERE waits IS NULL").fetchone()[0] == 0
    finally:
        store.close()
