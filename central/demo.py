"""``numerek-central-demo``: a centre and two branches on one machine (docs/multi-branch.md).

Starts, in ``--dir`` (default ``central-demo-data``): a private PostgreSQL (Debian's
``postgresql`` package: initdb and pg_ctl, on a free loopback port), the central Mosquitto,
``numerek-central`` (the ingester) and ``numerek-central-web``; and for each branch
(``wola``, ``mokotow``) its own Mosquitto bridged to the centre by the config that
``numerek-replicate bridge-config`` prints, ``numerek-server`` with the example county
office, ``numerek-replicate``, and simulated residents and clerks over MQTT. Every part is
the real program; Ctrl-C stops everything. ``--seconds N`` stops after N seconds.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

from protocol.topics import Topics
from server.config import load_config
from server.replicate import bridge_config

EXAMPLE = Path(__file__).resolve().parent.parent / "server" / "examples" / "county_office.toml"
BRANCHES = {"wola": "Urząd Dzielnicy Wola", "mokotow": "Urząd Dzielnicy Mokotów"}


class DemoError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


def _wait(check: object, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise DemoError(f"{what} did not come up within {timeout:.0f} s")


class Demo:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.dir = Path(args.dir).resolve()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.bin = Path(sys.executable).parent
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.stop = threading.Event()
        self.as_root = os.geteuid() == 0
        self.pg_bin = self._pg_bin()
        self.pg_port = free_port()
        self.branch_http: dict[str, int] = {}  # each branch's web port, chosen with the centre's config
        # As root, PostgreSQL runs as the package's postgres user, which may not enter a
        # root-only folder: its data then lives in a folder of its own under /tmp.
        self.pgdir = Path(tempfile.mkdtemp(prefix="numerek-demo-pg-")) if self.as_root else self.dir / "postgres"

    @staticmethod
    def _pg_bin() -> Path:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            raise DemoError("PostgreSQL is not installed: sudo apt-get install postgresql")
        return Path(found[-1]).parent

    def spawn(self, name: str, cmd: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.dir / f"{name}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir)
        self.procs.append((name, proc))
        return proc

    # --- the centre -------------------------------------------------------------------
    def _pg(self, tool: str, *args: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self.as_root else []
        r = subprocess.run([*prefix, str(self.pg_bin / tool), *args], capture_output=True, text=True)
        if r.returncode != 0:
            raise DemoError(f"{tool} failed: {(r.stderr or r.stdout).strip()[-300:]}")

    def start_postgres(self) -> str:
        pgdir = self.pgdir
        if not (pgdir / "data").exists():
            pgdir.mkdir(exist_ok=True)
            if self.as_root:  # initdb refuses root; the package made a postgres user
                shutil.chown(pgdir, "postgres", "postgres")
            self._pg("initdb", "-D", str(pgdir / "data"), "-A", "trust", "-U", "numerek", "-E", "UTF8")
        opts = f"-p {self.pg_port} -c listen_addresses=127.0.0.1 -k {pgdir}"
        self._pg("pg_ctl", "-D", str(pgdir / "data"), "-l", str(pgdir / "log"), "-o", opts, "-w", "start")
        import psycopg

        admin = f"host=127.0.0.1 port={self.pg_port} user=numerek dbname=postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'central'").fetchone():
                conn.execute("CREATE DATABASE central")
        return f"host=127.0.0.1 port={self.pg_port} user=numerek dbname=central"

    def stop_postgres(self) -> None:
        try:
            self._pg("pg_ctl", "-D", str(self.pgdir / "data"), "-m", "fast", "-w", "stop")
        except DemoError:
            pass
        if self.as_root:
            shutil.rmtree(self.pgdir, ignore_errors=True)

    def broker(self, name: str, extra: str = "") -> int:
        port = free_port()
        folder = self.dir / name
        folder.mkdir(exist_ok=True)
        user = "user root\n" if self.as_root else ""
        conf = folder / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {folder}/\nautosave_interval 5\nset_tcp_nodelay true\n"
            f"max_queued_messages 100000\n{user}{extra}"
        )
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.spawn(name, [exe, "-c", str(conf)])
        _wait(lambda: _listening(port), f"the {name} broker")
        return port

    def start_centre(self) -> tuple[str, str, str]:
        dsn = self.start_postgres()
        central_port = self.broker("central-broker")
        http_port = self.args.http_port or free_port()
        config = self.dir / "central.toml"
        # The branches' addresses are chosen now: the centre's public pages link to them.
        self.branch_http = {b: free_port() for b in BRANCHES}
        branches = "".join(
            f'\n[[branches]]\nid = "{b}"\nname = "{n}"\npublic_url = "http://127.0.0.1:{self.branch_http[b]}/"\n'
            for b, n in BRANCHES.items()
        )
        config.write_text(
            f'[mqtt]\nhost = "127.0.0.1"\nport = {central_port}\n\n[database]\ndsn = "{dsn}"\n\n'
            f'[http]\nport = {http_port}\nusers_database = "central-users.db"\n{branches}',
            encoding="utf-8",
        )
        login = self.dir / "manager-login.txt"
        if not login.exists():
            password = secrets.token_urlsafe(12)
            r = subprocess.run(
                [str(self.bin / "numerek-users"), "--database", str(self.dir / "central-users.db"), "add"]
                + ["kierownik", "--role", "manager", "--password-stdin"],
                input=password + "\n",
                text=True,
                capture_output=True,
            )
            if r.returncode != 0:
                raise DemoError(f"could not make the manager login: {r.stderr.strip()}")
            login.write_text(f"kierownik {password}\n")
            login.chmod(0o600)
        self.spawn("numerek-central", [str(self.bin / "numerek-central"), "--config", str(config)])
        self.spawn("numerek-central-web", [str(self.bin / "numerek-central-web"), "--config", str(config)])
        url = f"http://127.0.0.1:{http_port}"
        _wait(lambda: _listening(http_port), "numerek-central-web")
        self.central_port = central_port
        return url, login.read_text().strip(), str(config)

    # --- the branches -----------------------------------------------------------------
    def start_branch(self, branch: str) -> str:
        topics = Topics()
        bridge = bridge_config(topics, branch, "127.0.0.1", self.central_port)
        mqtt_port = self.broker(f"{branch}-broker", bridge)
        http_port = self.branch_http[branch]
        db = self.dir / f"{branch}.db"
        office = self.office_config()
        self.spawn(
            f"{branch}-server",
            [str(self.bin / "numerek-server"), "--config", str(office), "--database", str(db)]
            + ["--mqtt-port", str(mqtt_port), "--http-port", str(http_port)],
        )
        url = f"http://127.0.0.1:{http_port}"

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(url + "/health", timeout=1) as r:
                    return bool(json.load(r)["broker_connected"])
            except OSError:
                return False

        _wait(healthy, f"the {branch} server")
        self.spawn(
            f"{branch}-replicate",
            [str(self.bin / "numerek-replicate"), "--config", str(office), "--branch", branch]
            + ["--database", str(db), "--mqtt-port", str(mqtt_port)],
        )
        threading.Thread(target=self.traffic, args=(mqtt_port,), daemon=True).start()
        return url

    def office_config(self) -> Path:
        """The example county office, open around the clock: the branches run on the real
        clock (as the replicator does), whatever the time of the demo."""
        path = self.dir / "office.toml"
        always = ", ".join(f'{d} = "00:00-24:00"' for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"))
        text = re.sub(r"^hours = \{.*\}$", "hours = { " + always + " }", EXAMPLE.read_text("utf-8"), flags=re.M)
        path.write_text(text, encoding="utf-8")
        return path

    def traffic(self, mqtt_port: int) -> None:
        """Residents take tickets and clerks call them, over the branch's MQTT."""
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        cfg = load_config(self.office_config())
        topics = Topics(cfg.mqtt.topic_base)
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"demo-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5
        )
        client.connect("127.0.0.1", mqtt_port)
        client.loop_start()
        rng = random.Random()
        services = [s.id for s in cfg.services]
        counters = [c.id for c in cfg.counters]
        while not self.stop.wait(self.args.pace * rng.uniform(0.5, 1.5)):
            if rng.random() < 0.55:
                body = {"v": 1, "id": uuid.uuid4().hex, "service": rng.choice(services), "priority": False}
                client.publish(topics.kiosk_request("demo-sim"), json.dumps(body), qos=1)
            else:
                body = {"v": 1, "id": uuid.uuid4().hex, "action": "next"}
                client.publish(topics.counter_command(rng.choice(counters)), json.dumps(body), qos=1)
        client.disconnect()
        client.loop_stop()

    # --- run ----------------------------------------------------------------------------
    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
        # Ctrl-C stops the demo even when it was started from a script's background job, where
        # the shell hands it SIGINT ignored and Python then keeps ignoring it.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            print("Numerek multi-branch demo — starting the centre (PostgreSQL, broker, ingester, web)", flush=True)
            url, login, config = self.start_centre()
            for branch, name in BRANCHES.items():
                branch_url = self.start_branch(branch)
                print(f"  branch {branch} ({name}): {branch_url}", flush=True)
            print(f"Centre: {url}  (login: {login})", flush=True)
            print(f"Config: {config}; logs in {self.dir}. Ctrl-C stops everything.", flush=True)
            deadline = time.monotonic() + self.args.seconds if self.args.seconds else None
            while not self.stop.wait(0.5):
                for name, proc in self.procs:
                    if proc.poll() is not None:
                        raise DemoError(f"{name} stopped (exit {proc.returncode}); see {self.dir / (name + '.log')}")
                if deadline and time.monotonic() > deadline:
                    break
            return 0
        except KeyboardInterrupt:
            return 0
        except DemoError as exc:
            print(f"numerek-central-demo: {exc}", file=sys.stderr)
            return 1
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        self.stop.set()
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for _name, proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.stop_postgres()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="numerek-central-demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", default="central-demo-data", help="where the demo keeps its databases and logs")
    p.add_argument("--http-port", type=int, default=0, help="the centre's web port (default: a free one)")
    p.add_argument("--pace", type=float, default=2.0, help="seconds between simulated actions per branch")
    p.add_argument("--seconds", type=float, default=0, help="stop after this many seconds (0: until Ctrl-C)")
    args = p.parse_args(argv)
    try:
        return Demo(args).run()
    except DemoError as exc:
        print(f"numerek-central-demo: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
