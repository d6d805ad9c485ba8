"""The server over a real broker: tickets, calls, retained state, errors, duplicates."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.harness import Peer, wait_for

BASE = "numerek"


def issue(peer: Peer, kiosk: str, service: str, rid: str, priority: bool = False) -> dict:
    return peer.request(
        f"{BASE}/kiosk/{kiosk}/request",
        {"v": 1, "id": rid, "service": service, "priority": priority},
        response_topic=f"{BASE}/kiosk/{kiosk}/response/{rid}",
    )


def command(peer: Peer, counter: str, rid: str, action: str, **fields) -> dict:
    peer.publish(f"{BASE}/counter/{counter}/command", {"v": 1, "id": rid, "action": action, **fields})
    return peer.expect(f"{BASE}/counter/{counter}/reply", where=lambda d: d["id"] == rid)


def test_kiosk_request_gets_a_numbered_ticket_with_estimate(server, peer):
    peer.subscribe(f"{BASE}/kiosk/k1/response/#")
    first = issue(peer, "k1", "rej", "r1")
    second = issue(peer, "k1", "rej", "r2")
    assert first["ok"] and second["ok"]
    assert first["ticket"]["number"] == "A001"
    assert second["ticket"]["number"] == "A002"
    assert second["ticket"]["people_ahead"] == 1
    assert first["ticket"]["token"] != second["ticket"]["token"]
    assert len(first["ticket"]["token"]) >= 16


def test_next_calls_the_first_ticket_and_announces_it_to_the_zone(server, peer):
    peer.subscribe(f"{BASE}/kiosk/k1/response/#", f"{BASE}/counter/1/reply", f"{BASE}/zone/+/call")
    issue(peer, "k1", "rej", "r1")
    reply = command(peer, "1", "c1", "next")
    assert reply["ok"] and reply["ticket"]["number"] == "A001"
    call = peer.expect(f"{BASE}/zone/hall/call")
    assert (call["ticket"], call["counter"], call["counter_name"]) == ("A001", "1", "Stanowisko 1")


def test_duplicate_command_id_calls_only_one_ticket(server, peer):
    peer.subscribe(f"{BASE}/kiosk/k1/response/#", f"{BASE}/counter/1/reply", f"{BASE}/zone/+/call")
    issue(peer, "k1", "rej", "r1")
    issue(peer, "k1", "rej", "r2")
    first = command(peer, "1", "same-id", "next")
    again = command(peer, "1", "same-id", "next")
    assert first == again
    assert first["ticket"]["number"] == "A001"
    state = server.get("/api/counters/1").json()
    assert state["ticket"]["number"] == "A001"
    assert state["waiting"]["rej"] == 1


def test_double_press_with_current_ticket_is_refused_as_stale(server, peer):
    peer.subscribe(f"{BASE}/kiosk/k1/response/#", f"{BASE}/counter/1/reply")
    for i in range(3):
        issue(peer, "k1", "rej", f"r{i}")
    command(peer, "1", "a", "next")
    one = command(peer, "1", "b", "next", current="A001")
    two = command(peer, "1", "c", "next", current="A001")
    assert one["ok"] and one["ticket"]["number"] == "A002"
    assert not two["ok"] and two["error"]["code"] == "stale"
    assert server.get("/api/counters/1").json()["ticket"]["number"] == "A002"


def test_duplicate_kiosk_request_issues_one_ticket(server, peer):
    peer.subscribe(f"{BASE}/kiosk/k1/response/#")
    a = issue(peer, "k1", "rej", "same")
    b = issue(peer, "k1", "rej", "same")
    assert a["ticket"]["number"] == b["ticket"]["number"] == "A001"
    assert issue(peer, "k1", "rej", "other")["ticket"]["number"] == "A002"


def test_retained_state_shows_truth_to_a_late_subscriber(server, peer, broker):
    peer.subscribe(f"{BASE}/kiosk/k1/response/#", f"{BASE}/counter/1/reply")
    issue(peer, "k1", "rej", "r1")
    issue(peer, "k1", "pj", "r2")
    command(peer, "1", "c1", "next")
    late = Peer(broker.port)
    try:
        late.subscribe(
            f"{BASE}/counter/1/state", f"{BASE}/zone/hall/board", f"{BASE}/services", f"{BASE}/server/availability"
        )
        # Retained state follows a change within STATE_INTERVAL_S (docs/protocol.md): a late
        # subscriber may first get the copy from just before, then the truth.
        state = wait_for(
            lambda: (s := late.latest(f"{BASE}/counter/1/state")) and s["ticket"] and s, what="counter state"
        )
        assert state["status"] == "open" and state["ticket"]["number"] == "A001"
        assert state["waiting"] == {"rej": 0, "pj": 1}
        board = wait_for(lambda: (b := late.latest(f"{BASE}/zone/hall/board")) and b["calls"] and b, what="board")
        assert board["calls"][0]["ticket"] == "A001"
        services = wait_for(
            lambda: (
                (m := late.latest(f"{BASE}/services"))
                and {s["id"]: s["waiting"] for s in m["services"]} == {"rej": 0, "pj": 1, "pasz": 0}
            ),
            what="services with the waiting counts",
        )
        assert services
        wait_for(lambda: any(t.endswith("server/availability") and p == b"online" for t, p, _ in late.seen))
    finally:
        late.close()


def test_malformed_payloads_get_error_replies_and_change_nothing(server, peer):
    peer.subscribe(f"{BASE}/counter/+/reply", f"{BASE}/server/errors", f"{BASE}/kiosk/k1/response")
    before = server.get("/api/counters/1").json()
    bad = [
        b"not json",
        b"[1,2,3]",
        b'{"v": 1, "id": "x", "action": "explode"}',
        b'{"v": 7, "id": "y", "action": "next"}',
        b'{"v": 1, "id": "z", "action": "next", "extra": 1}',
        b"{" + b" " * 10000 + b"}",
        b"\xff\xfe",
    ]
    codes = []
    for payload in bad:
        peer.publish(f"{BASE}/counter/1/command", payload)
        codes.append(peer.expect(f"{BASE}/counter/1/reply")["error"]["code"])
    assert codes == [
        "invalid_request",
        "invalid_request",
        "invalid_request",
        "unsupported_version",
        "invalid_request",
        "invalid_request",
        "invalid_request",
    ]
    peer.publish(f"{BASE}/counter/1/bogus", b"{}")
    err = peer.expect(f"{BASE}/server/errors")
    assert err["error"]["code"] == "unknown_topic" and err["topic"] == f"{BASE}/counter/1/bogus"
    peer.publish(f"{BASE}/counter/99/command", {"v": 1, "id": "q", "action": "next"})
    assert peer.expect(f"{BASE}/counter/99/reply")["error"]["code"] == "unknown_counter"
    peer.publish(f"{BASE}/kiosk/k1/request", {"v": 1, "id": "k", "service": "nope"})
    assert peer.expect(f"{BASE}/kiosk/k1/response")["error"]["code"] == "unknown_service"
    assert server.get("/api/counters/1").json()["ticket"] == before["ticket"]
    assert all(q["waiting"] == 0 for q in server.get("/api/queues").json())
    assert server.get("/health").json()["status"] == "ok"


def test_response_topic_outside_the_kiosks_own_tree_is_not_used(server, peer):
    """A kiosk cannot make the server publish its answer onto a display's topic."""
    from protocol.mqtt import response_properties

    peer.subscribe(f"{BASE}/zone/hall/call", f"{BASE}/kiosk/k1/response")
    peer.client.publish(
        f"{BASE}/kiosk/k1/request",
        '{"v": 1, "id": "evil", "service": "rej"}',
        qos=1,
        properties=response_properties(f"{BASE}/zone/hall/call", b"x"),
    ).wait_for_publish(5)
    answer = peer.expect(f"{BASE}/kiosk/k1/response")
    assert answer["id"] == "evil" and answer["ticket"]["number"] == "A001"
    assert not any(topic == f"{BASE}/zone/hall/call" for topic, _p, _r in peer.seen)


def test_calls_made_while_the_broker_is_down_are_not_announced_late(server, peer, broker):
    """A clerk-panel call during a broker outage shows on the board after reconnect, silently."""
    peer.subscribe(f"{BASE}/kiosk/k1/response/#")
    issue(peer, "k1", "rej", "r1")
    issue(peer, "k1", "rej", "r2")
    peer.close()
    broker.stop()
    wait_for(lambda: not server.get("/health").json()["broker_connected"], what="server sees the broker gone")
    reply = server.post("/api/counters/1/commands", json={"v": 1, "id": "offline-1", "action": "next"}).json()
    assert reply["ok"] and reply["ticket"]["number"] == "A001"
    broker.start()
    display = Peer(broker.port)  # connects before the server's reconnect (paho waits ≥ 1 s)
    try:
        display.subscribe(f"{BASE}/zone/hall/call", f"{BASE}/zone/hall/board")
        board = wait_for(
            lambda: (b := display.latest(f"{BASE}/zone/hall/board")) and b["calls"] and b, what="board after reconnect"
        )
        assert board["calls"][0]["ticket"] == "A001"
        # The board shows the truth; a live call for A001 would now be announced as if new.
        reply = server.post("/api/counters/1/commands", json={"v": 1, "id": "online-1", "action": "next"}).json()
        assert reply["ticket"]["number"] == "A002"
        live = display.expect(f"{BASE}/zone/hall/call")
        assert live["ticket"] == "A002"  # the first call the display hears is the new one
    finally:
        display.close()


def test_kiosk_estimate_is_zero_only_while_a_counter_is_free(server, peer):
    """Nobody ahead but the only open counter busy: the resident waits for the client there."""
    peer.subscribe(f"{BASE}/kiosk/k1/response/#", f"{BASE}/counter/3/reply")
    assert command(peer, "3", "o1", "open")["ok"]  # counter 3 alone serves passports
    first = issue(peer, "k1", "pasz", "p1")
    assert first["ticket"]["people_ahead"] == 0 and first["ticket"]["estimated_wait_min"] == 0  # called at once
    assert command(peer, "3", "n1", "next")["ticket"]["number"] == "P001"  # now busy with P001
    second = issue(peer, "k1", "pasz", "p2")
    assert second["ticket"]["people_ahead"] == 0
    assert second["ticket"]["estimated_wait_min"] > 0


def test_command_past_its_expires_at_is_refused_remembered_and_changes_nothing(server, peer):
    """A press the device already gave up on (its deadline passed) is refused, also when redelivered."""
    import json
    from datetime import UTC, datetime, timedelta

    peer.subscribe(f"{BASE}/kiosk/k1/response/#", f"{BASE}/counter/1/reply", f"{BASE}/zone/+/call")
    issue(peer, "k1", "rej", "r1")
    past = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    late = command(peer, "1", "late-1", "next", current="", expires_at=past)
    assert not late["ok"] and late["error"]["code"] == "expired"
    assert "nothing was done" in late["error"]["message"]
    again = command(peer, "1", "late-1", "next", current="", expires_at=past)
    assert again == late  # remembered: the same answer, no action
    state = server.get("/api/counters/1").json()
    assert state["ticket"] is None and state["status"] == "closed" and state["waiting"]["rej"] == 1
    naive = command(peer, "1", "naive-1", "next", expires_at="2026-11-23T09:15:05")
    assert naive["error"]["code"] == "invalid_request" and "expires_at" in naive["error"]["message"]
    future = (datetime.now(UTC) + timedelta(seconds=30)).isoformat()
    ok = command(peer, "1", "in-time-1", "next", current="", expires_at=future)
    assert ok["ok"] and ok["ticket"]["number"] == "A001"
    assert peer.expect(f"{BASE}/zone/hall/call")["ticket"] == "A001"
    assert not any(json.loads(p)["ticket"] != "A001" for t, p, _r in peer.seen if t.endswith("/call"))


def test_a_quiet_halls_board_keeps_its_calls_however_busy_the_other_hall_is_also_after_a_restart(server, peer):
    """Upstairs calls one passport client, then the main hall calls 100: the upstairs screen
    must still show P001, live and after the server restarts (each zone keeps its own history)."""
    peer.subscribe(f"{BASE}/kiosk/k1/response/#", f"{BASE}/counter/+/reply", f"{BASE}/zone/+/board")
    issue(peer, "k1", "pasz", "p1")
    assert command(peer, "3", "up-1", "next", current="")["ticket"]["number"] == "P001"
    for i in range(100):
        issue(peer, "k1", "rej", f"r{i}")
        command(peer, "1", f"hall-{i}", "next", current="" if i == 0 else f"A{i:03d}")
    board = peer.expect(f"{BASE}/zone/hall/board", where=lambda b: b["calls"] and b["calls"][0]["ticket"] == "A100")
    assert len(board["calls"]) == 10
    upstairs = peer.latest(f"{BASE}/zone/upstairs/board")
    assert [c["ticket"] for c in upstairs["calls"]] == ["P001"]
    server.kill9()
    # What a restarted server rebuilds its boards from: the store's restored state.
    from server.config import load_config
    from server.engine import QueueEngine
    from server.store import Store

    store = Store(str(server.database))
    try:
        engine = QueueEngine(load_config(server.config), lambda: datetime.now(UTC))
        engine.restore(store.load())
    finally:
        store.close()
    assert [e.ticket for e in engine.calls_for_zone("upstairs")] == ["P001"]
    assert len(engine.calls_for_zone("hall")) == 10


def test_a_ticket_request_read_after_its_deadline_issues_no_ticket(server, peer):
    """The kiosk told the resident "no ticket was issued": a request the server only reads
    later (a frozen server, a Wi-Fi blip) must not create a ticket nobody holds."""
    from datetime import timedelta

    peer.subscribe(f"{BASE}/kiosk/k1/response/#")
    past = (datetime.now(UTC) - timedelta(seconds=3)).isoformat()
    late = peer.request(
        f"{BASE}/kiosk/k1/request",
        {"v": 1, "id": "late-1", "service": "rej", "expires_at": past},
        response_topic=f"{BASE}/kiosk/k1/response/late-1",
    )
    assert not late["ok"] and late["error"]["code"] == "expired"
    assert next(q for q in server.get("/api/queues").json() if q["service"] == "rej")["waiting"] == 0
    soon = (datetime.now(UTC) + timedelta(seconds=30)).isoformat()
    ok = peer.request(
        f"{BASE}/kiosk/k1/request",
        {"v": 1, "id": "ok-1", "service": "rej", "expires_at": soon},
        response_topic=f"{BASE}/kiosk/k1/response/ok-1",
    )
    assert ok["ok"] and ok["ticket"]["number"] == "A001"  # the late request used no number either


def test_a_retained_ticket_request_or_command_is_not_carried_out_again_after_a_restart(server, peer):
    """A device that sets the retain flag by mistake: the live request is answered once; the
    broker's stored copy, delivered to the restarted server, issues and calls nothing."""
    peer.subscribe(f"{BASE}/kiosk/k1/response/#", f"{BASE}/counter/1/reply")
    peer.publish(f"{BASE}/kiosk/k1/request", {"v": 1, "id": "ret-1", "service": "pj"}, retain=True)
    peer.publish(f"{BASE}/counter/1/command", {"v": 1, "id": "ret-2", "action": "next"}, retain=True)
    reply = peer.expect(f"{BASE}/counter/1/reply", where=lambda d: d["id"] == "ret-2")
    assert reply["ok"]  # the live delivery was a real press
    server.stop()
    import sqlite3

    db = sqlite3.connect(server.database)
    with db:
        db.execute("DELETE FROM commands")  # as if two days had passed and the ids were pruned
    db.close()
    server.start()
    wait_for(lambda: server.get("/api/counters/1").json()["status"] == "open", 10, "the counter's state")
    peer.publish(f"{BASE}/counter/1/command", {"v": 1, "id": "after", "action": "sync"})  # a sentinel
    peer.expect(f"{BASE}/counter/1/reply", where=lambda d: d["id"] == "after")
    calls = [e for e in server.get("/api/queues").json() if e["service"] == "pj"]
    assert calls[0]["waiting"] == 0 and calls[0]["being_served"] == 1  # still B001 only: no second ticket, no call
    assert server.get("/api/counters/1").json()["ticket"]["number"] == "B001"
