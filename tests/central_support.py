"""Real parts for the multi-branch tests: PostgreSQL from the Debian package in a temporary
folder, a central Mosquitto with per-branch accounts and ACL, branches (their own broker
bridged to the centre, the real server, the real replicator) and the real ingester."""

from __future__ import annotations

import atexit
import glob
import json
import os
import random
import shutil
import sqlite3
import subprocess
import tempfile
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from protocol.replica import EventBatch, ReplicaEvent
from protocol.topics import Topics
from server.replicate import bridge_config
from tests.harness import (
    Broker,
    ForkedProcess,
    Peer,
    ServerProcess,
    free_port,
    start_tool,
    wait_for,
    write_config,
)

PG_BIN = Path("/usr/lib/postgresql/15/bin")
T = Topics()


def _as_postgres() -> list[str]:
    """How to run PostgreSQL's tools: as the postgres user when we are root (initdb refuses root)."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


_initialised: Path | None = None


def _initialised_cluster() -> Path:
    """A data folder initdb made, once per pytest process: each :class:`Postgres` copies it.

    Why: initdb writes and checks a whole cluster (1.5 s of CPU, 15-20 s on a busy machine), and
    the replication tests take a cluster each, so that a test's restart of its database touches
    nobody else's. A copy of the folder (``cp -a``) is the same fresh cluster, of its own."""
    global _initialised
    if _initialised is None or not (_initialised / "PG_VERSION").exists():
        base = Path(tempfile.mkdtemp(prefix="numerek-pg-initdb-"))
        if os.geteuid() == 0:
            shutil.chown(base, "postgres", "postgres")
        data = base / "data"
        subprocess.run(
            [*_as_postgres(), str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "numerek"]
            + ["--no-sync", "-E", "UTF8"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=base,
        )
        atexit.register(shutil.rmtree, base, True)
        _initialised = data
    return _initialised


class Postgres:
    """A private PostgreSQL cluster on 127.0.0.1:<free port>; restartable."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="numerek-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.as_user = _as_postgres()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run([*self.as_user, "cp", "-a", str(_initialised_cluster()), str(self.data)], check=True)

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self.as_user, str(PG_BIN / tool), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self.dir,
        )

    def start(self, fsync: bool = False) -> Postgres:
        """``fsync`` off for tests (nothing here survives a power cut anyway); on for benches."""
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c fsync={'on' if fsync else 'off'}"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "log"), "-o", opts, "-w", "start")
        return self

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def dsn(self, db: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=numerek dbname={db} connect_timeout=3"

    def create_db(self, name: str) -> str:
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def destroy(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


def _passwd(path: Path, users: dict[str, str]) -> None:
    path.write_text("")
    for user, password in users.items():
        subprocess.run(["mosquitto_passwd", "-b", str(path), user, password], check=True)


def _acl(path: Path, rules: dict[str, list[tuple[str, str]]]) -> None:
    lines = []
    for user, pairs in rules.items():
        lines.append(f"user {user}")
        lines += [f"topic {access} {pattern}" for access, pattern in pairs]
        lines.append("")
    path.write_text("\n".join(lines))


_AS_ME = "user root\n" if os.geteuid() == 0 else ""
"""Mosquitto started as root drops to its own user, which cannot write pytest's root-only folders."""


class CentralBroker(Broker):
    """The central Mosquitto: persistent, each branch's bridge with its own account and ACL."""

    def __init__(self, workdir: Path, branches: list[str]) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        super().__init__(workdir)
        self.users = {f"branch-{b}": f"pw-{b}-secret" for b in branches} | {"central": "central-secret"}
        _passwd(workdir / "passwd", self.users)
        rules = {f"branch-{b}": T.acl("bridge", [b]) for b in branches} | {"central": T.acl("central")}
        _acl(workdir / "acl", rules)
        (workdir / "persist").mkdir(exist_ok=True)
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous false\npassword_file {workdir / 'passwd'}\n"
            f"acl_file {workdir / 'acl'}\npersistence true\npersistence_location {workdir / 'persist'}/\n"
            "autosave_interval 1\nset_tcp_nodelay true\nmax_queued_messages 100000\n" + _AS_ME
        )


class BranchBroker(Broker):
    """A branch's own Mosquitto, bridged to the centre as the generated config says."""

    def __init__(self, workdir: Path, branch: str, central: CentralBroker, persistent: bool = True) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        super().__init__(workdir)
        (workdir / "persist").mkdir(exist_ok=True)
        bridge = bridge_config(
            T, branch, "127.0.0.1", central.port, f"branch-{branch}", central.users[f"branch-{branch}"]
        )
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence {str(persistent).lower()}\n"
            f"persistence_location {workdir / 'persist'}/\nautosave_interval 1\nset_tcp_nodelay true\n"
            f"max_queued_messages 100000\n{_AS_ME}{bridge}"
        )


class Branch:
    """One branch office: its broker (bridged), its numerek-server, its numerek-replicate."""

    def __init__(
        self,
        workdir: Path,
        branch: str,
        central: CentralBroker,
        persistent: bool = True,
        env: dict[str, str] | None = None,
    ) -> None:
        """``env``: the environment of the branch's programs (e.g. libfaketime's: a branch
        whose machine clock is off)."""
        self.id = branch
        self.env = env or {}
        self.dir = workdir
        self.broker = BranchBroker(workdir / "broker", branch, central, persistent).start()
        http_port = free_port()
        cfg = write_config(workdir / "office.toml", self.broker.port, http_port)
        self.server = ServerProcess(cfg, http_port=http_port, env=self.env).start()
        self.replicator: subprocess.Popen | ForkedProcess | None = None
        self.start_replicator()
        self._connect_peer()
        self.n = 0

    def _connect_peer(self) -> None:
        self.peer = Peer(self.broker.port)
        self.peer.subscribe("numerek/kiosk/k1/response/#", "numerek/counter/+/reply")

    def restart_broker(self) -> None:
        """Stop and start the branch's broker (without persistence: its queue is gone)."""
        self.peer.close()
        self.broker.stop()
        self.broker.start()
        wait_for(self.server._healthy, 30, "the branch server back on its broker")
        self._connect_peer()

    def start_replicator(self) -> None:
        self.replicator = start_tool(
            "server.replicate",
            *("--config", str(self.server.config), "--branch", self.id, "--heartbeat", "0.5", "--booking-every", "2"),
            log=self.dir / "replicator.log",
            env=self.env,
        )

    def issue(self, service: str = "rej") -> dict:
        self.n += 1
        rid = f"{self.id}-t{self.n}"
        reply = self.peer.request(
            "numerek/kiosk/k1/request",
            {"v": 1, "id": rid, "service": service, "priority": False},
            response_topic=f"numerek/kiosk/k1/response/{rid}",
        )
        assert reply["ok"], reply
        return reply["ticket"]

    def next(self, counter: str = "1") -> dict:
        self.n += 1
        rid = f"{self.id}-c{self.n}"
        self.peer.publish(f"numerek/counter/{counter}/command", {"v": 1, "id": rid, "action": "next"})
        return self.peer.expect(f"numerek/counter/{counter}/reply", where=lambda d: d["id"] == rid, timeout=10)

    def own_counts(self) -> dict[str, int]:
        """Event kinds as the branch's own database has them."""
        with sqlite3.connect(f"file:{self.server.database}?mode=ro", uri=True) as conn:
            return dict(Counter(k for (k,) in conn.execute("SELECT kind FROM events")))

    def own_waiting(self) -> int:
        with sqlite3.connect(f"file:{self.server.database}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT count(*) FROM tickets WHERE status = 'waiting'").fetchone()[0]

    def handed_over(self) -> int:
        """The last event the branch's broker acknowledged to the replicator (its cursor file)."""
        cursor = Path(f"{self.server.database}.replica-cursor")
        return int(json.loads(cursor.read_text())["after"]) if cursor.exists() else 0

    def own_ids(self) -> list[int]:
        with sqlite3.connect(f"file:{self.server.database}?mode=ro", uri=True) as conn:
            return [i for (i,) in conn.execute("SELECT id FROM events ORDER BY id")]

    def close(self) -> None:
        self.peer.close()
        if self.replicator and self.replicator.poll() is None:
            self.replicator.terminate()
            self.replicator.wait(10)
        self.server.stop()
        self.broker.stop()


class Publisher:
    """An MQTT client signed in with one of the central broker's accounts."""

    def __init__(self, broker: CentralBroker, user: str) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"op-{user}", protocol=mqtt.MQTTv5)
        self.client.username_pw_set(user, broker.users[user])
        self.client.connect("127.0.0.1", broker.port, keepalive=10)
        self.client.loop_start()

    def publish(self, topic: str, payload: str) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(10)
        assert info.is_published()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def libfaketime() -> str | None:
    found = glob.glob("/usr/lib/*/faketime/libfaketime.so.1")
    return found[0] if found else None


def clock_off(offset: str) -> dict[str, str]:
    """The environment of a program on a machine whose clock is ``offset`` off (``-3h``)."""
    lib = libfaketime()
    assert lib, "Debian's faketime package (.ci/setup) is needed"
    return {"LD_PRELOAD": lib, "FAKETIME": offset, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


def write_central_config(path: Path, broker: CentralBroker, dsn: str, http_port: int = 0) -> Path:
    path.write_text(
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nusername = "central"\npassword = "central-secret"\n\n'
        f'[database]\ndsn = "{dsn}"\n\n[http]\nport = {http_port or free_port()}\n\n'
        '[[branches]]\nid = "wola"\nname = "Urząd Dzielnicy Wola"\npublic_url = "https://wola.example.pl/"\n\n'
        '[[branches]]\nid = "mokotow"\nname = "Urząd Dzielnicy Mokotów"\n',
        encoding="utf-8",
    )
    return path


class IngesterProcess:
    def __init__(self, config: Path) -> None:
        self.config = config
        self.proc: subprocess.Popen | ForkedProcess | None = None

    def start(self) -> IngesterProcess:
        self.proc = start_tool("central.ingest", "--config", str(self.config), log=self.config.parent / "central.log")
        return self

    def log(self) -> str:
        return (self.config.parent / "central.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def central_counts(dsn: str, branch: str) -> dict[str, int]:
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            rows = conn.execute("SELECT kind, count(*) FROM events WHERE branch = %s GROUP BY kind", (branch,))
            return {k: int(n) for k, n in rows}
    except psycopg.Error:
        return {}


def wait_caught_up(dsn: str, branch: Branch, timeout: float = 90) -> None:
    """Until the centre has exactly the branch's events (the failure bound is generous)."""
    wait_for(
        lambda: central_counts(dsn, branch.id) == branch.own_counts(),
        timeout,
        f"the centre to hold branch {branch.id}'s events",
    )


class Feed:
    """One branch's event log, as its replicator would send it, straight into a real CentralStore
    (the store's tests; the whole path through brokers is tested with :class:`Branch`)."""

    def __init__(self, store: Any, branch: str) -> None:
        self.store, self.branch, self.seq, self.ticket = store, branch, 0, 0
        self.events: list[ReplicaEvent] = []

    def event(self, day: date, at: datetime, kind: str, ticket_id: int, service: str) -> None:
        self.seq += 1
        self.events.append(
            ReplicaEvent(
                id=self.seq,
                at=at.timestamp(),
                day=day,
                kind=kind,
                ticket_id=ticket_id,
                ticket=f"A{ticket_id}",
                service=service,
                counter="1" if kind != "issue" else None,
            )
        )

    def day(self, day: date, tickets: int, rng: random.Random) -> list[int]:
        ids = []
        for _ in range(tickets):
            self.ticket += 1
            t0 = datetime(day.year, day.month, day.day, 8, tzinfo=UTC) + timedelta(seconds=rng.uniform(0, 7 * 3600))
            service = rng.choice(["rej", "pj", "kasa"])
            wait = rng.expovariate(1 / 500)
            self.event(day, t0, "issue", self.ticket, service)
            self.event(day, t0 + timedelta(seconds=wait), "call", self.ticket, service)
            if rng.random() < 0.9:
                self.event(day, t0 + timedelta(seconds=wait + 30), "start", self.ticket, service)
                self.event(day, t0 + timedelta(seconds=wait + 300), "finish", self.ticket, service)
            ids.append(self.ticket)
        return ids

    def send(self) -> None:
        for i in range(0, len(self.events), 500):
            part = self.events[i : i + 500]
            self.store.ingest([EventBatch(branch=self.branch, head=self.seq, sent_at=part[-1].at, events=part)])
        self.events = []
