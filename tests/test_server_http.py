"""The HTTP API of the real server process: what a phone, a manager's browser and the
clerk panel see. Bad requests get clear 4xx answers, never a 500."""

from __future__ import annotations

from tests.test_server_mqtt import BASE, command, issue


def test_health_reports_broker_and_schema(server):
    h = server.get("/health").json()
    assert h["status"] == "ok" and h["broker_connected"] is True
    assert h["schema_version"] >= 1
    assert h["office"] == "Urząd Testowy w Łodzi"
    assert h["server_time"].endswith(("+01:00", "+02:00"))


def test_service_list_shows_names_waiting_and_availability(server, peer):
    peer.subscribe(f"{BASE}/kiosk/k1/response/#")
    issue(peer, "k1", "pj", "r1")
    services = {s["id"]: s for s in server.get("/api/services").json()}
    assert services["rej"]["name"]["pl"] == "Rejestracja pojazdów"
    assert services["pj"]["waiting"] == 1
    assert all(s["available"] for s in services.values())


def test_live_queues_show_waiting_served_and_longest_wait(server, peer):
    peer.subscribe(f"{BASE}/kiosk/k1/response/#", f"{BASE}/counter/1/reply")
    for i in range(3):
        issue(peer, "k1", "rej", f"r{i}")
    command(peer, "1", "n1", "next")
    q = {row["service"]: row for row in server.get("/api/queues").json()}
    assert (q["rej"]["waiting"], q["rej"]["being_served"], q["rej"]["open_counters"]) == (2, 1, 1)
    assert q["rej"]["longest_wait_s"] >= 0 and q["rej"]["over_target"] is False
    assert q["pasz"]["waiting"] == 0


def test_ticket_status_by_token_follows_the_ticket(server, peer):
    peer.subscribe(f"{BASE}/kiosk/k1/response/#", f"{BASE}/counter/1/reply")
    first = issue(peer, "k1", "rej", "r1")["ticket"]
    second = issue(peer, "k1", "rej", "r2")["ticket"]
    status = server.get(f"/api/tickets/{second['token']}").json()
    assert (status["number"], status["status"], status["people_ahead"]) == ("A002", "waiting", 1)
    command(peer, "1", "n1", "next")
    command(peer, "1", "n2", "next")
    status = server.get(f"/api/tickets/{second['token']}").json()
    assert (status["status"], status["counter_name"]) == ("called", "Stanowisko 1")
    done = server.get(f"/api/tickets/{first['token']}").json()
    assert done["status"] == "finished"  # read back from SQLite, no longer in a queue
    page = server.get(second["status_path"])
    assert page.status_code == 200 and "A002" in page.text and "Zapraszamy do stanowiska" in page.text
    english = server.get(second["status_path"] + "?lang=en")
    assert "Please go to" in english.text


def test_unknown_or_absurd_tokens_are_404_not_500(server):
    for token in ("nope", "x" * 5000, "%00", "..%2F..%2Fetc"):
        r = server.get(f"/api/tickets/{token}")
        assert r.status_code == 404, (token, r.status_code)
    r = server.get("/t/nope")
    assert r.status_code == 404 and "Nie znaleziono biletu" in r.text


def test_bad_counter_commands_over_http_are_4xx_and_change_nothing(server):
    before = server.get("/api/counters/1").json()
    assert server.post("/api/counters/99/commands", json={"v": 1, "id": "a", "action": "next"}).status_code == 404
    r = server.post("/api/counters/1/commands", json={"v": 1, "id": "b", "action": "explode"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    assert (
        server.post(
            "/api/counters/1/commands", content=b"not json", headers={"content-type": "application/json"}
        ).status_code
        == 422
    )
    r = server.post("/api/counters/1/commands", json={"v": 1, "id": "c", "action": "recall"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "no_current_ticket"
    assert server.get("/api/counters/1").json()["ticket"] == before["ticket"]


def test_openapi_schema_is_served(server):
    spec = server.get("/openapi.json").json()
    assert "/api/queues" in spec["paths"] and "/api/tickets/{token}" in spec["paths"]


def test_a_device_whose_retained_state_is_cleared_is_no_longer_listed(server, peer):
    """``numerek-provision revoke`` clears a device's retained availability and fault: the
    device list then forgets it instead of showing it with a blank status."""
    from tests.harness import wait_for

    peer.subscribe(f"{BASE}/server/errors")
    peer.publish(f"{BASE}/device/kiosk-k9/availability", "online", retain=True)
    fault = {"v": 1, "device": "kiosk-k9", "fault": "paper_out", "message": "brak papieru"}
    peer.publish(f"{BASE}/kiosk/k9/fault", fault, retain=True)
    wait_for(
        lambda: (
            server.get("/api/devices").json().get("kiosk-k9")
            == {"availability": "online", "fault": "paper_out", "message": "brak papieru"}
        ),
        10,
        "the kiosk listed",
    )
    peer.publish(f"{BASE}/device/kiosk-k9/availability", b"", retain=True)
    peer.publish(f"{BASE}/kiosk/k9/fault", b"", retain=True)
    wait_for(lambda: "kiosk-k9" not in server.get("/api/devices").json(), 10, "the revoked kiosk forgotten")
    assert peer.latest(f"{BASE}/server/errors") is None  # clearing is not an invalid request


def test_the_service_list_gives_a_priority_ticket_its_own_queue_and_estimate(server, peer):
    """A kiosk on its priority path must not show the normal queue: only priority tickets are ahead."""
    peer.subscribe(f"{BASE}/kiosk/k1/response/#")
    for i in range(4):
        issue(peer, "k1", "rej", f"n{i}")
    issue(peer, "k1", "rej", "p0", priority=True)
    rej = next(s for s in server.get("/api/services").json() if s["id"] == "rej")
    assert rej["waiting"] == 5 and rej["priority_ahead"] == 1
    assert rej["priority_estimated_wait_min"] < rej["estimated_wait_min"]


def test_a_clerk_cannot_rate_their_own_service_over_http(server, peer):
    from tests.test_counter_support import events

    peer.subscribe(f"{BASE}/kiosk/k1/response/#")
    issue(peer, "k1", "rej", "r1")
    assert (
        server.post("/api/counters/1/commands", json={"v": 1, "id": "n1", "action": "next", "current": ""}).status_code
        == 200
    )
    r = server.post("/api/counters/1/commands", json={"v": 1, "id": "r5", "action": "rate", "rating": 5})
    assert r.status_code == 403 and "rating buttons" in r.json()["detail"]
    assert events(server.database, kinds=("rating",)) == []
