"""Strict reading of device messages, over a real broker and the real server.

Each test sends what a buggy or mistyped device might send and checks what its developer
(or the resident at the kiosk) would notice: a clear error naming the problem, nothing
issued or called, and the server still answering the next good request.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from server.config import load_config
from server.service import REPLY_MEMORY, NumerekServer
from tests.harness import Peer, free_port, wait_for, write_config

BASE = "numerek"


def kiosk_request(peer: Peer, payload: bytes | dict, rid: str) -> dict:
    """Publish a kiosk request (raw bytes or a dict) and return the server's answer to it."""
    topic = f"{BASE}/kiosk/k1/response/{rid}"
    corr = rid.encode()
    from protocol.mqtt import response_properties

    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    peer.client.publish(
        f"{BASE}/kiosk/k1/request", data, qos=1, properties=response_properties(topic, corr)
    ).wait_for_publish(5)
    return peer.expect(topic)


def test_kiosk_request_with_coerced_or_missing_fields_is_refused_naming_the_field(server, peer):
    """``"priority": "yes"``, ``"v": true``, a missing ``v``… used to be guessed at and issue a ticket."""
    peer.subscribe(f"{BASE}/kiosk/k1/response/#")
    bad = {
        "prio-yes": ({"v": 1, "id": "a", "service": "rej", "priority": "yes"}, "priority"),
        "prio-one": ({"v": 1, "id": "b", "service": "rej", "priority": 1}, "priority"),
        "v-true": ({"v": True, "id": "c", "service": "rej"}, "v"),
        "v-float": (b'{"v": 1.0, "id": "d", "service": "rej"}', "v"),
        "v-string": ({"v": "1", "id": "e", "service": "rej"}, "v"),
        "v-missing": ({"id": "f", "service": "rej"}, "v"),
        "id-number": ({"v": 1, "id": 7, "service": "rej"}, "id"),
    }
    for rid, (payload, field) in bad.items():
        answer = kiosk_request(peer, payload, rid)
        assert not answer["ok"] and answer["ticket"] is None, rid
        assert answer["error"]["code"] == "invalid_request", (rid, answer)
        assert answer["error"]["message"].startswith(f"{field}:"), (rid, answer["error"]["message"])
    assert all(q["waiting"] == 0 for q in server.get("/api/queues").json())
    good = kiosk_request(peer, {"v": 1, "id": "ok", "service": "rej", "priority": True}, "ok")
    assert good["ok"] and good["ticket"]["number"] == "A001" and good["ticket"]["priority"] is True
    assert kiosk_request(peer, {"v": 2, "id": "g", "service": "rej"}, "v2")["error"]["code"] == "unsupported_version"


def test_counter_command_with_a_number_as_string_is_refused_and_calls_nobody(server, peer):
    peer.subscribe(f"{BASE}/kiosk/k1/response/#", f"{BASE}/counter/1/reply")
    kiosk_request(peer, {"v": 1, "id": "t1", "service": "rej"}, "t1")
    for rid, payload, field in (
        ("n1", {"v": True, "id": "n1", "action": "next"}, "v"),
        ("n2", {"id": "n2", "action": "next"}, "v"),
        ("n3", {"v": 1, "id": "n3", "action": "next", "current": 5}, "current"),
    ):
        peer.publish(f"{BASE}/counter/1/command", payload)
        reply = peer.expect(f"{BASE}/counter/1/reply", where=lambda d, rid=rid: d["id"] == rid)
        assert reply["error"]["code"] == "invalid_request" and reply["error"]["message"].startswith(f"{field}:")
    assert server.get("/api/counters/1").json()["ticket"] is None  # nobody was called
    peer.publish(f"{BASE}/counter/1/command", {"v": 1, "id": "r1", "action": "rate", "rating": "5"})
    reply = peer.expect(f"{BASE}/counter/1/reply", where=lambda d: d["id"] == "r1")
    assert reply["error"]["code"] == "invalid_request" and "rating" in reply["error"]["message"]


def test_clerk_panel_command_with_v_true_is_refused(server, peer):
    peer.subscribe(f"{BASE}/kiosk/k1/response/#")
    kiosk_request(peer, {"v": 1, "id": "t1", "service": "rej"}, "t1")
    r = server.post("/api/counters/1/commands", json={"v": True, "id": "p1", "action": "next"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    assert r.json()["error"]["message"].startswith("v:")
    assert server.get("/api/counters/1").json()["ticket"] is None
    ok = server.post("/api/counters/1/commands", json={"v": 1, "id": "p2", "action": "next", "current": ""})
    assert ok.status_code == 200 and ok.json()["ticket"]["number"] == "A001"


def test_fault_report_with_v_true_is_refused_and_not_listed(server, peer):
    peer.subscribe(f"{BASE}/server/errors")
    peer.publish(f"{BASE}/kiosk/k1/fault", {"v": True, "device": "kiosk-k1", "fault": "paper_out"})
    err = peer.expect(f"{BASE}/server/errors")
    assert err["topic"] == f"{BASE}/kiosk/k1/fault" and err["error"]["code"] == "invalid_request"
    assert err["error"]["message"].startswith("v:")
    peer.publish(f"{BASE}/kiosk/k1/fault", {"v": 1, "device": "kiosk-k1", "fault": "paper_out", "message": 5})
    err = peer.expect(f"{BASE}/server/errors")
    assert err["error"]["message"].startswith("message:")
    assert "kiosk-k1" not in server.get("/api/devices").json()


def test_messages_on_unknown_topics_get_unknown_topic_errors_but_own_and_retained_output_does_not(
    tmp_path, broker, server, peer
):
    """A device's typo is reported; the server's own publications and others' retained state are not."""
    peer.subscribe(f"{BASE}/server/errors", f"{BASE}/kiosk/k1/response/#", f"{BASE}/counter/1/reply")
    typos = [
        f"{BASE}/counter/4",
        f"{BASE}/kiosk/k1/foo",
        f"{BASE}/foo/bar",
        f"{BASE}/foo",
        f"{BASE}/counter/1/command/x",
        f"{BASE}/zone/hall/cal",
        f"{BASE}/counter//command",
    ]
    for topic in typos:
        peer.publish(topic, {"v": 1, "id": "x", "action": "next"})
        err = peer.expect(f"{BASE}/server/errors")
        assert (err["topic"], err["error"]["code"]) == (topic, "unknown_topic")
    # Make the server publish everything it publishes: response, reply, call, state, board, services.
    kiosk_request(peer, {"v": 1, "id": "t1", "service": "rej"}, "t1")
    peer.publish(f"{BASE}/counter/1/command", {"v": 1, "id": "c1", "action": "next"})
    peer.expect(f"{BASE}/counter/1/reply")
    server.stop()
    # While it is down: someone else's retained state under the base, a display's availability.
    other = Peer(broker.port)
    try:
        other.publish(f"{BASE}/display/hall-1/state", b"{}", retain=True)
        other.publish(f"{BASE}/device/display-hall-1/availability", b"online", retain=True)
        server.start()  # it now also receives its own retained state and those from the broker
        peer.publish(f"{BASE}/sentinel", b"")
        err = peer.expect(f"{BASE}/server/errors", timeout=10)
        assert err["topic"] == f"{BASE}/sentinel"  # nothing was refused in between
        errors = [json.loads(p)["topic"] for t, p, _r in peer.seen if t == f"{BASE}/server/errors"]
        assert errors == [*typos, f"{BASE}/sentinel"]
        assert server.get("/api/devices").json()["display-hall-1"]["availability"] == "online"
    finally:
        other.publish(f"{BASE}/display/hall-1/state", b"", retain=True)
        other.close()


def test_clerk_panel_command_over_the_size_limit_is_refused_and_changes_nothing(server, peer):
    peer.subscribe(f"{BASE}/kiosk/k1/response/#")
    kiosk_request(peer, {"v": 1, "id": "t1", "service": "rej"}, "t1")
    big = {"v": 1, "id": "big", "action": "next", "current": "A" * 5000}
    r = server.post("/api/counters/1/commands", json=big)
    assert r.status_code == 413  # refused by its size before the body is read (server/web_security.py)
    assert "over 4096 bytes" in r.json()["detail"]
    assert server.get("/api/counters/1").json()["ticket"] is None
    ok = server.post("/api/counters/1/commands", json={"v": 1, "id": "small", "action": "next"})
    assert ok.json()["ticket"]["number"] == "A001"


@pytest.mark.parametrize("topic", [f"{BASE}/counter/1/command", f"{BASE}/kiosk/k1/request"])
def test_deeply_nested_json_is_an_invalid_request_and_the_server_keeps_working(server, peer, topic):
    reply_topic = f"{BASE}/counter/1/reply" if "counter" in topic else f"{BASE}/kiosk/k1/response"
    peer.subscribe(reply_topic)
    for payload in (b"[" * 4000, b'{"v": 1, "id": "n", "action": "next", "current": ' + b"[" * 3000):
        peer.publish(topic, payload)
        answer = peer.expect(reply_topic)
        assert answer["error"]["code"] == "invalid_request", answer
        assert "nested too deeply" in answer["error"]["message"]
    good = {"v": 1, "id": "fine", "action": "next"} if "counter" in topic else {"v": 1, "id": "fine", "service": "rej"}
    peer.publish(topic, good)
    assert peer.expect(reply_topic, where=lambda d: d["id"] == "fine")["ok"]
    assert server.get("/health").json()["status"] == "ok"


class SteerableClock:
    """The real time plus an offset the test moves forward (the engine's clock is injectable)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def test_old_replies_are_pruned_from_memory_and_file_while_recent_ones_still_deduplicate(tmp_path, broker, peer):
    """The real server (in this process, for its clock) over the real broker and SQLite file."""
    cfg = load_config(write_config(tmp_path / "office.toml", broker.port, free_port()))
    clock = SteerableClock()
    server = NumerekServer(cfg, clock=clock)
    server.start()
    try:
        wait_for(lambda: server.online, 10, "server connected")
        peer.subscribe(f"{BASE}/kiosk/k1/response/#")
        old = kiosk_request(peer, {"v": 1, "id": "old", "service": "rej"}, "old-1")
        clock.offset = timedelta(days=1)
        recent = kiosk_request(peer, {"v": 1, "id": "recent", "service": "rej"}, "recent-1")
        assert old["ok"] and recent["ok"]
        clock.offset = REPLY_MEMORY + timedelta(hours=2)  # "old" is past the window, "recent" is not
        kiosk_request(peer, {"v": 1, "id": "later", "service": "pj"}, "later-1")  # a batch runs the pruning

        db = sqlite3.connect(server.store.path)
        stored = {i for (i,) in db.execute("SELECT id FROM commands WHERE device = 'kiosk/k1'")}
        db.close()
        assert stored == {"recent", "later"}
        assert ("kiosk/k1", "old") not in server.replies and ("kiosk/k1", "recent") in server.replies

        assert kiosk_request(peer, {"v": 1, "id": "recent", "service": "rej"}, "recent-2") == recent
        again = kiosk_request(peer, {"v": 1, "id": "old", "service": "rej"}, "old-2")
        assert again["ok"] and again["ticket"]["token"] != old["ticket"]["token"]  # a new request by now
    finally:
        server.stop()
