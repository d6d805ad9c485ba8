"""kill -9 the server while tickets are issued and called; every acknowledged one survives."""

from __future__ import annotations

import random
import sqlite3
import threading
import time

from tests.harness import Peer

BASE = "numerek"


class Traffic(threading.Thread):
    """A kiosk and a counter working as fast as the server answers; records every ack."""

    def __init__(self, port: int, round_no: int) -> None:
        super().__init__(daemon=True)
        self.peer = Peer(port)
        self.peer.subscribe(f"{BASE}/kiosk/k1/response/#", f"{BASE}/counter/1/reply")
        self.round = round_no
        self.tickets: list[str] = []  # acknowledged ticket numbers
        self.calls: list[str] = []  # acknowledged calls at counter 1
        self.stop = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            i += 1
            try:
                if i % 3:
                    r = self.peer.request(
                        f"{BASE}/kiosk/k1/request",
                        {"v": 1, "id": f"r{self.round}-{i}", "service": "rej"},
                        f"{BASE}/kiosk/k1/response/x",
                        timeout=2,
                    )
                    if r["ok"]:
                        self.tickets.append(r["ticket"]["number"])
                else:
                    rid = f"c{self.round}-{i}"
                    self.peer.publish(f"{BASE}/counter/1/command", {"v": 1, "id": rid, "action": "next"})
                    r = self.peer.expect(f"{BASE}/counter/1/reply", timeout=2, where=lambda d, rid=rid: d["id"] == rid)
                    if r["ok"] and r["ticket"]:
                        self.calls.append(r["ticket"]["number"])
            except AssertionError:  # no answer: the server is gone
                return


def test_kill_9_loses_no_acknowledged_ticket_or_call(server, broker):
    acked_tickets: list[str] = []
    acked_calls: list[str] = []
    rng = random.Random(7)
    for round_no in range(3):
        traffic = Traffic(broker.port, round_no)
        traffic.start()
        time.sleep(rng.uniform(0.5, 1.5))
        server.kill9()
        traffic.join(10)
        traffic.peer.close()
        acked_tickets += traffic.tickets
        acked_calls += traffic.calls
        assert traffic.tickets, "the traffic made no tickets before the kill"
        server.start()

        db = sqlite3.connect(server.database)
        stored = {n for (n,) in db.execute("SELECT number FROM tickets")}
        called = {n for (n,) in db.execute("SELECT ticket FROM events WHERE kind = 'call'")}
        db.close()
        assert set(acked_tickets) <= stored, "an acknowledged ticket is missing after kill -9"
        assert set(acked_calls) <= called, "an acknowledged call is missing after kill -9"

    # Numbers stay unique and continue after the last one on disk.
    db = sqlite3.connect(server.database)
    numbers = [n for (n,) in db.execute("SELECT number FROM tickets ORDER BY id")]
    waiting = db.execute("SELECT count(*) FROM tickets WHERE status = 'waiting'").fetchone()[0]
    current = db.execute("SELECT current FROM counters WHERE id = '1'").fetchone()[0]
    current_number = db.execute("SELECT number FROM tickets WHERE id = ?", (current,)).fetchone()
    db.close()
    assert len(numbers) == len(set(numbers))
    assert numbers == [f"A{i:03d}" for i in range(1, len(numbers) + 1)]

    # The restarted server shows exactly what is on disk: the queue and counter 1's client.
    queues = {q["service"]: q for q in server.get("/api/queues").json()}
    assert queues["rej"]["waiting"] == waiting
    state = server.get("/api/counters/1").json()
    assert (state["ticket"] or {}).get("number") == (current_number[0] if current_number else None)
    peer = Peer(broker.port)
    try:
        peer.subscribe(f"{BASE}/kiosk/k1/response/#")
        after = peer.request(
            f"{BASE}/kiosk/k1/request", {"v": 1, "id": "after", "service": "rej"}, f"{BASE}/kiosk/k1/response/y"
        )
        assert after["ok"], after
        assert after["ticket"]["number"] == f"A{len(numbers) + 1:03d}"
    finally:
        peer.close()
