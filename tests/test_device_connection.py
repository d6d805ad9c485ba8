"""The one device connection (protocol/device.py) against a real Mosquitto.

What every kiosk, counter and display relies on: retained availability with a last will,
TCP_NODELAY, the configured keepalive, subscriptions that survive a broker restart, the
server's clock from live messages only, and one ordered hand-over to the UI thread.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone

import pytest

from protocol.device import DeviceConnection, Incoming
from protocol.messages import CallMessage, CounterState, CounterStatus
from protocol.mqtt import BrokerConfig
from protocol.topics import RouteKind, Topics
from tests.harness import ROOT, Broker, Peer, wait_for

T = Topics()
WARSAW = timezone(timedelta(hours=1))


def state(at: datetime, counter: str = "4") -> bytes:
    return CounterState(
        counter=counter,
        name=f"Stanowisko {counter}",
        zone="hall",
        status=CounterStatus.OPEN,
        services=["rej"],
        waiting={"rej": 0},
        server_time=at,
    ).to_json()


class UiThread:
    """A stand-in for a UI toolkit's main loop: ``wake`` schedules a drain on its own thread."""

    def __init__(self) -> None:
        self.conn: DeviceConnection | None = None
        self.thread = threading.Thread(target=self._run, daemon=True, name="ui")
        self.wakeup = threading.Event()
        self.stopped = threading.Event()
        self.thread.start()

    def wake(self) -> None:
        self.wakeup.set()

    def _run(self) -> None:
        while not self.stopped.is_set():
            self.wakeup.wait(0.5)
            self.wakeup.clear()
            if self.conn is not None:
                self.conn.drain()

    def stop(self) -> None:
        self.stopped.set()
        self.wakeup.set()
        self.thread.join(5)


@pytest.fixture
def ui():
    u = UiThread()
    yield u
    u.stop()


def connect(broker: Broker, ui: UiThread | None = None, **mqtt) -> DeviceConnection:
    conn = DeviceConnection(BrokerConfig(port=broker.port, **mqtt), "counter-4", wake=ui.wake if ui else None)
    if ui is not None:
        ui.conn = conn
    return conn


def test_online_is_retained_after_connecting_and_offline_after_a_clean_stop(broker, peer):
    conn = connect(broker).start()
    try:
        wait_for(lambda: conn.connected, 10, "connected")
        late = Peer(broker.port)  # subscribes after the fact: sees the retained value
        try:
            late.subscribe(T.device_availability("counter-4"))
            wait_for(lambda: late.seen, 5, "the retained availability")
            assert late.seen[-1] == (T.device_availability("counter-4"), b"online", True)
        finally:
            late.close()
    finally:
        conn.stop()
    check = Peer(broker.port)
    try:
        check.subscribe(T.device_availability("counter-4"))
        wait_for(lambda: check.seen, 5, "the retained availability")
        assert check.seen[-1][1:] == (b"offline", True)
    finally:
        check.close()
    assert not conn.alive


_KILLED = """
import sys, time
from protocol.device import DeviceConnection
from protocol.mqtt import BrokerConfig
conn = DeviceConnection(BrokerConfig(port=int(sys.argv[1])), "kiosk-k7").start()
while not conn.connected:
    time.sleep(0.05)
print("connected", flush=True)
time.sleep(60)
"""


def test_a_killed_device_is_offline_by_its_retained_last_will(broker, peer):
    peer.subscribe(T.device_availability("kiosk-k7"))
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED, str(broker.port)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "connected"
        assert peer.expect_raw(T.device_availability("kiosk-k7")) == b"online"
        proc.send_signal(signal.SIGKILL)  # no goodbye: the broker publishes the will
        proc.wait(5)
        assert peer.expect_raw(T.device_availability("kiosk-k7"), timeout=10) == b"offline"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    later = Peer(broker.port)
    try:
        later.subscribe(T.device_availability("kiosk-k7"))
        wait_for(lambda: later.seen, 5, "the retained last will")
        assert later.seen[-1][1:] == (b"offline", True)
    finally:
        later.close()


def test_the_socket_has_tcp_nodelay_and_the_broker_sees_the_configured_keepalive(tmp_path):
    log = tmp_path / "mosquitto.log"
    broker = Broker(
        tmp_path, extra_conf=f"user root\nlog_dest file {log}\nlog_type all\nconnection_messages true"
    ).start()
    conn = connect(broker, keepalive=7).start()
    try:
        wait_for(lambda: conn.connected, 10, "connected")
        client = conn._client
        assert client is not None
        sock = client.socket()
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        wait_for(lambda: "k7" in log.read_text(errors="replace"), 10, "the broker logging the keepalive")
        line = next(line for line in log.read_text().splitlines() if "New client connected" in line)
        assert "p5" in line and "k7" in line, line  # MQTT 5, keepalive 7 s
    finally:
        conn.stop()
        broker.stop()


def test_subscriptions_come_back_after_a_broker_restart_and_each_change_is_handed_over(broker, ui):
    conn = connect(broker, ui)
    got: list[Incoming] = []
    changes: list[bool] = []
    conn.on(RouteKind.COUNTER_STATE, got.append)
    conn.on_connection = changes.append
    conn.subscribe(T.counter_state("4"))
    conn.start()
    try:
        wait_for(lambda: changes == [True], 10, "connected")
        broker.stop()
        wait_for(lambda: changes == [True, False], 10, "the drop handed over")
        broker.start()
        wait_for(lambda: changes == [True, False, True], 15, "reconnected within the 5 s backoff")
        peer = Peer(broker.port)
        try:
            # Retained, as the server publishes a counter's state: "connected" is handed over when
            # the SUBSCRIBE is sent, and the broker may take this publish before it; a retained
            # state still reaches a subscription made a moment later.
            peer.publish(T.counter_state("4"), state(datetime.now(WARSAW)), retain=True)
            wait_for(lambda: got, 10, "the state after the restart")
        finally:
            peer.close()
        assert got[0].route.id == "4" and isinstance(got[0].message, CounterState)
    finally:
        conn.stop()


def test_messages_reach_the_ui_thread_in_arrival_order_and_a_failing_handler_does_not_stop_the_next(broker, ui, caplog):
    conn = connect(broker, ui)
    seen: list[tuple[int, str]] = []

    def call(m: Incoming) -> None:
        seen.append((m.message.seq, threading.current_thread().name))
        if m.message.seq == 3:
            raise KeyError("a bug in one handler")

    conn.on(RouteKind.ZONE_CALL, call)
    servers: list[bool] = []
    conn.on_server = servers.append
    conn.subscribe(T.zone_call("hall"))
    conn.start()
    try:
        wait_for(lambda: conn.connected, 10, "connected")
        peer = Peer(broker.port)
        try:
            # "connected" comes when the SUBSCRIBE is sent; a retained "online" (which reaches a
            # subscription made later, too) shows the broker has taken it: one SUBSCRIBE for all
            # the device's topics, so none of the 20 calls can arrive before it.
            peer.publish(T.server_availability, b"online", retain=True)
            wait_for(lambda: servers == [True], 10, "the retained availability")
            for seq in range(1, 21):
                at = datetime.now(WARSAW)
                msg = CallMessage(
                    seq=seq, ticket=f"A{seq:03}", service="rej", counter="1", counter_name="S1", zone="hall", at=at
                )
                peer.client.publish(T.zone_call("hall"), msg.to_json(), qos=1)
            wait_for(lambda: len(seen) == 20, 10, "20 calls")
        finally:
            peer.close()
    finally:
        conn.stop()
    assert [seq for seq, _ in seen] == list(range(1, 21))
    assert {thread for _, thread in seen} == {"ui"}
    assert any(r.exc_info and r.exc_info[0] is KeyError for r in caplog.records)


def test_the_server_clock_is_learnt_from_live_messages_only_and_forgotten_when_the_server_goes(broker, peer):
    old = datetime(2026, 11, 23, 6, 0, tzinfo=WARSAW)
    peer.publish(T.counter_state("4"), state(old), retain=True)
    conn = connect(broker)
    got: list[Incoming] = []
    conn.on(RouteKind.COUNTER_STATE, got.append)
    conn.subscribe(T.counter_state("4"))
    conn.start()
    try:
        wait_for(lambda: got, 10, "the retained state")
        assert got[0].retained and conn.clock.now() is None, "a retained (maybe hours old) time teaches nothing"
        live = datetime.now(WARSAW).replace(microsecond=0)
        peer.publish(T.counter_state("4"), state(live))
        wait_for(lambda: len(got) == 2, 10, "the live state")
        now = conn.clock.now()
        assert now is not None and now.utcoffset() == timedelta(hours=1) and now >= live
        peer.publish(T.server_availability, b"offline", retain=True)
        wait_for(lambda: conn.server_online is False, 10, "the server offline")
        assert conn.clock.now() is None
    finally:
        peer.publish(T.counter_state("4"), b"", retain=True)
        peer.publish(T.server_availability, b"", retain=True)
        conn.stop()


def test_malformed_messages_and_availability_are_dropped_not_handed_over(broker, peer, caplog):
    conn = connect(broker)
    got: list[Incoming] = []
    servers: list[bool] = []
    conn.on(RouteKind.COUNTER_STATE, got.append)
    conn.on_server = servers.append
    conn.subscribe(T.counter_state("4"))
    conn.start()
    try:
        wait_for(lambda: conn.connected, 10, "connected")
        # "connected" comes when the SUBSCRIBE is sent; a first good state, retained so that it
        # also reaches a subscription made after it, shows the broker has taken the SUBSCRIBE (one
        # for all the device's topics), so none of the messages below can arrive before it.
        peer.publish(T.counter_state("4"), state(datetime.now(WARSAW)), retain=True)
        wait_for(lambda: got, 10, "the first good state")
        peer.publish(T.counter_state("4"), b"{not json")
        peer.publish(T.counter_state("4"), b'{"v": 1, "counter": 4}')
        peer.publish(T.server_availability, b"garbage")
        peer.publish(T.server_availability, b"online")
        wait_for(lambda: servers == [True], 10, "the good availability")
        peer.publish(T.counter_state("4"), state(datetime.now(WARSAW)))
        wait_for(lambda: len(got) == 2, 10, "the second good state")
    finally:
        conn.stop()
    assert len(got) == 2 and servers == [True]
    text = caplog.text
    assert "ignoring a malformed message on numerek/counter/4/state" in text
    assert "availability must be 'online' or 'offline'" in text


def test_nothing_is_published_while_disconnected_and_nothing_is_queued_for_later(broker, peer):
    conn = connect(broker).start()
    try:
        wait_for(lambda: conn.connected, 10, "connected")
        peer.subscribe(T.counter_command("4"))
        broker.stop()
        wait_for(lambda: not conn.connected, 10, "the drop noticed")
        assert conn.publish(T.counter_command("4"), b'{"v":1,"id":"late","action":"next"}') is False
        broker.start()
        wait_for(lambda: conn.connected, 15, "reconnected")
        fresh = Peer(broker.port)
        try:
            fresh.subscribe(T.counter_command("4"))
            assert conn.publish(T.counter_command("4"), b'{"v":1,"id":"now","action":"next"}')
            wait_for(lambda: fresh.seen, 10, "the command sent while connected")
        finally:
            fresh.close()
        assert [p for _t, p, _r in fresh.seen] == [b'{"v":1,"id":"now","action":"next"}']
    finally:
        conn.stop()


def test_a_device_cannot_register_for_what_devices_do_not_receive(broker):
    conn = connect(broker)
    with pytest.raises(ValueError, match="devices do not receive counter_command"):
        conn.on(RouteKind.COUNTER_COMMAND, lambda m: None)
