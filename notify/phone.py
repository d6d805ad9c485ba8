"""Phone numbers: validated and stored in one form (E.164), never shown whole in logs.

Why phonenumbers (Google's libphonenumber metadata): residents type "600 100 200",
"+48 600-100-200", "0048600100200" or a Ukrainian "+380 50 123 4567"; an office must not
keep its own table of which prefixes are mobile in which country. SMS needs a number that
can receive SMS, so fixed lines are refused with a clear reason.
"""

from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

DEFAULT_REGION = "PL"
_SMS_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
# Personal numbers, pagers and the like cannot be told apart from mobiles everywhere; refused.


class InvalidPhoneNumber(ValueError):
    """The reason is meant for the person who typed it (it does not repeat the number)."""


def normalise(raw: str, default_region: str = DEFAULT_REGION, *, mobile_only: bool = True) -> str:
    """The number in E.164 (+48600100200), or InvalidPhoneNumber saying what is wrong."""
    text = raw.strip()
    if not text:
        raise InvalidPhoneNumber("no number given")
    if len(text) > 32:
        raise InvalidPhoneNumber("too long for a phone number")
    try:
        number = phonenumbers.parse(text, default_region)
    except NumberParseException as exc:
        raise InvalidPhoneNumber("not a phone number") from exc
    if not phonenumbers.is_possible_number(number):
        raise InvalidPhoneNumber("wrong number of digits")
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhoneNumber("no such number in its country's numbering plan")
    if mobile_only and phonenumbers.number_type(number) not in _SMS_TYPES:
        raise InvalidPhoneNumber("not a mobile number: text messages cannot reach it")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def display(e164: str) -> str:
    """For the resident's own screen: "+48 600 100 200"."""
    return phonenumbers.format_number(phonenumbers.parse(e164), phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def redact(e164: str) -> str:
    """For logs and the clerk's view: the country code and the last two digits only (+48…00)."""
    try:
        code = phonenumbers.parse(e164).country_code
    except NumberParseException:
        return "…"
    return f"+{code}…{e164[-2:]}"
