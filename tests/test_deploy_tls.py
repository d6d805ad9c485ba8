"""TLS, as docs/deployment.md sets it up: our CA script, the shipped TLS listener, a device config with tls_ca."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import textwrap
import tomllib
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from protocol.mqtt import make_client
from server.provision import main as provision
from tests.harness import ROOT, ServerProcess, free_port, wait_for, write_config
from tests.test_provision_broker import Client, Refused

pytestmark = pytest.mark.skipif(
    shutil.which("openssl") is None or not (shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()),
    reason="needs openssl and mosquitto",
)


@pytest.fixture
def tls_broker(tmp_path):
    certs = tmp_path / "certs"
    subprocess.run(
        [str(ROOT / "systemd" / "make-tls-certs.sh"), "localhost", "127.0.0.1", str(certs)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    plain, secure = free_port(), free_port()
    broker_dir, config_dir = tmp_path / "mosquitto", tmp_path / "devices"
    common = ["--broker-dir", str(broker_dir), "--config-dir", str(config_dir), "--no-reload"]
    ca = str(certs / "numerek-ca.crt")
    assert provision([*common, "init", "--host", "127.0.0.1", "--port", str(secure), "--tls-ca", ca]) == 0
    site = write_config(tmp_path / "office.toml", plain, free_port())
    assert provision([*common, "add", "server", "--site-config", str(site)]) == 0
    assert provision([*common, "add", "counter", "4"]) == 0
    conf = (ROOT / "systemd" / "mosquitto" / "numerek.conf").read_text()
    conf += "\n" + (ROOT / "systemd" / "mosquitto" / "numerek-tls.conf").read_text()
    conf = conf.replace("/etc/mosquitto/numerek", str(broker_dir)).replace("/etc/mosquitto/certs", str(certs))
    conf = conf.replace("listener 1883", f"listener {plain} 127.0.0.1").replace("listener 8883", f"listener {secure}")
    if os.geteuid() == 0:
        conf += "\nuser root\n"  # pytest's tmp dirs are root-only
    (tmp_path / "mosquitto.conf").write_text(conf)
    log = open(tmp_path / "mosquitto.log", "wb")  # noqa: SIM115
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen([exe, "-c", str(tmp_path / "mosquitto.conf"), "-v"], stdout=log, stderr=log)
    import tomllib

    server_password = tomllib.loads(site.read_text())["mqtt"]["password"]

    def up() -> bool:
        assert proc.poll() is None, (tmp_path / "mosquitto.log").read_text()
        try:
            Client(plain, "server", server_password).close()
            return True
        except (OSError, Refused):
            return False

    wait_for(up, 10, "mosquitto with TLS")
    yield {
        "plain": plain,
        "secure": secure,
        "config": config_dir / "counter-4.toml",
        "ca": ca,
        "server_password": server_password,
        "certs": certs,
        "pid": proc.pid,
        "site": site,
        "dirs": ["--broker-dir", str(broker_dir), "--config-dir", str(config_dir)],
    }
    proc.terminate()
    proc.wait(5)
    log.close()


def test_device_with_tls_ca_reaches_the_broker_over_tls(tls_broker):
    from counter.config import load_config

    cfg = load_config(tls_broker["config"])
    assert cfg.mqtt.tls_ca == tls_broker["ca"] and cfg.mqtt.port == tls_broker["secure"]
    server = Client(tls_broker["plain"], "server", tls_broker["server_password"])
    server.subscribe("numerek/counter/+/command")
    from protocol.mqtt import BrokerSettings

    b = cfg.mqtt
    settings = BrokerSettings(b.host, b.port, b.username, b.password, b.tls_ca)
    connected: list[bool] = []
    device = make_client("counter-4", settings, "numerek/device/counter-4/availability", on_connect=connected.append)
    device.connect(b.host, b.port)
    device.loop_start()
    try:
        wait_for(lambda: connected, 10, "the TLS connection")
        device.publish("numerek/counter/4/command", json.dumps({"v": 1, "id": "t1", "action": "next"}), qos=1)
        wait_for(lambda: server.received("numerek/counter/4/command"), 5, "the command sent over TLS")
    finally:
        device.disconnect()
        device.loop_stop()
        server.close()


def test_tls_listener_refuses_plain_mqtt_and_a_certificate_from_another_ca(tls_broker, tmp_path):
    # A plain MQTT CONNECT on the TLS port gets no CONNACK: the broker hangs up.
    connect = b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01x"
    with socket.create_connection(("127.0.0.1", tls_broker["secure"]), timeout=10) as sock:
        sock.sendall(connect)
        try:
            answer = sock.recv(4)
        except ConnectionResetError:
            answer = b""
    assert answer == b"" or not answer.startswith(b"\x20")
    other = tmp_path / "other"
    subprocess.run(
        [str(ROOT / "systemd" / "make-tls-certs.sh"), "localhost", "127.0.0.1", str(other)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    wrong = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="wrong-ca", protocol=mqtt.MQTTv5)
    wrong.tls_set(ca_certs=str(other / "numerek-ca.crt"))
    with pytest.raises(ssl.SSLCertVerificationError):
        wrong.connect("127.0.0.1", tls_broker["secure"], keepalive=5)


def _tls_login(host: str, port: int, username: str, password: str, ca: str) -> mqtt.Client:
    """A device's MQTT 5 login over TLS; raises unless the broker accepts it."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=username, protocol=mqtt.MQTTv5)
    client.username_pw_set(username, password)
    client.tls_set(ca_certs=ca)
    answers: list = []
    client.on_connect = lambda _c, _u, _f, rc, _p: answers.append(rc)
    client.connect(host, port, keepalive=10)
    client.loop_start()
    wait_for(lambda: answers, 10, f"CONNACK for {username}")
    assert not answers[0].is_failure, f"{username}: {answers[0]}"
    return client


def test_devices_provisioned_for_plain_mqtt_move_to_tls_with_reissue(tls_broker):
    """docs/deployment.md, TLS steps 3-4, for a display (it has a zone) and a unit for two counters."""
    from counter.config import load_config as load_counter
    from display.config import load_config as load_display

    common = [*tls_broker["dirs"], "--broker-pid", str(tls_broker["pid"])]
    assert provision([*common, "init", "--port", str(tls_broker["plain"]), "--tls-ca", ""]) == 0
    assert provision([*common, "add", "display", "hall-1", "--zone", "hall"]) == 0
    assert provision([*common, "add", "counter", "3", "4"]) == 0
    config_dir = Path(tls_broker["dirs"][3])
    text = (config_dir / "display-hall-1.toml").read_text()
    (config_dir / "display-hall-1.toml").write_text(text.replace('office_name = ""', 'office_name = "USC Wola"'))

    assert provision([*common, "init", "--port", str(tls_broker["secure"]), "--tls-ca", tls_broker["ca"]]) == 0
    assert provision([*common, "reissue", "--all"]) == 0

    display = load_display(config_dir / "display-hall-1.toml")
    assert display.display.zone == "hall" and display.display.office_name == "USC Wola"
    unit = load_counter(config_dir / "counter-3-4.toml")
    assert [c.id for c in unit.counters] == ["3", "4"]
    server = Client(tls_broker["plain"], "server", tls_broker["server_password"])
    server.subscribe("numerek/counter/+/command")
    m, b = display.mqtt, unit.mqtt
    assert (m.port, m.tls_ca, b.port, b.tls_ca) == (tls_broker["secure"], tls_broker["ca"]) * 2
    clients = [
        _tls_login(m.host, m.port, m.username, m.password, m.tls_ca),
        _tls_login(b.host, b.port, b.username, b.password, b.tls_ca),
    ]
    try:
        clients[1].publish("numerek/counter/4/command", json.dumps({"v": 1, "id": "t4", "action": "next"}), qos=1)
        wait_for(lambda: server.received("numerek/counter/4/command"), 5, "counter 4's command over TLS")
    finally:
        for c in clients:
            c.disconnect()
            c.loop_stop()
        server.close()


@pytest.mark.skipif(shutil.which("caddy") is None, reason="caddy is not installed (apt-get install caddy)")
def test_web_pages_are_served_over_https_by_the_documented_caddyfile(tls_broker, tmp_path):
    """docs/deployment.md section 8: Caddy with the office certificate in front of a server bound to 127.0.0.1."""
    doc = (ROOT / "docs" / "deployment.md").read_text()
    caddyfile = textwrap.dedent(re.search(r"```caddy\n(.*?)```", doc, re.S).group(1))
    site = tls_broker["site"]
    http = tomllib.loads(site.read_text())["http"]
    assert http["host"] == "127.0.0.1"  # as section 8 step 3 says; the proxy is the only way in
    certs, https_port, redirect_port = tls_broker["certs"], free_port(), free_port()
    for doc_value, here in [
        ("127.0.0.1:8080", f"127.0.0.1:{http['port']}"),
        ("/etc/caddy/numerek-web.crt", str(certs / "numerek-broker.crt")),
        ("/etc/caddy/numerek-web.key", str(certs / "numerek-broker.key")),
        ("numerek-serwer.local", "localhost"),  # the names make-tls-certs.sh was given in this test
        ("192.168.1.10", "127.0.0.1"),
    ]:
        assert doc_value in caddyfile, doc_value
        caddyfile = caddyfile.replace(doc_value, here)
    options = f"{{\n\tadmin off\n\thttp_port {redirect_port}\n\thttps_port {https_port}\n}}\n"
    (tmp_path / "Caddyfile").write_text(options + caddyfile)
    env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    server = ServerProcess(site, http_port=int(http["port"])).start()
    log = open(tmp_path / "caddy.log", "wb")  # noqa: SIM115
    caddy = subprocess.Popen(
        [shutil.which("caddy"), "run", "--adapter", "caddyfile", "--config", str(tmp_path / "Caddyfile")],
        stdout=log,
        stderr=log,
        env=env,
    )
    trusted = httpx.Client(verify=ssl.create_default_context(cafile=tls_broker["ca"]), timeout=5)
    try:

        def health() -> dict | None:
            assert caddy.poll() is None, (tmp_path / "caddy.log").read_text()[-2000:]
            try:
                return trusted.get(f"https://localhost:{https_port}/health").json()
            except httpx.HTTPError:
                return None

        assert wait_for(health, 20, "the server through Caddy over HTTPS")["broker_connected"]
        page = trusted.get(f"https://localhost:{https_port}/admin", follow_redirects=False)
        assert (page.status_code, page.headers["location"]) == (303, "/login?next=%2Fadmin")  # the server itself
        login = trusted.get(f"https://localhost:{https_port}/login")
        assert login.status_code == 200 and "<form" in login.text
        plain = httpx.get(f"http://localhost:{redirect_port}/admin", follow_redirects=False, timeout=5)
        assert plain.status_code in (301, 302, 307, 308) and plain.headers["location"].startswith("https://")
        with pytest.raises(httpx.ConnectError):  # a browser without the office CA is warned, not served
            httpx.get(f"https://localhost:{https_port}/health", timeout=5)
    finally:
        trusted.close()
        caddy.terminate()
        caddy.wait(10)
        log.close()
        server.stop()
