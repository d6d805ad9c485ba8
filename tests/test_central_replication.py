"""Branches replicate their event log to the centre over real Mosquitto bridges into a real
PostgreSQL (docs/multi-branch.md): every event once, through cut links and restarts."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator

import psycopg
import pytest

from protocol.replica import EventBatch, ReplicaEvent
from tests.central_support import (
    PG_BIN,
    Branch,
    CentralBroker,
    IngesterProcess,
    Postgres,
    Publisher,
    central_counts,
    wait_caught_up,
    write_central_config,
)
from tests.harness import run_tool, wait_for

pytestmark = pytest.mark.skipif(
    not (PG_BIN / "initdb").exists() or not shutil.which("mosquitto_passwd"),
    reason="PostgreSQL 15 (Debian's postgresql) and mosquitto are installed by .ci/setup",
)


@pytest.fixture
def pg() -> Iterator[Postgres]:
    p = Postgres().start()
    yield p
    p.destroy()


def _load(branch: Branch, tickets: int, calls: int) -> None:
    for _ in range(tickets):
        branch.issue()
    for _ in range(calls):
        assert branch.next()["ok"]


def _central_waiting(dsn: str, branch: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM tickets WHERE branch = %s AND status = 'waiting'", (branch,)
        ).fetchone()[0]


def _central_ids(dsn: str, branch: str) -> list[int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return [r[0] for r in conn.execute("SELECT seq FROM events WHERE branch = %s ORDER BY seq", (branch,))]


def test_every_event_reaches_the_centre_once_through_a_cut_link_and_a_database_restart(tmp_path, pg):
    dsn = pg.create_db("central")
    names = ["wola", "mokotow"]
    central = CentralBroker(tmp_path / "central", names).start()
    ingester = IngesterProcess(write_central_config(tmp_path / "central" / "central.toml", central, dsn)).start()
    branches = [Branch(tmp_path / n, n, central) for n in names]
    try:
        for b in branches:
            _load(b, tickets=8, calls=3)
        for b in branches:
            wait_caught_up(dsn, b)

        # The link to the centre goes down: the branches carry on, their brokers queue.
        central.stop()
        for b in branches:
            _load(b, tickets=12, calls=5)
        assert all(central_counts(dsn, b.id)["issue"] == 8 for b in branches)
        central.start()
        for b in branches:
            wait_caught_up(dsn, b)

        # PostgreSQL restarts while the branches work: batches wait with the broker.
        pg.stop()
        for b in branches:
            _load(b, tickets=4, calls=2)
        pg.start()
        for b in branches:
            wait_caught_up(dsn, b)
            assert _central_ids(dsn, b.id) == b.own_ids()  # each event exactly once, none missing
            assert _central_waiting(dsn, b.id) == b.own_waiting()
        assert central_counts(dsn, "wola")["issue"] == 24
    finally:
        for b in branches:
            b.close()
        ingester.stop()
        central.stop()


def test_events_sent_while_the_ingester_was_killed_arrive_once_after_its_restart(tmp_path, pg):
    """The ingester's MQTT session outlives it (clean start off, a week's expiry) and it
    acknowledges a batch only after its commit: what came while it was dead is delivered
    when it is back, once."""
    dsn = pg.create_db("central")
    central = CentralBroker(tmp_path / "central", ["wola"]).start()
    ingester = IngesterProcess(write_central_config(tmp_path / "central" / "central.toml", central, dsn)).start()
    branch = Branch(tmp_path / "wola", "wola", central)
    try:
        _load(branch, tickets=3, calls=1)
        wait_caught_up(dsn, branch)
        ingester.proc.kill()  # SIGKILL: no goodbye, whatever it held is unacknowledged
        ingester.proc.wait(10)
        _load(branch, tickets=10, calls=4)
        ingester.start()
        wait_caught_up(dsn, branch)
        assert _central_ids(dsn, "wola") == branch.own_ids()
    finally:
        branch.close()
        ingester.stop()
        central.stop()


def test_a_branch_restored_from_an_old_backup_is_reported_as_diverged_and_nothing_is_overwritten(tmp_path, pg):
    """After a restore, the branch hands out event ids the centre already has (with other
    content). The centre keeps what it counted, sets the new ones aside and says so."""
    dsn = pg.create_db("central")
    central = CentralBroker(tmp_path / "central", ["wola"]).start()
    ingester = IngesterProcess(write_central_config(tmp_path / "central" / "central.toml", central, dsn)).start()
    branch = Branch(tmp_path / "wola", "wola", central)
    db_tool = ("server.dbtool", "--config", str(branch.server.config))
    try:
        _load(branch, tickets=3, calls=0)
        done = run_tool(*db_tool, "backup", "--to", str(tmp_path / "backups"))
        assert done.returncode == 0, done.stderr
        backup = done.stdout.strip()
        _load(branch, tickets=4, calls=2)
        wait_caught_up(dsn, branch)
        before = _central_ids(dsn, "wola")
        with psycopg.connect(dsn, autocommit=True) as conn:
            originals = conn.execute("SELECT seq, kind, at FROM events WHERE branch = 'wola' ORDER BY seq").fetchall()

        branch.server.stop()
        done = run_tool(*db_tool, "restore", backup)
        assert done.returncode == 0, done.stderr
        branch.server.start()
        branch._connect_peer()
        _load(branch, tickets=1, calls=1)  # ids 4 and 5 again, now an issue and a call of other tickets

        def diverged() -> int:
            with psycopg.connect(dsn, autocommit=True) as conn:
                return conn.execute("SELECT conflicts FROM branches WHERE branch = 'wola'").fetchone()[0]

        wait_for(diverged, 60, "the centre to notice the reused event ids")
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert (
                conn.execute("SELECT seq, kind, at FROM events WHERE branch = 'wola' ORDER BY seq").fetchall()
                == originals
            )
        assert _central_ids(dsn, "wola") == before
        assert "restored from a backup?" in (branch.dir / "replicator.log").read_text()
    finally:
        branch.close()
        ingester.stop()
        central.stop()


def test_a_replayed_batch_is_not_counted_twice_and_a_forged_one_is_ignored(tmp_path, pg):
    dsn = pg.create_db("central")
    central = CentralBroker(tmp_path / "central", ["wola"]).start()
    ingester = IngesterProcess(write_central_config(tmp_path / "central" / "central.toml", central, dsn)).start()
    branch = Branch(tmp_path / "wola", "wola", central)
    operator = None
    try:
        _load(branch, tickets=5, calls=2)
        wait_caught_up(dsn, branch)
        before = central_counts(dsn, "wola")
        # Replay the whole log as the bridge would redeliver it, with the branch's own account.
        with psycopg.connect(dsn, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT seq, extract(epoch FROM at), day, kind, ticket_id, ticket, service, counter, data "
                "FROM events WHERE branch = 'wola' ORDER BY seq"
            ).fetchall()
        events = [
            ReplicaEvent(id=r[0], at=float(r[1]), day=r[2], kind=r[3], ticket_id=r[4], ticket=r[5], service=r[6])
            for r in rows
        ]
        operator = Publisher(central, "branch-wola")
        replay = EventBatch(branch="wola", head=events[-1].id, sent_at=0, events=events)
        operator.publish("numerek/replica/wola/events", replay.model_dump_json())
        operator.publish("numerek/replica/wola/events", replay.model_dump_json())
        # A batch claiming to be another branch's, on wola's topic, is not stored as either.
        forged = EventBatch(branch="mokotow", head=1, sent_at=0, events=events[:1])
        operator.publish("numerek/replica/wola/events", forged.model_dump_json())
        # Then the branch works on: once its new events are in, the replays were handled before them.
        _load(branch, tickets=1, calls=0)
        wait_caught_up(dsn, branch)
        after = central_counts(dsn, "wola")
        assert after["issue"] == before["issue"] + 1
        assert after.get("call") == before.get("call")
        assert central_counts(dsn, "mokotow") == {}
    finally:
        if operator:
            operator.close()
        branch.close()
        ingester.stop()
        central.stop()


def test_events_a_branch_broker_lost_are_asked_for_again_and_arrive(tmp_path, pg):
    """A branch broker without persistence restarts while the centre is away: the events
    queued for the bridge are gone. The centre sees the hole from the replicator's heartbeat
    and asks for a re-send."""
    dsn = pg.create_db("central")
    central = CentralBroker(tmp_path / "central", ["wola"]).start()
    ingester = IngesterProcess(write_central_config(tmp_path / "central" / "central.toml", central, dsn)).start()
    branch = Branch(tmp_path / "wola", "wola", central, persistent=False)
    try:
        _load(branch, tickets=2, calls=0)
        wait_caught_up(dsn, branch)
        central.stop()
        _load(branch, tickets=10, calls=4)
        # Only events the branch broker has taken are lost with it; wait until it has them all
        # (else the replicator sends the rest after the restart and nothing needs asking for).
        wait_for(lambda: branch.handed_over() == branch.own_ids()[-1], 30, "every event on the branch broker")
        branch.restart_broker()
        central.start()
        wait_caught_up(dsn, branch)
        assert _central_ids(dsn, "wola") == branch.own_ids()
        assert "asking for them again" in ingester.log()
    finally:
        branch.close()
        ingester.stop()
        central.stop()


def test_the_bridge_config_carries_only_the_branchs_own_replica_topics():
    from protocol.topics import Topics
    from server.replicate import bridge_config

    conf = bridge_config(Topics(), "wola", "centre.example", 8883, "branch-wola", "s3cret", "/etc/numerek/ca.pem")
    lines = conf.splitlines()
    assert "topic replica/wola/events out 1 numerek/ numerek/" in lines
    assert "topic replica/wola/resend in 1 numerek/ numerek/" in lines
    assert "cleansession false" in lines and "bridge_cafile /etc/numerek/ca.pem" in lines
    assert [line for line in lines if line.startswith("topic")] == [
        "topic replica/wola/events out 1 numerek/ numerek/",
        "topic replica/wola/resend in 1 numerek/ numerek/",
        "topic replica/wola/config in 1 numerek/ numerek/",
        "topic replica/wola/config-result out 1 numerek/ numerek/",
    ]
    with pytest.raises(ValueError, match="branch id"):
        bridge_config(Topics(), "wola/#", "centre.example", 8883)
    assert json.loads(EventBatch(branch="wola", head=0, sent_at=0).model_dump_json())["events"] == []
