"""The admin page against the real server: edits take effect at once, are audited, survive a restart.

Everything goes through the real ``numerek-server`` process, a real Mosquitto and a real
SQLite file; logins are created with ``numerek-users`` like an installer would.
"""

from __future__ import annotations

import html
import re
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime

import httpx
import pytest

from server.config import SiteConfig, load_config
from server.engine import QueueEngine
from tests.harness import ANSWER_TIMEOUT_S, ARTIFACTS, ROOT, Peer, ServerProcess, write_config

BASE = "numerek"
ADMIN = ("ala.admin", "admin-haslo-123")
MANAGER = ("kierownik", "kierownik-haslo-9")
ALL_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def add_user(server: ServerProcess, name: str, password: str, role: str) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "server.auth",
            "--database",
            str(server.database),
            "add",
            name,
            "--role",
            role,
            "--password-stdin",
        ],
        input=password + "\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def signed_in(server: ServerProcess, name: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=server.url, timeout=ANSWER_TIMEOUT_S)
    resp = client.post("/login", data={"name": name, "password": password}, follow_redirects=False)
    assert resp.status_code == 303, resp.text
    return client


def issue(peer: Peer, service: str, rid: str) -> dict:
    return peer.request(
        f"{BASE}/kiosk/k1/request",
        {"v": 1, "id": rid, "service": service, "priority": False},
        response_topic=f"{BASE}/kiosk/k1/response/{rid}",
    )


def command(peer: Peer, counter: str, rid: str, action: str) -> dict:
    peer.publish(f"{BASE}/counter/{counter}/command", {"v": 1, "id": rid, "action": action})
    return peer.expect(f"{BASE}/counter/{counter}/reply", where=lambda d: d["id"] == rid)


def service_form(hours: dict[str, str], daily_limit: str, cutoff: str = "0", target: str = "30") -> dict[str, str]:
    form = {f"hours_{d}": hours.get(d, "") for d in ALL_DAYS}
    return {**form, "daily_limit": daily_limit, "cutoff_min": cutoff, "target_wait_min": target, "priority": "0"}


def screenshot(name: str, page: str) -> None:
    """Save the page and, where Chromium is installed, a PNG of it under tests/artifacts/ to look at."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    source = ARTIFACTS / f"{name}.html"
    source.write_text(page, encoding="utf-8")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser:
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--window-size=1280,1600",
                f"--screenshot={ARTIFACTS / (name + '.png')}",
                source.as_uri(),
            ],
            capture_output=True,
            timeout=60,
            check=False,
        )


def db_rows(server: ServerProcess, table: str) -> list[tuple]:
    conn = sqlite3.connect(server.database)
    try:
        return conn.execute(f"SELECT * FROM {table}").fetchall()  # noqa: S608 (table names are ours)
    finally:
        conn.close()


def test_admin_edits_take_effect_at_once_are_audited_and_survive_a_restart(server, peer, broker):
    add_user(server, *ADMIN, role="admin")
    admin = signed_in(server, *ADMIN)
    peer.subscribe(
        f"{BASE}/kiosk/k1/response/#", f"{BASE}/counter/2/reply", f"{BASE}/counter/2/state", f"{BASE}/services"
    )
    assert issue(peer, "pj", "r1")["ticket"]["number"] == "B001"
    assert issue(peer, "rej", "r2")["ticket"]["number"] == "A001"

    page = admin.get("/admin")
    assert page.status_code == 200 and "Stanowiska" in page.text and 'value="pj, rej"' in page.text
    screenshot("admin_page", page.text)

    # Counter 2 prefers pj; the admin makes it a registration-only counter.
    saved = admin.post(
        "/admin/counters/2", data={"name": "Stanowisko 2 — rejestracja", "services": "rej"}, follow_redirects=False
    )
    assert saved.status_code == 303
    state = peer.expect(f"{BASE}/counter/2/state", where=lambda d: d["services"] == ["rej"])
    assert state["name"] == "Stanowisko 2 — rejestracja"
    assert server.get("/api/counters/2").json()["services"] == ["rej"]
    called = command(peer, "2", "c1", "next")
    assert called["ok"] and called["ticket"]["number"] == "A001"  # before the edit it would have been B001

    # A daily limit of 2 for registration: one more ticket, then the kiosk is refused.
    limited = admin.post(
        "/admin/services/rej", data=service_form({d: "00:00-24:00" for d in ALL_DAYS}, "2"), follow_redirects=False
    )
    assert limited.status_code == 303
    assert issue(peer, "rej", "r3")["ticket"]["number"] == "A002"
    refused = issue(peer, "rej", "r4")
    assert not refused["ok"] and refused["error"]["code"] == "limit_reached"

    # Passports open on weekdays 08:00-16:00 only: the kiosks' service list shows it at once.
    weekdays = {d: "08:00-16:00" for d in ALL_DAYS[:5]}
    hours = admin.post("/admin/services/pasz", data=service_form(weekdays, "", target="40"), follow_redirects=False)
    assert hours.status_code == 303
    msg = peer.expect(
        f"{BASE}/services", where=lambda d: any(s["id"] == "pasz" and s["opens_at"] != "00:00" for s in d["services"])
    )
    weekday = datetime.fromisoformat(msg["server_time"]).weekday()
    expected = ("08:00", "16:00") if weekday < 5 else (None, None)
    pasz = next(s for s in msg["services"] if s["id"] == "pasz")
    assert (pasz["opens_at"], pasz["closes_at"]) == expected
    api_pasz = next(s for s in server.get("/api/services").json() if s["id"] == "pasz")
    assert (api_pasz["opens_at"], api_pasz["closes_at"]) == expected

    # The audit log: newest first, who, when (office time), old and new values.
    log = admin.get("/admin/api/changes").json()
    assert [(r["target"], r["field"]) for r in log] == [
        ("service:pasz", "hours"),
        ("service:rej", "daily_limit"),
        ("counter:2", "services"),
        ("counter:2", "name"),
    ]
    assert {r["user"] for r in log} == {ADMIN[0]}
    assert log[0]["old"] == {d: "00:00-24:00" for d in ALL_DAYS} and log[0]["new"] == weekdays
    assert (log[1]["old"], log[1]["new"]) == (9999, 2)
    assert (log[2]["old"], log[2]["new"]) == (["pj", "rej"], ["rej"])
    when = datetime.fromisoformat(log[0]["at"])
    assert when.utcoffset() is not None and when.date() == datetime.fromisoformat(msg["server_time"]).date()
    page_log = admin.get("/admin/log?lang=en")
    assert page_log.status_code == 200 and "Change log" in page_log.text
    shown = html.unescape(page_log.text)
    assert '"Stanowisko 2" → "Stanowisko 2 — rejestracja"' in re.sub(r"</?code>", "", shown)
    assert '["pj", "rej"]' in shown and ADMIN[0] in shown
    screenshot("admin_log", page_log.text)

    # A restart keeps every edit: the file is the base, the database holds the overrides.
    server.stop()
    server.start()
    after = server.get("/api/counters/2").json()
    assert after["services"] == ["rej"] and after["name"] == "Stanowisko 2 — rejestracja"
    assert next(s for s in server.get("/api/services").json() if s["id"] == "pasz")["opens_at"] == expected[0]
    peer2 = Peer(broker.port)  # a fresh subscriber sees the retained state
    try:
        peer2.subscribe(f"{BASE}/kiosk/k1/response/#", f"{BASE}/counter/2/reply", f"{BASE}/services")
        retained = peer2.expect(f"{BASE}/services")
        assert next(s for s in retained["services"] if s["id"] == "pasz")["closes_at"] == expected[1]
        assert issue(peer2, "rej", "r5")["error"]["code"] == "limit_reached"
        again = command(peer2, "2", "c2", "next")
        assert again["ok"] and again["ticket"]["number"] == "A002"  # B001 still waits for counter 1
    finally:
        peer2.close()
    assert len(signed_in(server, *ADMIN).get("/admin/api/changes").json()) == 4


def test_manager_gets_403_and_anonymous_is_sent_to_login_and_nothing_changes(server):
    add_user(server, *MANAGER, role="manager")
    manager = signed_in(server, *MANAGER)
    assert manager.get("/admin").status_code == 403
    assert manager.get("/admin/api/changes").status_code == 403
    assert manager.post("/admin/counters/2", data={"name": "X", "services": "rej"}).status_code == 403
    assert manager.post("/admin/api/services/rej", json={"daily_limit": 5}).status_code == 403
    assert manager.get("/reports/api/live").status_code == 200  # the manager's own pages still work

    anon = httpx.Client(base_url=server.url, timeout=10)
    page = anon.get("/admin?lang=en", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login?next=%2Fadmin")
    assert anon.get("/admin/api/changes").status_code == 401
    assert anon.post("/admin/api/counters/2", json={"services": ["rej"]}).status_code == 401

    assert server.get("/api/counters/2").json()["services"] == ["pj", "rej"]
    assert db_rows(server, "admin_changes") == [] and db_rows(server, "config_overrides") == []


def test_invalid_values_get_422_naming_the_field_and_change_nothing(server):
    add_user(server, *ADMIN, role="admin")
    admin = signed_in(server, *ADMIN)
    services_before = server.get("/api/services").json()
    open_all = {d: "00:00-24:00" for d in ALL_DAYS}

    backwards = admin.post("/admin/services/rej?lang=en", data=service_form({**open_all, "mon": "16:00-08:00"}, "50"))
    assert backwards.status_code == 422
    assert "Not saved" in backwards.text and "service:rej hours" in backwards.text
    assert "closing time must be after opening time" in backwards.text
    assert 'value="16:00-08:00"' in backwards.text  # the admin's input is kept for correction
    screenshot("admin_error", backwards.text)

    unknown = admin.post("/admin/counters/2", data={"name": "Stanowisko 2", "services": "pj, xyz"})
    assert unknown.status_code == 422
    assert "Nie zapisano" in unknown.text and "counter:2 services" in unknown.text and "xyz" in unknown.text

    zero = admin.post("/admin/services/rej", data=service_form(open_all, "0"))
    assert zero.status_code == 422 and "service:rej daily_limit" in zero.text

    api_zero = admin.post("/admin/api/services/rej", json={"daily_limit": 0})
    assert api_zero.status_code == 422 and any("daily_limit" in p for p in api_zero.json()["detail"])
    api_id = admin.post("/admin/api/services/rej", json={"prefix": "Z"})
    assert api_id.status_code == 422 and "prefix" in api_id.json()["detail"][0]

    assert server.get("/api/services").json() == services_before
    assert server.get("/api/counters/2").json()["services"] == ["pj", "rej"]
    assert db_rows(server, "admin_changes") == [] and db_rows(server, "config_overrides") == []
    assert admin.get("/admin/api/changes").json() == []


def test_engine_refuses_a_config_that_reshapes_the_queues(tmp_path):
    """Ids, prefixes and zones key the waiting queues and tickets: the running engine keeps them."""
    cfg = load_config(write_config(tmp_path / "office.toml", 1883, 8080))
    engine = QueueEngine(cfg, clock=lambda: datetime.now(UTC))
    services = [s.model_dump() for s in cfg.services]
    services[0]["prefix"] = "Z"
    moved = SiteConfig.model_validate({**cfg.model_dump(), "services": services})
    with pytest.raises(ValueError, match="cannot change while running"):
        engine.apply_config(moved)
    assert engine.services["rej"].prefix == "A" and engine.config is cfg


def test_login_returns_an_admin_to_the_admin_page_but_never_off_site(server):
    add_user(server, "szef", "a-long-admin-password", "admin")
    with httpx.Client(base_url=server.url, timeout=10) as client:
        back = client.post(
            "/login",
            data={"name": "szef", "password": "a-long-admin-password", "next": "/admin"},
            follow_redirects=False,
        )
        assert back.status_code == 303 and back.headers["location"] == "/admin"
        away = client.post(
            "/login",
            data={"name": "szef", "password": "a-long-admin-password", "next": "//evil.example/admin"},
            follow_redirects=False,
        )
        assert away.headers["location"] == "/reports"


def test_a_new_target_counts_in_the_reports_at_once_as_in_the_live_view(server, peer):
    add_user(server, *ADMIN, role="admin")
    add_user(server, *MANAGER, role="manager")
    admin, manager = signed_in(server, *ADMIN), signed_in(server, *MANAGER)
    peer.subscribe(f"{BASE}/kiosk/k1/response/#")
    assert issue(peer, "pj", "r1")["ok"]

    def pj_targets() -> tuple[int, int]:
        summary = manager.get("/reports/api/summary").json()
        live = manager.get("/reports/api/live").json()
        by_service = next(s for s in summary["by_service"] if s["service"] == "pj")
        now = next(s for s in live["services"] if s["service"] == "pj")
        return by_service["target_wait_s"], now["target_wait_s"]

    assert pj_targets() == (20 * 60, 20 * 60)
    saved = admin.post(
        "/admin/services/pj",
        data=service_form({d: "00:00-24:00" for d in ALL_DAYS}, "", target="5"),
        follow_redirects=False,
    )
    assert saved.status_code == 303
    assert pj_targets() == (5 * 60, 5 * 60)
