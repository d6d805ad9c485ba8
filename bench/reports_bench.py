"""Benchmark of the manager reports on a year of a busy office (>= 1 million tickets).

Builds (once) a year of a busy office with the real simulator — the example county office
with every counter replicated (--counters-factor) and arrivals scaled (--scale), daily
limits lifted — then times every dashboard view through the real FastAPI app in-process
(no network), logged in with a session cookie. The per-request summary memo is cleared
before every run, so each figure is computed from the data, not served from the memo.

    .venv/bin/python bench/reports_bench.py --database /tmp/numerek-year.db --runs 30

Figures go to docs/performance.md ("Reports").
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.config import EXAMPLE_CONFIG, Counter, SiteConfig, Storage, load_config  # noqa: E402


def busy_office(database: str, factor: int) -> SiteConfig:
    base = load_config(EXAMPLE_CONFIG)
    counters = []
    for _ in range(factor):
        for c in base.counters:
            n = len(counters) + 1
            counters.append(Counter(id=str(n), name=f"Stanowisko {n}", zone=c.zone, services=list(c.services)))
    services = [s.model_copy(update={"daily_limit": None}) for s in base.services]
    return base.model_copy(update={"counters": counters, "services": services, "storage": Storage(database=database)})


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database", default="/tmp/numerek-year.db")
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--scale", type=float, default=15.0)
    p.add_argument("--counters-factor", type=int, default=15)
    p.add_argument("--start", default="2025-01-06")
    p.add_argument("--days", type=int, default=364)
    args = p.parse_args()
    cfg = busy_office(args.database, args.counters_factor)
    if not Path(args.database).exists():
        from server.simulate import simulate

        t0 = time.perf_counter()
        res = simulate(cfg, args.database, date.fromisoformat(args.start), args.days, seed=7, scale=args.scale)
        print(
            f"built: {res.tickets} tickets, {res.events} events in {time.perf_counter() - t0:.0f} s; "
            f"estimate MAE printed {res.accuracy.as_dict()['printed_mae_min']} min, "
            f"naive {res.accuracy.as_dict()['naive_mae_min']} min",
            flush=True,
        )

    import sqlite3

    from fastapi.testclient import TestClient

    from server.auth import AuthError, Users
    from server.http import build_app
    from server.service import NumerekServer

    conn = sqlite3.connect(args.database)
    tickets, first, last = conn.execute("SELECT count(*), min(day), max(day) FROM tickets").fetchone()
    conn.close()
    users = Users(args.database)
    try:
        users.add("bench", "manager", "bench-password-123")
    except AuthError:
        pass
    users.close()
    t0 = time.perf_counter()
    server = NumerekServer(cfg)
    app = build_app(server, manage_lifecycle=False)
    client = TestClient(app)
    data = app.state.report_data
    data.refresh()
    print(f"{tickets} tickets, {first} .. {last}; cold load of the cache: {time.perf_counter() - t0:.1f} s")
    r = client.post("/login", data={"name": "bench", "password": "bench-password-123"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    month = last[:7]
    year = f"from={first}&to={last}"
    views = {
        "dashboard, whole year": f"/reports?{year}",
        "dashboard, one month": f"/reports?from={month}-01&to={last}",
        "dashboard, year, one service": f"/reports?{year}&service=rej",
        "dashboard, year, one counter": f"/reports?{year}&counter=3",
        "dashboard, year, one clerk": f"/reports?{year}&clerk=clerk-03",
        "JSON summary, whole year": f"/reports/api/summary?{year}",
        "chart heatmap, year": f"/reports/chart/heatmap.svg?{year}",
        "chart daily, year": f"/reports/chart/daily.svg?{year}",
        "chart wait, year": f"/reports/chart/wait.svg?{year}",
        "chart utilisation, year": f"/reports/chart/utilisation.svg?{year}",
        "chart ratings, year": f"/reports/chart/ratings.svg?{year}",
        "live view (page)": "/reports/live",
        "live view (JSON)": "/reports/api/live",
        "export by_counter.csv, year": f"/reports/export/by_counter.csv?{year}",
    }
    print(f"{'view':34s} {'median ms':>10s} {'p99 ms':>8s} {'max ms':>8s}  (runs={args.runs})")
    for name, path in views.items():
        client.get(path)  # first use (imports, template compile) is not what a manager sees twice
        times = []
        for _ in range(args.runs):
            data._memo.clear()
            t = time.perf_counter()
            resp = client.get(path)
            times.append((time.perf_counter() - t) * 1000)
            assert resp.status_code == 200, (path, resp.status_code)
        times.sort()
        p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
        print(f"{name:34s} {statistics.median(times):10.0f} {p99:8.0f} {times[-1]:8.0f}", flush=True)
    t = time.perf_counter()
    resp = client.get(f"/reports/monthly.pdf?month={month}")
    print(f"monthly PDF ({month}): {(time.perf_counter() - t) * 1000:.0f} ms, {len(resp.content)} bytes (not a view)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
