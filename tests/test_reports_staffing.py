"""The manager's staffing page on simulated weeks, read back and checked against the records.

One module-wide setup: the real simulator (``numerek-simulate``) runs the test office's four
weeks up to last Sunday (by the real clock: the server's "last week") into a real SQLite
file, a manager login is made with ``numerek-users``, and the real ``numerek-server`` serves
``/reports/staffing``. Last week's share called in time is recomputed here from the tickets
table alone; the advice itself is server/staffing.py's (tested in tests/test_staffing.py),
so the page must show what it computes for the same weeks.
"""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import subprocess
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.harness import Broker, ServerProcess, free_port, run_tool, wait_for, write_config

HOURS = '{ mon = "08:00-16:00", tue = "08:00-16:00", wed = "08:00-17:00", thu = "08:00-16:00", fri = "08:00-15:00" }'
TARGETS = {"rej": 30, "pj": 20, "pasz": 40}
TZ = ZoneInfo("Europe/Warsaw")
MANAGER = ("kierownik", "obsada-stanowisk-42")
CLERK = ("urzedniczka", "tylko-okienko-42")


def run(module: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """``python -m <module> <args>`` (forked from the server zygote: tests/harness.py ``run_tool``)."""
    return run_tool(module, *args, input=stdin)


@pytest.fixture(scope="module")
def office(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("staffing")
    broker = Broker(tmp).start()
    http_port = free_port()
    cfg = write_config(tmp / "office.toml", broker.port, http_port, hours=HOURS)
    today = datetime.now(TZ).date()
    last_monday = today - timedelta(days=today.weekday() + 7)
    first = last_monday - timedelta(days=21)
    sim = run(
        "server.simulate",
        *("--config", str(cfg), "--database", str(tmp / "numerek.db")),
        *("--start", first.isoformat(), "--days", "28", "--scale", "0.8", "--seed", "5"),
    )
    assert sim.returncode == 0, sim.stderr
    for (name, password), role in ((MANAGER, "manager"), (CLERK, "clerk")):
        added = run(
            "server.auth", "--config", str(cfg), "add", name, "--role", role, "--password-stdin", stdin=password + "\n"
        )
        assert added.returncode == 0, added.stderr
    server = ServerProcess(cfg, http_port=http_port).start()
    yield server, last_monday, tmp
    server.stop()
    broker.stop()


def auth(user: tuple[str, str] = MANAGER) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()}


def get(server: ServerProcess, path: str, **kw) -> httpx.Response:
    return httpx.get(server.url + path, timeout=120, **kw)


def last_week_in_time(database, monday: date, service: str, weekday: int) -> dict[int, float]:
    """Per local hour: the share of last week's tickets called within the target, from the tickets table."""
    day = (monday + timedelta(days=weekday)).isoformat()
    conn = sqlite3.connect(database)
    rows = conn.execute(
        "SELECT issued_at, first_called_at FROM tickets WHERE day = ? AND issued_service = ?", (day, service)
    ).fetchall()
    conn.close()
    seen: dict[int, list[int]] = {}
    for issued, called in rows:
        hour = datetime.fromtimestamp(issued, TZ).hour
        ok = called is not None and called - issued <= TARGETS[service] * 60
        seen.setdefault(hour, [0, 0])
        seen[hour][0] += ok
        seen[hour][1] += 1
    return {h: ok / n for h, (ok, n) in seen.items()}


def test_the_staffing_page_shows_the_advice_and_last_weeks_share_in_time_per_hour(office):
    server, monday, _tmp = office
    page = get(server, "/reports/staffing?service=rej&weekday=2&lang=en", headers=auth())
    assert page.status_code == 200, page.text[:500]
    html = page.text
    assert "Staffing" in html and "Counters advised" in html and "Wednesday" in html
    rows = re.findall(
        r'<tr data-hour="(\d+)" data-advised="(\d+)" data-erlang="(\d+)"\s+'
        r'data-last-week-counters="([\d.]*)"\s+data-last-week-share="([\d.]*)">',
        html,
    )
    assert rows, "an hour per row"
    api = get(server, "/reports/api/staffing?service=rej&weekday=2", headers=auth()).json()
    assert api["week"] == monday.isoformat() and api["target_min"] == TARGETS["rej"]
    assert [(h["hour"], h["advised"], h["erlang_c"]) for h in api["hours"]] == [
        (int(h), int(a), int(e)) for h, a, e, _c, _s in rows
    ], "the page and the API show the same advice"
    expected = last_week_in_time(server.database, monday, "rej", 2)
    for h in api["hours"]:
        assert h["advised"] >= h["erlang_c"] >= 1
        assert h["last_week_share"] == pytest.approx(expected.get(h["hour"])), h
        assert h["expected_share"] >= 0.8, "the advice meets the goal in every hour"
    assert api["expected_share"] >= 0.8
    polish = get(server, "/reports/staffing?service=rej&weekday=2", headers=auth()).text
    assert "Obsada stanowisk" in polish and "Zalecane stanowiska" in polish and "środa" in polish


def test_one_more_counter_at_an_hour_raises_the_expected_share_in_time(office):
    server, _monday, _tmp = office
    base = get(server, "/reports/api/staffing?service=rej&weekday=0", headers=auth()).json()
    first_hour = base["hours"][0]["hour"]
    api = get(server, f"/reports/api/staffing?service=rej&weekday=0&add_hour={first_hour}&add=2", headers=auth())
    w = api.json()["what_if"]
    assert w["hour"] == first_hour and w["added"] == 2
    assert w["share_after"] >= w["share_before"] and w["mean_wait_after_s"] <= w["mean_wait_before_s"]
    page = get(
        server, f"/reports/staffing?service=rej&weekday=0&add_hour={first_hour}&add=2&lang=en", headers=auth()
    ).text
    shown = re.search(r'id="what-if" role="status" data-share-before="([\d.]+)" data-share-after="([\d.]+)"', page)
    assert shown is not None
    assert (float(shown[1]), float(shown[2])) == pytest.approx((w["share_before"], w["share_after"]))
    assert f"2 more at {first_hour}:00" in page


def test_the_staffing_page_refuses_bad_input_clearly_and_only_managers_see_it(office):
    server, _monday, _tmp = office
    for query, says in (
        ("service=nope", "no service 'nope'"),
        ("weekday=9", "weekday"),
        ("week=yesterday", "week must be a date"),
        ("add_hour=3", "add_hour must be an hour with arrivals"),
        ("add_hour=9&add=50", "add"),
    ):
        r = get(server, f"/reports/api/staffing?service=rej&{query}", headers=auth())
        assert r.status_code == 422 and says in r.text, (query, r.status_code, r.text[:300])
    assert get(server, "/reports/api/staffing").status_code == 401
    assert get(server, "/reports/api/staffing", headers=auth(CLERK)).status_code == 403
    assert get(server, "/reports/staffing", follow_redirects=False).status_code == 303


def test_a_weekday_without_records_says_so(office):
    server, _monday, _tmp = office
    page = get(server, "/reports/staffing?service=rej&weekday=6&lang=en", headers=auth()).text
    assert "No tickets of this service were recorded on this weekday" in page
    assert get(server, "/reports/api/staffing?service=rej&weekday=6", headers=auth()).json()["hours"] == []


def test_the_staffing_page_passes_axe(office, chromium):
    from tests.axe import axe_violations

    server, _monday, tmp = office
    target = "/reports/staffing?service=rej&weekday=2&add_hour=9&add=1"
    page = chromium.open(f"{server.url}/login?{httpx.QueryParams({'next': target})}")
    try:
        wait_for(lambda: page.js("!!document.querySelector('input[name=password]')"), 20, "the login form")
        page.js(
            f"document.querySelector('input[name=name]').value = {json.dumps(MANAGER[0])};"
            f"document.querySelector('input[name=password]').value = {json.dumps(MANAGER[1])};"
            "document.querySelector('form[action=\"/login\"]').requestSubmit()"
        )
        wait_for(
            lambda: page.js("location.pathname === '/reports/staffing' && !!document.getElementById('what-if')"),
            60,
            "the staffing page with its what-if",
        )
        assert axe_violations(page) == []
    finally:
        page.close()
