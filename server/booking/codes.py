"""Booking codes: short, unambiguous over the phone and on a keypad, unguessable enough.

Why this alphabet: 0/O, 1/I/L look or sound alike ("zero" or "o"?), so they are left out;
31 symbols, 6 of them: 31**6 ≈ 887 million codes. An office has a few thousand bookings at a
time, so a random guess hits one about once in 100 000 tries; the lookups are rate-limited
per client address (``[booking] lookups_per_address``), which makes guessing hopeless.
The code is shown as ``K7M-4PX`` (two groups of three, easy to read out); typing it with or
without the dash, spaces or in lower case gives the same code.
"""

from __future__ import annotations

import secrets

from protocol.messages import BOOKING_ALPHABET as ALPHABET
from protocol.messages import BOOKING_CODE_LENGTH as LENGTH


def new_code() -> str:
    """A random code (``secrets``: not predictable from earlier codes)."""
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def new_token() -> str:
    """The secret of a booking's cancel/move link (192 bits)."""
    return secrets.token_urlsafe(24)


def normalize(text: str) -> str | None:
    """The code a resident typed or a scanner sent, or None if it cannot be one.

    Spaces, dashes and case do not matter. A character outside the alphabet (0, O, 1, I, L)
    makes it no code: refused with a clear message, never guessed into another booking's code.
    """
    if len(text) > 40:
        return None
    cleaned = "".join(ch for ch in text.upper() if ch not in " -_\t\r\n")
    if len(cleaned) != LENGTH or any(ch not in ALPHABET for ch in cleaned):
        return None
    return cleaned


def display(code: str) -> str:
    """``K7M4PX`` → ``K7M-4PX``."""
    return f"{code[:3]}-{code[3:]}"
