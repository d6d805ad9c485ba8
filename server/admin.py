"""The admin page: change services and counters while the office runs, with an audit log.

Why it works this way:

* The site config TOML stays the base: it is the installer's file, with comments, and the
  server never rewrites it. An admin's edit is stored as an *override* (table
  ``config_overrides``, schema migration 3 in server/store.py) and laid over the file on
  every start, so it survives a restart and the file stays readable.
* Only what can change without reshaping the running queues is editable: a service's
  opening hours, daily limit, cut-off, target wait and priority; a counter's work profile
  (``services``, in order of preference) and its name; a service's booking plan
  (``booking:<service>``, through the JSON API and the centre's push). Ids, prefixes and zones are not.
* The whole resulting :class:`~server.config.SiteConfig` is validated by pydantic *before*
  anything is written, so a bad value gets an error naming the field (HTTP 422) and leaves
  no override and no audit row.
* Every change that is kept adds one row per field to the append-only ``admin_changes``
  table: when (server time), who (login name), what, old value, new value (JSON).
* The engine belongs to the worker thread, so the change is a job on the worker's inbox
  (``Office.change_config``): the worker validates it (:func:`plan_change`), applies it,
  writes the override and its audit row in its own transaction, and then publishes every
  retained counter state, board and the services list with the new values.

Access: a signed-in ``admin`` (the session cookie of ``/login``, server/auth.py); a manager
gets 403, nobody signed in is sent to the login page (pages) or gets 401 (JSON).
"""

import json
import logging
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from server.auth import User
from server.catalogue import languages, table
from server.config import WEEKDAYS, BookingPlan, SiteConfig
from server.domain import ConfigChange
from server.office import Office
from server.web_auth import WebAuth

log = logging.getLogger(__name__)

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
SERVICE_FIELDS = ("hours", "daily_limit", "cutoff_min", "target_wait_min", "priority")
COUNTER_FIELDS = ("services", "name")
BOOKING_FIELDS = ("plan",)
"""``booking:<service>``: its booking plan as one value (docs/booking.md): an object of
``BookingPlan``'s fields, laid over the current plan (or the defaults), or ``null`` for no
bookings. One field, not five, so that stored overrides mean the same in any order."""
LANGS = languages("admin")
CLOSED_WORDS = ("", "-", "closed", "zamknięte", "nieczynne")

LABELS: dict[str, dict[str, str]] = table("admin")  # server/locale/*/LC_MESSAGES/admin.po
WEEKDAY_NAMES = {
    "pl": dict(zip(WEEKDAYS, ("Pn", "Wt", "Śr", "Cz", "Pt", "So", "Nd"), strict=True)),
    "en": dict(zip(WEEKDAYS, ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"), strict=True)),
}


class AdminError(ValueError):
    """An edit that cannot be kept; ``problems`` name the target and field of each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


# ---------------------------------------------------------------------- config edits


def field_value(cfg: SiteConfig, target: str, field: str) -> Any:
    """The current value of one editable field, as JSON-able data (what the audit log stores)."""
    kind, _, ident = target.partition(":")
    if kind == "service" and field in SERVICE_FIELDS and (s := cfg.service(ident)) is not None:
        if field == "hours":
            return {d: h.text() for d in WEEKDAYS if (h := s.hours.get(d))}
        return getattr(s, field)
    if kind == "counter" and field in COUNTER_FIELDS and (c := cfg.counter(ident)) is not None:
        return list(c.services) if field == "services" else c.name
    if kind == "booking" and field in BOOKING_FIELDS and cfg.service(ident) is not None:
        plan = cfg.booking.plans.get(ident)
        return None if plan is None else plan.model_dump()
    raise AdminError([f"{target} {field}: not something the admin page can change"])


def _message(err: Mapping[str, Any]) -> str:
    return str(err["msg"]).removeprefix("Value error, ")


def _with_plan(cfg: SiteConfig, target: str, ident: str, values: dict[str, Any]) -> SiteConfig:
    """The config with ``booking:<ident>``'s plan changed (``values["plan"]``), validated."""
    if cfg.service(ident) is None:
        raise AdminError([f"{target}: no such service"])
    unknown = [f for f in values if f not in BOOKING_FIELDS]
    if unknown:
        raise AdminError([f"{target} {f}: cannot be changed here (only {', '.join(BOOKING_FIELDS)})" for f in unknown])
    value = values.get("plan")
    booking = cfg.booking.model_dump()
    if value is None:
        booking["plans"].pop(ident, None)
    elif isinstance(value, dict):
        current = cfg.booking.plans.get(ident) or BookingPlan()
        booking["plans"][ident] = {**current.model_dump(), **value}
    else:
        raise AdminError([f"{target} plan: must be an object of the plan's fields, or null for no bookings"])
    try:
        sections = {name: getattr(cfg, name) for name in SiteConfig.model_fields}
        return SiteConfig.model_validate({**sections, "booking": booking})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = [str(x) for x in err["loc"]]
            if loc[:3] == ["booking", "plans", ident]:
                problems.append(f"{target} {'.'.join(['plan', *loc[3:]])}: {_message(err)}")
            else:
                problems.append(f"{target} plan: {_message(err)}")
        raise AdminError(problems) from None


def with_changes(cfg: SiteConfig, target: str, values: dict[str, Any]) -> SiteConfig:
    """The config with ``values`` set on ``target``, fully validated (raises AdminError)."""
    kind, _, ident = target.partition(":")
    if kind == "booking":
        return _with_plan(cfg, target, ident, values)
    allowed = SERVICE_FIELDS if kind == "service" else COUNTER_FIELDS if kind == "counter" else ()
    items = cfg.services if kind == "service" else cfg.counters
    if not allowed or not any(x.id == ident for x in items):
        raise AdminError([f"{target}: no such service or counter"])
    unknown = [f for f in values if f not in allowed]
    if unknown:
        raise AdminError([f"{target} {f}: cannot be changed here (only {', '.join(allowed)})" for f in unknown])
    services = [s.model_dump() for s in cfg.services]
    counters = [c.model_dump() for c in cfg.counters]
    rows = services if kind == "service" else counters
    for row in rows:
        if row["id"] == ident:
            row.update(values)
    ids = {"services": [s["id"] for s in services], "counters": [c["id"] for c in counters]}
    try:
        sections = {name: getattr(cfg, name) for name in SiteConfig.model_fields}
        return SiteConfig.model_validate({**sections, "services": services, "counters": counters})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = list(err["loc"])
            if len(loc) >= 3 and loc[0] in ids and isinstance(loc[1], int):
                where = f"{loc[0][:-1]}:{ids[loc[0]][loc[1]]} {'.'.join(map(str, loc[2:]))}"
            else:  # a cross-check of the whole office, e.g. a counter serving an unknown service
                changed = [f for f in values if values[f] != field_value(cfg, target, f)] or list(values)
                where = f"{target} {', '.join(changed)}"
            problems.append(f"{where}: {_message(err)}")
        raise AdminError(problems) from None


def apply_overrides(cfg: SiteConfig, overrides: list[tuple[str, str, Any]]) -> SiteConfig:
    """The file config with the stored admin edits on top.

    An override that no longer fits (the installer removed that service from the file, say)
    is skipped with a warning rather than keeping the server from starting.
    """
    for target, field, value in overrides:
        try:
            cfg = with_changes(cfg, target, {field: value})
        except AdminError as exc:
            log.warning("ignoring the stored admin change of %s %s: %s", target, field, exc)
    return cfg


def plan_change(
    cfg: SiteConfig, target: str, values: dict[str, Any], user: str, at: float
) -> tuple[SiteConfig, list[ConfigChange]]:
    """The config after an admin's edit and the rows to write for it (the worker writes them).

    Raises AdminError, changing nothing, when the result would not be a valid office. An
    edit that sets every field to what it already is gives no rows: nothing to log.
    """
    new = with_changes(cfg, target, values)
    changes = []
    for f in values:
        before, after = field_value(cfg, target, f), field_value(new, target, f)
        if before != after:
            old_json, new_json = json.dumps(before, ensure_ascii=False), json.dumps(after, ensure_ascii=False)
            changes.append(ConfigChange(target=target, field=f, old=old_json, new=new_json, user=user, at=at))
    return (new if changes else cfg), changes


ADMIN_TIMEOUT_S = 10.0


async def change(office: Office, user: str, target: str, values: dict[str, Any]) -> list[dict[str, Any]]:
    """Validate, store (override + audit), apply to the running engine and republish (by the worker).

    Returns the audit rows written (empty if nothing actually differed). Raises AdminError
    with nothing changed when the result would not be a valid office.
    """
    try:
        changes = await office.change_config(user, target, values, ADMIN_TIMEOUT_S)
    except (TimeoutError, RuntimeError) as exc:
        raise HTTPException(503, f"the change could not be saved now: {exc or 'the server is busy'}") from None
    return [
        {
            "at": c.at,
            "user": c.user,
            "target": c.target,
            "field": c.field,
            "old": json.loads(c.old),
            "new": json.loads(c.new),
        }
        for c in changes
    ]


def audit_log(office: Office, limit: int = 500) -> list[dict[str, Any]]:
    """Newest first, with the time in the office's local time."""
    tz = office.config.office.tz
    return [
        {
            "id": row["id"],
            "at": datetime.fromtimestamp(row["at"], tz).isoformat(timespec="seconds"),
            "user": row["user"],
            "target": row["target"],
            "field": row["field"],
            "old": json.loads(row["old"]),
            "new": json.loads(row["new"]),
        }
        for row in office.admin_changes(limit)
    ]


# ---------------------------------------------------------------------- web


def _lang(value: str | None) -> str:
    return value if value in LANGS else "pl"


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _service_form(form: dict[str, str]) -> dict[str, Any]:
    """Form fields -> values for with_changes (an empty weekday is closed, an empty limit is none)."""
    hours = {}
    for d in WEEKDAYS:
        text = form.get(f"hours_{d}", "").strip()
        if text.lower() not in CLOSED_WORDS:
            hours[d] = text
    limit = form.get("daily_limit", "").strip()
    return {
        "hours": hours,
        "daily_limit": limit or None,
        "cutoff_min": form.get("cutoff_min", "").strip(),
        "target_wait_min": form.get("target_wait_min", "").strip(),
        "priority": form.get("priority", "").strip(),
    }


def _counter_form(form: dict[str, str]) -> dict[str, Any]:
    return {
        "name": form.get("name", "").strip(),
        "services": [s for s in re.split(r"[\s,;]+", form.get("services", "")) if s],
    }


PLAN_FIELDS = ("slot_min", "per_hour", "days_ahead", "notice_min", "stop_before_close_min")


def _booking_form(form: dict[str, str]) -> dict[str, Any]:
    """Form fields -> ``plan``: unticked is no bookings; an empty field keeps the current value."""
    if form.get("takes_bookings") != "yes":
        return {"plan": None}
    return {"plan": {f: form[f].strip() for f in PLAN_FIELDS if form.get(f, "").strip()}}


def build_admin_router(office: Office, auth: WebAuth) -> APIRouter:
    r = APIRouter(tags=["admin"])

    def page_admin(request: Request) -> User:
        return auth.page(request, "admin", basic=False)

    def api_admin(request: Request) -> User:
        # Only the session of /login: no HTTP Basic for configuration changes.
        return auth.api(request, "admin", basic=False)

    PageAdmin = Annotated[User, Depends(page_admin)]
    ApiAdmin = Annotated[User, Depends(api_admin)]

    def page(request: Request, user: User, lang: str, status: int = 200, **extra: Any) -> HTMLResponse:
        cfg = office.config
        forms = {f"service:{s.id}": {"hours": field_value(cfg, f"service:{s.id}", "hours")} for s in cfg.services}
        return TEMPLATES.TemplateResponse(
            request,
            "admin.html",
            {
                "L": {k: v[lang] for k, v in LABELS.items()},
                "lang": lang,
                "user": user,
                "cfg": cfg,
                "forms": forms,
                "days": WEEKDAYS,
                "day_names": WEEKDAY_NAMES[lang],
                "errors": [],
                "error_target": None,
                "submitted": {},
                "saved": None,
                **extra,
            },
            status_code=status,
        )

    @r.get("/admin", response_class=HTMLResponse, include_in_schema=False)
    def admin_page(request: Request, user: PageAdmin, lang: str = "pl", saved: str | None = None) -> HTMLResponse:
        return page(request, user, _lang(lang), saved=saved)

    async def _post(
        request: Request, user: User, target: str, parse: Callable[[dict[str, str]], dict[str, Any]]
    ) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        lang = _lang(form.get("lang") or request.query_params.get("lang"))
        try:
            rows = await change(office, user.name, target, parse(form))
        except AdminError as exc:
            return page(request, user, lang, 422, errors=exc.problems, error_target=target, submitted=form)
        q = urlencode({"lang": lang, "saved": target if rows else ""})
        return RedirectResponse(f"/admin?{q}#{target.replace(':', '-')}", status_code=303)

    @r.post("/admin/services/{service_id}", include_in_schema=False)
    async def post_service(request: Request, service_id: str, user: PageAdmin) -> Response:
        return await _post(request, user, f"service:{service_id}", _service_form)

    @r.post("/admin/counters/{counter_id}", include_in_schema=False)
    async def post_counter(request: Request, counter_id: str, user: PageAdmin) -> Response:
        return await _post(request, user, f"counter:{counter_id}", _counter_form)

    @r.post("/admin/booking/{service_id}", include_in_schema=False)
    async def post_booking(request: Request, service_id: str, user: PageAdmin) -> Response:
        return await _post(request, user, f"booking:{service_id}", _booking_form)

    @r.get("/admin/log", response_class=HTMLResponse, include_in_schema=False)
    def log_page(request: Request, user: PageAdmin, lang: str = "pl") -> HTMLResponse:
        lang = _lang(lang)
        return TEMPLATES.TemplateResponse(
            request,
            "admin_log.html",
            {
                "L": {k: v[lang] for k, v in LABELS.items()},
                "lang": lang,
                "user": user,
                "rows": [{**row, "old": _show(row["old"]), "new": _show(row["new"])} for row in audit_log(office)],
            },
        )

    @r.get("/admin/api/changes")
    def api_changes(user: ApiAdmin) -> list[dict[str, Any]]:
        """The audit log of admin changes, newest first (time in office local time)."""
        return audit_log(office)

    @r.post("/admin/api/{kind}/{ident}")
    async def api_change(kind: str, ident: str, values: dict[str, Any], user: ApiAdmin) -> JSONResponse:
        """Change fields of ``services/<id>`` or ``counters/<id>``, or ``booking/<service id>``'s
        ``plan`` (JSON body: field -> value; ``{"plan": null}``: the service takes no bookings)."""
        if kind not in ("services", "counters", "booking"):
            raise HTTPException(
                404, "use /admin/api/services/<id>, /admin/api/counters/<id> or /admin/api/booking/<id>"
            )
        target = f"booking:{ident}" if kind == "booking" else f"{kind[:-1]}:{ident}"
        try:
            rows = await change(office, user.name, target, values)
        except AdminError as exc:
            return JSONResponse({"detail": exc.problems}, status_code=422)
        return JSONResponse({"changes": rows})

    return r
