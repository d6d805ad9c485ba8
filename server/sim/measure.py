"""Judge wait estimates against what happened, ticket by ticket, on a scenario run.

Every ticket gets the engine's own estimate (point and printed range) and, computed from the
same engine state just before it was issued, the baselines' (server/estimates/baselines.py).
Its actual wait is from issue to its first call. Tickets never called (a service nobody
served that day) have no actual wait: they are counted apart, with whether an estimate was
printed for them.

Figures (minutes): MAE, mean bias (estimate − actual), 90th percentile of the absolute
error, the share of tickets more than 3× off among waits over 10 minutes, and for the
printed range its coverage (actual inside [lo, hi]) and width; overall and bucketed by the
actual wait.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from server.domain import Event, EventKind, Ticket
from server.engine import QueueEngine
from server.estimates.baselines import Predictor, all_baselines

BUCKETS: tuple[tuple[float, float], ...] = ((0, 5), (5, 10), (10, 20), (20, 40), (40, math.inf))
PRINTED = "printed"


@dataclass
class Record:
    ticket_id: int
    service: str
    priority: bool
    issued_at: datetime
    ahead: int
    preds: dict[str, float | None]  # seconds
    range_min: tuple[int, int] | None
    actual_s: float | None = None

    @property
    def actual_min(self) -> float:
        assert self.actual_s is not None
        return self.actual_s / 60


class Recorder:
    """A :class:`server.sim.office.RunObserver` keeping one :class:`Record` per ticket."""

    def __init__(self, baselines: Sequence[Predictor] | None = None) -> None:
        self.baselines = list(all_baselines() if baselines is None else baselines)
        self.records: dict[int, Record] = {}
        self._open: dict[int, Record] = {}

    def before_issue(self, engine: QueueEngine, service: str, priority: bool) -> Any:
        return {p.name: p.predict(engine, service, priority) for p in self.baselines}

    def issued(self, engine: QueueEngine, ticket: Ticket, ahead: int, before: Any) -> None:
        preds = dict(before)
        preds[PRINTED] = float(ticket.estimated_wait_s) if ticket.estimated_wait_s is not None else None
        rec = Record(
            ticket.id, ticket.service, ticket.priority, ticket.issued_at, ahead, preds, ticket.estimated_wait_range_min
        )
        self.records[ticket.id] = self._open[ticket.id] = rec

    def events(self, engine: QueueEngine, events: list[Event]) -> None:
        for p in self.baselines:
            p.events(engine, events)
        for ev in events:
            if ev.ticket_id is None:
                continue
            if ev.kind == EventKind.CALL:
                rec = self._open.pop(ev.ticket_id, None)
                if rec is not None:
                    rec.actual_s = (ev.at - rec.issued_at).total_seconds()
            elif ev.kind == EventKind.CANCEL:
                self._open.pop(ev.ticket_id, None)


def _p90(values: list[float]) -> float:
    if not values:
        return math.nan
    s = sorted(values)
    return s[min(len(s) - 1, int(math.ceil(0.9 * len(s))) - 1)]


def _mean(values: Iterable[float]) -> float:
    v = list(values)
    return sum(v) / len(v) if v else math.nan


@dataclass
class Figures:
    n: int
    mae: float
    bias: float
    p90: float
    mae_10: float  # waits of 10 min or more
    bias_40: float  # waits up to 40 min
    off3: float  # share more than 3x off among waits over 10 min

    @classmethod
    def of(cls, pairs: list[tuple[float, float]]) -> Figures:
        """From (estimate, actual) in minutes."""
        err = [e - a for e, a in pairs]
        over10 = [(e, a) for e, a in pairs if a > 10]
        off = sum(1 for e, a in over10 if e <= 0 or max(a / e, e / a) > 3)
        return cls(
            n=len(pairs),
            mae=_mean(abs(x) for x in err),
            bias=_mean(err),
            p90=_p90([abs(x) for x in err]),
            mae_10=_mean(abs(e - a) for e, a in pairs if a >= 10),
            bias_40=_mean(e - a for e, a in pairs if a <= 40),
            off3=off / len(over10) if over10 else math.nan,
        )


@dataclass
class RangeFigures:
    n: int
    coverage: float
    width: float
    below: float  # share called sooner than the range's low end
    above: float  # share called later than its high end
    off3: float  # among waits over 10 min: called after 3x the high end or before a third of the low end

    @classmethod
    def of(cls, records: list[Record]) -> RangeFigures:
        inside = below = above = long = off = 0
        width = 0.0
        for r in records:
            assert r.range_min is not None
            lo, hi = r.range_min
            a = r.actual_min
            if a < lo:
                below += 1
            elif a > hi:
                above += 1
            else:
                inside += 1
            if a > 10:
                long += 1
                off += a > 3 * hi or a < lo / 3
            width += hi - lo
        n = len(records)
        if not n:
            return cls(0, math.nan, math.nan, math.nan, math.nan, math.nan)
        return cls(n, inside / n, width / n, below / n, above / n, off / long if long else math.nan)


@dataclass
class Scorecard:
    scenario: str
    tickets: int
    called: int
    names: list[str]
    overall: dict[str, Figures]
    buckets: dict[tuple[float, float], dict[str, Figures]]
    ranges: RangeFigures
    range_buckets: dict[tuple[float, float], RangeFigures]
    no_estimate: int  # tickets printed with no estimate
    no_estimate_called: int
    no_estimate_waits: list[float] = field(default_factory=list)
    uncalled_with_estimate: int = 0

    @classmethod
    def of(cls, scenario: str, records: Iterable[Record], names: list[str]) -> Scorecard:
        recs = list(records)
        called = [r for r in recs if r.actual_s is not None]
        scored = [r for r in called if r.range_min is not None and all(r.preds.get(n) is not None for n in names)]

        def pairs(rs: list[Record], name: str) -> list[tuple[float, float]]:
            return [(r.preds[name] / 60, r.actual_min) for r in rs]  # type: ignore[operator]

        overall = {n: Figures.of(pairs(scored, n)) for n in names}
        buckets = {}
        range_buckets = {}
        for b in BUCKETS:
            inb = [r for r in scored if b[0] <= r.actual_min < b[1]]
            buckets[b] = {n: Figures.of(pairs(inb, n)) for n in names}
            range_buckets[b] = RangeFigures.of(inb)
        none = [r for r in recs if r.range_min is None]
        none_called = [r for r in none if r.actual_s is not None]
        return cls(
            scenario=scenario,
            tickets=len(recs),
            called=len(called),
            names=names,
            overall=overall,
            buckets=buckets,
            ranges=RangeFigures.of(scored),
            range_buckets=range_buckets,
            no_estimate=len(none),
            no_estimate_called=len(none_called),
            no_estimate_waits=sorted(r.actual_min for r in none_called),
            uncalled_with_estimate=sum(1 for r in recs if r.actual_s is None and r.range_min is not None),
        )

    def as_dict(self) -> dict[str, Any]:
        def figs(f: Figures) -> dict[str, float]:
            return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in f.__dict__.items()}

        def rng(r: RangeFigures) -> dict[str, float]:
            return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.__dict__.items()}

        def label(b: tuple[float, float]) -> str:
            return f"{b[0]:g}-{b[1]:g}" if b[1] != math.inf else f"{b[0]:g}+"

        return {
            "scenario": self.scenario,
            "tickets": self.tickets,
            "called": self.called,
            "overall": {n: figs(f) for n, f in self.overall.items()},
            "buckets": {label(b): {n: figs(f) for n, f in d.items()} for b, d in self.buckets.items()},
            "range": rng(self.ranges),
            "range_buckets": {label(b): rng(r) for b, r in self.range_buckets.items()},
            "no_estimate": self.no_estimate,
            "no_estimate_called": self.no_estimate_called,
            "uncalled_with_estimate": self.uncalled_with_estimate,
        }


def _f(x: float, digits: int = 1) -> str:
    return "–" if x != x else f"{x:.{digits}f}"  # NaN: nothing to show


def _pct(x: float) -> str:
    return "–" if x != x else f"{100 * x:.1f} %"


def report(card: Scorecard) -> str:
    """One scenario as Markdown: overall figures per predictor, then by actual wait."""
    lines = [
        f"### {card.scenario}",
        "",
        f"{card.tickets} tickets, {card.called} called; scored (called, every predictor gave a number, "
        f"the printed range is not 'cannot estimate'): {card.ranges.n}. "
        f"Printed 'cannot estimate': {card.no_estimate} "
        f"({card.no_estimate_called} of them were called later"
        + (
            f", median wait {card.no_estimate_waits[len(card.no_estimate_waits) // 2]:.0f} min"
            if card.no_estimate_waits
            else ""
        )
        + f"); printed an estimate but never called: {card.uncalled_with_estimate}.",
        "",
        "| predictor | MAE | bias | P90 abs err | MAE (wait ≥ 10) | bias (wait ≤ 40) | > 3× off (wait > 10) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n in card.names:
        f = card.overall[n]
        lines.append(
            f"| {n} | {_f(f.mae)} | {_f(f.bias)} | {_f(f.p90)} | {_f(f.mae_10)} | {_f(f.bias_40)} | {_pct(f.off3)} |"
        )
    r = card.ranges
    lines += [
        "",
        f"Printed range: {_pct(r.coverage)} of waits inside, mean width {_f(r.width)} min "
        f"({_pct(r.below)} called sooner, {_pct(r.above)} later); waits over 10 min more than 3× outside it: "
        f"{_pct(r.off3)}.",
        "",
        "| actual wait (min) | n | "
        + " | ".join(f"MAE {n}" for n in card.names)
        + f" | bias {PRINTED} | range coverage | range width |",
        "| --- | ---: | " + " | ".join("---:" for _ in card.names) + " | ---: | ---: | ---: |",
    ]
    for b in BUCKETS:
        d = card.buckets[b]
        label = f"{b[0]:g}–{b[1]:g}" if b[1] != math.inf else f"{b[0]:g}+"
        rb = card.range_buckets[b]
        lines.append(
            f"| {label} | {rb.n} | "
            + " | ".join(_f(d[n].mae) for n in card.names)
            + f" | {_f(d[PRINTED].bias)} | {_pct(rb.coverage)} | {_f(rb.width)} |"
        )
    return "\n".join(lines)


def summary(cards: Sequence[Scorecard]) -> str:
    """All scenarios in one table: MAE per predictor, and the printed range's figures."""
    if not cards:
        return ""
    names = cards[0].names
    head = (
        "| scenario | scored | "
        + " | ".join(f"MAE {n}" for n in names)
        + " | MAE ≥10 before | MAE ≥10 printed | bias ≤40 printed | > 3× off point | > 3× off range | coverage | width |"
    )
    lines = [
        head,
        "| --- | ---: | " + " | ".join("---:" for _ in names) + " | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in cards:
        o = c.overall
        before = o.get("before")
        lines.append(
            f"| {c.scenario} | {c.ranges.n} | "
            + " | ".join(_f(o[n].mae, 2) for n in names)
            + f" | {_f(before.mae_10) if before else '–'} | {_f(o[PRINTED].mae_10)} | {_f(o[PRINTED].bias_40)} "
            f"| {_pct(o[PRINTED].off3)} | {_pct(c.ranges.off3)} | {_pct(c.ranges.coverage)} | {_f(c.ranges.width)} |"
        )
    return "\n".join(lines)
