"""The personal data a booking keeps: a name, and a phone number or an e-mail address.

Only what the office needs to recognise the resident and reach them if the visit cannot
take place; nothing else is asked. Both are checked and normalised here so that the limit
per contact (``[booking] per_contact``) counts ``600 100 200`` and ``+48600100200`` as one.
These values are never logged and never exported (docs/booking.md, "Personal data").
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import phonenumbers

EMAIL = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$")


class ContactError(ValueError):
    """A name or contact that cannot be used; ``field`` says which (``name`` or ``contact``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Contact:
    name: str
    value: str  # E.164 phone number or lower-case e-mail address
    kind: str  # "phone" or "email"

    def __repr__(self) -> str:  # never print personal data, even in a traceback
        return f"Contact(kind={self.kind!r})"


def clean_name(text: str) -> str:
    name = " ".join(unicodedata.normalize("NFC", text).split())
    if not 2 <= len(name) <= 80:
        raise ContactError("name", "name: 2 to 80 characters")
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise ContactError("name", "name: letters, spaces and punctuation only")
    return name


def clean_contact(text: str, region: str = "PL") -> tuple[str, str]:
    """(value, kind) for a phone number (national or international form) or an e-mail address."""
    text = text.strip()
    if not text or len(text) > 254:
        raise ContactError("contact", "contact: a phone number or an e-mail address")
    if "@" in text:
        if not EMAIL.match(text):
            raise ContactError("contact", "contact: this e-mail address is not valid")
        local, domain = text.rsplit("@", 1)
        return f"{local}@{domain.lower()}".lower(), "email"
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise ContactError("contact", "contact: this phone number is not valid") from None
    if not phonenumbers.is_valid_number(number):
        raise ContactError("contact", "contact: this phone number is not valid")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), "phone"


def contact(name: str, value: str, region: str = "PL") -> Contact:
    cleaned, kind = clean_contact(value, region)
    return Contact(clean_name(name), cleaned, kind)
