"""Configuration pushed from the centre (central/configpush.py, the branch worker's
``config_push``): on real parts — PostgreSQL, a central Mosquitto with per-branch accounts
and the ACL from ``Topics.acl``, two branch Mosquittos bridged with the generated config, the
real ``numerek-server`` at each branch, ``numerek-central`` and ``numerek-central-web``."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import datetime
from itertools import pairwise

import httpx
import pytest

from server.auth import Users
from tests.central_support import PG_BIN, Branch, CentralBroker, IngesterProcess, Postgres, write_central_config
from tests.harness import free_port, start_tool, wait_for

pytestmark = pytest.mark.skipif(not (PG_BIN / "initdb").exists(), reason="PostgreSQL 15 is installed by .ci/setup")

ADMIN = ("centrala-admin", "a-long-admin-password-1")
MANAGER = ("boss", "a-long-manager-password-1")
BRANCH_ADMIN = ("wola-admin", "a-long-branch-admin-pw-1")


@pytest.fixture(scope="module")
def centre(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("centre")
    pg = Postgres().start()
    dsn = pg.create_db("central")
    central = CentralBroker(tmp / "central", ["wola", "ursus"]).start()
    port = free_port()
    config = write_central_config(tmp / "central" / "central.toml", central, dsn, http_port=port)
    config.write_text(config.read_text() + '\n[[branches]]\nid = "ursus"\nname = "Urząd Dzielnicy Ursus"\n')
    users = Users(str(tmp / "central" / "central-users.db"))
    users.add(ADMIN[0], "admin", ADMIN[1])
    users.add(MANAGER[0], "manager", MANAGER[1])
    ingester = IngesterProcess(config).start()
    branches = {b: Branch(tmp / b, b, central) for b in ("wola", "ursus")}
    Users(str(branches["wola"].server.database)).add(BRANCH_ADMIN[0], "admin", BRANCH_ADMIN[1])
    web = start_tool("central.web", "--config", str(config), log=tmp / "web.log")
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(url + "/health", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, 30, "numerek-central-web")
        yield url, branches
    finally:
        web.terminate()
        web.wait(10)
        for b in branches.values():
            b.close()
        ingester.stop()
        central.stop()
        pg.destroy()


def _signed_in(url: str, who: tuple[str, str]) -> httpx.Client:
    c = httpx.Client(base_url=url, timeout=20)
    r = c.post("/login", data={"name": who[0], "password": who[1], "next": "/"})
    assert r.status_code == 303, r.text
    return c


def _push(c: httpx.Client, changes: list[dict], branch: str = "") -> list[str]:
    r = c.post("/config", data={"branch": branch, "changes": json.dumps(changes)})
    assert r.status_code == 200, r.text
    sent = re.search(r'<p id="sent">[^<]*</p>', r.text)
    assert sent is not None, r.text
    return re.findall(r"\(([0-9a-f]{16})\)", sent.group(0))


def _status(c: httpx.Client, push_id: str) -> dict:
    return next(p for p in c.get("/api/config-pushes").json() if p["id"] == push_id)


def _answered(c: httpx.Client, push_id: str) -> dict:
    wait_for(lambda: _status(c, push_id)["status"] != "sent", 60, f"the branch's answer to {push_id}")
    return _status(c, push_id)


def _overrides(branch: Branch) -> dict[tuple[str, str], object]:
    with sqlite3.connect(f"file:{branch.server.database}?mode=ro", uri=True) as conn:
        return {(t, f): json.loads(v) for t, f, v in conn.execute("SELECT target, field, value FROM config_overrides")}


def _log(branch: Branch, push_id: str) -> list[tuple[str, str, str]]:
    with sqlite3.connect(f"file:{branch.server.database}?mode=ro", uri=True) as conn:
        return conn.execute(
            "SELECT user, field, new FROM admin_changes WHERE target = ?", (f"push:{push_id}",)
        ).fetchall()


def test_a_configuration_pushed_to_every_branch_is_applied_by_each_and_both_sides_keep_the_record(centre):
    url, branches = centre
    c = _signed_in(url, ADMIN)
    ids = _push(c, [{"target": "service:rej", "values": {"daily_limit": 120, "target_wait_min": 12}}])
    by_branch = {_status(c, i)["branch"]: i for i in ids}
    assert set(by_branch) == {"wola", "ursus", "mokotow"}  # every configured branch
    for name in ("wola", "ursus"):
        push_id = by_branch[name]
        answer = _answered(c, push_id)
        assert answer["status"] == "applied" and answer["changed"] == 2, answer
        branch = branches[answer["branch"]]
        assert _overrides(branch)[("service:rej", "daily_limit")] == 120
        assert _log(branch, push_id) == [(f"centrala:{ADMIN[0]}", "applied", "2")]
    # Mokotów is configured but has never connected: its copy waits for it (retained at the centre).
    assert _status(c, by_branch["mokotow"])["status"] == "sent"
    page = c.get("/config")
    assert "zastosowano / applied" in page.text and ADMIN[0] in page.text
    # The branch's own change log page shows who at the centre changed what.
    wola = httpx.Client(base_url=branches["wola"].server.url, timeout=10)
    assert wola.post("/login", data={"name": BRANCH_ADMIN[0], "password": BRANCH_ADMIN[1]}).status_code == 303
    log = wola.get("/admin/log")
    assert log.status_code == 200 and f"centrala:{ADMIN[0]}" in log.text and "daily_limit" in log.text


def test_an_invalid_configuration_is_refused_with_reasons_and_nothing_of_it_is_applied(centre):
    url, branches = centre
    c = _signed_in(url, ADMIN)
    before = _overrides(branches["wola"])
    (push_id,) = _push(
        c,
        [
            {"target": "service:pj", "values": {"daily_limit": 77}},  # valid alone
            {"target": "service:rej", "values": {"daily_limit": -5}},
            {"target": "service:nosuch", "values": {"priority": True}},
        ],
        branch="wola",
    )
    answer = _answered(c, push_id)
    assert answer["status"] == "refused", answer
    assert any("service:rej" in r and "daily_limit" in r for r in answer["reasons"]), answer["reasons"]
    assert any("service:nosuch" in r for r in answer["reasons"]), answer["reasons"]
    assert _overrides(branches["wola"]) == before  # never half-applied: pj's 77 is not there
    ((user, field, reasons),) = _log(branches["wola"], push_id)
    assert (user, field) == (f"centrala:{ADMIN[0]}", "refused") and "service:rej" in reasons
    assert "odmowa / refused" in c.get("/config").text


def test_a_branch_offline_gets_the_pushed_configuration_when_its_link_is_back(centre):
    url, branches = centre
    c = _signed_in(url, ADMIN)
    ursus = branches["ursus"]
    ursus.peer.close()
    ursus.broker.stop()  # the branch's broker, and with it the bridge: the branch is cut off
    try:
        (push_id,) = _push(c, [{"target": "counter:2", "values": {"name": "Okienko 2 (kasa)"}}], branch="ursus")
        assert _status(c, push_id)["status"] == "sent"
    finally:
        ursus.broker.start()
        wait_for(ursus.server._healthy, 30, "the branch server back on its broker")
        ursus._connect_peer()
    answer = _answered(c, push_id)
    assert answer["status"] == "applied", answer
    assert _overrides(ursus)[("counter:2", "name")] == "Okienko 2 (kasa)"
    assert len(_log(ursus, push_id)) == 1  # the retained copy seen again after reconnecting is not applied twice


def test_only_an_admin_pushes_and_a_malformed_push_is_refused_at_the_centre(centre):
    url, _branches = centre
    manager = _signed_in(url, MANAGER)
    assert manager.get("/config").status_code == 200  # a manager sees the record
    r = manager.post(
        "/config", data={"branch": "", "changes": '[{"target": "service:rej", "values": {"priority": true}}]'}
    )
    assert r.status_code == 403
    admin = _signed_in(url, ADMIN)
    n = len(admin.get("/api/config-pushes").json())
    bad = admin.post("/config", data={"branch": "wola", "changes": '[{"target": "rej; DROP", "values": {}}]'})
    assert bad.status_code == 422 and "target" in bad.text
    assert admin.post("/config", data={"branch": "nosuch", "changes": "[]"}).status_code == 422
    assert len(admin.get("/api/config-pushes").json()) == n  # nothing recorded, nothing sent


def _slot_times(branch: Branch, service: str, days: int = 1) -> list[datetime]:
    """The times the branch's own booking site offers for ``service``: on its second open day by
    default, or on its first ``days`` open days in a row.

    Why the second day: the test offices are open round the clock, so the second day is always a
    whole day; the first is today, which in the evening has only its last few times left."""
    site = httpx.Client(base_url=branch.server.url, timeout=10)
    listing = site.get(f"/rezerwacja/{service}")
    assert listing.status_code == 200, listing.status_code
    offered = list(dict.fromkeys(re.findall(rf'href="/rezerwacja/{service}/(\d{{4}}-\d\d-\d\d)\?', listing.text)))
    assert len(offered) >= 2, listing.text
    times: list[datetime] = []
    for day in offered[:days] if days > 1 else offered[1:2]:
        page = site.get(f"/rezerwacja/{service}/{day}")
        times += [datetime.fromisoformat(v) for v in re.findall(r'name="slot" value="([^"]+)"', page.text)]
    return times


def test_a_booking_plan_pushed_from_the_centre_is_what_the_branchs_booking_site_offers(centre):
    url, branches = centre
    c = _signed_in(url, ADMIN)
    wola = branches["wola"]
    site = httpx.Client(base_url=wola.server.url, timeout=10)
    assert site.get("/rezerwacja/pasz").status_code == 404  # no plan: passports take no bookings
    (push_id,) = _push(
        c, [{"target": "booking:pasz", "values": {"plan": {"slot_min": 20, "per_hour": 3, "notice_min": 0}}}], "wola"
    )
    answer = _answered(c, push_id)
    assert answer["status"] == "applied" and answer["changed"] == 1, answer
    times = _slot_times(wola, "pasz")
    assert len(times) > 3 and {(b - a).total_seconds() for a, b in pairwise(times)} == {1200.0}
    stored = _overrides(wola)[("booking:pasz", "plan")]
    assert stored["slot_min"] == 20 and stored["per_hour"] == 3 and stored["days_ahead"] == 30  # the rest: defaults
    assert _log(wola, push_id) == [(f"centrala:{ADMIN[0]}", "applied", "1")]

    # Refused, with the reasons, and nothing of it kept: an impossible slot length beside a
    # plan for a service the branch does not have.
    (bad,) = _push(
        c,
        [
            {"target": "booking:pasz", "values": {"plan": {"slot_min": 1}}},
            {"target": "booking:nosuch", "values": {"plan": {}}},
        ],
        "wola",
    )
    answer = _answered(c, bad)
    assert answer["status"] == "refused", answer
    assert any("booking:pasz plan.slot_min" in r for r in answer["reasons"]), answer["reasons"]
    assert any("booking:nosuch" in r for r in answer["reasons"]), answer["reasons"]
    assert _overrides(wola)[("booking:pasz", "plan")] == stored
    assert _slot_times(wola, "pasz") == times

    # Taken away again: the service takes no bookings at the branch.
    (off,) = _push(c, [{"target": "booking:pasz", "values": {"plan": None}}], "wola")
    assert _answered(c, off)["status"] == "applied"
    assert site.get("/rezerwacja/pasz").status_code == 404


def test_the_centres_booking_entry_shows_a_branchs_next_free_times_and_leads_to_that_branchs_booking(centre):
    url, branches = centre
    c = _signed_in(url, ADMIN)
    wola = branches["wola"]
    (push_id,) = _push(
        c, [{"target": "booking:pj", "values": {"plan": {"slot_min": 30, "per_hour": 2, "notice_min": 0}}}], "wola"
    )
    assert _answered(c, push_id)["status"] == "applied"
    resident = httpx.Client(base_url=url, timeout=10)  # no login: a resident's phone

    def offer() -> list[dict]:
        return resident.get("/api/public/booking", params={"branch": "wola", "service": "pj"}).json()

    def same_as_the_branch() -> bool:
        rows = offer()
        if len(rows) != 1 or not rows[0]["next_free"]:
            return False
        own = _slot_times(wola, "pj", days=2)  # today's last times, then the next day's
        return [datetime.fromisoformat(t) for t in rows[0]["next_free"]] == own[: len(rows[0]["next_free"])]

    wait_for(same_as_the_branch, 60, "the centre to show the branch's own next free times")
    (row,) = offer()
    assert row["branch_name"] == "Urząd Dzielnicy Wola" and row["name"]["pl"] == "Prawo jazdy"
    assert len(row["next_free"]) == 3
    first_day = datetime.fromisoformat(row["next_free"][0]).date().isoformat()
    assert row["booking_url"] == f"https://wola.example.pl/rezerwacja/pj/{first_day}"
    # That address's path on the branch's own server is its booking form with those times.
    form = httpx.get(wola.server.url + f"/rezerwacja/pj/{first_day}", timeout=10)
    assert form.status_code == 200 and f'value="{row["next_free"][0]}"' in form.text
    page = resident.get("/rezerwacja", params={"branch": "wola", "service": "pj"})
    assert page.status_code == 200
    assert 'data-branch="wola" data-service="pj"' in page.text and row["booking_url"] in page.text
    assert 'data-service="rej"' not in page.text  # only the service picked
    # A service without a plan is not offered; taking the plan away takes it off the centre.
    (off,) = _push(c, [{"target": "booking:pj", "values": {"plan": None}}], "wola")
    assert _answered(c, off)["status"] == "applied"
    wait_for(lambda: offer() == [], 60, "the centre to drop the service")


def test_a_branchs_admin_changes_a_booking_plan_on_its_own_admin_page(centre):
    _url, branches = centre
    wola = branches["wola"]
    admin = httpx.Client(base_url=wola.server.url, timeout=10)
    assert admin.post("/login", data={"name": BRANCH_ADMIN[0], "password": BRANCH_ADMIN[1]}).status_code == 303
    page = admin.get("/admin")
    assert page.status_code == 200 and 'action="/admin/booking/pasz"' in page.text and "Plany rezerwacji" in page.text
    r = admin.post(
        "/admin/booking/pasz", data={"takes_bookings": "yes", "slot_min": "25", "per_hour": "3", "notice_min": "0"}
    )
    assert r.status_code == 303 and r.headers["location"].endswith("#booking-pasz")
    times = _slot_times(wola, "pasz")
    assert len(times) > 3 and {(b - a).total_seconds() for a, b in pairwise(times)} == {1500.0}
    plan = _overrides(wola)[("booking:pasz", "plan")]
    # Refused with the field named, nothing changed.
    bad = admin.post("/admin/booking/pasz", data={"takes_bookings": "yes", "slot_min": "1"})
    assert bad.status_code == 422 and "booking:pasz plan.slot_min" in bad.text
    assert _overrides(wola)[("booking:pasz", "plan")] == plan
    log = admin.get("/admin/log")
    assert BRANCH_ADMIN[0] in log.text and "booking:pasz" in log.text
    # Unticked: the service takes no bookings.
    assert admin.post("/admin/booking/pasz", data={"slot_min": "25"}).status_code == 303
    assert httpx.get(wola.server.url + "/rezerwacja/pasz", timeout=10).status_code == 404
