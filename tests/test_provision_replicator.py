"""A branch whose broker is closed by numerek-provision replicates to the centre with the
replicator's own account (docs/multi-branch.md, "A branch with a closed broker").

Real parts: the branch's Mosquitto runs the shipped systemd/mosquitto/numerek.conf with the
accounts and ACL numerek-provision wrote, bridged (numerek-replicate bridge-config) to a
central Mosquitto with per-branch accounts; the real server, the real replicator as the
systemd unit runs it, the real ingester, PostgreSQL from Debian's package.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from protocol.topics import Topics
from server.provision import main as provision
from server.replicate import bridge_config
from tests.central_support import (
    PG_BIN,
    CentralBroker,
    IngesterProcess,
    Postgres,
    central_counts,
    write_central_config,
)
from tests.harness import ForkedProcess, ServerProcess, free_port, start_tool, wait_for, write_config
from tests.test_provision_broker import CONF, Client, ClosedBroker, Refused

T = Topics()
pytestmark = pytest.mark.skipif(
    not (PG_BIN / "initdb").exists() or not shutil.which("mosquitto_passwd"),
    reason="PostgreSQL 15 (Debian's postgresql) and mosquitto are installed by .ci/setup",
)


@dataclass
class ClosedBranch:
    """Branch wola: its closed broker (bridged to the centre), its server, its replicator."""

    broker: ClosedBroker
    server: ServerProcess
    dir: Path
    replicator: subprocess.Popen | ForkedProcess | None = None

    def start_replicator(self, *options: str) -> None:
        """``numerek-replicate`` as systemd/numerek-replicate.service runs it, plus ``options``."""
        self.replicator = start_tool(
            "server.replicate",
            *("--config", str(self.server.config), "--branch", "wola", "--heartbeat", "0.5", "--booking-every", "2"),
            *options,
            log=self.dir / "replicator.log",
        )

    def replicator_log(self) -> str:
        return (self.dir / "replicator.log").read_text(errors="replace")

    def own_counts(self) -> dict[str, int]:
        with sqlite3.connect(f"file:{self.server.database}?mode=ro", uri=True) as conn:
            return dict(Counter(k for (k,) in conn.execute("SELECT kind FROM events")))

    def issue(self, kiosk: Client) -> None:
        rid = uuid.uuid4().hex[:8]
        request = {"v": 1, "id": rid, "service": "rej", "priority": False}
        assert not kiosk.publish(T.kiosk_request("k1"), request).is_failure
        wait_for(lambda: any(rid.encode() in p for p in kiosk.received(T.kiosk_response("k1"))), 10, "the ticket")


@pytest.fixture
def centre(tmp_path) -> Iterator[tuple[str, CentralBroker]]:
    pg = Postgres().start()
    central = CentralBroker(tmp_path / "central", ["wola"]).start()
    dsn = pg.create_db("central")
    ingester = IngesterProcess(write_central_config(tmp_path / "central" / "central.toml", central, dsn)).start()
    yield dsn, central
    ingester.stop()
    central.stop()
    pg.destroy()


@pytest.fixture
def branch(tmp_path, centre) -> Iterator[ClosedBranch]:
    """Provisioned as docs/deployment.md and docs/multi-branch.md say, bridged as the latter says."""
    _dsn, central = centre
    work = tmp_path / "wola"
    work.mkdir()
    port, http_port = free_port(), free_port()
    broker_dir, config_dir = work / "mosquitto", work / "devices"
    site = write_config(work / "office.toml", port, http_port)
    common = ["--broker-dir", str(broker_dir), "--config-dir", str(config_dir), "--no-reload"]
    assert provision([*common, "init", "--host", "127.0.0.1", "--port", str(port)]) == 0
    assert provision([*common, "add", "server", "--site-config", str(site)]) == 0
    for args in (["kiosk", "k1"], ["counter", "1"], ["replicator", "wola"]):
        assert provision([*common, "add", *args]) == 0
    conf = CONF.read_text().replace("/etc/mosquitto/numerek", str(broker_dir))
    conf = conf.replace("listener 1883", f"listener {port} 127.0.0.1")
    if os.geteuid() == 0:  # pytest's tmp dirs are root-only (0700): stay root instead of dropping to mosquitto
        conf += "\nuser root\n"
    conf += "\n" + bridge_config(T, "wola", "127.0.0.1", central.port, "branch-wola", central.users["branch-wola"])
    (work / "mosquitto.conf").write_text(conf)
    log = open(work / "mosquitto.log", "wb")  # noqa: SIM115
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen([exe, "-c", str(work / "mosquitto.conf"), "-v"], stdout=log, stderr=log)
    broker = ClosedBroker(port, broker_dir, config_dir, site, proc)

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError("mosquitto exited: " + (work / "mosquitto.log").read_text())
        try:
            Client(port, "server", broker.password("server")).close()
            return True
        except (OSError, Refused):
            return False

    wait_for(up, 10, "the branch's closed broker")
    server = ServerProcess(site, http_port=http_port).start()
    b = ClosedBranch(broker, server, work)
    yield b
    if b.replicator and b.replicator.poll() is None:
        b.replicator.terminate()
        b.replicator.wait(10)
    server.stop()
    proc.terminate()
    proc.wait(5)
    log.close()


def _devices_offline(dsn: str) -> list[str] | None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT devices_offline FROM branches WHERE branch = 'wola'").fetchone()
        return row[0] if row else None


def test_a_branch_with_a_closed_broker_replicates_with_the_replicator_account(branch, centre):
    dsn, _central = centre
    account = branch.broker.config_dir / "replicator-wola.toml"
    assert account.stat().st_mode & 0o777 == 0o600  # as every device's file
    branch.start_replicator("--account", str(account))
    kiosk = branch.broker.login("kiosk-k1")
    kiosk.subscribe(T.kiosk_response("k1"))
    for _ in range(3):
        branch.issue(kiosk)
    counter = branch.broker.login("counter-1")
    counter.subscribe(T.counter_reply("1"))
    assert not counter.publish(T.counter_command("1"), {"v": 1, "id": "c1", "action": "next"}).is_failure
    wait_for(lambda: counter.received(T.counter_reply("1")), 10, "the call")
    wait_for(lambda: central_counts(dsn, "wola") == branch.own_counts(), 90, "the centre to hold wola's events")
    assert (central_counts(dsn, "wola")["issue"], central_counts(dsn, "wola")["call"]) == (3, 1)

    # The devices' availability reaches the centre too: the account reads it on the branch broker.
    assert not kiosk.publish(T.device_availability("kiosk-k1"), "offline", retain=True).is_failure
    wait_for(lambda: _devices_offline(dsn) == ["kiosk-k1"], 60, "the centre to show kiosk-k1 offline")
    kiosk.close()
    counter.close()


def test_the_servers_account_may_not_publish_the_branchs_events(branch, centre):
    """What a branch set up before the replicator had an account of its own gets: the broker
    refuses the batches, and the replicator says so and what to do."""
    branch.start_replicator()  # the site config's [mqtt]: the server's account
    wait_for(lambda: "the broker refused the batch" in branch.replicator_log(), 30, "the refusal in the log")
    assert "numerek-provision add replicator wola" in branch.replicator_log()
    assert branch.replicator is not None and branch.replicator.poll() is None  # it keeps trying, no crash loop
