"""The office simulator: real engine, real store, a believable day, measured estimates."""

from __future__ import annotations

import sqlite3
from datetime import date, datetime
from zoneinfo import ZoneInfo

from server.config import EXAMPLE_CONFIG, load_config
from server.simulate import simulate
from tests.harness import run_tool

TZ = ZoneInfo("Europe/Warsaw")


def test_simulated_days_follow_office_hours_and_the_engine_rules(tmp_path):
    cfg = load_config(EXAMPLE_CONFIG)
    db = tmp_path / "sim.db"
    result = simulate(cfg, str(db), date(2026, 10, 9), 4, seed=5)  # Friday, weekend, Monday
    assert result.days == 2  # nobody comes on Saturday and Sunday
    conn = sqlite3.connect(db)
    days = [r[0] for r in conn.execute("SELECT DISTINCT day FROM tickets ORDER BY day")]
    assert days == ["2026-10-09", "2026-10-12"]
    hours = {s.id: s for s in cfg.services}
    for service, issued_at, day in conn.execute("SELECT issued_service, issued_at, day FROM tickets"):
        local = datetime.fromtimestamp(issued_at, TZ)
        h = hours[service].hours_on(local.weekday())
        assert h is not None and h.opens <= local.time() < h.closes, (service, local)
        assert local.date().isoformat() == day
    kinds = dict(conn.execute("SELECT kind, count(*) FROM events GROUP BY kind").fetchall())
    for kind in (
        "issue",
        "call",
        "recall",
        "start",
        "finish",
        "no_show",
        "transfer",
        "rating",
        "counter_open",
        "counter_pause",
        "counter_close",
        "sign_in",
        "sign_out",
    ):
        assert kinds.get(kind, 0) > 0, kind
    assert kinds["issue"] == result.tickets
    assert sum(kinds.values()) == result.events
    # a realistic mix: most served, a few no-shows, long services for passports
    status = dict(conn.execute("SELECT status, count(*) FROM tickets GROUP BY status").fetchall())
    assert status["finished"] > 0.85 * result.tickets
    assert 0 < status["no_show"] < 0.12 * result.tickets
    pasz, odb = (
        conn.execute(
            "SELECT avg(finished_at - started_at) FROM tickets WHERE status='finished' AND service=?", (s,)
        ).fetchone()[0]
        for s in ("pasz", "odb")
    )
    assert pasz > 2 * odb
    # the Monday is busier than the Friday, and the peak is in the morning
    per_day = dict(conn.execute("SELECT day, count(*) FROM tickets GROUP BY day").fetchall())
    assert per_day["2026-10-12"] > per_day["2026-10-09"]
    # every counter is closed at the end, nobody left being served
    assert {r[0] for r in conn.execute("SELECT status FROM counters")} == {"closed"}
    assert conn.execute("SELECT count(*) FROM tickets WHERE status IN ('called','serving')").fetchone()[0] == 0


def test_the_same_seed_gives_the_same_office(tmp_path):
    cfg = load_config(EXAMPLE_CONFIG)
    a = simulate(cfg, str(tmp_path / "a.db"), date(2026, 10, 14), 1, seed=11)
    b = simulate(cfg, str(tmp_path / "b.db"), date(2026, 10, 14), 1, seed=11)
    c = simulate(cfg, str(tmp_path / "c.db"), date(2026, 10, 14), 1, seed=12)
    q = "SELECT number, status, issued_at, finished_at, counter FROM tickets ORDER BY id"
    rows = [sqlite3.connect(tmp_path / f"{n}.db").execute(q).fetchall() for n in "abc"]
    assert rows[0] == rows[1] and a.as_dict() == b.as_dict()
    assert rows[0] != rows[2] and c.tickets > 0


def test_cli_measures_printed_and_naive_estimate_errors(tmp_path):
    db = tmp_path / "sim.db"
    out = run_tool("server.simulate", "--database", str(db), "--start", "2026-10-13", "--days", "1", timeout=120)
    assert out.returncode == 0, out.stderr
    assert "printed" in out.stdout and "naive" in out.stdout and "min" in out.stdout
    again = run_tool("server.simulate", "--database", str(db), "--start", "2026-10-12", "--days", "1", timeout=120)
    assert again.returncode == 2 and "already holds data" in again.stderr
    bad = run_tool("server.simulate", "--database", str(tmp_path / "x.db"), "--start", "13.10.2026", timeout=60)
    assert bad.returncode == 2 and "numerek-simulate:" in bad.stderr
