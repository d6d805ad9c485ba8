"""What the paper ticket says, top to bottom: a plain function, no Kivy, no printer.

Why apart from the screen: the ticket is the resident's only record once they walk away
from the kiosk, so its wording (Polish first, the office's language, then the resident's;
where to go; people ahead; the QR code of the status page) is tested on escpos' Dummy
printer in a few milliseconds instead of through a screen, a broker and a server.
"""

from __future__ import annotations

from hardware.printer import TicketLayout
from kiosk.texts import PRINT_TEXTS, wait_words
from protocol.messages import TicketIssued


def status_url(public_url: str, ticket: TicketIssued, lang: str) -> str:
    """The ticket's status page, in the resident's language (Polish needs no parameter)."""
    url = public_url + ticket.status_path
    return url if lang == "pl" else f"{url}?lang={lang}"


def ticket_layout(
    ticket: TicketIssued,
    lang: str,
    office: str,
    qr_url: str,
    place: dict[str, str] | None = None,
    appointment: bool = False,
    pickup: str | None = None,
    sms_tail: str | None = None,
) -> TicketLayout:
    """Polish first (the office's language), then the visitor's language if different.

    ``place`` is where to go for the service (per language, from the services list): a
    resident who waits in the wrong hall misses the call, so it sits right under the name.
    ``pickup``: the case reference of a document pick-up (the clerk finds the document by it);
    ``sms_tail``: the last three digits of the number SMS notices go to (never the whole number:
    a ticket left on a bench must not give it away).
    """

    def both(key: str, **kw: object) -> list[str]:
        out = [PRINT_TEXTS[key]["pl"].format(**kw)]
        if lang != "pl":
            out.append(PRINT_TEXTS[key][lang].format(**kw))
        return out

    def pair(names: dict[str, str], fallback: str) -> list[str]:
        out = [names.get("pl") or fallback]
        other = names.get(lang)
        if lang != "pl" and other and other not in out:
            out.append(other)
        return out

    lines: list[str] = []
    if appointment:  # a booked visit: staff and resident see at once that it is not a walk-in
        lines += both("appointment")
        if ticket.appointment_at is not None:
            lines += both("appointment_at", t=f"{ticket.appointment_at:%H:%M}")
    if pickup is not None:  # the clerk sees at once what the resident came for
        lines += both("pickup")
        lines.append(PRINT_TEXTS["case"]["pl"].format(ref=pickup))
    if ticket.priority:
        lines += both("priority")
    lines += pair(ticket.service_name, ticket.service)
    if place:
        where = pair(place, next(iter(place.values())))
        lines += [PRINT_TEXTS["go_to"]["pl"].format(place=where[0])]
        if len(where) > 1:
            lines.append(PRINT_TEXTS["go_to"][lang].format(place=where[1]))
    lines.append(f"{ticket.issued_at:%d.%m.%Y  %H:%M}")
    lines += both("people_ahead", n=ticket.people_ahead)
    if wait_unknown(ticket):
        lines += both("est_wait_unknown")
    else:
        lines.append(PRINT_TEXTS["est_wait"]["pl"].format(w=ticket_wait(ticket, "pl")))
        if lang != "pl":
            lines.append(PRINT_TEXTS["est_wait"][lang].format(w=ticket_wait(ticket, lang)))
    if sms_tail is not None:
        lines += both("sms", tail=sms_tail[-3:])
    lines += both("scan")
    return TicketLayout(header=office, number=ticket.number, lines=lines, qr_url=qr_url)


def ticket_wait(ticket: TicketIssued, lang: str) -> str:
    """The ticket's wait in words, the range the server rounded outward (issue 15)."""
    sent = "estimated_wait_range_min" in ticket.model_fields_set
    return wait_words(ticket.estimated_wait_range_min, ticket.estimated_wait_min, sent, lang)


def wait_unknown(ticket: TicketIssued) -> bool:
    """The server said it cannot estimate this ticket's wait (the range sent, and null)."""
    return "estimated_wait_range_min" in ticket.model_fields_set and ticket.estimated_wait_range_min is None
