"""The centre's daily roll-up (central/rollup.py) on a real PostgreSQL 15: a long report reads
it instead of every ticket, and says the same as the tickets."""

from __future__ import annotations

import random
import statistics
from datetime import UTC, date, datetime, timedelta

import pytest

from central import rollup, views
from central.store import CentralStore
from tests.central_support import (
    PG_BIN,
    CentralBroker,
    Feed,
    IngesterProcess,
    Postgres,
    write_central_config,
)
from tests.harness import wait_for

pytestmark = pytest.mark.skipif(not (PG_BIN / "initdb").exists(), reason="PostgreSQL 15 is installed by .ci/setup")

DAYS = [date(2026, 11, 2) + timedelta(days=i) for i in range(5)]


@pytest.fixture(scope="module")
def pg():
    p = Postgres().start()
    yield p
    p.destroy()


@pytest.fixture
def store(pg, request):
    dsn = pg.create_db(request.node.name[:40].lower())
    s = CentralStore(dsn)
    s.migrate()
    yield s
    s.close()


def _by_key(rows: list[views.ReportRow]) -> dict[tuple[str | None, str | None], views.ReportRow]:
    return {(r.branch, r.service): r for r in rows}


def test_a_long_report_from_the_roll_up_counts_what_the_tickets_count_and_its_medians_are_within_a_bin(store):
    rng = random.Random(7)
    feeds = [Feed(store, b) for b in ("wola", "ursus")]
    for day in DAYS:
        for f in feeds:
            f.day(day, 120, rng)
            f.send()
    assert store.roll_up() == 2 * (len(DAYS) - 1)  # every closed day; the last is still open
    exact = _by_key(views.report_exact(store.conn, DAYS[0], DAYS[-1]))
    binned = _by_key(views._report_binned(store.conn, DAYS[0], DAYS[-1], None))
    assert binned.keys() == exact.keys()
    for key, e in exact.items():
        b = binned[key]
        assert (b.visits, b.served) == (e.visits, e.served), key
        assert b.binned and not e.binned
        assert e.median_wait_s is not None and e.p90_wait_s is not None
        assert abs(b.median_wait_s - e.median_wait_s) <= rollup.FINE_S, key  # type: ignore[operator]
        assert abs(b.p90_wait_s - e.p90_wait_s) <= rollup.COARSE_S, key  # type: ignore[operator]
    # Rolled up twice, the same rows: nothing counted twice.
    store.conn.execute("INSERT INTO ticket_days_dirty SELECT DISTINCT branch, day FROM tickets ON CONFLICT DO NOTHING")
    store.roll_up()
    again = _by_key(views._report_binned(store.conn, DAYS[0], DAYS[-1], None))
    assert again == binned


def test_an_event_arriving_late_for_a_rolled_up_day_changes_the_long_report(store):
    rng = random.Random(11)
    feed = Feed(store, "wola")
    first_day = feed.day(DAYS[0], 50, rng)
    feed.send()
    feed.day(DAYS[1], 50, rng)
    feed.send()
    assert store.roll_up() == 1
    before = _by_key(views._report_binned(store.conn, DAYS[0], DAYS[1], "wola"))[("wola", None)]
    # The first day's last ticket was never finished at the branch; its finish arrives a day late.
    unfinished = [
        t
        for t in first_day
        if not store.conn.execute(
            "SELECT finished_at FROM tickets WHERE branch = 'wola' AND ticket_id = %s", (t,)
        ).fetchone()[0]
    ]
    assert unfinished
    t = unfinished[0]
    feed.event(DAYS[1], datetime(2026, 11, 3, 15, tzinfo=UTC), "finish", t, "rej")
    feed.send()
    after = _by_key(views._report_binned(store.conn, DAYS[0], DAYS[1], "wola"))[("wola", None)]
    assert after.served == before.served + 1
    store.roll_up()
    assert _by_key(views._report_binned(store.conn, DAYS[0], DAYS[1], "wola"))[("wola", None)].served == after.served
    assert after.served == views.report_exact(store.conn, DAYS[0], DAYS[1], "wola")[-1].served


def test_a_report_over_more_tickets_than_the_exact_limit_comes_from_the_roll_up(store, monkeypatch):
    rng = random.Random(3)
    feed = Feed(store, "wola")
    for day in DAYS[:3]:
        feed.day(day, 40, rng)
    feed.send()
    store.roll_up()
    assert not any(r.binned for r in views.report(store.conn, DAYS[0], DAYS[2]))
    monkeypatch.setattr(rollup, "EXACT_UP_TO", 100)
    rows = views.report(store.conn, DAYS[0], DAYS[2])
    assert rows and all(r.binned for r in rows)
    assert rows[-1].visits == 120
    waits = [
        (c - i).total_seconds()
        for i, c in store.conn.execute("SELECT issued_at, first_called_at FROM tickets WHERE branch = 'wola'")
    ]
    assert abs(rows[-1].median_wait_s - statistics.median(waits)) <= rollup.FINE_S  # type: ignore[operator]


def test_the_ingester_rolls_up_the_closed_days_by_itself(pg, tmp_path):
    dsn = pg.create_db("ingester_rolls_up")
    s = CentralStore(dsn)
    s.migrate()
    feed = Feed(s, "wola")
    feed.day(DAYS[0], 20, random.Random(1))
    feed.day(DAYS[1], 20, random.Random(2))
    feed.send()  # as if the ingester had stored them: both days marked, the first one closed
    broker = CentralBroker(tmp_path / "central", ["wola"]).start()
    ingester = IngesterProcess(write_central_config(tmp_path / "central" / "central.toml", broker, dsn)).start()
    try:
        wait_for(
            lambda: (
                s.conn.execute("SELECT count(*) FROM ticket_days_dirty WHERE day = %s", (DAYS[0],)).fetchone()[0] == 0
            ),
            60,
            "the ingester's roll-up of the closed day",
        )
        rolled = s.conn.execute("SELECT sum(issued) FROM ticket_days WHERE branch = 'wola' AND day = %s", (DAYS[0],))
        assert rolled.fetchone()[0] == 20
        still_open = s.conn.execute("SELECT count(*) FROM ticket_days_dirty WHERE day = %s", (DAYS[1],))
        assert still_open.fetchone()[0] == 1  # the branch's newest day is not closed yet
    finally:
        ingester.stop()
        broker.stop()
        s.close()
