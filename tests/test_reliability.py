"""A real office day's bad luck: the public's traffic, a damaged or full disk, restores.

Everything runs against the real ``numerek-server`` process, a real Mosquitto and the real
SQLite file. "Acknowledged means on disk" is checked by reading the file afterwards.
"""

from __future__ import annotations

import json
import os
import resource
import sqlite3
import subprocess
import threading
import uuid
from pathlib import Path

import httpx
import pytest

from tests.harness import Peer, ServerProcess, free_port, run_tool, wait_for, write_config

BASE = "numerek"


def _issue(peer: Peer, kiosk: str, service: str, rid: str, timeout: float = 30.0) -> dict:
    return peer.request(
        f"{BASE}/kiosk/{kiosk}/request",
        {"v": 1, "id": rid, "service": service},
        response_topic=f"{BASE}/kiosk/{kiosk}/response/{rid}",
        timeout=timeout,
    )


def _command(peer: Peer, counter: str, rid: str, action: str, timeout: float = 30.0, **kw) -> dict:
    return peer.request(
        f"{BASE}/counter/{counter}/command",
        {"v": 1, "id": rid, "action": action, **kw},
        response_topic=f"{BASE}/counter/{counter}/reply/{rid}",
        timeout=timeout,
    )


def _tickets_on_disk(database: Path) -> dict[str, str]:
    db = sqlite3.connect(database)
    try:
        return {token: number for token, number in db.execute("SELECT token, number FROM tickets")}
    finally:
        db.close()


def _start(tmp_path: Path, broker, **kw) -> ServerProcess:
    cfg = write_config(tmp_path / "office.toml", broker.port, free_port(), **kw)
    port = int(cfg.read_text().split("[http]")[1].split("port = ")[1].split()[0])
    return ServerProcess(cfg, http_port=port)


# ---------------------------------------------------------------------- the public's traffic


class _PipelinedKiosk:
    """A kiosk account that publishes requests without waiting for each answer (as several
    kiosks behind one account would), and collects the answers as they come."""

    def __init__(self, broker_port: int, name: str) -> None:
        self.name = name
        self.peer = Peer(broker_port)
        self.peer.subscribe(f"{BASE}/kiosk/{name}/response")

    def send(self, i: int, service: str) -> None:
        payload = json.dumps({"v": 1, "id": f"{self.name}-{i}", "service": service})
        self.peer.client.publish(f"{BASE}/kiosk/{self.name}/request", payload, qos=1)

    def answers(self) -> list[dict]:
        return [json.loads(p) for t, p, _r in list(self.peer.seen) if t == f"{BASE}/kiosk/{self.name}/response"]


@pytest.mark.timeout(900)
def test_residents_reading_pages_never_take_down_the_server_while_kiosks_and_counters_work(server, broker):
    """The soak: kiosks issue as fast as the server takes them, counters call, and phones,
    screens and scripts read every public and signed-in endpoint at once. Before the web
    threads had their own read-only connections, a load like this killed the server (exit 70)."""
    per_kiosk = 150
    kiosks = [_PipelinedKiosk(broker.port, f"k{i}") for i in range(4)]
    errors: list[str] = []
    stop = threading.Event()
    tokens: list[str] = []

    def counter(cid: str) -> None:
        peer = Peer(broker.port)
        peer.subscribe(f"{BASE}/counter/{cid}/reply/#")
        n = 0
        try:
            while not stop.is_set():
                n += 1
                reply = _command(peer, cid, f"c{cid}-{n}", "next")
                if not reply["ok"]:
                    errors.append(f"counter {cid}: {reply['error']}")
        except AssertionError as exc:
            errors.append(f"counter {cid}: {exc}")
        finally:
            peer.close()

    def reader(kind: int) -> None:
        client = httpx.Client(base_url=server.url, timeout=30)
        clerk = httpx.Client(base_url=server.url, timeout=30, auth=server.CLERK)
        n = 0
        try:
            while not stop.is_set():
                n += 1
                token = tokens[n % len(tokens)] if tokens else "nope"
                who, path = [
                    (client, f"/t/{token}"),
                    (client, f"/api/tickets/{token}"),
                    (client, f"/t/{uuid.uuid4().hex}"),  # an unknown token: read from the file
                    (client, "/api/queues"),
                    (client, "/health"),
                    (clerk, "/api/queues"),  # a script's Basic login on a public endpoint
                    (clerk, "/api/counters/1"),
                    (client, "/api/services"),
                ][(n + kind) % 8]
                r = who.get(path)
                if r.status_code >= 500:
                    errors.append(f"GET {path}: {r.status_code}")
        except httpx.HTTPError as exc:
            errors.append(f"reader: {exc!r}")
        finally:
            client.close()
            clerk.close()

    pid = server.proc.pid
    workers = [threading.Thread(target=counter, args=(c,)) for c in ("1", "2", "3")]
    workers += [threading.Thread(target=reader, args=(i,)) for i in range(8)]
    for t in workers:
        t.start()
    for i in range(per_kiosk):
        for k in kiosks:
            k.send(i, ("rej", "pj", "pasz")[i % 3])
        if i % 20 == 0:  # let readers see real tokens, finished ones included
            tokens[:] = [a["ticket"]["token"] for k in kiosks for a in k.answers() if a["ok"]][-200:]
    wait_for(lambda: sum(len(k.answers()) for k in kiosks) >= per_kiosk * len(kiosks), 300, "every answer")
    stop.set()
    for t in workers:
        t.join()

    assert server.proc.poll() is None and server.proc.pid == pid, server.log()[-3000:]
    assert not errors, (errors[:10], server.log()[-4000:])
    answers = [a for k in kiosks for a in k.answers()]
    assert all(a["ok"] for a in answers), [a for a in answers if not a["ok"]][:3]
    acknowledged = {a["ticket"]["token"]: a["ticket"]["number"] for a in answers}
    assert len(acknowledged) == per_kiosk * len(kiosks)
    on_disk = _tickets_on_disk(server.database)
    missing = {t: n for t, n in acknowledged.items() if on_disk.get(t) != n}
    assert not missing, f"acknowledged but not on disk: {list(missing.items())[:5]}"
    numbers = list(on_disk.values())
    assert len(numbers) == len(set(numbers)), "a number was issued twice"


# ---------------------------------------------------------------------- a damaged file


def _office_with_tickets(tmp_path: Path, broker) -> ServerProcess:
    """A server that issued a few tickets and was stopped: a real file to damage."""
    server = _start(tmp_path, broker).start()
    peer = Peer(broker.port)
    peer.subscribe(f"{BASE}/kiosk/k1/response/#")
    for i in range(30):
        assert _issue(peer, "k1", "rej", f"seed-{i}")["ok"]
    peer.close()
    server.stop()
    return server


def _damage_a_btree_page(database: Path) -> None:
    db = sqlite3.connect(database)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = db.execute("PRAGMA page_size").fetchone()[0]
    root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'tickets'").fetchone()[0]
    db.close()
    with open(database, "r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(b"\xff" * page_size)


@pytest.mark.parametrize(
    "damage",
    ["a damaged b-tree page", "not a database", "a truncated file"],
)
def test_a_damaged_database_is_reported_and_answered_unavailable_never_restarted_in_a_loop(tmp_path, broker, damage):
    server = _office_with_tickets(tmp_path, broker)
    db = server.database
    if damage == "a damaged b-tree page":
        _damage_a_btree_page(db)
    elif damage == "not a database":
        db.write_bytes(b"this is a shopping list, not a database\n" * 200)
    else:
        with open(db, "r+b") as f:
            f.truncate(os.path.getsize(db) // 3)
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)

    server.start(login=False)
    health = server.get("/health").json()
    assert health["status"] == "degraded"
    assert "damaged" in health["database"], health
    assert "numerek-db" in health["database_advice"] and "restore" in health["database_advice"]
    peer = Peer(broker.port)
    peer.subscribe(f"{BASE}/kiosk/k1/response/#")
    reply = _issue(peer, "k1", "rej", "after-damage")
    assert not reply["ok"] and reply["error"]["code"] == "unavailable", reply
    assert server.proc.poll() is None, "the server exited: systemd would restart it in a loop"
    log = server.log()
    assert str(db) in log and "restore" in log
    peer.close()
    server.stop()


def test_a_folder_the_service_cannot_write_is_named_with_what_to_do(tmp_path, broker):
    """An immutable folder (chattr +i: even root may not create files in it) stands for a
    folder the service's user may not write: one sentence with the path and the fix, exit 2
    (systemd does not restart a configuration mistake), no traceback."""
    folder = tmp_path / "readonly"
    folder.mkdir()
    cfg = write_config(tmp_path / "office.toml", broker.port, free_port())
    cfg.write_text(cfg.read_text().replace(str(tmp_path / "numerek.db"), str(folder / "numerek.db")))
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not supported on this file system")
    try:
        result = run_tool("server.cli", "--config", str(cfg), timeout=60)
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    assert result.returncode == 2
    assert str(folder) in result.stderr and "not writable" in result.stderr and "chown" in result.stderr
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------------- a full disk


def test_a_full_disk_acknowledges_nothing_keeps_serving_and_recovers_when_space_returns(tmp_path, broker):
    """The disk fills up (here: the server's file-size limit, set from outside with prlimit):
    no false acknowledgement, no exit, /health says why; with space again, tickets flow."""
    server = _start(tmp_path, broker).start()
    peer = Peer(broker.port)
    peer.subscribe(f"{BASE}/kiosk/k1/response/#")
    assert _issue(peer, "k1", "rej", "before")["ok"]
    wal = Path(str(server.database) + "-wal")
    limit = max(os.path.getsize(wal), os.path.getsize(server.database)) + 4096
    resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    acknowledged = {}
    refused = None
    for i in range(2000):
        reply = _issue(peer, "k1", "rej", f"fill-{i}")
        if reply["ok"]:
            acknowledged[reply["ticket"]["token"]] = reply["ticket"]["number"]
        else:
            refused = reply
            break
    assert refused is not None and refused["error"]["code"] == "unavailable", refused
    health = server.get("/health").json()
    assert health["status"] == "degraded" and health["database"] != "ok", health
    assert server.proc.poll() is None
    again = _issue(peer, "k1", "rej", "still-full")
    assert again["error"]["code"] == "unavailable"

    resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    after = _issue(peer, "k1", "rej", "space-again")
    assert after["ok"], after
    assert wait_for(lambda: server.get("/health").json()["database"] == "ok", 30, "database ok again")
    peer.close()
    server.stop()
    on_disk = _tickets_on_disk(server.database)
    assert all(on_disk.get(t) == n for t, n in acknowledged.items())
    numbers = list(on_disk.values())
    assert len(numbers) == len(set(numbers))
    assert on_disk[after["ticket"]["token"]] == after["ticket"]["number"]


# ---------------------------------------------------------------------- backups


def _numerek_db(cfg: Path, *args: str) -> subprocess.CompletedProcess:
    return run_tool("server.dbtool", "--config", str(cfg), *args, timeout=120)


def test_a_backup_is_private_verified_and_rotated_while_the_server_runs(tmp_path, server, peer):
    peer.subscribe(f"{BASE}/kiosk/k1/response/#")
    for i in range(5):
        assert _issue(peer, "k1", "rej", f"b-{i}")["ok"]
    folder = tmp_path / "backups"
    for _ in range(3):
        result = _numerek_db(server.config, "backup", "--to", str(folder), "--keep", "2")
        assert result.returncode == 0, result.stderr
    kept = sorted(folder.glob("numerek-*.db"))
    assert len(kept) == 2
    for f in kept:
        assert f.stat().st_mode & 0o777 == 0o600
        db = sqlite3.connect(f)
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT count(*) FROM tickets").fetchone()[0] == 5
        # nothing in a backup forges a session: no signing key, only hashes of session tokens
        assert db.execute("SELECT count(*) FROM settings WHERE key = 'session_secret'").fetchone()[0] == 0
        db.close()


def test_a_restored_backup_never_hands_out_a_number_already_given_today(tmp_path, broker):
    server = _start(tmp_path, broker).start()
    peer = Peer(broker.port)
    peer.subscribe(f"{BASE}/kiosk/k1/response/#")
    for i in range(3):
        assert _issue(peer, "k1", "rej", f"early-{i}")["ok"]
    result = _numerek_db(server.config, "backup", "--to", str(tmp_path / "backups"))
    assert result.returncode == 0, result.stderr
    backup_file = result.stdout.strip()
    later = [_issue(peer, "k1", "rej", f"late-{i}")["ticket"]["number"] for i in range(4)]
    assert later == ["A004", "A005", "A006", "A007"]

    refused = _numerek_db(server.config, "restore", backup_file)
    assert refused.returncode == 1 and "stop it first" in refused.stderr  # not under a running server

    server.stop()
    restored = _numerek_db(server.config, "restore", backup_file)
    assert restored.returncode == 0, restored.stderr
    assert "A007" in restored.stdout
    server.start()
    peer.subscribe(f"{BASE}/kiosk/k1/response/#")
    nxt = _issue(peer, "k1", "rej", "after-restore")
    assert nxt["ok"] and nxt["ticket"]["number"] == "A008", nxt
    peer.close()
    server.stop()


def test_a_restore_over_an_unreadable_database_asks_how_far_to_skip(tmp_path, broker):
    server = _start(tmp_path, broker).start()
    peer = Peer(broker.port)
    peer.subscribe(f"{BASE}/kiosk/k1/response/#")
    assert _issue(peer, "k1", "rej", "one")["ok"]
    backup_file = _numerek_db(server.config, "backup", "--to", str(tmp_path / "b")).stdout.strip()
    server.stop()
    server.database.write_bytes(b"garbage" * 1000)
    asked = _numerek_db(server.config, "restore", backup_file)
    assert asked.returncode == 1 and "--skip" in asked.stderr
    done = _numerek_db(server.config, "restore", backup_file, "--skip", "50")
    assert done.returncode == 0, done.stderr
    server.start()
    peer.subscribe(f"{BASE}/kiosk/k1/response/#")
    assert _issue(peer, "k1", "rej", "next")["ticket"]["number"] == "A052"
    peer.close()
    server.stop()


def test_two_servers_on_one_database_the_second_refuses_clearly(tmp_path, server, broker):
    second = ServerProcess(server.config, http_port=free_port())
    result = run_tool("server.cli", "--config", str(server.config), "--http-port", str(second.http_port), timeout=60)
    assert result.returncode == 2
    assert "another numerek-server" in result.stderr
    assert server.get("/health").json()["status"] == "ok"


# ---------------------------------------------------------------------- devices


def test_a_kiosk_asking_faster_than_a_person_is_refused_and_shown_to_managers(tmp_path, broker):
    """The default limit (a person's pace): a script with a kiosk's account cannot empty the
    passport service's daily limit in a second."""
    from server.config import Limits

    server = _start(tmp_path, broker, kiosk_rate=Limits().kiosk_tickets).start()
    peer = Peer(broker.port)
    peer.subscribe(f"{BASE}/kiosk/k1/response/#", f"{BASE}/kiosk/k2/response/#")
    replies = [_issue(peer, "k1", "pasz", f"burst-{i}") for i in range(40)]
    issued = [r for r in replies if r["ok"]]
    refused = [r for r in replies if not r["ok"]]
    assert len(issued) == 5
    assert {r["error"]["code"] for r in refused} == {"rate_limited"}
    assert _issue(peer, "k2", "pasz", "other-kiosk")["ok"]  # another kiosk is not affected
    manager = ("boss", "manager-password-1")
    _add_user(server, *manager, role="manager")
    live = httpx.get(server.url + "/reports/api/live", auth=manager, timeout=10).json()
    assert any(a["device"] == "kiosk-k1" and "too many" in a["what"] for a in live["alerts"]), live["alerts"]
    peer.close()
    server.stop()


def _add_user(server: ServerProcess, name: str, password: str, role: str) -> None:
    from server.auth import AuthError, Users

    users = Users(server.database)
    try:
        users.add(name, role, password)
    except AuthError:
        pass
    finally:
        users.close()


def test_a_device_availability_other_than_online_or_offline_is_refused_and_not_stored(server, peer):
    peer.subscribe(f"{BASE}/server/errors")
    peer.publish(f"{BASE}/device/kiosk-k9/availability", "garbage", retain=True)
    error = peer.expect(f"{BASE}/server/errors", timeout=10)
    assert error["error"]["code"] == "invalid_request" and "online" in error["error"]["message"]
    peer.publish(f"{BASE}/device/kiosk-k8/availability", "online", retain=True)
    wait_for(lambda: "kiosk-k8" in server.get("/api/devices").json(), 10, "the valid device listed")
    devices = server.get("/api/devices").json()
    assert "kiosk-k9" not in devices and devices["kiosk-k8"]["availability"] == "online"
    peer.publish(f"{BASE}/device/kiosk-k9/availability", b"", retain=True)  # leave the broker clean


def test_the_ticket_page_the_kiosk_and_the_clerk_panel_agree_with_next_on_who_is_ahead(server, peer):
    """A001 ordinary, then A002 priority: NEXT calls A002 first, so one person is ahead of A001
    (the ticket page once said nobody). Then a transfer and an overdue ticket."""
    peer.subscribe(f"{BASE}/kiosk/k1/response/#", f"{BASE}/counter/+/reply/#")
    a1 = _issue(peer, "k1", "rej", "a1")["ticket"]
    a2 = peer.request(
        f"{BASE}/kiosk/k1/request",
        {"v": 1, "id": "a2", "service": "rej", "priority": True},
        response_topic=f"{BASE}/kiosk/k1/response/a2",
    )["ticket"]
    a3 = _issue(peer, "k1", "rej", "a3")["ticket"]
    assert a2["people_ahead"] == 0 and a3["people_ahead"] == 2  # what the kiosk printed

    def page(t: dict) -> int:
        return server.anonymous_get(f"/api/tickets/{t['token']}").json()["people_ahead"]

    assert [page(a1), page(a2), page(a3)] == [1, 0, 2]
    panel = server.get("/api/counters/1/waiting").json()
    assert [e["number"] for e in panel] == ["A002", "A001", "A003"] and panel[0]["next"]
    called = _command(peer, "1", "n1", "next")["ticket"]["number"]
    assert called == panel[0]["number"] == "A002"
    assert [page(a1), page(a3)] == [0, 1]
    # A002 is sent to counter 2 itself: first in line there, and it leaves A001's queue.
    assert _command(peer, "1", "t1", "transfer", target_counter="2")["ok"]
    assert page(a2) == 0 and [page(a1), page(a3)] == [0, 1]
    assert server.get("/api/counters/2/waiting").json()[0]["number"] == "A002"
    assert _command(peer, "2", "n2", "next")["ticket"]["number"] == "A002"


# ---------------------------------------------------------------------- a bug in one request


def test_a_bug_in_one_request_changes_nothing_and_the_others_in_its_batch_still_get_their_tickets(tmp_path):
    """A handler that fails after the engine issued a ticket (a reply that cannot be built, as a
    soak once saw) must not leave that ticket on disk while the kiosk is told "nothing was
    changed"; the other requests of the same batch are served as if it had not been there."""
    from datetime import UTC, datetime

    from protocol.topics import Topics
    from server.config import EXAMPLE_CONFIG, load_config
    from server.engine import QueueEngine
    from server.jobs import Job
    from server.requests import RequestMemory
    from server.store import Store
    from server.worker import Worker
    from tests.engine_support import FakeClock

    config = load_config(EXAMPLE_CONFIG)
    clock = FakeClock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))  # a Monday, 10:00 in Warsaw
    store = Store(str(tmp_path / "numerek.db"))
    engine = QueueEngine(config, clock)
    engine.restore(store.load())
    sent: list = []
    worker = Worker(
        engine,
        store,
        RequestMemory({}, clock.now),
        Topics("numerek"),
        sent.append,
        lambda: True,
        threading.RLock(),
        kiosk_rate="1000/second",
    )
    building = worker.wire.ticket_issued

    def buggy(ticket, ahead):
        if ticket.service == "pasz":
            raise RuntimeError("a bug while building the reply")
        return building(ticket, ahead)

    worker.wire.ticket_issued = buggy  # type: ignore[method-assign]

    def request(rid: str, service: str) -> Job:
        payload = json.dumps({"v": 1, "id": rid, "service": service}).encode()
        topic = "numerek/kiosk/k1/request"
        return Job(
            "kiosk",
            device="k1",
            topic=topic,
            payload=payload,
            response_topic=f"numerek/kiosk/k1/response/{rid}",
            correlation=rid.encode(),
            route=Topics("numerek").parse(topic),
        )

    worker._process([request("a", "rej"), request("b", "pasz"), request("c", "rej")])

    answers = {json.loads(o.payload)["id"] or "b": json.loads(o.payload) for o in sent if "/response/" in o.topic}
    assert answers["a"]["ok"] and answers["c"]["ok"]
    assert not answers["b"]["ok"] and answers["b"]["error"]["code"] == "internal"
    on_disk = sorted(_tickets_on_disk(tmp_path / "numerek.db").values())
    assert on_disk == sorted([answers["a"]["ticket"]["number"], answers["c"]["ticket"]["number"]])
    store.close()
