"""Cut-off advice: until when can a service still take a ticket and serve it before closing?

Polish offices stop issuing tickets some time before closing so that everyone holding one
is served. A fixed ``cutoff_min`` is either too early on a quiet afternoon or too late on a
busy one. From the live queue, the open counters and the arrivals expected meanwhile, the
estimator tells when a ticket taken at a later moment would be called (its upper end, so
nine residents in ten are served in time); the last moment whose ticket still fits before
closing is the advice. ``automatic_cutoff`` turns it into a refusal for the kiosk, with the
time to come back.

Plain functions over the engine (read only): the kiosk texts and where the rule is switched
on per service are the lead's (see docs/estimates.md, "Cut-off").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from protocol.messages import ErrorCode
from server.config import Service
from server.estimates.base import EngineView, WaitEstimate
from server.estimates.honest import HonestEstimator


@dataclass(frozen=True)
class CutoffAdvice:
    service: str
    closes_at: datetime | None
    """When the service closes today (None: not open today)."""
    last_ticket_at: datetime | None
    """The last moment a ticket taken then is called and served before closing; None: not any more today."""
    reason: str
    """``fits`` (tickets can still be taken until ``last_ticket_at``), ``full`` (the queue already
    runs to closing), ``closed`` (not open now), ``unknown`` (no estimate: no counter expected)."""
    next_opening: datetime | None
    """When to come back: the service's next opening after today."""


def next_opening(service: Service, after: datetime, tz: object) -> datetime | None:
    """The service's first opening on a later day (within two weeks)."""
    local = after.astimezone(tz)  # type: ignore[arg-type]
    for days in range(1, 15):
        day = (local + timedelta(days=days)).date()
        hours = service.hours_on(day.weekday())
        if hours is not None:
            return datetime.combine(day, hours.opens, tz)  # type: ignore[arg-type]
    return None


def cutoff_advice(estimator: HonestEstimator, view: EngineView, service_id: str, step_min: float = 5.0) -> CutoffAdvice:
    """The last moment today a ticket for ``service_id`` fits: called and served before closing."""
    service = view.services[service_id]
    now = view.now()
    local = now.astimezone(view.tz)
    hours = service.hours_on(local.weekday())
    come_back = next_opening(service, now, view.tz)
    if hours is None:
        return CutoffAdvice(service_id, None, None, "closed", come_back)
    closes = datetime.combine(local.date(), hours.closes, view.tz)
    if local.time() < hours.opens or now >= closes:
        return CutoffAdvice(service_id, closes, None, "closed", come_back)
    history = estimator.history
    serve_s = estimator.occupancy(history, service_id) if history is not None else 300.0
    last_ok: datetime | None = None
    t = 0.0
    while now + timedelta(seconds=t) < closes:
        estimate = estimator.wait_if_issued(service_id, view, t)
        if estimate.range_min is None:
            if last_ok is None:
                return CutoffAdvice(service_id, closes, None, "unknown", come_back)
            break
        done = now + timedelta(seconds=t + estimate.hi_s + serve_s)
        if done > closes:
            break
        last_ok = (now + timedelta(seconds=t)).astimezone(view.tz)
        t += step_min * 60
    if last_ok is None:
        return CutoffAdvice(service_id, closes, None, "full", come_back)
    return CutoffAdvice(service_id, closes, last_ok, "fits", come_back)


def runs_to_closing(
    estimator: HonestEstimator, view: EngineView, service_id: str, walk_in: WaitEstimate | None = None
) -> datetime | None:
    """The closing time when :func:`cutoff_advice` would say ``full``, else None; one estimate.

    Why a function of its own: the engine asks it for every services message and every ticket
    (``Service.auto_cutoff``). ``full`` depends only on a ticket taken now (the advice's first
    step), which is the walk-in estimate the services message and the ticket need anyway, so
    the estimator's per-state cache answers it, or the caller passes it (``walk_in``: the
    estimator's ``predict(service_id, False, view)`` now). ``predict`` never raises: a failing
    estimator says "cannot estimate", which never refuses.
    """
    service = view.services[service_id]
    now = view.now()
    local = now.astimezone(view.tz)
    hours = service.hours_on(local.weekday())
    if hours is None:
        return None
    closes = datetime.combine(local.date(), hours.closes, view.tz)
    if local.time() < hours.opens or now >= closes:
        return None
    estimate = walk_in if walk_in is not None else estimator.predict(service_id, False, view)
    if estimate.range_min is None:
        return None
    history = estimator.history
    serve_s = estimator.occupancy(history, service_id) if history is not None else 300.0
    if now + timedelta(seconds=estimate.hi_s + serve_s) > closes:
        return closes
    return None


def automatic_cutoff(
    estimator: HonestEstimator, view: EngineView, service_id: str
) -> tuple[ErrorCode, str, datetime | None] | None:
    """Refuse a ticket now? (code, message, when to come back) or None to issue it.

    Only ``full`` refuses: an unknown estimate is not a reason to turn residents away (the
    kiosk says it cannot estimate), and a closed service is refused by the engine already.
    """
    closes_at = runs_to_closing(estimator, view, service_id)
    if closes_at is None:
        return None
    service = view.services[service_id]
    closes = closes_at.astimezone(view.tz).strftime("%H:%M")
    return (
        ErrorCode.CUT_OFF,
        f"{service.name.en}: the people already waiting fill the time until {closes}; no new tickets today",
        next_opening(service, view.now(), view.tz),
    )
