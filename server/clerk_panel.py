"""The clerk panel: a web page with the counter unit's buttons, for clerks at a PC.

Why a page and not a second implementation: every click is a ``CounterCommand`` POSTed to
``/api/counters/{id}/commands``, which hands it to the worker's inbox exactly like a button
press over MQTT (``NumerekServer.submit_counter_command``); the page reads
``/api/counters/{id}`` for the truth. So panel and buttons produce the same events, and a
double click is refused as ``stale`` the same way a double press is. The page is one
Jinja2 template with its CSS and a little JavaScript inline: no CDN, it works in an office
without internet.

Sign-in is a badge number (or PIN) typed or scanned into the page; it becomes the
counter's ``clerk`` so reports can be per clerk. It identifies, it does not authenticate:
who may open the panel at all is the HTTP layer's business.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from server.domain import TicketStatus
from server.service import NumerekServer

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def waiting_for_counter(server: NumerekServer, counter_id: str) -> list[dict[str, Any]]:
    """Tickets this counter may call, in the order "next" would take them first."""
    e = server.engine
    cfg = e.counter_config[counter_id]
    with server.lock:
        now = e.now()
        first = e.pick_next(counter_id)
        out = []
        for t in e.tickets.values():
            if t.status != TicketStatus.WAITING:
                continue
            personal = t.target_counter == counter_id
            if not personal and (t.target_counter is not None or t.service not in cfg.services):
                continue
            out.append(
                {
                    "number": t.number,
                    "service": t.service,
                    "priority": t.priority,
                    "personal": personal,
                    "waited_s": int((now - t.queued_at).total_seconds()),
                    "next": first is not None and t.id == first.id,
                }
            )
    out.sort(key=lambda d: (not d["next"], not d["personal"], -d["waited_s"]))
    return out


def build_clerk_router(server: NumerekServer) -> APIRouter:
    r = APIRouter(tags=["clerk panel"])
    e = server.engine

    def known(counter_id: str) -> None:
        if counter_id not in e.counter_config:
            raise HTTPException(404, f"no counter {counter_id!r}")

    @r.get("/clerk", response_class=HTMLResponse, include_in_schema=False)
    def clerk_index(request: Request) -> HTMLResponse:
        return TEMPLATES.TemplateResponse(
            request, "clerk_index.html", {"office": server.config.office.name, "counters": list(e.counter_config.values())}
        )

    @r.get("/clerk/{counter_id}", response_class=HTMLResponse, include_in_schema=False)
    def clerk_panel(request: Request, counter_id: str) -> HTMLResponse:
        if counter_id not in e.counter_config:
            return TEMPLATES.TemplateResponse(
                request,
                "clerk_index.html",
                {"office": server.config.office.name, "counters": list(e.counter_config.values()),
                 "missing": counter_id},
                status_code=404,
            )  # fmt: skip
        cfg = e.counter_config[counter_id]
        names = {s.id: s.name.pl for s in e.services.values()}
        return TEMPLATES.TemplateResponse(
            request,
            "clerk_panel.html",
            {
                "office": server.config.office.name,
                "counter": cfg,
                "service_names": names,
                "transfer_services": [(s.id, s.name.pl) for s in e.services.values()],
                "transfer_counters": [(c.id, c.name) for c in e.counter_config.values() if c.id != counter_id],
            },
        )

    @r.get("/api/counters/{counter_id}/waiting", tags=["counters"])
    def counter_waiting(counter_id: str) -> list[dict[str, Any]]:
        """Tickets the counter may call (the panel's list; ``next`` marks the one NEXT takes)."""
        known(counter_id)
        return waiting_for_counter(server, counter_id)

    return r
