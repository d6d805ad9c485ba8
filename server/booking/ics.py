"""An iCalendar (RFC 5545) file for a booking: the resident's calendar reminds them.

Only the code, the service and the office go in: the file is saved on phones and shared,
so it carries no name or contact.
"""

from __future__ import annotations

from datetime import UTC, datetime

from server.booking.codes import display
from server.booking.store import Booking


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def _fold(line: str) -> str:
    """Lines longer than 75 octets continue on the next line after a space (RFC 5545, 3.1)."""
    out, current = [], b""
    for ch in line:
        b = ch.encode()
        if len(current) + len(b) > 75:
            out.append(current.decode())
            current = b" "
        current += b
    out.append(current.decode())
    return "\r\n".join(out)


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def booking_ics(booking: Booking, service_name: str, office: str, now: datetime, host: str) -> str:
    code = display(booking.code)
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Numerek//Booking//PL",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        "BEGIN:VEVENT",
        f"UID:{booking.code}-{booking.id}@{host}",
        f"DTSTAMP:{_utc(now)}",
        f"DTSTART:{_utc(booking.starts_at)}",
        f"DTEND:{_utc(booking.ends_at)}",
        f"SUMMARY:{_escape(f'{service_name} — {office}')}",
        f"LOCATION:{_escape(office)}",
        f"DESCRIPTION:{_escape(f'Kod rezerwacji / Booking code: {code}')}",
        "BEGIN:VALARM",
        "ACTION:DISPLAY",
        "TRIGGER:-PT1H",
        f"DESCRIPTION:{_escape(service_name)}",
        "END:VALARM",
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return "\r\n".join(_fold(line) for line in lines) + "\r\n"
