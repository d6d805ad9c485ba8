"""Settings for notifications: the office's rules and one section per gateway (pydantic).

Why pydantic: the IT person edits a TOML file; every mistake must come back as one clear
line naming the field (``numerek-notify --config X --check`` prints them), and nothing half
valid is used. Secrets (tokens, SMTP passwords) are SecretStr so they never appear in a
printed config or a log line.
"""

from __future__ import annotations

import tomllib
from datetime import time
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from notify.message import Delivery


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GammuConfig(Strict):
    """Gammu's SMS daemon (files backend) on this machine, e.g. with a USB GSM modem."""

    type: Literal["gammu"] = "gammu"
    smsdrc: Path = Path("/etc/gammu-smsdrc")
    """The daemon's own config: the outbox, sent and error folders are read from its [smsd] section."""
    inject: str = "gammu-smsd-inject"
    staging: Path | None = None
    """Where messages are composed before an atomic rename into the outbox; must be on the same
    file system (default: a ``numerek-staging`` folder beside the outbox)."""
    inject_timeout_s: float = Field(default=30.0, gt=0)


DEFAULT_STATUS_MAP: dict[str, Delivery] = {
    # The words Polish providers' APIs and callbacks use most; extend per provider in the config.
    "QUEUE": Delivery.QUEUED,
    "QUEUED": Delivery.QUEUED,
    "ACCEPTED": Delivery.QUEUED,
    "PENDING": Delivery.QUEUED,
    "SENT": Delivery.SENT,
    "DELIVERED": Delivery.DELIVERED,
    "UNDELIVERED": Delivery.FAILED,
    "FAILED": Delivery.FAILED,
    "EXPIRED": Delivery.FAILED,
    "REJECTED": Delivery.FAILED,
    "UNKNOWN": Delivery.UNKNOWN,
}


class HttpFields(Strict):
    """The provider's names for the request's fields (SMSAPI-like defaults)."""

    recipient: str = "to"
    message: str = "message"
    sender: str = "from"
    idempotency_key: str | None = "idx"
    callback: str | None = "notify_url"


class HttpSmsConfig(Strict):
    """A provider's HTTP API: bearer token, sender name, recipient, message, callback URL."""

    type: Literal["http"] = "http"
    url: str
    token: SecretStr
    sender: str = Field(min_length=1, max_length=11, pattern=r"^[A-Za-z0-9 .\-]+$")
    """An alphanumeric sender name (GSM allows 11 characters), registered with the provider."""
    callback_url: str | None = None
    body: Literal["json", "form"] = "json"
    fields: HttpFields = HttpFields()
    extra: dict[str, str] = {}
    """Constant fields every request carries (e.g. ``encoding = "utf-8"``, ``check_idx = "1"``)."""
    recipient_format: Literal["e164", "digits"] = "digits"
    """"digits": 48600100200 (most Polish APIs); "e164": +48600100200."""
    id_path: str = "id"
    """Where the reply's JSON keeps the message id, dotted (``list.0.id``)."""
    error_path: str = "message"
    idempotent: bool = False
    """True only if the provider refuses a second message with the same key (e.g. SMSAPI's check_idx)."""
    status_url: str | None = None
    """GET this URL with ``{id}`` replaced to learn a message's status, if the provider has one."""
    status_path: str = "status"
    status_map: dict[str, Delivery] = DEFAULT_STATUS_MAP
    callback_id_field: str = "MsgId"
    callback_status_field: str = "status"
    inbound_secret: SecretStr | None = None
    """Replies (an opt-out "STOP") come to the server's ``POST /notify/sms/<gateway name>`` only
    with this secret: header ``X-Numerek-Secret``, or the password of HTTP basic auth
    (``https://numerek:SECRET@host/notify/sms/provider`` as the provider's callback URL).
    None: the webhook answers 404."""
    inbound_sender_field: str = "sms_from"
    inbound_text_field: str = "sms_text"
    """The provider's names for a received SMS's sender and text (SMSAPI's by default)."""
    timeout_s: float = Field(default=10.0, gt=0)
    connect_timeout_s: float = Field(default=5.0, gt=0)

    @field_validator("url", "callback_url", "status_url")
    @classmethod
    def _https_or_loopback(cls, value: str | None) -> str | None:
        """The token travels in a header: plain HTTP only to this machine (tests, a local relay)."""
        if value is None:
            return value
        if value.startswith("https://"):
            return value
        if value.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]")):
            return value
        raise ValueError("must be an https:// URL (plain http only to 127.0.0.1/localhost)")


class SmtpConfig(Strict):
    """An SMTP relay: the office's mail server or a provider's."""

    type: Literal["smtp"] = "smtp"
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    """starttls: port 587, upgrade before login; tls: implicit TLS (port 465); none: a trusted local relay only."""
    username: str | None = None
    password: SecretStr | None = None
    sender: str = Field(pattern=r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
    sender_name: str = ""
    ca_file: Path | None = None
    """A CA bundle to trust instead of the system's (an office relay with its own CA)."""
    timeout_s: float = Field(default=15.0, gt=0)

    @model_validator(mode="after")
    def _login_needs_encryption(self) -> SmtpConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        if self.username is not None and self.security == "none":
            raise ValueError("a password is never sent over an unencrypted connection: use starttls or tls")
        return self


GatewayConfig = Annotated[GammuConfig | HttpSmsConfig | SmtpConfig, Field(discriminator="type")]


class QuietHours(Strict):
    start: time = time(20, 0)
    end: time = time(7, 0)


class RateLimit(Strict):
    messages: int = Field(default=6, ge=1)
    per_minutes: int = Field(default=60, ge=1)


class Backoff(Strict):
    first_s: float = Field(default=30.0, gt=0)
    factor: float = Field(default=2.0, ge=1)
    max_s: float = Field(default=1800.0, gt=0)
    max_attempts: int = Field(default=8, ge=1)


class NotifySettings(Strict):
    """The office's rules for notices (the outbox applies them)."""

    office: str = Field(min_length=1, max_length=40)
    """The name that starts every message, e.g. "Starostwo Łódź"."""
    timezone: str = "Europe/Warsaw"
    default_region: str = "PL"
    transliterate: bool = False
    """Send Polish (and other Latin) letters without diacritics so a part holds 160 characters, not 70."""
    quiet_hours: QuietHours | None = QuietHours()
    rate_limit: RateLimit = RateLimit()
    backoff: Backoff = Backoff()
    batch: int = Field(default=50, ge=1, le=1000)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class NotifyConfig(Strict):
    """``[notify]`` settings, named ``[gateways.NAME]`` sections, and which one serves each channel."""

    notify: NotifySettings
    gateways: dict[str, GatewayConfig]
    sms: str | None = None
    email: str | None = None

    @model_validator(mode="after")
    def _channels_name_gateways(self) -> NotifyConfig:
        for channel, kinds in (("sms", ("gammu", "http")), ("email", ("smtp",))):
            name = getattr(self, channel)
            if name is None:
                continue
            if name not in self.gateways:
                raise ValueError(f"{channel} = {name!r} names no [gateways.{name}] section")
            if self.gateways[name].type not in kinds:
                raise ValueError(f"{channel} = {name!r} is a {self.gateways[name].type} gateway, not one for {channel}")
        return self


def load(path: Path) -> NotifyConfig:
    with path.open("rb") as f:
        return NotifyConfig.model_validate(tomllib.load(f))
