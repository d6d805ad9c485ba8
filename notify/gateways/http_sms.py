"""An SMS provider's HTTP API, in the shape Polish providers share.

One POST per message with ``Authorization: Bearer <token>``: recipient, text, sender name,
optionally an idempotency key and the URL the provider calls with delivery reports. Field
names, JSON or form body, and where the reply keeps the message id are configuration, so one
client serves SMSAPI-like and SerwerSMS-like APIs alike.

Why the answers are classified so carefully (the outbox relies on it):

* could not connect → **retry**: nothing left this machine;
* 429 → **retry** after the provider's Retry-After; 502/503/504 and 408 → **retry** (a proxy
  or an overloaded front answered; the request was not processed);
* 401/403 → **retry**, with a reason naming the token: a wrong or expired token is the IT
  person's to fix, and the notices should go once it is (until they expire);
* other 4xx, or a 2xx carrying an error instead of an id → **failed** (a bad number, refused
  content: sending it again would get the same answer);
* a timeout or a dropped connection after the request was written, a 500 → **unknown**: the
  provider may have sent it. Only when the provider honours idempotency keys may the outbox
  send it again (with the same key).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import httpx

from notify.config import HttpSmsConfig
from notify.message import Channel, Delivery, Message, SendResult

RETRY_STATUSES = {408, 429, 502, 503, 504}
AUTH_STATUSES = {401, 403}


def _dig(data: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        elif isinstance(data, Mapping) and part in data:
            data = data[part]
        else:
            return None
    return data


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: either a number of seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class HttpSmsGateway:
    channel = Channel.SMS

    def __init__(self, config: HttpSmsConfig, transport: httpx.BaseTransport | None = None) -> None:
        self.config = config
        self.idempotent = config.idempotent
        self.client = httpx.Client(
            timeout=httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s),
            headers={"Authorization": f"Bearer {config.token.get_secret_value()}", "User-Agent": "numerek-notify"},
            transport=transport,
            follow_redirects=False,
        )

    def _recipient(self, e164: str) -> str:
        return e164.lstrip("+") if self.config.recipient_format == "digits" else e164

    def request_fields(self, message: Message) -> dict[str, str]:
        f = self.config.fields
        fields = dict(self.config.extra)
        fields[f.recipient] = self._recipient(message.recipient)
        fields[f.message] = message.text
        fields[f.sender] = self.config.sender
        if f.idempotency_key and message.key:
            fields[f.idempotency_key] = message.key
        if f.callback and self.config.callback_url:
            fields[f.callback] = self.config.callback_url
        return fields

    def send(self, message: Message) -> SendResult:
        if message.channel is not Channel.SMS:
            return SendResult.failed("the HTTP SMS gateway sends SMS only")
        fields = self.request_fields(message)
        body: dict[str, Any] = {"json": fields} if self.config.body == "json" else {"data": fields}
        try:
            reply = self.client.post(self.config.url, **body)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            return SendResult.retry(f"cannot reach the SMS provider ({type(exc).__name__})")
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            return SendResult.unknown(f"no answer from the SMS provider after sending ({type(exc).__name__})")
        return self.classify(reply)

    def classify(self, reply: httpx.Response) -> SendResult:
        code = reply.status_code
        try:
            data = reply.json()
        except ValueError:
            data = None
        error = _dig(data, self.config.error_path) if data is not None else None
        why = f"HTTP {code}" + (f": {str(error)[:200]}" if error else "")
        if 200 <= code < 300:
            gateway_id = _dig(data, self.config.id_path) if data is not None else None
            if gateway_id not in (None, ""):
                return SendResult.accepted(str(gateway_id))
            if error:
                return SendResult.failed(f"the SMS provider refused the message ({why})")
            return SendResult.unknown(f"the SMS provider answered {code} without a message id")
        if code in AUTH_STATUSES:
            return SendResult.retry(f"the SMS provider refused the token ({why}); check the token in the config")
        if code in RETRY_STATUSES:
            return SendResult.retry(
                f"the SMS provider is busy ({why})", retry_after_seconds(reply.headers.get("Retry-After"))
            )
        if 400 <= code < 500:
            return SendResult.failed(f"the SMS provider refused the message ({why})")
        return SendResult.unknown(f"the SMS provider failed while handling the message ({why})")

    def delivery_from(self, raw: str | None) -> Delivery:
        if raw is None:
            return Delivery.UNKNOWN
        return self.config.status_map.get(str(raw).strip().upper(), Delivery.UNKNOWN)

    def status(self, gateway_id: str) -> Delivery | None:
        if not self.config.status_url:
            return None  # delivery reports arrive at the callback URL instead
        try:
            reply = self.client.get(self.config.status_url.replace("{id}", quote(gateway_id, safe="")))
            reply.raise_for_status()
            return self.delivery_from(_dig(reply.json(), self.config.status_path))
        except (httpx.HTTPError, ValueError):
            return Delivery.UNKNOWN

    def parse_delivery_report(self, params: Mapping[str, str]) -> tuple[str, Delivery] | None:
        """A provider's callback (query or form fields) as (message id, status); None if not one."""
        gateway_id = params.get(self.config.callback_id_field)
        raw = params.get(self.config.callback_status_field)
        if not gateway_id or raw is None:
            return None
        return str(gateway_id), self.delivery_from(raw)

    def close(self) -> None:
        self.client.close()
