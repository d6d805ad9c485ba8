"""The live view: per service now, with an alert once the longest wait passes the target."""

from __future__ import annotations

import base64

from tests.harness import Peer, ServerProcess, free_port, run_tool, write_config

BASE = "numerek"
AUTH = {"Authorization": "Basic " + base64.b64encode(b"szef:haslo-szefa-1").decode()}


def issue(peer: Peer, service: str, rid: str) -> dict:
    return peer.request(
        f"{BASE}/kiosk/k1/request",
        {"v": 1, "id": rid, "service": service, "priority": False},
        response_topic=f"{BASE}/kiosk/k1/response/{rid}",
    )


def test_live_view_shows_queues_and_alerts_when_a_wait_passes_its_target(tmp_path, broker, peer):
    http_port = free_port()
    cfg = write_config(tmp_path / "office.toml", broker.port, http_port)
    server = ServerProcess(cfg, http_port=http_port, args=["--clock-start", "2030-01-07T09:00:00"]).start()
    try:
        added = run_tool(
            "server.auth", "--config", str(cfg), "add", "szef", "--password-stdin", input="haslo-szefa-1\n", timeout=60
        )
        assert added.returncode == 0, added.stderr
        assert server.anonymous_get("/reports/api/live").status_code == 401
        peer.subscribe(f"{BASE}/kiosk/k1/response/#")
        for i in range(3):
            assert issue(peer, "rej", f"r{i}")["ok"]
        assert issue(peer, "pasz", "p1")["ok"]
        called = server.post("/api/counters/3/commands", json={"v": 1, "id": "c1", "action": "next"}).json()
        assert called["ok"] and called["ticket"]["number"] == "P001"
        live = {s["service"]: s for s in server.get("/reports/api/live", headers=AUTH).json()["services"]}
        assert live["rej"]["waiting"] == 3 and live["rej"]["longest_wait_s"] < 120
        assert live["rej"]["over_target"] is False
        assert live["pasz"]["waiting"] == 0 and live["pasz"]["being_served"] == 1 and live["pasz"]["open_counters"] == 1
    finally:
        server.stop()
    # 45 minutes later (the same tickets, restored from disk): registration is over its 30-minute target
    later = ServerProcess(cfg, http_port=http_port, args=["--clock-start", "2030-01-07T09:45:00"]).start()
    try:
        live = {s["service"]: s for s in later.get("/reports/api/live", headers=AUTH).json()["services"]}
        assert live["rej"]["over_target"] is True and 44 * 60 <= live["rej"]["longest_wait_s"] < 50 * 60
        assert live["pj"]["over_target"] is False
        page = later.get("/reports/live", headers=AUTH)
        assert page.status_code == 200
        row = page.text.split('data-service="rej"')[0].rsplit("<tr", 1)[1]
        assert 'class="alert"' in row
        assert "PRZEKROCZONY CEL" in page.text
        counters = page.text.split('id="counters"')[1]
        assert "Stanowisko 3</td><td>otwarte</td><td>P001" in counters  # still serving the passport client
        english = later.get("/reports/live?lang=en", headers=AUTH)
        assert "OVER TARGET" in english.text and "Vehicle registration" in english.text
    finally:
        later.stop()


def test_password_guessing_is_slowed_down_after_many_wrong_tries(server):
    wrong = {"Authorization": "Basic " + base64.b64encode(b"szef:zgaduje-haslo").decode()}
    codes = [server.get("/reports/api/summary", headers=wrong).status_code for _ in range(21)]
    # 20 password checks per address in 5 minutes; the test clerk's own sign-in was the first.
    assert codes[:19] == [401] * 19
    assert codes[19:] == [429, 429]
    form = server.post("/login", data={"name": "szef", "password": "inne-zgadywanie"})
    assert form.status_code == 429 and "too many" in form.json()["detail"]


def test_a_kiosk_out_of_paper_shows_on_the_managers_live_view(tmp_path, broker, peer):
    """The kiosk tells the resident "staff have been notified": the manager's live page must
    actually show it (and the server's journal says it too)."""
    from tests.harness import wait_for

    http_port = free_port()
    cfg = write_config(tmp_path / "office.toml", broker.port, http_port)
    server = ServerProcess(cfg, http_port=http_port).start()
    try:
        added = run_tool(
            "server.auth", "--config", str(cfg), "add", "szef", "--password-stdin", input="haslo-szefa-1\n", timeout=60
        )
        assert added.returncode == 0, added.stderr
        peer.publish(f"{BASE}/device/kiosk-k1/availability", "online", retain=True)
        peer.publish(
            f"{BASE}/kiosk/k1/fault",
            {"v": 1, "device": "kiosk-k1", "fault": "paper_out", "message": "rolka pusta"},
            retain=True,
        )

        def kiosk_row() -> dict | None:
            devices = server.get("/reports/api/live", headers=AUTH).json()["devices"]
            return next((d for d in devices if d["device"] == "kiosk-k1" and d["fault"] == "paper_out"), None)

        row = wait_for(kiosk_row, 10, "the kiosk's fault in the live figures")
        assert row["alert"] is True and row["availability"] == "online"

        def devices_table(lang: str = "pl") -> str:
            page = server.get(f"/reports/live?lang={lang}", headers=AUTH).text
            return page.split('<table id="devices">', 1)[1].split("</table>", 1)[0]

        table = devices_table()
        assert "kiosk-k1" in table and "BRAK PAPIERU" in table and "rolka pusta" in table and 'class="alert"' in table
        assert "OUT OF PAPER" in devices_table("en")
        wait_for(lambda: "kiosk-k1: printer paper_out" in server.log(), 10, "a warning in the server's log")
        peer.publish(f"{BASE}/kiosk/k1/fault", {"v": 1, "device": "kiosk-k1", "fault": "ok"}, retain=True)
        wait_for(lambda: not kiosk_row(), 10, "the fault cleared")
        assert "BRAK PAPIERU" not in devices_table() and "sprawna" in devices_table()
    finally:
        server.stop()
