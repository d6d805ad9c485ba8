"""Benchmarks of the manager reports: a year of a busy office, and the demo's four weeks on a busy core.

**year** (the default): builds (once) a year of a busy office with the real simulator — the
example county office with every counter replicated (--counters-factor) and arrivals scaled
(--scale), daily limits lifted — then times every dashboard view through the real FastAPI app
in-process (no network), logged in with a session cookie. The figures' memo and the drawn
charts are dropped before every run, so each run computes and draws from the data.

    .venv/bin/python bench/reports_bench.py --database /tmp/numerek-year.db --runs 30

**demo**: the demo's data (four simulated weeks of the example office, as ``numerek-demo``
makes them) served by the real app over real HTTP (uvicorn in the worker process), pinned to
one core that a second process keeps busy (``--busy``) and optionally capped by a CPU quota
(``--quota 50``: a cgroup, as ``systemd-run -p CPUQuota=50%`` does). It times what a manager
waits for: the dashboard's HTML (the page is usable), the page with its five charts fetched
in parallel as a browser does, a repeated view, the all-tables XLSX and the monthly PDF,
"cold" (the figures just changed: every memo and drawing dropped) and "again". With
``--before DIR`` (a checkout of older code, e.g. ``git archive <commit> | tar -x -C DIR``)
it runs the old and the new code in alternating rounds on the same machine, so the two
columns are comparable.

    .venv/bin/python bench/reports_bench.py demo --before /tmp/numerek-before --rounds 4 --runs 5 --busy

Figures go to docs/performance.md ("Reports").
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
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


def year(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database", default="/tmp/numerek-year.db")
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--scale", type=float, default=15.0)
    p.add_argument("--counters-factor", type=int, default=15)
    p.add_argument("--start", default="2025-01-06")
    p.add_argument("--days", type=int, default=364)
    args = p.parse_args(argv)
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
            data.forget()
            app.state.report_cache.clear()
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


# ---------------------------------------------------------------------- demo: before/after on a busy core

DEMO_START, DEMO_DAYS = "2026-11-02", 28  # four weeks before the demo day, as server/demo.py seeds them
MEASURES = (
    ("page", "dashboard HTML (usable page)"),
    ("page_again", "dashboard HTML, figures unchanged"),
    ("full", "page + 5 charts in parallel"),
    ("full_again", "page + 5 charts, repeated view"),
    ("chart", "one chart (each of the 5)"),
    ("xlsx", "all.xlsx export"),
    ("xlsx_again", "all.xlsx again"),
    ("pdf", "monthly PDF"),
    ("pdf_again", "monthly PDF again"),
)


def _pctl(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, round(q * (len(v) - 1)))]


def _cgroup(quota: int | None) -> Path | None:
    """A cgroup v1 CPU quota for the worker (percent of one core), like systemd's CPUQuota=."""
    if not quota:
        return None
    base = Path("/sys/fs/cgroup/cpu")
    if not (base / "cpu.cfs_quota_us").exists():
        raise SystemExit("--quota needs cgroup v1's cpu controller at /sys/fs/cgroup/cpu (or use systemd-run)")
    group = base / f"numerek-bench-{os.getpid()}"
    group.mkdir(exist_ok=True)
    (group / "cpu.cfs_period_us").write_text("100000")
    (group / "cpu.cfs_quota_us").write_text(str(quota * 1000))
    return group


def demo(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description="the demo's data on a busy core, old and new code in alternating rounds")
    p.add_argument("--database", default="/tmp/numerek-demo-bench.db")
    p.add_argument("--before", help="a checkout of the code to compare with (its server/ package)")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--runs", type=int, default=5, help="cold + repeated views per round and code")
    p.add_argument("--cpu", type=int, default=0, help="the core to pin the worker (and the busy loop) to")
    p.add_argument("--busy", action="store_true", help="a second process keeps the same core busy")
    p.add_argument("--quota", type=int, default=None, help="CPU quota in percent of one core (cgroup v1)")
    args = p.parse_args(argv)
    here = str(Path(__file__).resolve().parent.parent)
    if not Path(args.database).exists():
        from server.config import EXAMPLE_CONFIG, load_config
        from server.simulate import simulate

        res = simulate(load_config(EXAMPLE_CONFIG), args.database, date.fromisoformat(DEMO_START), DEMO_DAYS)
        print(f"built the demo's data: {res.tickets} tickets, {res.events} events", flush=True)
        from server.auth import Users

        users = Users(args.database)
        users.add("bench", "manager", "bench-password-123")
        users.close()
    busy = None
    if args.busy:
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        os.sched_setaffinity(busy.pid, {args.cpu})
    group = _cgroup(args.quota)
    codes = {"after": here, **({"before": str(Path(args.before).resolve())} if args.before else {})}
    results: dict[str, dict[str, list[float]]] = {name: {} for name in codes}
    try:
        for r in range(args.rounds):
            for name in sorted(codes, reverse=r % 2 == 1):  # alternate which code goes first
                cmd = [sys.executable, __file__, "_worker", "--code", codes[name], "--database", args.database]
                cmd += ["--runs", str(args.runs)]
                proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
                os.sched_setaffinity(proc.pid, {args.cpu})
                if group:
                    (group / "cgroup.procs").write_text(str(proc.pid))
                out, _ = proc.communicate()
                assert proc.returncode == 0, f"{name} worker failed"
                for key, values in json.loads(out).items():
                    results[name].setdefault(key, []).extend(values)
                print(f"round {r + 1}/{args.rounds}: {name} done", flush=True)
    finally:
        if busy:
            busy.kill()
            busy.wait()
        if group:
            group.rmdir()
    setting = (
        f"core {args.cpu}"
        + (", busy loop on it" if args.busy else "")
        + (f", quota {args.quota}%" if args.quota else "")
    )
    print(f"\n{setting}; ms (n = samples)")
    cols = [n for n in ("before", "after") if n in results]
    print(f"{'':36s}" + "".join(f"{c + ' median':>16s}{c + ' p99':>12s}" for c in cols) + f"{'n':>6s}")
    for key, label in MEASURES:
        line = f"{label:36s}"
        for c in cols:
            v = results[c].get(key, [])
            line += f"{statistics.median(v):16.0f}{_pctl(v, 0.99):12.0f}" if v else f"{'-':>16s}{'-':>12s}"
        print(line + f"{len(results[cols[-1]].get(key, [])):6d}")
    return 0


def worker(argv: list[str]) -> int:
    """One round of one code version: print the timings as JSON (run by :func:`demo`)."""
    p = argparse.ArgumentParser()
    p.add_argument("--code", required=True)
    p.add_argument("--database", required=True)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args(argv)
    sys.path.insert(0, args.code)
    for mod in [m for m in sys.modules if m == "server" or m.startswith("server.")]:
        del sys.modules[mod]
    import httpx
    import uvicorn

    from server.config import EXAMPLE_CONFIG, Storage, load_config
    from server.http import build_app
    from server.service import NumerekServer

    assert Path(sys.modules["server"].__file__ or "").is_relative_to(args.code), "wrong code imported"
    tmp = Path(tempfile.mkdtemp(prefix="numerek-bench-"))
    db = tmp / "numerek.db"
    shutil.copy(args.database, db)  # every worker starts from the same file
    cfg = load_config(EXAMPLE_CONFIG).model_copy(update={"storage": Storage(database=str(db))})
    app = build_app(NumerekServer(cfg), manage_lifecycle=False)
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=url, timeout=600)
    while True:
        try:
            client.get("/health")
            break
        except httpx.HTTPError:
            time.sleep(0.05)
    r = client.post("/login", data={"name": "bench", "password": "bench-password-123"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    cookies = dict(client.cookies)
    data = app.state.report_data
    cache = getattr(app.state, "report_cache", None)

    def drop() -> None:
        """The figures changed: nothing computed or drawn before may be reused."""
        if hasattr(data, "forget"):
            data.forget()
        else:
            data._memo.clear()
        if cache is not None:
            cache.clear()

    import re

    def timed(path: str) -> tuple[float, httpx.Response]:
        t = time.perf_counter()
        resp = client.get(path)
        assert resp.status_code == 200, (path, resp.status_code)
        return (time.perf_counter() - t) * 1000, resp

    browser = threading.local()  # a browser keeps its connections: one client per fetching thread

    def one_chart(src: str) -> float:
        c = getattr(browser, "client", None)
        if c is None:
            c = browser.client = httpx.Client(base_url=url, timeout=600, cookies=cookies)
        t = time.perf_counter()
        assert c.get(src).status_code == 200
        return (time.perf_counter() - t) * 1000

    out: dict[str, list[float]] = {key: [] for key, _ in MEASURES}
    pool = ThreadPoolExecutor(5)

    def view() -> tuple[float, float, list[float]]:
        t = time.perf_counter()
        page_ms, resp = timed("/reports")
        srcs = [s.replace("&amp;", "&") for s in re.findall(r'<img src="([^"]+)"', resp.text)]
        assert len(srcs) == 5, srcs
        charts = list(pool.map(one_chart, srcs))
        return page_ms, (time.perf_counter() - t) * 1000, charts

    drop()
    view()  # first use: imports (matplotlib), templates: not what a manager sees twice
    timed("/reports/monthly.pdf?month=2026-11")
    for _ in range(args.runs):
        drop()
        page, full, charts = view()
        out["page"].append(page)
        out["full"].append(full)
        out["chart"].extend(charts)
        for _ in range(3):
            page, full, _charts = view()
            out["page_again"].append(page)
            out["full_again"].append(full)
        drop()
        out["xlsx"].append(timed("/reports/export/all.xlsx")[0])
        out["xlsx_again"].append(timed("/reports/export/all.xlsx")[0])
        drop()
        out["pdf"].append(timed("/reports/monthly.pdf?month=2026-11")[0])
        out["pdf_again"].append(timed("/reports/monthly.pdf?month=2026-11")[0])
    server.should_exit = True
    print(json.dumps(out))
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


def main() -> int:
    argv = sys.argv[1:]
    if argv and argv[0] == "demo":
        return demo(argv[1:])
    if argv and argv[0] == "_worker":
        return worker(argv[1:])
    return year(argv[1:] if argv and argv[0] == "year" else argv)


if __name__ == "__main__":
    raise SystemExit(main())
