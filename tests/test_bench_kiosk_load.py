"""The benchmark's kiosk load client (bench/kiosk_load.py): real Mosquitto, the real server.

What bench/server_bench.py's figures rest on: every request in flight is a new ticket the
server stored, every answer is checked, a refusal or a wrong answer is an error, and a broker
that goes away ends the run with a clear error instead of a hang.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import mqtt5
import pytest

from protocol.mqtt import reply_properties
from protocol.topics import Topics
from tests.harness import ROOT, Peer

sys.path.insert(0, str(ROOT / "bench"))
from kiosk_load import LeanKiosk, Outcome, RequestPacket, judge  # noqa: E402

TOPICS = Topics("numerek")
CLIENTS = ["lean", "paho"]


def load(port: int, out: Path, *args: str) -> subprocess.Popen:
    cmd = [sys.executable, str(ROOT / "bench" / "kiosk_load.py"), "--port", str(port), "--out", str(out), *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("client", CLIENTS)
def test_every_request_in_flight_is_a_new_ticket_in_the_servers_database(server, broker, tmp_path, client):
    out = tmp_path / "load.json"
    proc = load(broker.port, out, "--kiosk", "k1", "--inflight", "16", "--count", "300", "--client", client)
    assert proc.wait(120) == 0, proc.stderr.read()
    result = json.loads(out.read_text())
    db = sqlite3.connect(server.database)
    stored = [row[0] for row in db.execute("SELECT number FROM tickets")]
    db.close()
    assert result["ok"] == 300 and result["refused"] == 0 and len(result["latencies"]) == 300
    assert len(set(result["numbers"])) == 300
    assert sorted(result["numbers"]) == sorted(stored)  # each answer a ticket the server keeps, none other
    assert result["cpu_s"] > 0


def test_a_refused_request_is_counted_as_an_error_not_a_ticket(server, broker, tmp_path):
    out = tmp_path / "load.json"
    proc = load(broker.port, out, "--kiosk", "k1", "--inflight", "4", "--count", "12", "--services", "nosuch")
    assert proc.wait(120) == 0, proc.stderr.read()
    result = json.loads(out.read_text())
    assert result["ok"] == 0 and result["numbers"] == [] and result["refused"] == 12
    assert '"ok":false' in result["errors"][0]


def test_an_answer_to_another_request_is_an_error(broker, tmp_path):
    """A responder that says ok with another request's id and a made-up ticket: not a ticket."""
    responder = Peer(broker.port)
    try:

        def answer(_c, _u, msg) -> None:
            body = {"v": 1, "id": "someone-else", "ok": True, "ticket": {"number": "A001"}}
            props = reply_properties(msg.properties.CorrelationData)
            responder.client.publish(msg.properties.ResponseTopic, json.dumps(body), qos=1, properties=props)

        responder.client.message_callback_add(TOPICS.kiosk_request("k1"), answer)
        responder.subscribe(TOPICS.kiosk_request("k1"))
        out = tmp_path / "load.json"
        proc = load(broker.port, out, "--kiosk", "k1", "--inflight", "2", "--count", "6")
        assert proc.wait(60) == 0, proc.stderr.read()
    finally:
        responder.close()
    result = json.loads(out.read_text())
    assert result["ok"] == 0 and result["refused"] == 6 and result["numbers"] == []


@pytest.mark.parametrize("client", CLIENTS)
def test_a_broker_that_drops_the_connection_ends_the_run_with_a_clear_error(broker, tmp_path, client):
    """No server answers; once the requests reached a silent subscriber, the broker stops."""
    silent = Peer(broker.port)
    try:
        silent.subscribe(TOPICS.kiosk_request("k1"))
        out = tmp_path / "load.json"
        proc = load(broker.port, out, "--kiosk", "k1", "--inflight", "3", "--seconds", "600", "--client", client)
        for _ in range(3):
            silent.take(lambda m: m.topic == TOPICS.kiosk_request("k1"), 30, "a request from the load client")
        broker.stop()
        assert proc.wait(60) != 0  # a failure bound, not a timing: the run ends at once
    finally:
        silent.close()
    error = proc.stderr.read()
    assert "kiosk_load k1: the broker closed the connection (3 requests unanswered)" in error
    assert not out.exists()  # no figures from a broken run


def test_the_request_on_the_wire_is_the_kiosks_request():
    """The hand-made PUBLISH read back by a full MQTT 5 codec: every field as a kiosk sends it."""
    kiosk = LeanKiosk(1, "k1", ["rej"])
    kiosk._request()
    packet, size = mqtt5.read(memoryview(kiosk.out[0]))
    assert size == len(kiosk.out[0])
    correlation, (_, request_id) = next(iter(kiosk.waiting.items()))
    assert packet.topic == TOPICS.kiosk_request("k1") == "numerek/kiosk/k1/request"
    assert packet.qos == mqtt5.QoS.AT_LEAST_ONCE and not packet.retain and not packet.duplicate
    assert packet.response_topic == TOPICS.kiosk_response("k1", "load")
    assert packet.correlation_data == correlation and len(correlation) == 16
    assert packet.payload == json.dumps({"v": 1, "id": request_id, "service": "rej"}).encode()
    assert request_id.startswith("k1-") and request_id.endswith("-1")
    long_topic = "numerek/kiosk/" + "k" * 200 + "/request"  # a remaining length of two bytes
    body = b"x" * 300
    made = RequestPacket(long_topic, "r/t").encode(65535, uuid.uuid4().bytes, body)
    packet, size = mqtt5.read(memoryview(made))
    assert (packet.topic, packet.packet_id, packet.payload, size) == (long_topic, 65535, body, len(made))


def test_two_load_processes_never_send_the_same_request_id():
    """The server answers a repeated id from memory (no new ticket): ids carry a random part."""
    first, second = LeanKiosk(1, "k1", ["rej"]), LeanKiosk(1, "k1", ["rej"])
    first._request()
    second._request()
    ids = [next(iter(k.waiting.values()))[1] for k in (first, second)]
    assert ids[0] != ids[1]
    assert next(iter(first.waiting)) != next(iter(second.waiting))  # correlation data too


def test_a_ticket_answer_for_this_request_counts_and_a_look_alike_does_not():
    ok = Outcome()
    judge(b'{"v":1,"id":"k1-a-1","ok":true,"ticket":{"number":"A001"}}', "k1-a-1", ok)
    judge(b'{"v":1,"id":"k1-a-10","ok":true,"ticket":{"number":"A002"}}', "k1-a-1", ok)  # another id
    judge(b'{"v":1,"id":"k1-a-1","ok":false,"error":{"code":"closed"},"number":"A003"}', "k1-a-1", ok)
    judge(b"not json", "k1-a-1", ok)
    assert ok.numbers == ["A001"] and ok.ok == 1 and len(ok.errors) == 3


def test_a_request_no_server_receives_is_an_error_not_a_hang(broker, tmp_path):
    """The broker's PUBACK says nobody subscribed: no answer will come, so the run does not wait for one."""
    out = tmp_path / "load.json"
    proc = load(broker.port, out, "--kiosk", "k1", "--inflight", "2", "--count", "5", "--stall", "600")
    assert proc.wait(120) == 0, proc.stderr.read()
    result = json.loads(out.read_text())
    assert result["ok"] == 0 and result["refused"] == 5
    assert result["errors"] == ["PUBACK NO_MATCHING_SUBSCRIBERS"] * 5
