"""The public queue status (issue 18): the live page, the open-data feeds, the widget, CORS and
the published statistics, against the real server, broker and SQLite file; the page in
Debian's Chromium, checked with axe-core's WCAG 2.1 AA rules."""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from datetime import date, datetime
from pathlib import Path

import httpx
import jsonschema
import pytest

from tests.browser import CHROMIUM, Page
from tests.harness import ROOT, Broker, Peer, ServerProcess, free_port, run_tool, wait_for, write_config
from tests.test_counter_support import BASE, issue

OFFICE_SITE = "https://www.urzad.example.pl"
PUBLIC = f"""
[public]
allowed_origins = ["{OFFICE_SITE}"]
refresh_s = 2
zone_names = {{ hall = {{ pl = "Sala obsługi", en = "Main hall", uk = "Головна зала" }}, upstairs = {{ pl = "Piętro I", en = "First floor" }} }}
"""


def start_office(tmp: Path, extra: str = PUBLIC, limit: int = 40, database: Path | None = None) -> tuple:
    broker = Broker(tmp).start()
    http_port = free_port()
    cfg = write_config(tmp / "office.toml", broker.port, http_port, limit=limit)
    text = cfg.read_text(encoding="utf-8")
    if database is not None:
        text = text.replace(f'database = "{tmp / "numerek.db"}"', f'database = "{database}"')
    cfg.write_text(text.replace("[[services]]", extra + "\n[[services]]", 1), encoding="utf-8")
    return broker, ServerProcess(cfg, http_port=http_port).start()


@pytest.fixture(scope="module")
def office(tmp_path_factory):
    """The test office with [public] set, a resident's MQTT kiosk and a clerk's session."""
    tmp = tmp_path_factory.mktemp("public")
    broker, server = start_office(tmp)
    peer = Peer(broker.port)
    peer.subscribe(f"{BASE}/kiosk/k1/response/#")
    yield server, peer
    peer.close()
    server.stop()
    broker.stop()


def next_at(server: ServerProcess, counter: str) -> dict:
    body = {"v": 1, "id": f"n-{uuid.uuid4().hex[:10]}", "action": "next"}
    r = server.post(f"/api/counters/{counter}/commands", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def feed(server: ServerProcess, path: str = "/api/public/v1/status", **kw) -> httpx.Response:
    return server.anonymous_get(path, **kw)


def service(data: dict, sid: str) -> dict:
    return next(s for s in data["services"] if s["id"] == sid)


# --------------------------------------------------------------------------- feeds


def test_the_feed_says_who_waits_who_is_called_and_what_tickets_are_left(office):
    server, peer = office
    before = service(feed(server).json(), "rej")
    numbers = [issue(peer, "rej") for _ in range(3)]
    called = next_at(server, "1")["ticket"]["number"]
    assert called == numbers[0] or before["waiting"] > 0

    def settled() -> dict | None:
        data = feed(server).json()
        s = service(data, "rej")
        return data if s["now_called"] and s["now_called"]["number"] == called else None

    data = wait_for(settled, 10, "the call in the feed")
    s = service(data, "rej")
    assert s["waiting"] == before["waiting"] + 3 - 1
    assert s["now_called"]["counter"] == "Stanowisko 1"
    assert s["open_counters"] >= 1
    assert s["tickets"]["issued_now"] is True and s["tickets"]["reason"] is None
    assert s["tickets"]["daily_limit"] == 40
    assert s["tickets"]["left_today"] == 40 - (before["tickets"]["daily_limit"] - before["tickets"]["left_today"]) - 3
    assert s["estimated_wait_min"]["high_min"] >= s["estimated_wait_min"]["low_min"] >= 0
    assert {z["id"]: z["name"]["en"] for z in data["zones"]} == {"hall": "Main hall", "upstairs": "First floor"}
    assert data["schema_version"] == "1.0" and data["time_zone"] == "Europe/Warsaw"


def test_both_feeds_validate_against_their_published_json_schemas(office):
    server, peer = office
    issue(peer, "pj")
    for path, schema_path in (
        ("/api/public/v1/status", "/api/public/v1/status.schema.json"),
        ("/api/public/warszawa", "/api/public/warszawa.schema.json"),
    ):
        schema = feed(server, schema_path).json()
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        jsonschema.Draft202012Validator.check_schema(schema)
        jsonschema.validate(feed(server, path).json(), schema, cls=jsonschema.Draft202012Validator)
    # The schema says what a wrong feed is: a string count or a missing field is refused.
    schema = feed(server, "/api/public/warszawa.schema.json").json()
    bad = feed(server, "/api/public/warszawa").json()
    bad["result"]["grupy"][0]["liczbaKlwKolejce"] = "3"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def documented_warsaw_fields() -> dict[str, str]:
    """The field table of docs/public-status.md ("Warsaw-compatible feed"): name -> JSON type."""
    text = (ROOT / "docs" / "public-status.md").read_text(encoding="utf-8")
    section = text.split("## Warsaw-compatible feed", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `(\w+)` \| (string|integer) \|", section, flags=re.M))


def test_the_warsaw_feed_has_exactly_the_documented_field_names_and_json_types(office):
    server, peer = office
    issue(peer, "rej")
    next_at(server, "2")
    documented = documented_warsaw_fields()
    assert set(documented) == {
        "status",
        "czasObslugi",
        "lp",
        "idGrupy",
        "liczbaCzynnychStan",
        "nazwaGrupy",
        "literaGrupy",
        "liczbaKlwKolejce",
        "aktualnyNumer",
    }
    body = wait_for(
        lambda: (
            (b := feed(server, "/api/public/warszawa").json())
            and any(g["literaGrupy"] == "A" and g["aktualnyNumer"] for g in b["result"]["grupy"])
            and b
        ),
        10,
        "the number just called at the vehicle registration in the Warsaw feed",
    )
    assert set(body) == {"result"} and set(body["result"]) == {"date", "time", "grupy"}
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", body["result"]["date"])
    assert re.fullmatch(r"\d{2}:\d{2}", body["result"]["time"])
    json_type = {str: "string", int: "integer"}
    for group in body["result"]["grupy"]:
        assert set(group) == set(documented)
        for name, value in group.items():
            assert json_type[type(value)] == documented[name], (name, value)
    rej = next(g for g in body["result"]["grupy"] if g["literaGrupy"] == "A")
    assert rej["nazwaGrupy"] == "Rejestracja pojazdów" and rej["status"] == "1"
    assert re.fullmatch(r"A\d{3}", rej["aktualnyNumer"])

    def same_moment() -> tuple[dict, dict] | None:
        """Both feeds from one snapshot (their ETags share it): a state change from an earlier
        test may land between two requests."""
        waw, v1 = feed(server, "/api/public/warszawa"), feed(server)
        if waw.headers["etag"].removesuffix('-waw"') != v1.headers["etag"].removesuffix('"'):
            return None
        return next(g for g in waw.json()["result"]["grupy"] if g["literaGrupy"] == "A"), service(v1.json(), "rej")

    rej, v1 = wait_for(same_moment, 10, "both feeds from one snapshot")
    assert rej["liczbaKlwKolejce"] == v1["waiting"] and rej["liczbaCzynnychStan"] == v1["open_counters"]


def settled_feed(server: ServerProcess) -> tuple[httpx.Response, httpx.Response]:
    """A feed and its conditional request again, with no change landing between them (an
    earlier test's state may still be arriving: then the ETag itself moved, try again)."""

    def settled() -> tuple[httpx.Response, httpx.Response] | None:
        first = feed(server)
        again = feed(server, headers={"If-None-Match": first.headers["etag"]})
        if again.status_code == 200 and again.headers["etag"] != first.headers["etag"]:
            return None
        return first, again

    return wait_for(settled, 10, "two requests with no change between them")


def test_an_unchanged_feed_is_a_304_and_a_new_ticket_changes_its_etag(office):
    server, peer = office
    first, again = settled_feed(server)
    etag = first.headers["etag"]
    assert first.headers["cache-control"].startswith("public, max-age=")
    assert again.status_code == 304 and again.content == b""
    issue(peer, "pasz")
    wait_for(lambda: feed(server, headers={"If-None-Match": etag}).status_code == 200, 10, "a new ETag")


def test_the_servers_routine_republish_does_not_change_the_etag(office):
    """Every 15 s the server republishes its retained state with a new time; the queues did not
    change, so phones and the office's proxy must keep getting 304 (their caches stay valid)."""
    server, peer = office
    peer.subscribe(f"{BASE}/services")
    peer.expect(f"{BASE}/services", timeout=10)  # the retained copy

    def without_time(m: dict) -> dict:
        return {k: v for k, v in m.items() if k != "server_time"}

    def newest() -> dict:
        return json.loads(next(p for t, p, _r in reversed(peer.seen) if t == f"{BASE}/services"))

    for _ in range(5):
        latest = newest()
        etag = settled_feed(server)[0].headers["etag"]
        if newest() != latest:
            continue  # a message came meanwhile: not sure which one the ETag was taken for
        since = datetime.fromisoformat(latest["server_time"])
        again = peer.expect(
            f"{BASE}/services",
            timeout=60,
            where=lambda m, since=since: datetime.fromisoformat(m["server_time"]) > since,
        )
        if without_time(again) == without_time(latest):  # a republish that changed nothing but the time
            assert feed(server, headers={"If-None-Match": etag}).status_code == 304
            return
        # the published figures moved (an estimate with the clock): a new ETag is right; again
    raise AssertionError("five republishes in a row changed the published figures")


def test_rereading_the_typical_service_times_keeps_the_etag_while_they_are_the_same(
    tmp_path, broker, peer, monkeypatch
):
    """The typical service times are re-read every minute and usually come back the same: phones
    must keep their cached answer (304) across a re-read, and get a new one when the queues move.
    The real server in this process, over the real broker and SQLite file; only the feed's
    monotonic clock is moved past the re-read interval."""
    from types import SimpleNamespace

    from server import public
    from server.config import load_config
    from server.service import NumerekServer

    numerek = NumerekServer(load_config(write_config(tmp_path / "office.toml", broker.port, free_port())))
    numerek.start()
    try:
        wait_for(lambda: numerek.online, 10, "server connected")
        moment = [1_000.0]
        monkeypatch.setattr(public, "_time", SimpleNamespace(monotonic=lambda: moment[0]))
        feeds = public.PublicFeeds(numerek.office)
        first = feeds.rebuild()
        moment[0] += public.TYPICAL_REFRESH_S + 1  # the next request re-reads the typical times
        again = feeds.rebuild()
        assert again.etag == first.etag and again.status_json == first.status_json
        peer.subscribe(f"{BASE}/kiosk/k1/response/#")
        issue(peer, "rej")
        wait_for(lambda: numerek.office.public_snapshot().version != first.key[0], 10, "the ticket published")
        assert feeds.rebuild().etag != first.etag
    finally:
        numerek.stop()


def test_public_routes_change_nothing_and_carry_no_personal_data(office):
    server, peer = office
    assert server.post(
        "/api/counters/3/commands", json={"v": 1, "id": "s1", "action": "sign_in", "clerk": "4711"}
    ).json()["ok"]
    issue(peer, "pasz")
    next_at(server, "3")
    with sqlite3.connect(f"file:{server.database}?mode=ro", uri=True) as db:
        tokens = [t for (t,) in db.execute("SELECT token FROM tickets")]
    paths = ["/kolejka", "/widget/kolejka", "/api/public/v1/status", "/api/public/warszawa", "/kolejka/statystyki"]
    for path in paths:
        r = feed(server, path)
        assert r.status_code == 200, path
        assert "4711" not in r.text, path  # the clerk's id
        assert not any(t in r.text for t in tokens), path
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            refused = httpx.request(method, server.url + path, json={"v": 1}, timeout=5)
            assert refused.status_code == 405, (method, path, refused.status_code)
    cookies = httpx.get(server.url + "/kolejka", timeout=5).headers.get_list("set-cookie")
    assert cookies == []


# --------------------------------------------------------------------------- CORS and the widget


def test_cors_lets_the_offices_site_read_the_feeds_and_nobody_else(office):
    server, _ = office
    own = feed(server, headers={"Origin": OFFICE_SITE})
    assert own.headers["access-control-allow-origin"] == OFFICE_SITE
    assert "access-control-allow-credentials" not in own.headers
    other = feed(server, headers={"Origin": "https://evil.example"})
    assert other.status_code == 200 and "access-control-allow-origin" not in other.headers
    preflight = httpx.options(
        server.url + "/api/public/warszawa",
        headers={
            "Origin": OFFICE_SITE,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "if-none-match",
        },
        timeout=5,
    )
    assert preflight.status_code == 200 and "GET" in preflight.headers["access-control-allow-methods"]
    refused = httpx.options(
        server.url + "/api/public/warszawa",
        headers={"Origin": OFFICE_SITE, "Access-Control-Request-Method": "POST"},
        timeout=5,
    )
    assert refused.status_code == 400
    # The pages are not an API: no CORS there.
    assert "access-control-allow-origin" not in feed(server, "/kolejka", headers={"Origin": OFFICE_SITE}).headers


def test_only_the_widget_may_be_framed_and_only_by_the_offices_site(office):
    server, _ = office
    widget = feed(server, "/widget/kolejka?lang=en")
    assert widget.headers["content-security-policy"] == f"frame-ancestors 'self' {OFFICE_SITE}"
    assert "x-frame-options" not in widget.headers
    assert "<table>" in widget.text and 'lang="en"' in widget.text
    for path in ("/kolejka", "/api/public/v1/status"):
        headers = feed(server, path).headers  # every other page refuses every frame, the office's site too
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"


# --------------------------------------------------------------------------- the page in Chromium


def loaded(page: Page, path: str) -> None:
    """The page at ``path`` has loaded (not the blank page Chromium starts with)."""
    wait_for(
        lambda: page.js(f"location.pathname === {json.dumps(path)} && document.readyState === 'complete'"),
        20,
        f"{path} loaded",
    )


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_the_live_page_shows_a_call_without_a_reload_and_passes_axe(office, artifacts, chromium):
    from tests.axe import axe_violations

    server, peer = office
    for _ in range(2):
        issue(peer, "pj")
    page = chromium.open(f"{server.url}/kolejka?lang=en")
    try:
        page.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True},
            page.session,
        )
        loaded(page, "/kolejka")
        page.js("window.__sameDocument = true")
        before = page.text("called-pj")
        called = next_at(server, "2")["ticket"]["number"]
        assert called.startswith("B")
        wait_for(lambda: called in (page.text("called-pj") or ""), 20, f"{called} on the page")
        assert page.js("window.__sameDocument") is True, "the page was reloaded instead of updated"
        assert before != page.text("called-pj")
        assert "Stanowisko 2" in page.text("called-pj")
        assert page.js("document.documentElement.lang") == "en"
        page.screenshot(artifacts / "public_status_phone.png")
        violations = axe_violations(page)
        assert violations == [], json.dumps(violations, indent=1)

        # Keyboard: Tab reaches the pause button, Enter presses it, and a screen reader hears why.
        page.js("document.getElementById('pause').focus()")
        for kind in ("keyDown", "keyUp"):
            page.call(
                "Input.dispatchKeyEvent",
                {"type": kind, "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "text": "\r"},
                page.session,
            )
        wait_for(
            lambda: page.js("document.getElementById('pause').getAttribute('aria-pressed')") == "true", 5, "paused"
        )
        assert page.text("connection") == "Updates paused."
        assert page.js("document.getElementById('connection').getAttribute('role')") == "status"
    finally:
        page.close()


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_pausing_while_an_update_is_on_its_way_keeps_saying_updates_are_paused(office, chromium):
    """The page's update that was already asked for when the resident pressed pause used to clear
    "Updates paused." when it arrived (seen on a busy machine, where an answer takes a while)."""
    server, _ = office
    page = chromium.open(f"{server.url}/kolejka?lang=en")
    try:
        loaded(page, "/kolejka")
        # The next update is held on its way: the page's fetch answers only when the test says so,
        # and ``__answered`` turns true once the page has read that answer (a timer runs only after
        # the page's own continuation: it is queued behind it).
        page.js(
            """window.__realFetch = window.fetch; window.__release = null; window.__answered = false;
            window.fetch = (...a) => new Promise((ok) => {
              window.__release = async () => {
                const r = await window.__realFetch(...a);
                const text = r.text.bind(r);
                r.text = async () => { const v = await text(); setTimeout(() => { window.__answered = true; }); return v; };
                ok(r);
                if (r.status !== 200) setTimeout(() => { window.__answered = true; });
              };
            });"""
        )
        wait_for(lambda: page.js("window.__release !== null"), 30, "the page asking for an update")
        page.js("document.getElementById('pause').click()")
        assert page.text("connection") == "Updates paused."
        page.js("window.__release()")
        wait_for(lambda: page.js("window.__answered"), 30, "the held update answered")
        assert page.text("connection") == "Updates paused."
        assert page.js("document.getElementById('pause').getAttribute('aria-pressed')") == "true"
    finally:
        page.close()


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
@pytest.mark.parametrize(
    "path", ["/kolejka?lang=uk", "/kolejka?lang=pl", "/widget/kolejka?lang=pl", "/kolejka/statystyki"]
)
def test_public_pages_pass_axe_wcag21_aa(office, path, artifacts, chromium):
    from tests.axe import axe_violations

    server, _ = office
    page = chromium.open(server.url + path)
    try:
        loaded(page, path.split("?")[0])
        violations = axe_violations(page)
        assert violations == [], json.dumps(violations, indent=1)
        if path.startswith("/widget"):
            page.screenshot(artifacts / "public_widget.png")
    finally:
        page.close()


# --------------------------------------------------------------------------- statistics


MONTH_DAY = "2026-10-07"  # a Wednesday in a month that is over


@pytest.fixture(scope="module")
def past_month(tmp_path_factory):
    """One simulated day of the test office in October 2026, in its own database."""
    tmp = tmp_path_factory.mktemp("public-stats")
    database = tmp / "numerek.db"
    cfg = write_config(tmp / "sim.toml", 1883, 8080, hours='{ wed = "08:00-17:00" }')
    sim = run_tool(
        "server.simulate",
        *("--config", str(cfg), "--database", str(database)),
        *("--start", MONTH_DAY, "--days", "1", "--scale", "0.8", "--seed", "5"),
    )
    assert sim.returncode == 0, sim.stderr
    with sqlite3.connect(database) as db:
        visits = dict(db.execute("SELECT issued_service, count(*) FROM tickets GROUP BY issued_service").fetchall())
    return tmp, database, visits


def test_a_service_with_fewer_than_n_visits_in_the_month_is_not_broken_down(past_month, tmp_path):
    from server.config import load_config
    from server.reports.figures import Filters, ReportData

    _, database, visits = past_month
    smallest = min(visits, key=visits.get)
    n = visits[smallest] + 1
    big = {s for s, v in visits.items() if v >= n}
    assert big and smallest not in big, visits
    broker, server = start_office(tmp_path, PUBLIC + f"statistics_min_visits = {n}\n", database=database)
    try:
        months = server.anonymous_get("/api/public/v1/statistics").json()["months"]
        assert months[-1] == "2026-10"
        stats = server.anonymous_get("/api/public/v1/statistics/2026-10.json").json()
        csv_text = server.anonymous_get("/api/public/v1/statistics/2026-10.csv").text
        page = server.anonymous_get("/kolejka/statystyki?month=2026-10&lang=en").text
        config = load_config(server.config)
    finally:
        server.stop()
        broker.stop()
    assert {r["service"] for r in stats["services"]} == big
    assert stats["min_visits"] == n
    small_name = next(s.name for s in config.services if s.id == smallest)
    for text in (csv_text, page):
        assert small_name.pl not in text and small_name.en not in text
    assert f",{smallest}," not in csv_text
    folded = sum(v for s, v in visits.items() if s not in big)
    other = stats["other"]
    if folded < n:  # together still too few: not even their count
        assert other["visits"] is None and other["within_target_share"] is None and other["satisfaction_mean"] is None
    assert stats["total"]["visits"] == sum(visits.values())
    assert stats["total"]["within_target_share"] is None and stats["total"]["wait_median_min"] is None
    # What is published is the reports' own figure for the service (one definition, docs/reports.md).
    summary = ReportData(str(database), config).summary(Filters(date(2026, 10, 1), date(2026, 10, 31))).as_json()
    for row in stats["services"]:
        ref = next(r for r in summary["by_service"] if r["service"] == row["service"])
        assert row["visits"] == ref["issued"] and row["served"] == ref["served"]
        assert row["wait_median_min"] == round(ref["wait"]["median_s"] / 60, 1)
        assert row["wait_p90_min"] == round(ref["wait"]["p90_s"] / 60, 1)
        assert row["within_target_share"] == ref["wait"]["within_target_share"]
        if ref["rating"]["n"] >= n:
            assert row["satisfaction_mean"] == ref["rating"]["mean"]
        else:
            assert row["satisfaction_mean"] is None  # too few ratings: that could be one person's
    assert csv_text.splitlines()[0].startswith("month,service,name_pl,name_en,visits,served,wait_median_min")


def test_the_manager_chooses_which_figures_are_public(past_month):
    from server.config import parse_config
    from server.public import publish_statistics, statistics_csv
    from server.reports.figures import Filters, ReportData

    tmp, database, visits = past_month
    text = (tmp / "sim.toml").read_text(encoding="utf-8")
    config = parse_config(
        text.replace(
            "[[services]]", '[public]\nstatistics_figures = ["visits"]\nstatistics_min_visits = 1\n\n[[services]]', 1
        )
    )
    summary = ReportData(str(database), config).summary(Filters(date(2026, 10, 1), date(2026, 10, 31))).as_json()
    stats = publish_statistics(summary, config, "2026-10")
    assert {r.service for r in stats.services} == set(visits)
    for row in stats.services:
        assert row.visits == visits[row.service]
        assert row.served is None and row.wait_median_min is None and row.satisfaction_mean is None
    assert stats.figures == ["visits"]
    lines = statistics_csv(stats).splitlines()
    assert len(lines) == 1 + len(visits) + 1  # header, one per service, the total


def test_the_current_month_is_not_published_until_it_is_over(office):
    server, _ = office
    months = server.anonymous_get("/api/public/v1/statistics").json()["months"]
    this_month = server.anonymous_get("/api/public/v1/status").json()["generated_at"][:7]
    assert this_month not in months
    assert server.anonymous_get(f"/api/public/v1/statistics/{this_month}.csv").status_code == 404
    assert server.anonymous_get("/api/public/v1/statistics/2026-13.csv").status_code == 404
    assert server.anonymous_get("/api/public/v1/statistics/latest.csv").status_code == 422
