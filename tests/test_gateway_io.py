"""The server's MQTT gateway drives paho itself (server/gateway.py): what it writes, when, and after a broker restart.

Real Mosquitto, real paho, the real gateway; a plain peer client on the other side.
"""

from __future__ import annotations

import shutil
import threading

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from protocol.mqtt import BrokerConfig, reply_properties
from protocol.topics import Topics
from server.gateway import MqttGateway
from server.jobs import Job, Out
from tests.harness import Peer, wait_for
from tests.test_deploy_tls import tls_broker  # noqa: F401, F811  # the fixture: the shipped TLS listener

TOPICS = Topics("numerek")


@pytest.fixture
def gateway(broker):
    jobs: list[Job] = []
    lock = threading.Lock()

    def submit(job: Job) -> None:
        with lock:
            jobs.append(job)

    gw = MqttGateway(BrokerConfig(port=broker.port), TOPICS, submit, "gateway-under-test")
    gw.jobs = jobs  # type: ignore[attr-defined]
    gw.start()
    wait_for(lambda: gw.online, 10, "the gateway's connection")
    yield gw
    gw.stop()


def _received(peer: Peer, topic: str) -> list[bytes]:
    return [payload for t, payload, _ in peer.seen if t == topic]


def test_a_batch_of_messages_is_written_by_the_worker_without_waking_the_network_thread_per_message(gateway, peer):
    topic = TOPICS.zone_call("hall")
    peer.subscribe(topic)
    sent = [f"call {i}".encode() for i in range(200)]
    woken = gateway.wakes

    def worker() -> None:  # as server/worker.py does after a batch's commit: queue all, then flush once
        for payload in sent:
            gateway.publish(Out(topic, payload))
        gateway.flush()

    t = threading.Thread(target=worker, name="numerek-worker")
    t.start()
    t.join(10)
    wait_for(lambda: len(_received(peer, topic)) == len(sent), 10, "all 200 messages")
    assert _received(peer, topic) == sent  # every one, in order
    # paho's own thread was woken with a byte for each publish: 200 wake-ups. At most one now
    # (when the network thread happened to be reading at that moment).
    assert gateway.wakes - woken <= 1


def test_replies_and_incoming_requests_cross_without_loss_while_both_threads_use_the_connection(gateway, peer):
    """The worker flushes while the network thread reads a stream of requests: nothing lost, nothing reordered."""
    out_topic = TOPICS.zone_call("hall")
    peer.subscribe(out_topic)
    sent = [f"reply {i}".encode() for i in range(600)]

    def worker() -> None:
        for i in range(0, len(sent), 6):
            for payload in sent[i : i + 6]:
                gateway.publish(Out(out_topic, payload))
            gateway.flush()

    t = threading.Thread(target=worker, name="numerek-worker")
    t.start()
    for i in range(300):
        peer.client.publish(TOPICS.kiosk_request("k1"), f'{{"n": {i}}}', qos=1)
    t.join(20)
    wait_for(lambda: len(_received(peer, out_topic)) == len(sent), 20, "all 600 replies")
    assert _received(peer, out_topic) == sent
    wait_for(lambda: len([j for j in gateway.jobs if j.kind == "kiosk"]) == 300, 20, "all 300 requests as jobs")
    assert [j.payload for j in gateway.jobs if j.kind == "kiosk"] == [f'{{"n": {i}}}'.encode() for i in range(300)]


def test_the_gateway_reconnects_after_a_broker_restart_and_its_messages_flow_again(gateway, broker):
    broker.stop()
    wait_for(lambda: not gateway.online, 20, "the gateway noticing the broker is gone")
    broker.start()
    wait_for(lambda: gateway.online, 30, "the gateway back online")
    peer = Peer(broker.port)
    try:
        topic = TOPICS.zone_call("hall")
        peer.subscribe(topic)
        gateway.publish(Out(topic, b"after the restart"))
        gateway.flush()
        wait_for(lambda: _received(peer, topic) == [b"after the restart"], 10, "the message after the restart")
    finally:
        peer.close()


@pytest.mark.parametrize("size", [0, 1, 16, 127, 128, 300, 16384, 65535])
def test_a_replys_properties_are_the_bytes_paho_itself_would_send(size):
    data = bytes(i % 256 for i in range(size))
    paho = Properties(PacketTypes.PUBLISH)
    paho.CorrelationData = data
    ours = reply_properties(data)
    assert ours is not None
    assert ours.pack() == paho.pack()
    assert ours.CorrelationData == data and str(ours) == str(paho)
    ours.ResponseTopic = "numerek/x"  # anything more on it: paho's general packing
    paho.ResponseTopic = "numerek/x"
    assert ours.pack() == paho.pack()


def test_each_reply_has_its_own_properties():
    """A QoS 1 reply is packed again if it must be resent after a reconnect: its correlation must stay its own."""
    first, second = reply_properties(b"first"), reply_properties(b"second")
    assert first is not None and second is not None
    assert (first.CorrelationData, second.CorrelationData) == (b"first", b"second")
    assert reply_properties(None) is None


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl (tests/test_deploy_tls.py's CA)")
def test_over_tls_requests_come_in_and_a_batch_of_replies_goes_out(tls_broker):  # noqa: F811
    """With TLS one connection must never be used by two threads at once (OpenSSL's rule): the
    worker's writes and the network thread's reads share the gateway's lock; both ways work."""
    from counter.config import load_config
    from protocol.mqtt import BrokerSettings, make_client

    jobs: list[Job] = []
    broker = BrokerConfig(
        host="127.0.0.1",
        port=tls_broker["secure"],
        username="server",
        password=tls_broker["server_password"],
        tls_ca=tls_broker["ca"],
    )
    gw = MqttGateway(broker, TOPICS, jobs.append, "server")
    gw.start()
    b = load_config(tls_broker["config"]).mqtt
    got: list[bytes] = []
    device = make_client("counter-4", BrokerSettings(b.host, b.port, b.username, b.password, b.tls_ca), "x")
    device.on_message = lambda _c, _u, msg: got.append(msg.payload)
    subscribed: list[bool] = []
    device.on_subscribe = lambda *_a: subscribed.append(True)
    device.connect(b.host, b.port)
    device.loop_start()
    try:
        wait_for(lambda: gw.online, 20, "the gateway's TLS connection")
        device.subscribe("numerek/counter/4/reply", qos=1)
        wait_for(lambda: subscribed, 10, "the device's subscription")
        replies = [f"reply {i}".encode() for i in range(50)]

        def worker() -> None:
            for i in range(0, len(replies), 5):
                for payload in replies[i : i + 5]:
                    gw.publish(Out("numerek/counter/4/reply", payload))
                gw.flush()

        t = threading.Thread(target=worker, name="numerek-worker")
        t.start()
        for i in range(50):
            device.publish("numerek/counter/4/command", f'{{"n": {i}}}', qos=1)
        t.join(20)
        wait_for(lambda: len(got) == 50, 20, "50 replies over TLS")
        assert got == replies
        wait_for(lambda: len([j for j in jobs if j.kind == "counter"]) == 50, 20, "50 commands over TLS")
    finally:
        device.disconnect()
        device.loop_stop()
        gw.stop()
