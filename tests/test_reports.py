"""Manager reports on a simulated office day, checked against figures computed from the raw events.

One module-wide setup: the real simulator (``numerek-simulate``) runs one Wednesday of the
test office through the real engine into a real SQLite file, a manager login is created
with ``numerek-users``, and the real ``numerek-server`` serves the reports from that file.
The expected figures are computed here independently, from the ``events`` table only
(never from ``tickets``), with the definitions of docs/reports.md.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import sqlite3
import statistics
import subprocess
from collections import defaultdict
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
from openpyxl import load_workbook

from tests.harness import ARTIFACTS, Broker, ServerProcess, free_port, run_tool, write_config

DAY = "2026-10-07"  # a Wednesday
HOURS = '{ mon = "08:00-16:00", tue = "08:00-16:00", wed = "08:00-17:00", thu = "08:00-16:00", fri = "08:00-15:00" }'
TARGETS = {"rej": 30 * 60, "pj": 20 * 60, "pasz": 40 * 60}
TZ = ZoneInfo("Europe/Warsaw")
MANAGER = ("kierownik", "dobre-haslo-42")


def run(module: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """``python -m <module> <args>`` (forked from the server zygote: tests/harness.py ``run_tool``)."""
    return run_tool(module, *args, input=stdin, timeout=120)


@pytest.fixture(scope="module")
def office(tmp_path_factory):
    """The reports server over one simulated day; yields (server, simulator result)."""
    tmp = tmp_path_factory.mktemp("reports")
    broker = Broker(tmp).start()
    http_port = free_port()
    cfg = write_config(tmp / "office.toml", broker.port, http_port, hours=HOURS)
    sim = run(
        "server.simulate",
        "--config",
        str(cfg),
        "--database",
        str(tmp / "numerek.db"),
        "--start",
        DAY,
        "--days",
        "1",
        "--scale",
        "0.8",
        "--seed",
        "3",
        "--json",
    )
    assert sim.returncode == 0, sim.stderr
    added = run(
        "server.auth",
        "--config",
        str(cfg),
        "add",
        MANAGER[0],
        "--role",
        "manager",
        "--password-stdin",
        stdin=MANAGER[1] + "\n",
    )
    assert added.returncode == 0, added.stderr
    server = ServerProcess(cfg, http_port=http_port).start()
    yield server, json.loads(sim.stdout)
    server.stop()
    broker.stop()


def get(server: ServerProcess, path: str, **kw) -> httpx.Response:
    """GET with a generous timeout: PDF and XLSX take a moment on a busy CI machine."""
    return httpx.get(server.url + path, timeout=60, **kw)


def auth(user: str = MANAGER[0], password: str = MANAGER[1]) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def expected_from_events(database) -> dict:
    """The day's figures rebuilt from the append-only event log alone."""
    conn = sqlite3.connect(database)
    rows = conn.execute(
        "SELECT id, at, kind, ticket_id, service, counter, clerk, data FROM events WHERE day = ? ORDER BY id", (DAY,)
    ).fetchall()
    conn.close()
    t: dict[int, dict] = {}
    busy: dict[str, float] = defaultdict(float)
    opened: dict[str, float] = defaultdict(float)
    open_since: dict[str, float] = {}
    served_at: dict[str, int] = defaultdict(int)
    for _id, at, kind, tid, service, counter, _clerk, data in rows:
        d = json.loads(data) if data else {}
        x = t.get(tid)
        if kind == "issue":
            t[tid] = {
                "issued": at,
                "isvc": service,
                "svc": service,
                "status": "waiting",
                "first_call": None,
                "last_call": None,
                "start": None,
                "seg": None,
                "transfers": 0,
                "rating": None,
                "service_s": None,
            }
        elif kind == "call":
            x.update(first_call=x["first_call"] or at, last_call=at, start=None, seg=at, status="called")
        elif kind == "recall":
            x["last_call"] = at
        elif kind == "start":
            x["start"] = at
        elif kind in ("finish", "no_show", "transfer"):
            busy[counter] += at - x["seg"]
            if kind == "finish":
                x.update(status="finished", svc=service, service_s=at - (x["start"] or x["last_call"]))
                served_at[counter] += 1
            elif kind == "no_show":
                x.update(status="no_show", svc=service)
            else:
                x.update(status="waiting", svc=d["to_service"], transfers=x["transfers"] + 1)
        elif kind == "cancel":
            x["status"] = "cancelled"
        elif kind == "rating":
            x["rating"] = d["rating"]
        elif kind == "counter_open":
            open_since.setdefault(counter, at)
        elif kind in ("counter_pause", "counter_close") and counter in open_since:
            opened[counter] += at - open_since.pop(counter)
    return {"tickets": t, "busy": busy, "opened": opened, "served_at": served_at}


def stats(values: list[float]) -> dict:
    return {
        "n": len(values),
        "mean_s": statistics.fmean(values),
        "median_s": statistics.median(values),
        "p90_s": statistics.quantiles(values, n=10, method="inclusive")[8],
        "max_s": max(values),
    }


def check_block(got: dict, tickets: list[dict], outcome: list[dict]) -> None:
    """One block of the API (totals or a service row) against tickets selected independently."""
    waits = [x["first_call"] - x["issued"] for x in tickets if x["first_call"] is not None]
    assert got["issued"] == len(tickets)
    assert got["served"] == sum(1 for x in outcome if x["status"] == "finished")
    assert got["no_show"] == sum(1 for x in outcome if x["status"] == "no_show")
    assert got["transferred"] == sum(1 for x in tickets if x["transfers"])
    for key, value in stats(waits).items():
        assert got["wait"][key] == pytest.approx(value, abs=0.06), key
    within = sum(
        1 for x in tickets if x["first_call"] is not None and x["first_call"] - x["issued"] <= TARGETS[x["isvc"]]
    )
    assert got["wait"]["within_target_share"] == pytest.approx(within / len(waits), abs=6e-5)
    service_times = [x["service_s"] for x in outcome if x["status"] == "finished"]
    for key, value in stats(service_times).items():
        if key != "max_s":
            assert got["service_time"][key] == pytest.approx(value, abs=0.06), key
    ratings = [x["rating"] for x in outcome if x["rating"]]
    assert got["rating"]["n"] == len(ratings)
    assert got["rating"]["mean"] == pytest.approx(statistics.fmean(ratings), abs=0.006)


def test_dashboard_api_figures_match_the_raw_events(office):
    server, _sim = office
    exp = expected_from_events(server.database)
    tickets = list(exp["tickets"].values())
    assert len(tickets) > 50, "the simulated day should be a real day's work"
    resp = get(server, f"/reports/api/summary?from={DAY}&to={DAY}", headers=auth())
    assert resp.status_code == 200, resp.text
    s = resp.json()
    check_block(s["totals"], tickets, tickets)
    assert s["totals"]["no_show"] > 0 and s["totals"]["transferred"] >= 0 and s["totals"]["rating"]["n"] > 0
    for row in s["by_service"]:
        mine = [x for x in tickets if x["isvc"] == row["service"]]
        served_here = [x for x in tickets if x["svc"] == row["service"]]
        if mine:
            check_block(row, mine, served_here)
    # arrivals by local weekday and hour
    heat = [[0] * 24 for _ in range(7)]
    for x in tickets:
        local = datetime.fromtimestamp(x["issued"], TZ)
        heat[local.weekday()][local.hour] += 1
    assert s["arrivals_heatmap"]["counts"] == heat
    assert sum(heat[2]) == len(tickets)  # all on the Wednesday
    # per counter: served, busy time, open time, utilisation
    rows = {r["counter"]: r for r in s["by_counter"]}
    assert set(rows) == set(exp["opened"])
    for counter, row in rows.items():
        assert row["served"] == exp["served_at"][counter]
        assert row["open_h"] == pytest.approx(exp["opened"][counter] / 3600, abs=0.006)
        assert row["busy_h"] == pytest.approx(exp["busy"][counter] / 3600, abs=0.006)
        assert row["utilisation"] == pytest.approx(exp["busy"][counter] / exp["opened"][counter], abs=1e-4)
        assert row["served_per_hour"] == pytest.approx(row["served"] / (exp["opened"][counter] / 3600), abs=0.006)
    # the simulator gives each counter its own clerk: the clerk table repeats the counter table
    clerks = {r["clerk"]: r for r in s["by_clerk"]}
    assert {c: r["served"] for c, r in clerks.items()} == {f"clerk-{int(k):02d}": r["served"] for k, r in rows.items()}


def test_service_filter_narrows_every_figure_to_that_service(office):
    server, _ = office
    tickets = list(expected_from_events(server.database)["tickets"].values())
    s = get(server, f"/reports/api/summary?from={DAY}&to={DAY}&service=pj", headers=auth()).json()
    check_block(s["totals"], [x for x in tickets if x["isvc"] == "pj"], [x for x in tickets if x["svc"] == "pj"])
    assert [r["service"] for r in s["by_service"]] == ["pj"]
    other_day = get(server, "/reports/api/summary?from=2026-10-08&to=2026-10-08", headers=auth()).json()
    assert other_day["totals"]["issued"] == 0 and other_day["totals"]["wait"]["mean_s"] is None


def test_counter_filter_counts_only_tickets_served_there(office):
    server, _ = office
    exp = expected_from_events(server.database)
    s = get(server, f"/reports/api/summary?from={DAY}&to={DAY}&counter=3", headers=auth()).json()
    assert s["totals"]["served"] == exp["served_at"]["3"]
    assert [r["counter"] for r in s["by_counter"]] == ["3"]


def test_csv_and_xlsx_exports_carry_the_same_figures(office):
    server, _ = office
    exp = expected_from_events(server.database)
    tickets = exp["tickets"]
    api = get(server, f"/reports/api/summary?from={DAY}&to={DAY}", headers=auth()).json()
    by_service = get(server, f"/reports/export/by_service.csv?from={DAY}&to={DAY}", headers=auth())
    assert by_service.status_code == 200 and by_service.headers["content-type"].startswith("text/csv")
    rows = {r["service"]: r for r in csv.DictReader(io.StringIO(by_service.text))}
    for svc in api["by_service"]:
        row = rows[svc["service"]]
        assert int(row["issued"]) == sum(1 for x in tickets.values() if x["isvc"] == svc["service"])
        assert float(row["wait_p90_s"] or "nan") == pytest.approx(svc["wait"]["p90_s"] or float("nan"), nan_ok=True)
        assert int(row["served"]) == svc["served"]
    raw = get(server, f"/reports/export/tickets.csv?from={DAY}&to={DAY}", headers=auth())
    raw_rows = list(csv.DictReader(io.StringIO(raw.text)))
    assert len(raw_rows) == len(tickets)
    assert "token" not in raw_rows[0] and "origin" not in raw_rows[0]  # nothing that identifies a client
    waits = sorted(float(r["wait_s"]) for r in raw_rows if r["wait_s"])
    assert waits == pytest.approx(
        sorted(x["first_call"] - x["issued"] for x in tickets.values() if x["first_call"]), abs=0.06
    )
    xlsx = get(server, f"/reports/export/all.xlsx?from={DAY}&to={DAY}&lang=en", headers=auth())
    assert xlsx.status_code == 200
    wb = load_workbook(io.BytesIO(xlsx.content), read_only=True)
    assert {"totals", "by_service", "by_counter", "by_clerk", "by_day", "heatmap", "tickets"} <= set(wb.sheetnames)
    counters = list(wb["by_counter"].iter_rows(values_only=True))
    header = counters[0]
    served = {r[header.index("Counter (id)")]: r[header.index("Served")] for r in counters[1:]}
    assert served == {k: v for k, v in exp["served_at"].items()}
    assert sum(1 for _ in wb["tickets"].iter_rows()) == len(tickets) + 1
    totals = {r[0]: (r[1] if len(r) > 1 else None) for r in list(wb["totals"].iter_rows(values_only=True))[1:]}
    assert totals["Tickets issued"] == api["totals"]["issued"]
    assert totals["Wait – median [s]"] == api["totals"]["wait"]["median_s"]


def test_monthly_pdf_is_a_printable_document(office):
    server, _ = office
    resp = get(server, "/reports/monthly.pdf?month=2026-10&lang=pl", headers=auth())
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/pdf"
    assert resp.content.startswith(b"%PDF")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "reports-monthly.pdf").write_bytes(resp.content)
    assert get(server, "/reports/monthly.pdf?month=2026-13", headers=auth()).status_code == 422


def test_dashboard_page_in_polish_and_english_with_real_charts(office):
    server, _ = office
    api = get(server, f"/reports/api/summary?from={DAY}&to={DAY}", headers=auth()).json()
    pl = get(server, f"/reports?from={DAY}&to={DAY}", headers=auth())
    assert pl.status_code == 200
    assert "Wydane bilety" in pl.text and "Czas oczekiwania" in pl.text
    assert f'<b id="issued">{api["totals"]["issued"]}</b>' in pl.text
    en = get(server, f"/reports?from={DAY}&to={DAY}&lang=en", headers=auth())
    assert "Tickets issued" in en.text and "Utilisation" in en.text
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for chart in ("heatmap", "daily", "wait", "utilisation", "ratings"):
        svg = get(server, f"/reports/chart/{chart}.svg?from={DAY}&to={DAY}", headers=auth())
        assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
        assert b"<svg" in svg.content[:500]
        (ARTIFACTS / f"reports-{chart}.svg").write_bytes(svg.content)
    assert "cdn" not in pl.text.lower() and "<script src" not in pl.text  # works offline on the office LAN


def test_bad_filters_get_a_clear_error(office):
    server, _ = office
    cases = {
        "from=2026-10-09&to=2026-10-01": "before",
        "from=07.10.2026": "YYYY-MM-DD",
        "service=nonexistent": "no service",
        "counter=99": "no counter",
    }
    for query, words in cases.items():
        resp = get(server, f"/reports/api/summary?{query}", headers=auth())
        assert resp.status_code == 422, query
        assert words in resp.json()["detail"], query
    assert get(server, "/reports/export/secrets.csv", headers=auth()).status_code == 404
    assert get(server, "/reports/chart/pie.svg", headers=auth()).status_code == 404


def test_reports_refused_without_credentials_or_with_a_wrong_password(office):
    server, _ = office
    for path in (
        "/reports/api/summary",
        "/reports/export/tickets.csv",
        "/reports/monthly.pdf",
        "/reports/api/live",
        "/reports/chart/heatmap.svg",
    ):
        assert get(server, path).status_code == 401, path
        assert get(server, path, headers=auth(password="wrong-password")).status_code == 401, path
        assert get(server, path, headers=auth(user="nobody")).status_code == 401, path
    page = get(server, "/reports", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login")


def test_login_form_sets_a_session_cookie_only_for_the_right_password(office):
    server, _ = office
    with httpx.Client(base_url=server.url, timeout=10) as browser:
        wrong = browser.post("/login", data={"name": MANAGER[0], "password": "nie-to-haslo"}, follow_redirects=False)
        assert wrong.status_code == 401 and "Nieprawidłowy" in wrong.text
        assert browser.get("/reports", follow_redirects=False).status_code == 303
        ok = browser.post(
            "/login",
            data={"name": MANAGER[0], "password": MANAGER[1], "next": f"/reports?from={DAY}"},
            follow_redirects=False,
        )
        assert ok.status_code == 303 and ok.headers["location"] == f"/reports?from={DAY}"
        assert "httponly" in ok.headers["set-cookie"].lower()
        assert browser.get(f"/reports?from={DAY}").status_code == 200
        assert browser.get(f"/reports/api/summary?from={DAY}&to={DAY}").status_code == 200
        evil = browser.post(
            "/login",
            data={"name": MANAGER[0], "password": MANAGER[1], "next": "https://evil.example/"},
            follow_redirects=False,
        )
        assert evil.headers["location"] == "/reports"
        browser.post("/logout")
        browser.cookies.clear()
        assert browser.get("/reports/api/summary").status_code == 401
    forged_cookie = {"numerek_session": ok.cookies["numerek_session"][:-2] + "xx"}
    with httpx.Client(base_url=server.url, timeout=10, cookies=forged_cookie) as forger:
        assert forger.get("/reports/api/summary").status_code == 401


def test_simulator_reports_estimate_accuracy_next_to_the_naive_rule(office):
    _server, sim = office
    acc = sim["estimate_accuracy"]
    assert acc["tickets"] > 50
    assert acc["printed_mae_min"] >= 0 and acc["naive_mae_min"] >= 0
    assert set(sim["estimate_accuracy_by_service"]) == {"rej", "pj", "pasz"}
