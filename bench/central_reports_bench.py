"""The centre's report times on a year of many branches (docs/performance.md, issue 20).

    .venv/bin/python bench/central_reports_bench.py --branches 50 --days 250 --tickets 2000 --runs 5
    .venv/bin/python bench/central_reports_bench.py --keep /tmp/cyear ...   # keep the cluster
    .venv/bin/python bench/central_reports_bench.py --reuse /tmp/cyear --runs 5  # time again

Real parts: Debian's PostgreSQL 15 in a folder (``fsync`` on), the central schema made by
:class:`central.store.CentralStore` (as the ingester makes it), and the queries the centre's
pages run (:mod:`central.views`).

What is filled, server-side with ``generate_series`` (not through MQTT: the ingest path has
its own bench, bench/central_bench.py): ``--branches`` branches, small to large (0.4× to
1.6× ``--tickets`` a day, so ``--tickets`` on average), ``--days`` working days from Monday
2025-01-06 (weekends skipped) with weekday peaks (Monday 1.25×, Friday 0.7×), office hours
8:00–15:30 Warsaw time with 60 % of the tickets in the first three hours, five services
(30/20/20/20/10 %), waits drawn from an exponential of 9 minutes at the morning peak and 4
after it, 2 % cancelled, 3 % no-shows. The last day has a few tickets still waiting and
eight open counters per branch, for the live view. Then the ingester's daily roll-up is
brought up to date, as it would be after the year (``CentralStore.roll_up``), and timed.

Each query runs once to warm the cache, then ``--runs`` times; medians and the slowest run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402

from central import summary, views  # noqa: E402
from central.store import CentralStore  # noqa: E402
from tests.central_support import Postgres  # noqa: E402
from tests.harness import free_port  # noqa: E402

FIRST_DAY = date(2025, 1, 6)
WEEKDAY = [1.25, 1.0, 1.1, 0.95, 0.7]

_FILL = """
WITH d AS (
    SELECT day, factor, i FROM unnest(%(days)s::date[], %(factors)s::float8[]) WITH ORDINALITY AS x(day, factor, i)
), raw AS (
    SELECT d.i, d.day, n, random() AS c, random() AS h, random() AS s, random() AS w1, random() AS w2
    FROM d CROSS JOIN LATERAL generate_series(1, round(%(size)s * d.factor * (0.85 + 0.3 * random()))::int) AS n
), t AS (
    SELECT i, day, n, c, w1, w2, h < 0.6 AS peak,
        CASE WHEN s < 0.3 THEN 'rej' WHEN s < 0.5 THEN 'pj' WHEN s < 0.7 THEN 'pasz'
             WHEN s < 0.9 THEN 'dow' ELSE 'kasa' END AS service,
        (day + time '08:00' + make_interval(secs => CASE WHEN h < 0.6 THEN h / 0.6 * 10800
                                                         ELSE 10800 + (h - 0.6) / 0.4 * 16200 END))
            AT TIME ZONE 'Europe/Warsaw' AS issued
    FROM raw
), w AS (
    SELECT *, -ln(1 - w1) * CASE WHEN peak THEN 540 ELSE 240 END AS wait FROM t
)
INSERT INTO tickets (branch, ticket_id, day, number, issued_service, service, status, issued_at,
                     first_called_at, finished_at)
SELECT %(branch)s, i * 10000 + n, day, upper(left(service, 1)) || n, service, service,
       CASE WHEN c < 0.02 THEN 'cancelled' WHEN c < 0.05 THEN 'no_show' ELSE 'done' END,
       issued,
       CASE WHEN c < 0.02 THEN NULL ELSE issued + make_interval(secs => wait) END,
       CASE WHEN c < 0.05 THEN NULL ELSE issued + make_interval(secs => wait + 20 - ln(1 - w2) * 360) END
FROM w
"""


def working_days(n: int) -> list[date]:
    out: list[date] = []
    d = FIRST_DAY
    while len(out) < n:
        if d.weekday() < 5:
            out.append(d)
        d += timedelta(days=1)
    return out


def fill(dsn: str, branches: int, days: list[date], tickets: int) -> float:
    t0 = time.perf_counter()
    factors = [WEEKDAY[d.weekday()] for d in days]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        for b in range(branches):
            name = f"b{b + 1:02d}"
            size = tickets * (0.4 + 1.2 * b / max(1, branches - 1)) if branches > 1 else tickets
            conn.execute(_FILL, {"days": days, "factors": factors, "size": size, "branch": name})
            # The last day is "today": a few still waiting, every counter open.
            conn.execute(
                "UPDATE tickets SET status = 'waiting', first_called_at = NULL, finished_at = NULL "
                "WHERE branch = %s AND day = %s AND ticket_id %% 97 = 0",
                (name, days[-1]),
            )
            conn.execute("INSERT INTO counters SELECT %s, c::text, 'open', now() FROM generate_series(1, 8) c", (name,))
            conn.execute(
                "INSERT INTO branches (branch, contiguous, head, last_heard, last_sent_at, last_event_at) "
                "VALUES (%s, 1, 1, now(), now(), now())",
                (name,),
            )
            print(f"  {name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        conn.execute("VACUUM ANALYZE tickets")
    return time.perf_counter() - t0


def timed(fn, runs: int, warm: bool = True) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    if warm:
        fn()
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples), max(samples)


def exports_table(conn: psycopg.Connection, last: date, one: str) -> None:  # type: ignore[type-arg]
    """The XLSX and the monthly PDF of the last whole month, one branch and all (one run each):
    the figures from the roll-up (what the exports read) and, before, exactly from the tickets."""
    month_last = last.replace(day=1) - timedelta(days=1)
    month = (month_last.replace(day=1), month_last)
    before_last = month[0] - timedelta(days=1)
    prev = (before_last.replace(day=1), before_last)
    print("\n| export | figures ms | XLSX ms | PDF ms (+ the month before's figures) |\n| --- | ---: | ---: | ---: |")
    for how, fig in (("before: exact from the tickets", summary.figures_exact), ("roll-up", summary.figures)):
        for label, b in ((f"one branch ({one})", one), ("all branches", None)):
            t0 = time.perf_counter()
            f = fig(conn, *month, b, {})
            t1 = time.perf_counter()
            summary.xlsx(f)
            t2 = time.perf_counter()
            before = fig(conn, *prev, b, {})
            t3 = time.perf_counter()
            summary.pdf(f, before)
            t4 = time.perf_counter()
            print(
                f"| {how}: {label}, {month[0]:%Y-%m} ({f.summary.totals.issued:,} tickets) | {(t1 - t0) * 1000:,.0f} "
                f"| {(t2 - t1) * 1000:,.0f} | {(t4 - t3) * 1000:,.0f} + {(t3 - t2) * 1000:,.0f} |",
                flush=True,
            )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--branches", type=int, default=50)
    p.add_argument("--days", type=int, default=250, help="working days (250: a year)")
    p.add_argument("--tickets", type=int, default=2000, help="tickets a day of an average branch")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument(
        "--before-runs", type=int, default=1, help="runs of the exact queries (slow on a year; 0: skip them)"
    )
    p.add_argument("--exports", action="store_true", help="also time the XLSX and PDF of the last whole month")
    p.add_argument("--keep", help="make the cluster in this folder and keep it")
    p.add_argument("--reuse", help="a folder --keep made: time again without filling")
    args = p.parse_args()

    pg = Postgres.__new__(Postgres)
    folder = args.reuse or args.keep
    if folder:
        pg.dir = Path(folder)
        pg.data = pg.dir / "data"
        pg.port = free_port()
        pg.as_user = []
        if os.geteuid() == 0:  # initdb and postgres refuse root (as Postgres() does)
            pg.as_user = ["runuser", "-u", "postgres", "--"]
        if not args.reuse:
            pg.dir.mkdir(parents=True, exist_ok=True)
            if pg.as_user:
                shutil.chown(pg.dir, "postgres", "postgres")
            pg._run("initdb", "-D", str(pg.data), "-A", "trust", "-U", "numerek", "--no-sync", "-E", "UTF8")
    else:
        pg.__init__()  # type: ignore[misc]
    pg.start(fsync=True)
    try:
        if args.reuse:
            dsn = pg.dsn("central")
        else:
            dsn = pg.create_db("central")
        store = CentralStore(dsn)
        store.migrate()
        days = working_days(args.days)
        if not args.reuse:
            took = fill(dsn, args.branches, days, args.tickets)
            print(f"filled in {took:.0f} s", file=sys.stderr)
        t = time.perf_counter()
        if not args.reuse:  # as the ingester would have marked them
            store.conn.execute("INSERT INTO ticket_days_dirty SELECT DISTINCT branch, day FROM tickets")
            store.conn.execute("UPDATE branches SET last_day = %s", (days[-1],))
        rolled = store.roll_up()
        roll_s = time.perf_counter() - t
        with psycopg.connect(dsn, autocommit=True) as conn:
            n = conn.execute("SELECT count(*), min(day), max(day) FROM tickets").fetchone()
            assert n is not None
            size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()
            assert size is not None
            last = n[2]
            month = (last - timedelta(days=30), last)
            year = (last - timedelta(days=365), last)
            print(
                f"\n{n[0]:,} tickets, {args.branches} branches, {n[1]} … {n[2]}; database {size[0]}; "
                f"roll-up brought up to date in {roll_s:.1f} s ({rolled} branch-days)\n"
            )
            one = "b25" if args.branches >= 25 else "b01"
            cases = [
                (f"one branch ({one}), a month", lambda: views.report(conn, *month, one)),
                (f"one branch ({one}), a year", lambda: views.report(conn, *year, one)),
                ("all branches side by side, a month", lambda: views.report(conn, *month)),
                ("all branches side by side, a year", lambda: views.report(conn, *year)),
                ("all branches, the last day", lambda: views.report(conn, last, last)),
                ("before: one branch, a year, exact", lambda: views.report_exact(conn, *year, one)),
                ("before: all branches, a month, exact", lambda: views.report_exact(conn, *month)),
                ("before: all branches, a year, exact", lambda: views.report_exact(conn, *year)),
                ("live view", lambda: views.live(conn, {}, datetime.now(UTC))),
            ]
            print("| query | median ms | slowest ms |\n| --- | ---: | ---: |")
            for label, fn in cases:
                before = label.startswith("before")
                if before and not args.before_runs:
                    continue
                med, worst = timed(fn, args.before_runs if before else args.runs, warm=not before)
                print(f"| {label} | {med:,.0f} | {worst:,.0f} |", flush=True)
            if args.exports:
                exports_table(conn, last, one)
        store.close()
    finally:
        if folder:
            pg.stop()
            print(f"cluster kept in {folder} (--reuse {folder})", file=sys.stderr)
        else:
            pg.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
