"""The headline figures of a period, each with its change against the comparison period.

Why a plain model: the dashboard's cards, the monthly PDF's first page and the monthly
e-mail's text show the same eight figures with the same deltas; the template, the PDF and
the text only lay them out. Which direction is "better" is said once, here: a shorter wait,
more clients within the target and a higher rating are better; counts and service time are
shown without a judgement (more tickets is neither good nor bad for the office).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from server.reports.i18n import Labels
from server.reports.models import Block

Unit = Literal["count", "minutes", "share", "rating"]
Tone = Literal["better", "worse", "same", ""]


@dataclass(frozen=True)
class Metric:
    key: str
    unit: Unit
    value: Callable[[Block], float | None]
    better: int = 0  # +1: higher is better, -1: lower is better, 0: no judgement


METRICS = (
    Metric("issued", "count", lambda b: b.issued),
    Metric("served", "count", lambda b: b.served),
    Metric("no_show", "count", lambda b: b.no_show),
    Metric("transferred", "count", lambda b: b.transferred),
    Metric("wait", "minutes", lambda b: b.wait.mean_s, better=-1),
    Metric("within_target", "share", lambda b: b.wait.within_target_share, better=+1),
    Metric("service_time", "minutes", lambda b: b.service_time.mean_s),
    Metric("satisfaction", "rating", lambda b: b.rating.mean, better=+1),
)


@dataclass(frozen=True)
class Headline:
    key: str
    label: str  # with its unit, e.g. "Czas oczekiwania (min)"
    value: str
    detail: str  # the figure's spread or count, e.g. "mediana 3,1 · 90. percentyl 12,0"
    previous: str | None  # the comparison period's value
    delta: str | None  # e.g. "+12 (+8,1 %)", "−1,2 min", "+3,1 p.p."
    tone: Tone


def _text(v: float | None, unit: Unit, L: Labels) -> str:
    if v is None:
        return "—"
    if unit == "count":
        return L.number(v, 0)
    if unit == "minutes":
        return L.number(v / 60, 1)
    if unit == "share":
        return L.percent(v)
    return L.number(v, 2)


def _delta(now: float | None, before: float | None, unit: Unit, L: Labels) -> str | None:
    if now is None or before is None:
        return None
    d = now - before
    if unit == "count":
        rel = f" ({L.number(d / before * 100, 1, sign=True)} %)" if before else ""
        return L.number(d, 0, sign=True) + rel
    if unit == "minutes":
        return f"{L.number(d / 60, 1, sign=True)} {L['min']}"
    if unit == "share":
        return f"{L.number(d * 100, 1, sign=True)} {L['pp']}"
    return L.number(d, 2, sign=True)


def _tone(m: Metric, now: float | None, before: float | None) -> Tone:
    if not m.better or now is None or before is None:
        return ""
    if abs(now - before) < 1e-9:
        return "same"
    return "better" if (now - before) * m.better > 0 else "worse"


def _detail(key: str, b: Block, L: Labels) -> str:
    if key == "wait":
        w = b.wait
        return (
            f"{L['median']} {L.minutes(w.median_s)} · {L['p90']} {L.minutes(w.p90_s)} · {L['max']} {L.minutes(w.max_s)}"
        )
    if key == "service_time":
        st = b.service_time
        return f"{L['median']} {L.minutes(st.median_s)} · {L['p90']} {L.minutes(st.p90_s)}"
    if key == "satisfaction":
        return f"{b.rating.n} {L['ratings']}"
    if key == "within_target":
        return f"{b.wait.within_target} / {b.wait.n}"
    return ""


def headlines(now: Block, before: Block | None, L: Labels) -> list[Headline]:
    """The eight headline figures; ``before`` (the comparison period) gives each its change.
    A comparison period without a single ticket gives no changes (there is nothing to compare)."""
    if before is not None and before.issued == 0:
        before = None
    out = []
    for m in METRICS:
        v = m.value(now)
        p = m.value(before) if before is not None else None
        unit = f" ({L['min']})" if m.unit == "minutes" else ""
        out.append(
            Headline(
                key=m.key,
                label=L[m.key] + unit,
                value=_text(v, m.unit, L),
                detail=_detail(m.key, now, L),
                previous=None if before is None else _text(p, m.unit, L),
                delta=_delta(v, p, m.unit, L),
                tone=_tone(m, v, p),
            )
        )
    return out
