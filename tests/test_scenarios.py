"""Scenario files (server/sim/scenario.py) played through the real engine (server/sim/office.py)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from server.config import ConfigError
from server.domain import Event, EventKind, Ticket
from server.engine import QueueEngine
from server.sim.office import OfficeRun
from server.sim.scenario import parse_scenario
from tests.harness import ROOT, run_tool

SITE = """
[site.office]
name = "Urząd"
timezone = "Europe/Warsaw"
day_starts = "05:00"

[[site.services]]
id = "rej"
prefix = "A"
name = { pl = "Rejestracja", en = "Registration" }
hours = { mon = "08:00-16:00", tue = "08:00-16:00", wed = "08:00-16:00", thu = "08:00-16:00", fri = "08:00-16:00" }
target_wait_min = 30

[[site.services]]
id = "kasa"
prefix = "K"
name = { pl = "Kasa", en = "Cash desk" }
hours = { mon = "08:00-16:00", tue = "08:00-16:00", wed = "08:00-16:00", thu = "08:00-16:00", fri = "08:00-16:00" }

[[site.services]]
id = "pasz"
prefix = "P"
name = { pl = "Paszporty", en = "Passports" }
hours = { mon = "08:00-15:00", tue = "08:00-15:00", wed = "08:00-15:00", thu = "08:00-15:00", fri = "08:00-15:00" }

[[site.counters]]
id = "1"
name = "Stanowisko 1"
services = ["rej", "kasa"]

[[site.counters]]
id = "2"
name = "Stanowisko 2"
services = ["rej"]

[[site.counters]]
id = "3"
name = "Kasa"
services = ["kasa"]

[[site.counters]]
id = "4"
name = "Paszporty"
services = ["pasz"]
"""

PLAN = """
name = "test-office"
start = 2026-09-28           # Monday; October begins on Thursday
weeks = 2
seed = 7
closed_dates = [2026-10-06]  # a Tuesday off

[arrivals]
weekdays = { mon = 1.5, tue = 1.0, wed = 1.0, thu = 1.0, fri = 1.0 }
month_start = { days = 2, factor = 2.0 }

[arrivals.services]
rej = { per_hour = 6.0, priority = 0.2 }
kasa = { per_hour = 4.0 }
pasz = { per_hour = 3.0 }

[[quiet_days]]
date = 2026-10-07
factor = 0.2

[[surges]]
service = "kasa"
at = "11:00"
count = 40
spread_min = 10
days = ["wed"]
weeks = [1]

[service_times]
rej = { mean_min = 8.0, cv = 0.8 }
kasa = { mean_min = 2.0, cv = 0.5 }
pasz = { mean_min = 10.0, cv = 0.8 }

[[transfers]]
from = "rej"
to = "kasa"
share = 0.3

[behaviour]
no_show = 0.1

[[staff]]
counter = "1"
breaks = [{ at = "10:00", spread_min = 0, minutes = [15, 15] }]
[[staff]]
counter = "2"
start = "10:00"
start_jitter_min = [0, 0]
[[staff]]
counter = "3"
[[staff]]
counter = "4"
days = ["mon", "tue", "wed", "thu"]
"""


class Log:
    """A run observer keeping every event the engine recorded."""

    def __init__(self) -> None:
        self.seen: list[Event] = []

    def before_issue(self, engine: QueueEngine, service: str, priority: bool) -> None:
        return None

    def issued(self, engine: QueueEngine, ticket: Ticket, ahead: int, before: None) -> None:
        pass

    def events(self, engine: QueueEngine, events: list[Event]) -> None:
        self.seen.extend(events)


def play(text: str) -> tuple[OfficeRun, list[Event]]:
    log = Log()
    run = OfficeRun(parse_scenario(text), observers=[log])
    run.run()
    return run, log.seen


WARSAW = ZoneInfo("Europe/Warsaw")


def local(ev: Event) -> datetime:
    return ev.at.astimezone(WARSAW)


@pytest.fixture(scope="module")
def office():
    return play(PLAN + SITE)


def test_a_scenario_plays_its_calendar_rush_quiet_days_and_holidays(office):
    run, events = office
    per_day = Counter(e.day for e in events if e.kind == EventKind.ISSUE)
    assert date(2026, 10, 6) not in per_day  # the holiday
    assert {d.weekday() for d in per_day} == {0, 1, 2, 3, 4}
    assert per_day[date(2026, 9, 28)] > 1.3 * per_day[date(2026, 9, 29)]  # Monday rush
    assert per_day[date(2026, 10, 1)] > 1.6 * per_day[date(2026, 10, 8)]  # October starts: twice as busy
    assert per_day[date(2026, 10, 7)] < 0.4 * per_day[date(2026, 9, 30)] - 40 * 0.4  # the quiet day


def test_a_bus_brings_its_forty_residents_at_eleven(office):
    _run, events = office
    kasa_at_11 = Counter(
        e.day
        for e in events
        if e.kind == EventKind.ISSUE and e.service == "kasa" and time(11, 0) <= local(e).time() < time(11, 10)
    )
    assert kasa_at_11[date(2026, 9, 30)] >= 40  # week 1's Wednesday
    assert kasa_at_11[date(2026, 10, 7)] < 10  # not in week 2


def test_the_staffing_plan_opens_late_breaks_and_leaves_a_service_unserved_on_fridays(office):
    _run, events = office
    opens = [local(e) for e in events if e.kind == EventKind.COUNTER_OPEN and e.counter == "2"]
    first_per_day = {}
    for t in opens:
        first_per_day.setdefault(t.date(), t)
    assert first_per_day and all(t.time() >= time(10, 0) for t in first_per_day.values())
    pauses = [local(e) for e in events if e.kind == EventKind.COUNTER_PAUSE and e.counter == "1"]
    assert pauses and all(time(10, 0) <= t.time() < time(11, 0) for t in pauses)
    friday_pasz = [e for e in events if e.kind == EventKind.ISSUE and e.service == "pasz" and local(e).weekday() == 4]
    called = {e.ticket_id for e in events if e.kind == EventKind.CALL}
    assert friday_pasz and not any(e.ticket_id in called for e in friday_pasz)  # issued, never called


def test_residents_and_clerks_do_what_the_scenario_says(office):
    _run, events = office
    kinds = Counter(e.kind for e in events)
    issued = kinds[EventKind.ISSUE]
    assert 0.05 * issued < kinds[EventKind.NO_SHOW] < 0.15 * issued
    assert kinds[EventKind.RECALL] >= kinds[EventKind.NO_SHOW]  # recalled once before the no-show
    transfers = [e for e in events if e.kind == EventKind.TRANSFER]
    assert transfers and all(e.data["from_service"] == "rej" and e.data["to_service"] == "kasa" for e in transfers)
    rej = [e for e in events if e.kind == EventKind.ISSUE and e.service == "rej"]
    assert 0.12 < sum(e.data["priority"] for e in rej) / len(rej) < 0.28


def test_the_same_seed_plays_the_same_weeks():
    a = [(e.kind, e.at, e.ticket) for e in play(PLAN + SITE)[1]]
    b = [(e.kind, e.at, e.ticket) for e in play(PLAN + SITE)[1]]
    c = [(e.kind, e.at, e.ticket) for e in play(PLAN.replace("seed = 7", "seed = 8") + SITE)[1]]
    assert a == b and a != c


@pytest.mark.parametrize(
    ("change", "names"),
    [
        (
            ("rej = { per_hour = 6.0", "rjj = { per_hour = 6.0"),
            "arrivals.services names services the site does not have",
        ),
        (('counter = "3"', 'counter = "9"'), "staff names counters the site does not have"),
        (("spread_min = 10", "spred_min = 10"), "surges.0.spred_min"),
        (("minutes = [15, 15]", "minutes = [15, 5]"), "a range is [low, high]"),
        (("weeks = 2", "weeks = 0"), "weeks"),
    ],
)
def test_a_mistake_in_a_scenario_is_named_and_nothing_runs(change, names):
    with pytest.raises(ConfigError) as err:
        parse_scenario((PLAN + SITE).replace(*change))
    assert names in str(err.value)


def test_the_cli_scores_every_predictor_on_a_scenario(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "server.simulate",
            "--scenario",
            "scenarios/small_town.toml",
            "--weeks",
            "1",
            "--report",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    for row in ("| naive |", "| before |", "| QL |", "| LES |", "| printed |", "| small_town |"):
        assert row in out.stdout, row
    assert "Printed range:" in out.stdout and "of waits inside" in out.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("name = 'x'\n[arrivals]\n", encoding="utf-8")
    out = run_tool("server.simulate", "--scenario", str(bad), timeout=60)
    assert out.returncode == 2 and "numerek-simulate: invalid scenario" in out.stderr and "Traceback" not in out.stderr
