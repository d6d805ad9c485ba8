"""Run scenarios and score the estimates: the ``--scenario`` mode of ``numerek-simulate``."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from server.estimate import HonestEstimator, RecentMedianEstimator, WaitEstimator
from server.sim.measure import PRINTED, Recorder, Scorecard, report, summary
from server.sim.office import OfficeRun
from server.sim.scenario import Scenario, load_scenario

ESTIMATORS: dict[str, Callable[[], WaitEstimator]] = {
    "honest": HonestEstimator,
    "before": RecentMedianEstimator,
    "honest5": lambda: HonestEstimator(replays=5),
    "no-appointments": lambda: HonestEstimator(appointments=False),
}
"""What the engine prints with (``--estimator``); the baselines always run beside it."""


def evaluate(
    scenario: Scenario,
    weeks: int | None = None,
    seed: int | None = None,
    estimator: WaitEstimator | None = None,
    database: str | None = None,
    label: str | None = None,
) -> Scorecard:
    """Play the scenario through the real engine and score every predictor on its tickets."""
    recorder = Recorder()
    run = OfficeRun(
        scenario, estimator=estimator or HonestEstimator(), observers=[recorder], database=database, seed=seed
    )
    try:
        run.run(weeks)
    finally:
        run.close()
    names = [p.name for p in recorder.baselines] + [PRINTED]
    return Scorecard.of(label or scenario.name, recorder.records.values(), names)


def scenario_main(
    paths: Sequence[str],
    weeks: int | None,
    seed: int | None,
    estimator: str,
    database: str | None,
    as_json: bool,
    full: bool,
) -> int:
    cards = []
    for path in paths:
        sc = load_scenario(path)
        began = time.monotonic()
        db = None
        if database is not None:
            db = database if len(paths) == 1 else str(Path(database).with_suffix(f".{sc.name}.db"))
        card = evaluate(sc, weeks, seed, ESTIMATORS[estimator](), db, label=Path(path).stem)
        took = time.monotonic() - began
        print(f"{Path(path).stem}: {card.tickets} tickets in {took:.1f} s", file=sys.stderr)
        cards.append(card)
    if as_json:
        print(json.dumps([c.as_dict() for c in cards], indent=2))
        return 0
    if full:
        for c in cards:
            print(report(c))
            print()
    print(summary(cards))
    return 0
