"""The locked-down broker: a real Mosquitto running our shipped config with accounts from numerek-provision.

Negative checks ("this message never arrives") are made deterministic with a sentinel: after
the forbidden publish, the same client (or the server) publishes an allowed message that the
same subscriber receives. Mosquitto handles one client's packets in order, so once the
sentinel has arrived a forbidden message that had got through would already be there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from server.provision import main as provision
from tests.harness import ROOT, ServerProcess, free_port, wait_for, write_config

BASE = "numerek"
CONF = ROOT / "systemd" / "mosquitto" / "numerek.conf"
pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists(),
    reason="mosquitto is not installed (apt-get install mosquitto)",
)


class Refused(Exception):
    """The broker refused the connection (CONNACK with a failure reason)."""


class Client:
    """An MQTT 5 client logging in with an account, like a device does."""

    def __init__(
        self,
        port: int,
        username: str | None,
        password: str | None,
        client_id: str | None = None,
        will: str | None = None,
    ) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.acks: dict[int, mqtt.ReasonCode] = {}
        self.connack: mqtt.ReasonCode | None = None
        self.disconnected = threading.Event()
        self._cond = threading.Condition()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id or f"t-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        if will is not None:  # a device's retained "offline" last will, as protocol.mqtt.make_client sets it
            self.client.will_set(will, "offline", qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.client.on_disconnect = lambda *_a: self.disconnected.set()
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        wait_for(lambda: self.connack is not None or self.disconnected.is_set(), 10, "CONNACK")
        if self.connack is None or self.connack.is_failure:
            self.close()
            raise Refused(str(self.connack))

    def _on_connect(self, _c, _u, _f, reason_code, _p) -> None:
        self.connack = reason_code

    def _on_message(self, _c, _u, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append((msg.topic, msg.payload, bool(msg.retain)))

    def _on_publish(self, _c, _u, mid, reason_code, _p) -> None:
        with self._cond:
            self.acks[mid] = reason_code

    def subscribe(self, *filters: str) -> None:
        granted: list = []
        self.client.on_subscribe = lambda _c, _u, _mid, codes, _p: granted.extend(codes)
        self.client.subscribe([(f, 1) for f in filters])
        wait_for(lambda: len(granted) == len(filters), 5, "SUBACK")

    def publish(self, topic: str, payload: object, retain: bool = False) -> mqtt.ReasonCode:
        """Publish at QoS 1 and return the broker's PUBACK reason (``Not authorized`` when denied)."""
        data = payload if isinstance(payload, str | bytes) else json.dumps(payload)
        info = self.client.publish(topic, data, qos=1, retain=retain)
        return wait_for(lambda: self.acks.get(info.mid), 5, f"PUBACK for {topic}")

    def received(self, topic: str) -> list[bytes]:
        with self._cond:
            return [p for t, p, _r in self.messages if t == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class ClosedBroker:
    """Mosquitto with systemd/mosquitto/numerek.conf, files under tmp instead of /etc."""

    port: int
    broker_dir: Path
    config_dir: Path
    site: Path
    proc: subprocess.Popen

    def provision(self, *args: str) -> int:
        return provision(
            [
                "--broker-dir",
                str(self.broker_dir),
                "--config-dir",
                str(self.config_dir),
                "--broker-pid",
                str(self.proc.pid),
                "--mqtt-port",
                str(self.port),
                *args,
            ]
        )

    def password(self, account: str) -> str:
        if account == "server":
            return tomllib.loads(self.site.read_text())["mqtt"]["password"]
        config = tomllib.loads((self.config_dir / f"{account}.toml").read_text())
        return (config.get("mqtt") or config["broker"])["password"]  # counters call the table [broker]

    def login(self, account: str, client_id: str | None = None, will: str | None = None) -> Client:
        """Log in with a provisioned account; retries while a just-sent SIGHUP is still being handled."""

        def attempt() -> Client | None:
            try:
                return Client(self.port, account, self.password(account), client_id, will)
            except Refused:
                return None

        return wait_for(attempt, 10, f"{account} to log in")


@pytest.fixture
def closed_broker(tmp_path) -> Iterator[ClosedBroker]:
    port = free_port()
    broker_dir, config_dir = tmp_path / "mosquitto", tmp_path / "devices"
    site = write_config(tmp_path / "office.toml", port, free_port())
    common = ["--broker-dir", str(broker_dir), "--config-dir", str(config_dir), "--no-reload"]
    assert provision([*common, "init", "--host", "127.0.0.1", "--port", str(port)]) == 0
    assert provision([*common, "add", "server", "--site-config", str(site)]) == 0
    for args in (
        ["counter", "1"],
        ["counter", "4"],
        ["display", "hall-1", "--zone", "hall"],
        ["kiosk", "k1"],
        ["kiosk", "k2"],
    ):
        assert provision([*common, "add", *args]) == 0
    conf = CONF.read_text().replace("/etc/mosquitto/numerek", str(broker_dir))
    conf = conf.replace("listener 1883", f"listener {port} 127.0.0.1")
    if os.geteuid() == 0:  # pytest's tmp dirs are root-only (0700): stay root instead of dropping to mosquitto
        conf += "\nuser root\n"
    (tmp_path / "mosquitto.conf").write_text(conf)
    log = open(tmp_path / "mosquitto.log", "wb")  # noqa: SIM115
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen([exe, "-c", str(tmp_path / "mosquitto.conf"), "-v"], stdout=log, stderr=log)
    b = ClosedBroker(port, broker_dir, config_dir, site, proc)

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError("mosquitto exited: " + (tmp_path / "mosquitto.log").read_text())
        try:
            Client(port, "server", b.password("server")).close()
            return True
        except (OSError, Refused):
            return False

    wait_for(up, 10, "the closed broker")
    yield b
    proc.terminate()
    proc.wait(5)
    log.close()


def command(rid: str, action: str = "next") -> dict:
    return {"v": 1, "id": rid, "action": action}


def test_provisioned_counter_command_reaches_the_server(closed_broker):
    server = closed_broker.login("server")
    server.subscribe(f"{BASE}/counter/+/command")
    counter = closed_broker.login("counter-4")
    assert not counter.publish(f"{BASE}/counter/4/command", command("c1")).is_failure
    wait_for(lambda: server.received(f"{BASE}/counter/4/command"), 5, "the counter's command at the server")
    assert json.loads(server.received(f"{BASE}/counter/4/command")[0])["id"] == "c1"


def test_counter_cannot_call_for_another_counter(closed_broker):
    server = closed_broker.login("server")
    server.subscribe(f"{BASE}/counter/+/command")
    counter = closed_broker.login("counter-4")
    assert counter.publish(f"{BASE}/counter/1/command", command("forged")).getName() == "Not authorized"
    counter.publish(f"{BASE}/counter/4/command", command("sentinel"))
    wait_for(lambda: server.received(f"{BASE}/counter/4/command"), 5, "the sentinel command")
    assert server.received(f"{BASE}/counter/1/command") == []


def test_counter_cannot_publish_on_the_displays_topics(closed_broker):
    display = closed_broker.login("display-hall-1")
    display.subscribe(f"{BASE}/zone/hall/call")
    counter = closed_broker.login("counter-4")
    fake_call = {
        "v": 1,
        "seq": 999,
        "ticket": "A666",
        "service": "rej",
        "counter": "4",
        "counter_name": "x",
        "zone": "hall",
        "recall": False,
        "at": "2026-01-01T08:00:00+01:00",
    }
    assert counter.publish(f"{BASE}/zone/hall/call", fake_call).getName() == "Not authorized"
    assert counter.publish(f"{BASE}/zone/hall/board", {"v": 1}, retain=True).getName() == "Not authorized"
    assert counter.publish(f"{BASE}/services", {"v": 1}, retain=True).getName() == "Not authorized"
    display.subscribe(f"{BASE}/zone/hall/board", f"{BASE}/services")  # a planted retained message would come now
    closed_broker.login("server").publish(f"{BASE}/zone/hall/call", {"v": 1, "seq": 1, "ticket": "A001"})
    wait_for(lambda: display.received(f"{BASE}/zone/hall/call"), 5, "the server's call on the display")
    assert [json.loads(p)["ticket"] for p in display.received(f"{BASE}/zone/hall/call")] == ["A001"]
    assert display.received(f"{BASE}/zone/hall/board") == []
    assert display.received(f"{BASE}/services") == []


def test_display_cannot_publish_commands(closed_broker):
    server = closed_broker.login("server")
    server.subscribe(f"{BASE}/counter/+/command", f"{BASE}/kiosk/+/request")
    display = closed_broker.login("display-hall-1")
    assert display.publish(f"{BASE}/counter/1/command", command("forged")).getName() == "Not authorized"
    assert display.publish(f"{BASE}/kiosk/k1/request", {"v": 1, "id": "x", "service": "rej"}).is_failure
    closed_broker.login("counter-1").publish(f"{BASE}/counter/1/command", command("sentinel"))
    wait_for(lambda: server.received(f"{BASE}/counter/1/command"), 5, "counter 1's own command")
    assert [json.loads(p)["id"] for p in server.received(f"{BASE}/counter/1/command")] == ["sentinel"]
    assert server.received(f"{BASE}/kiosk/k1/request") == []


def test_display_sees_only_its_own_zone(closed_broker):
    display = closed_broker.login("display-hall-1")
    display.subscribe(f"{BASE}/zone/#")
    server = closed_broker.login("server")
    server.publish(f"{BASE}/zone/upstairs/call", {"v": 1, "ticket": "P001"})
    server.publish(f"{BASE}/zone/hall/call", {"v": 1, "ticket": "A001"})
    wait_for(lambda: display.received(f"{BASE}/zone/hall/call"), 5, "the hall call")
    assert display.received(f"{BASE}/zone/upstairs/call") == []


def test_kiosk_requests_tickets_only_as_itself_and_reads_only_its_own_responses(closed_broker):
    server = closed_broker.login("server")
    server.subscribe(f"{BASE}/kiosk/+/request")
    k1, k2 = closed_broker.login("kiosk-k1"), closed_broker.login("kiosk-k2")
    k1.subscribe(f"{BASE}/kiosk/+/response/#", f"{BASE}/services")
    k2.subscribe(f"{BASE}/kiosk/k2/response/#")
    assert k1.publish(f"{BASE}/kiosk/k2/request", {"v": 1, "id": "forged", "service": "rej"}).is_failure
    assert k1.publish(f"{BASE}/counter/1/command", command("forged")).is_failure
    assert not k1.publish(f"{BASE}/kiosk/k1/request", {"v": 1, "id": "r1", "service": "rej"}).is_failure
    wait_for(lambda: server.received(f"{BASE}/kiosk/k1/request"), 5, "kiosk k1's request")
    assert server.received(f"{BASE}/kiosk/k2/request") == []
    server.publish(f"{BASE}/kiosk/k2/response/r9", {"v": 1, "id": "r9", "ok": True})
    server.publish(f"{BASE}/kiosk/k1/response/r1", {"v": 1, "id": "r1", "ok": True})
    server.publish(f"{BASE}/services", {"v": 1, "services": []}, retain=True)
    wait_for(lambda: k1.received(f"{BASE}/services"), 5, "the service list on kiosk k1")
    wait_for(lambda: k2.received(f"{BASE}/kiosk/k2/response/r9"), 5, "kiosk k2's own response")
    assert k1.received(f"{BASE}/kiosk/k1/response/r1") and k1.received(f"{BASE}/kiosk/k2/response/r9") == []


def test_anonymous_and_wrong_password_clients_are_refused(closed_broker):
    with pytest.raises(Refused):
        Client(closed_broker.port, None, None)
    with pytest.raises(Refused):
        Client(closed_broker.port, "counter-4", "not-the-password")
    with pytest.raises(Refused):
        Client(closed_broker.port, "counter-4", closed_broker.password("counter-1"))


def test_device_cannot_knock_another_device_off_by_taking_its_client_id(closed_broker):
    real = closed_broker.login("counter-1", client_id="counter-1")
    closed_broker.login("counter-4", client_id="counter-1")
    real.subscribe(f"{BASE}/counter/1/reply")  # still connected: its SUBACK arrives
    assert not real.disconnected.is_set()


def test_revoked_device_is_refused(closed_broker):
    password = closed_broker.password("counter-4")
    still_connected = closed_broker.login("counter-4")
    assert closed_broker.provision("revoke", "counter-4") == 0
    assert not (closed_broker.config_dir / "counter-4.toml").exists()
    assert "counter-4" not in (closed_broker.broker_dir / "acl").read_text()

    def cut_off() -> bool:  # the reload (SIGHUP) is asynchronous
        if still_connected.disconnected.is_set():
            return True
        return still_connected.publish(f"{BASE}/counter/4/command", command("after-revoke")).is_failure

    # The session opened before the revocation can no longer command...
    wait_for(cut_off, 10, "the revoked session to lose its rights")
    # ... and a new connection with the old password is refused.
    with pytest.raises(Refused):
        Client(closed_broker.port, "counter-4", password)
    closed_broker.login("counter-1").close()  # the other devices keep working after the reload


def test_real_server_and_devices_work_with_their_generated_accounts(closed_broker, tmp_path):
    """The whole office on the closed broker: a kiosk takes a ticket, counter 1 calls it, the hall shows it."""
    http_port = int(tomllib.loads(closed_broker.site.read_text())["http"]["port"])
    server = ServerProcess(closed_broker.site, http_port=http_port).start()
    try:
        display = closed_broker.login("display-hall-1")
        display.subscribe(f"{BASE}/zone/hall/call")
        kiosk = closed_broker.login("kiosk-k1")
        kiosk.subscribe(f"{BASE}/kiosk/k1/response/#", f"{BASE}/services")
        wait_for(lambda: kiosk.received(f"{BASE}/services"), 10, "the retained service list on the kiosk")
        kiosk.client.publish(
            f"{BASE}/kiosk/k1/request",
            json.dumps({"v": 1, "id": "r1", "service": "rej"}),
            qos=1,
            properties=_response_to(f"{BASE}/kiosk/k1/response/r1"),
        )
        wait_for(lambda: kiosk.received(f"{BASE}/kiosk/k1/response/r1"), 10, "the ticket response")
        ticket = json.loads(kiosk.received(f"{BASE}/kiosk/k1/response/r1")[0])
        assert ticket["ok"] and ticket["ticket"]["number"] == "A001"
        counter = closed_broker.login("counter-1")
        counter.subscribe(f"{BASE}/counter/1/reply", f"{BASE}/counter/1/state")
        counter.publish(f"{BASE}/counter/1/command", command("c1"))
        wait_for(lambda: counter.received(f"{BASE}/counter/1/reply"), 10, "counter 1's reply")
        reply = json.loads(counter.received(f"{BASE}/counter/1/reply")[0])
        assert reply["ok"] and reply["ticket"]["number"] == "A001"
        wait_for(lambda: display.received(f"{BASE}/zone/hall/call"), 10, "the call on the hall display")
        call = json.loads(display.received(f"{BASE}/zone/hall/call")[0])
        assert (call["ticket"], call["counter"]) == ("A001", "1")
    finally:
        server.stop()


def _response_to(topic: str):
    from protocol.mqtt import response_properties

    return response_properties(topic, uuid.uuid4().bytes)


def _has_user(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _gid(name: str) -> int:
    import grp

    return grp.getgrnam(name).gr_gid


@pytest.mark.skipif(
    os.geteuid() != 0 or not _has_user("mosquitto"), reason="needs root and a mosquitto user (as on the Pi)"
)
def test_broker_reads_the_accounts_after_dropping_root_to_the_mosquitto_user():
    """As installed: Mosquitto starts as root, becomes `mosquitto`, and must still read passwd and acl (0640)."""
    import tempfile

    workdir = Path(tempfile.mkdtemp(prefix="numerek-broker-"))
    try:
        workdir.chmod(0o755)  # like /etc/mosquitto: traversable, the files themselves are private
        broker_dir, port = workdir / "numerek", free_port()
        assert (
            provision(
                [
                    "--broker-dir",
                    str(broker_dir),
                    "--config-dir",
                    str(workdir / "devices"),
                    "--no-reload",
                    "add",
                    "kiosk",
                    "k1",
                ]
            )
            == 0
        )
        broker_dir.chmod(0o750)
        os.chown(broker_dir, 0, _gid("mosquitto"))
        conf = CONF.read_text().replace("/etc/mosquitto/numerek", str(broker_dir))
        (workdir / "mosquitto.conf").write_text(conf.replace("listener 1883", f"listener {port} 127.0.0.1"))
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        proc = subprocess.Popen([exe, "-c", str(workdir / "mosquitto.conf")], stderr=subprocess.PIPE)
        try:
            password = tomllib.loads((workdir / "devices" / "kiosk-k1.toml").read_text())["mqtt"]["password"]

            def logs_in() -> bool:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                try:
                    Client(port, "kiosk-k1", password).close()
                    return True
                except (OSError, Refused):
                    return False

            wait_for(logs_in, 10, "kiosk-k1 to log in")
        finally:
            proc.terminate()
            proc.wait(5)
    finally:
        shutil.rmtree(workdir)


def test_monitor_account_watches_everything_but_cannot_publish(closed_broker):
    assert closed_broker.provision("add", "monitor", "serwis") == 0
    monitor = closed_broker.login("monitor-serwis")
    monitor.subscribe(f"{BASE}/#")
    assert monitor.publish(f"{BASE}/counter/1/command", command("forged")).getName() == "Not authorized"
    closed_broker.login("counter-1").publish(f"{BASE}/counter/1/command", command("c1"))
    wait_for(lambda: monitor.received(f"{BASE}/counter/1/command"), 5, "counter 1's command on the monitor")
    assert [json.loads(p)["id"] for p in monitor.received(f"{BASE}/counter/1/command")] == ["c1"]


def test_the_replicator_account_sends_its_branchs_batches_but_cannot_issue_tickets_or_call_numbers(closed_broker):
    """numerek-replicate's own account: its branch's batches out, the re-send requests and the
    devices' availability in; a kiosk's request, a counter's command, another branch's batch,
    the server's answers and the pushed configuration's answer are refused."""
    assert closed_broker.provision("add", "replicator", "wola") == 0
    replicator = closed_broker.login("replicator-wola")
    replicator.subscribe(f"{BASE}/replica/wola/resend", f"{BASE}/device/+/availability")
    server = closed_broker.login("server")
    server.subscribe(f"{BASE}/kiosk/+/request", f"{BASE}/counter/+/command")
    batch = {"v": 1, "branch": "wola", "head": 0, "sent_at": 0, "events": []}
    assert not replicator.publish(f"{BASE}/replica/wola/events", batch).is_failure
    for topic, payload in (
        (f"{BASE}/kiosk/k1/request", {"v": 1, "id": "forged", "service": "rej"}),
        (f"{BASE}/counter/1/command", command("forged")),
        (f"{BASE}/replica/mokotow/events", {**batch, "branch": "mokotow"}),
        (f"{BASE}/replica/wola/config-result", {"v": 1}),
        (f"{BASE}/replica/wola/resend", {"v": 1, "after": 0}),
        (f"{BASE}/zone/hall/call", {"v": 1}),
        (f"{BASE}/services", {"v": 1}),
        (f"{BASE}/device/kiosk-k1/availability", "offline"),
    ):
        assert replicator.publish(topic, payload).getName() == "Not authorized", topic
    # The server got none of the forged requests: the kiosk's own, sent after them, is the first.
    kiosk = closed_broker.login("kiosk-k1")
    assert not kiosk.publish(f"{BASE}/kiosk/k1/request", {"v": 1, "id": "real", "service": "rej"}).is_failure
    wait_for(lambda: server.received(f"{BASE}/kiosk/k1/request"), 5, "the kiosk's request at the server")
    assert [json.loads(p)["id"] for p in server.received(f"{BASE}/kiosk/k1/request")] == ["real"]
    assert server.received(f"{BASE}/counter/1/command") == []
    # What it reads: a device's availability (the centre's "devices offline") and its re-send requests.
    assert not kiosk.publish(f"{BASE}/device/kiosk-k1/availability", "online", retain=True).is_failure
    wait_for(lambda: replicator.received(f"{BASE}/device/kiosk-k1/availability"), 5, "kiosk-k1's availability")


def test_real_counter_unit_calls_the_next_ticket_with_its_provisioned_config(closed_broker):
    """numerek-counter itself (mock pins, console display) on the closed broker, with the file provisioning wrote."""
    config = closed_broker.config_dir / "counter-1.toml"
    config.write_text(config.read_text().replace('kind = "lcd"', 'kind = "console"'))  # no I2C LCD here
    assert closed_broker.provision("add", "monitor", "test") == 0
    monitor = closed_broker.login("monitor-test")
    monitor.subscribe(f"{BASE}/device/counter-1/availability", f"{BASE}/zone/hall/call")
    http_port = int(tomllib.loads(closed_broker.site.read_text())["http"]["port"])
    server = ServerProcess(closed_broker.site, http_port=http_port).start()
    unit = None
    unit_log = config.parent / "unit.log"
    try:
        kiosk = closed_broker.login("kiosk-k1")
        kiosk.subscribe(f"{BASE}/kiosk/k1/response/#")
        kiosk.client.publish(
            f"{BASE}/kiosk/k1/request",
            json.dumps({"v": 1, "id": "r1", "service": "rej"}),
            qos=1,
            properties=_response_to(f"{BASE}/kiosk/k1/response/r1"),
        )
        wait_for(lambda: kiosk.received(f"{BASE}/kiosk/k1/response/r1"), 10, "the ticket")
        with open(unit_log, "w") as log:
            unit = subprocess.Popen(
                [sys.executable, "-m", "counter.cli", "--config", str(config), "--mock-pins", "--log-level", "WARNING"],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                text=True,
            )

        def online() -> bool:
            assert unit.poll() is None, unit_log.read_text()
            return monitor.received(f"{BASE}/device/counter-1/availability")[-1:] == [b"online"]

        wait_for(online, 20, "counter-1 online on the broker")

        def press_next() -> bool:
            """Press NEXT as a clerk would: again if the unit said "Nie wyslano!" (server state not in yet)."""
            unit.stdin.write("next\n")
            unit.stdin.flush()
            try:
                wait_for(lambda: monitor.received(f"{BASE}/zone/hall/call"), 2, "a call")
                return True
            except AssertionError:
                return False

        wait_for(press_next, 30, "the call made by the counter unit")
        call = json.loads(monitor.received(f"{BASE}/zone/hall/call")[0])
        assert (call["ticket"], call["counter"]) == ("A001", "1")
    finally:
        if unit is not None:
            unit.stdin.close()
            unit.terminate()
            unit.wait(10)
        server.stop()


def test_counter_gets_its_reply_on_the_response_topic_it_asked_for(closed_broker):
    """docs/protocol.md: a command with an MQTT 5 response topic under counter/<id>/reply/ is answered there."""
    http_port = int(tomllib.loads(closed_broker.site.read_text())["http"]["port"])
    server = ServerProcess(closed_broker.site, http_port=http_port).start()
    try:
        counter = closed_broker.login("counter-4")
        counter.subscribe(f"{BASE}/counter/4/reply/#")
        topic = f"{BASE}/counter/4/reply/session-1"
        counter.client.publish(
            f"{BASE}/counter/4/command", json.dumps(command("c1", "open")), qos=1, properties=_response_to(topic)
        )
        wait_for(lambda: counter.received(topic), 10, "the reply on the counter's own response topic")
        assert json.loads(counter.received(topic)[0])["id"] == "c1"
        assert counter.received(f"{BASE}/counter/4/reply") == []  # not (also) on the default topic
    finally:
        server.stop()


# What each account may publish: (account, topic, allowed). Every "no" is a neighbour of a "yes".
PUBLISH_RULES = [
    ("counter-4", f"{BASE}/counter/4/command", True),
    ("counter-4", f"{BASE}/device/counter-4/availability", True),
    ("counter-4", f"{BASE}/counter/4/reply", False),
    ("counter-4", f"{BASE}/counter/4/reply/x", False),
    ("counter-4", f"{BASE}/counter/4/state", False),
    ("counter-4", f"{BASE}/device/counter-1/availability", False),
    ("counter-4", f"{BASE}/server/availability", False),
    ("kiosk-k1", f"{BASE}/kiosk/k1/request", True),
    ("kiosk-k1", f"{BASE}/kiosk/k1/fault", True),
    ("kiosk-k1", f"{BASE}/device/kiosk-k1/availability", True),
    ("kiosk-k1", f"{BASE}/kiosk/k1/response/r1", False),
    ("kiosk-k1", f"{BASE}/kiosk/k2/fault", False),
    ("kiosk-k1", f"{BASE}/services", False),
    ("display-hall-1", f"{BASE}/device/display-hall-1/availability", True),
    ("display-hall-1", f"{BASE}/zone/hall/board", False),
    ("display-hall-1", f"{BASE}/zone/hall/call", False),
    ("server", f"{BASE}/counter/4/reply/x", True),
    ("server", f"{BASE}/zone/hall/board", True),
    ("server", f"{BASE}/kiosk/k1/response", True),
    ("server", f"{BASE}/counter/4/command", False),
    ("server", f"{BASE}/kiosk/k1/request", False),
    ("server", f"{BASE}/device/counter-4/availability", False),
]


def test_each_account_may_publish_exactly_its_own_topics(closed_broker):
    clients: dict[str, Client] = {}
    wrong = []
    for account, topic, allowed in PUBLISH_RULES:
        client = clients.get(account) or clients.setdefault(account, closed_broker.login(account))
        reason = client.publish(topic, {"v": 1})
        if reason.is_failure == allowed:
            wrong.append(f"{account} {'could not' if allowed else 'could'} publish {topic} ({reason})")
    assert wrong == []


def test_each_device_receives_exactly_what_it_needs(closed_broker):
    """Every device subscribes to everything; the server publishes on each kind of topic; the ACL filters."""
    readers = {name: closed_broker.login(name) for name in ("counter-4", "display-hall-1", "kiosk-k1", "kiosk-k2")}
    for reader in readers.values():
        reader.subscribe(f"{BASE}/#")
    server = closed_broker.login("server")
    published = [
        "counter/1/state",
        "counter/4/state",
        "counter/4/reply",
        "counter/4/reply/s1",
        "counter/1/reply/s1",
        "zone/hall/call",
        "zone/hall/board",
        "zone/upstairs/call",
        "services",
        "server/errors",
        "kiosk/k1/response/r1",
        "kiosk/k2/response",
    ]
    for topic in published:
        assert not server.publish(f"{BASE}/{topic}", {"v": 1}).is_failure, topic
    sentinel = f"{BASE}/server/availability"  # published last: once it is in, everything before it is too
    server.publish(sentinel, "online")
    expected = {
        "counter-4": {"counter/4/state", "counter/4/reply", "counter/4/reply/s1"},
        "display-hall-1": {"zone/hall/call", "zone/hall/board", "services"},
        "kiosk-k1": {"kiosk/k1/response/r1", "services"},
        "kiosk-k2": {"kiosk/k2/response", "services"},
    }
    got = {}
    for name, reader in readers.items():
        wait_for(lambda r=reader: r.received(sentinel), 5, f"the sentinel at {name}")
        with reader._cond:
            got[name] = {t.removeprefix(f"{BASE}/") for t, _p, _r in reader.messages} - {"server/availability"}
    assert got == expected


def test_revoked_device_leaves_no_retained_availability_or_fault_behind(closed_broker, capsys):
    """Screens and the server's device list show a revoked kiosk neither online nor offline afterwards."""
    availability, fault = f"{BASE}/device/kiosk-k1/availability", f"{BASE}/kiosk/k1/fault"
    kiosk = closed_broker.login("kiosk-k1", will=availability)
    kiosk.publish(availability, "online", retain=True)
    kiosk.publish(fault, {"v": 1, "device": "kiosk-k1", "fault": "paper_out"}, retain=True)
    other = closed_broker.login("counter-1")
    other.publish(f"{BASE}/device/counter-1/availability", "online", retain=True)
    closed_broker.login("server").publish(f"{BASE}/server/availability", "online", retain=True)
    capsys.readouterr()

    assert closed_broker.provision("revoke", "kiosk-k1") == 0
    out = capsys.readouterr()
    assert closed_broker.provision("add", "monitor", "check") == 0
    monitor = closed_broker.login("monitor-check")
    monitor.subscribe(availability, fault, f"{BASE}/device/counter-1/availability")
    monitor.subscribe(f"{BASE}/server/availability")  # its retained copy comes after the ones above
    wait_for(lambda: monitor.received(f"{BASE}/server/availability"), 5, "the retained server availability")
    assert monitor.received(availability) == [] and monitor.received(fault) == []
    assert monitor.received(f"{BASE}/device/counter-1/availability") == [b"online"]  # others keep theirs
    assert "cleared its retained" in out.out and "warning" not in out.err
    assert "kiosk-k1" not in (closed_broker.broker_dir / "acl").read_text()  # nor the one-off clearing account
    assert "provision" not in (closed_broker.broker_dir / "passwd").read_text()


def test_clear_removes_the_availability_a_device_revoked_while_the_broker_was_away_left(closed_broker, capsys):
    availability = f"{BASE}/device/counter-4/availability"
    closed_broker.login("counter-4").publish(availability, "online", retain=True)
    away = ["--mqtt-port", str(free_port()), "--mqtt-wait", "1"]  # revoke cannot reach the broker
    assert closed_broker.provision(*away, "revoke", "counter-4") == 0
    assert "numerek-provision clear counter-4" in capsys.readouterr().err
    closed_broker.login("server").publish(f"{BASE}/server/availability", "online", retain=True)
    assert closed_broker.provision("add", "monitor", "check") == 0

    def retained() -> list[bytes]:
        monitor = closed_broker.login("monitor-check")
        monitor.subscribe(availability)
        monitor.subscribe(f"{BASE}/server/availability")  # the sentinel: its retained copy comes after
        wait_for(lambda: monitor.received(f"{BASE}/server/availability"), 5, "the sentinel")
        monitor.close()
        return monitor.received(availability)

    assert retained() == [b"online"]  # still there, as the warning said
    assert closed_broker.provision("clear", "counter-4") == 0
    assert retained() == []
