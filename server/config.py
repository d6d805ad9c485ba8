"""The site config: one TOML file describing the office, its services and counters.

Validated with pydantic so that a mistake is reported with the path of the bad field
(``services.2.hours.mon: ...``) before the server starts, instead of misbehaving at 8:00
on a Monday. The example of a county office is ``server/examples/county_office.toml``.
"""

from __future__ import annotations

from datetime import date, time
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from protocol import config
from protocol.config import ConfigError as ConfigError  # re-exported: the one error of every role
from protocol.mqtt import BrokerConfig
from protocol.topics import ID_PATTERN

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

Id = Annotated[str, Field(pattern=ID_PATTERN)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Hours(_Strict):
    """Opening hours of one weekday, e.g. "08:00-16:00"."""

    opens: time
    closes: time

    @classmethod
    def parse(cls, text: str) -> Hours:
        """``"08:00-16:00"``; ``"24:00"`` as the closing time means open to the end of the day."""
        try:
            a, b = text.split("-")
            opens = time.fromisoformat(a.strip())
            closes = time.max if b.strip() == "24:00" else time.fromisoformat(b.strip())
        except ValueError as exc:
            raise ValueError(f"expected 'HH:MM-HH:MM', got {text!r}") from exc
        if closes <= opens:
            raise ValueError(f"closing time must be after opening time in {text!r}")
        return cls(opens=opens, closes=closes)

    @staticmethod
    def clock(value: time) -> str:
        """ "HH:MM", with the end of the day as "24:00" (so a saved value reads back the same)."""
        return "24:00" if value == time.max else value.strftime("%H:%M")

    def text(self) -> str:
        return f"{self.clock(self.opens)}-{self.clock(self.closes)}"


class Names(_Strict):
    pl: Annotated[str, Field(min_length=1, max_length=60)]
    en: Annotated[str, Field(min_length=1, max_length=60)]
    uk: Annotated[str, Field(min_length=1, max_length=60)] | None = None

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in self.model_dump().items() if v}


class Service(_Strict):
    id: Id
    prefix: Annotated[str, Field(pattern=r"^[A-Z]{1,2}$")]
    name: Names
    zone: Id = "hall"
    hours: dict[str, Hours]
    daily_limit: Annotated[int, Field(ge=1, le=9999)] | None = None
    cutoff_min: Annotated[int, Field(ge=0, le=240)] = 0
    target_wait_min: Annotated[int, Field(ge=1, le=600)] = 20
    priority: Annotated[int, Field(ge=0, le=9)] = 0
    """Higher is served first when a counter's preference order ties."""
    auto_cutoff: bool = False
    """Also stop taking tickets once the people already waiting fill the time until closing
    (the wait estimator's advice, server/estimates/cutoff.py), not only ``cutoff_min`` before it."""

    @field_validator("hours", mode="before")
    @classmethod
    def _parse_hours(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        out = {}
        for day, text in value.items():
            if day not in WEEKDAYS:
                raise ValueError(f"unknown weekday {day!r}; use one of {', '.join(WEEKDAYS)}")
            try:
                out[day] = Hours.parse(text) if isinstance(text, str) else text
            except ValueError as exc:
                raise ValueError(f"{day}: {exc}") from None
        return out

    def hours_on(self, weekday: int) -> Hours | None:
        return self.hours.get(WEEKDAYS[weekday])


class Counter(_Strict):
    id: Id
    name: Annotated[str, Field(min_length=1, max_length=40)]
    zone: Id = "hall"
    services: Annotated[list[Id], Field(min_length=1)]
    """The work profile: services this counter serves, in order of preference."""
    place: Names | None = None
    """Where the counter is, for residents: ``{ pl = "pokój 12, I piętro", en = "room 12, 1st
    floor" }``. Sent with every call (``place``); none: the zone's name (``public.zone_names``)."""


class Office(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=80)]
    timezone: str = "Europe/Warsaw"
    day_starts: time = time(0, 0)
    """Numbering restarts (A001) at this local time every day."""
    recall_guard_s: Annotated[float, Field(ge=0, le=60)] = 2.0
    """A RECALL this soon after the ticket's last call is refused (``too_soon``): a double press
    (two presses within about a second) must not announce the number twice. Short on purpose:
    a clerk whose client did not hear the call recalls deliberately a few seconds later, and
    that recall is carried out; the hall display plays it after the announcement in progress
    (docs/display.md, "When the hall is busy")."""
    rating_window_s: Annotated[float, Field(ge=10, le=3600)] = 30.0
    """The "leaving" window: this long after a service ended (and only until the next client's
    service starts) a rating is for the client who just left; after it, a rating is for the
    client at the counter now. Short, because the next client is soon the one at the buttons."""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _rate_limit(value: str) -> str:
    from limits import parse_many

    try:
        parse_many(value)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a rate like '5/10 seconds;20/minute'") from exc
    return value


class Http(_Strict):
    """The web server and its logins (docs/configuration.md, [http]; docs/deployment.md, "Security")."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    public_url: str = "http://127.0.0.1:8080"
    """How phones reach the server; printed in the ticket's QR code."""
    trusted_proxies: list[str] = ["127.0.0.1", "::1"]
    """Addresses (or networks) of reverse proxies whose X-Forwarded-For/-Proto are believed."""
    request_timeout_s: Annotated[float, Field(ge=1, le=300)] = 10
    """A client must send its whole request within this long, or the connection is closed."""
    max_connections: Annotated[int, Field(ge=16, le=100_000)] = 1024
    """Open connections at most (lowered at start to what the file-descriptor limit allows)."""
    max_connections_per_client: Annotated[int, Field(ge=1, le=100_000)] = 64
    """Open connections from one address at most (a trusted proxy counts only against the total)."""
    login_per_address: str = "20/5 minutes"
    """Password checks one client address may cause (login form or HTTP Basic), counted before the check."""
    login_per_account: str = "50/hour"
    """Password checks for one login name, from all addresses together."""
    session_idle_min: Annotated[int, Field(ge=1, le=24 * 60)] = 60
    """A web session unused this long ends."""
    session_max_h: Annotated[int, Field(ge=1, le=24 * 30)] = 12
    """A web session ends this long after the login, used or not."""

    @field_validator("login_per_address", "login_per_account")
    @classmethod
    def _rate(cls, value: str) -> str:
        return _rate_limit(value)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        from ipaddress import ip_network

        for item in value:
            try:
                ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network (e.g. 127.0.0.1, 10.0.0.0/8)") from None
        return value


class Storage(_Strict):
    database: str = "numerek.db"
    min_free_mb: Annotated[int, Field(ge=0)] = 200
    """Below this much free disk space /health and the managers' live view warn, before writes fail."""


class Limits(_Strict):
    """How fast devices may ask (docs/configuration.md, [limits])."""

    kiosk_tickets: str = "5/10 seconds;20/minute"
    """Tickets one kiosk may request: a person needs seconds per ticket, so more is a script or a
    stuck button, refused with ``rate_limited`` and shown on the live view ("N/period", ";"-separated)."""

    @field_validator("kiosk_tickets")
    @classmethod
    def _rate(cls, value: str) -> str:
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a rate like '5/10 seconds;20/minute'") from exc
        return value


class Public(_Strict):
    """What residents and the office's web site may see without a login (docs/public-status.md).

    Why the manager chooses: a queue's state is not personal, but a small service's monthly
    figures can be (one clerk, a handful of residents); and an internal service (a back
    office) has no business on a public page. Every public figure is a read of a snapshot:
    nothing here lets a public request change anything."""

    enabled: bool = True
    """The live page (/kolejka), the open-data feeds and the widget; off: they answer 404."""
    services: list[Id] | None = None
    """Services shown publicly (live and statistics), in this order; none given: all of them."""
    zone_names: dict[Id, Names] = {}
    """A hall's name for residents (``hall = { pl = "Sala obsługi", en = "Main hall" }``); else its id."""
    allowed_origins: list[Annotated[str, Field(pattern=r"^(\*|https?://[^/\s]+)$")]] = []
    """The office's own web sites (``https://www.urzad.example.pl``): their pages may read the feeds
    (CORS) and frame the widget. ``"*"`` lets any site do both (the data is public anyway)."""
    refresh_s: Annotated[int, Field(ge=2, le=300)] = 10
    """How often the live page and the widget ask for news; also the feeds' ``max-age``."""
    statistics: bool = True
    """Publish the monthly statistics page and CSV."""
    statistics_min_visits: Annotated[int, Field(ge=1, le=100_000)] = 30
    """A figure computed from fewer visits (or ratings) than this in a month is not published:
    the service is folded into "other services", and satisfaction needs this many ratings."""
    statistics_figures: list[Literal["visits", "served", "wait", "within_target", "satisfaction"]] = [
        "visits",
        "served",
        "wait",
        "within_target",
        "satisfaction",
    ]
    """Which monthly figures are public (wait = median and 90th percentile)."""


class NoticeThreshold(_Strict):
    """When "your turn is near" goes out: whichever comes first (docs/notifications.md)."""

    people: Annotated[int, Field(ge=0, le=100)] = 3
    """At most this many people ahead of the ticket."""
    minutes: Annotated[int, Field(ge=0, le=240)] = 10
    """The estimated wait is at most this many minutes (0: only the people count decides)."""


class PickupPlace(_Strict):
    """Where a service's documents are picked up, as the "document ready" message says it."""

    where: Names
    """``{ pl = "w Wydziale Komunikacji", en = "at the Transport Department", uk = "у відділі транспорту" }``"""
    counter: Names
    """``{ pl = "stanowisko 7", en = "desk 7", uk = "віконце 7" }``"""


DEFAULT_DOCUMENTS: dict[str, Names] = {
    "prawo_jazdy": Names(pl="Prawo jazdy", en="Driving licence", uk="Посвідчення водія"),
    "dowod_rejestracyjny": Names(
        pl="Dowód rejestracyjny", en="Vehicle registration certificate", uk="Свідоцтво про реєстрацію"
    ),
}


class Notifications(_Strict):
    """SMS and e-mail for residents (docs/notifications.md, "What the server does").

    The gateways, the office's name in messages, quiet hours and rate limits live in the
    notify config file (the one ``numerek-notify --check`` reads), so the file with the
    provider's token and the SMTP password is one file, readable by the service only."""

    config: str
    """The notify config file (TOML, notify/config.py); relative to this file."""
    near: NoticeThreshold = NoticeThreshold()
    services: dict[Id, NoticeThreshold] = {}
    """Per service, instead of ``near`` (e.g. a slow service warns earlier)."""
    places: dict[Id, Names] = {}
    """Where a counter is, for "you are called" ("parter", "ground floor"), by counter id or by
    zone id; else the zone's public name ([public] zone_names), else the zone's id."""
    retention_hours: Annotated[int, Field(ge=0, le=24 * 90)] = 24
    """Phone numbers and e-mail addresses are erased this long after their ticket ended or
    their notice was sent (0: at once); the sender checks every few minutes."""
    subscribe_rate: str = "10/10 minutes"
    """Contact forms one client address may send on ticket pages (counted before checking); also
    how many times one phone number may be left at the kiosks."""
    kiosk_subscribe_rate: str = "30/10 minutes"
    """Phone numbers one kiosk may take for SMS notices (docs/kiosk.md): a kiosk serves many
    residents, so more than one phone's form, yet a script or a stuck key is stopped."""
    documents: dict[Id, Names] = DEFAULT_DOCUMENTS
    """Document kinds a clerk may say are ready (the pick-up form, the managers' list)."""
    pickup: dict[Id, PickupPlace] = {}
    """Services whose documents are picked up, and where; only these appear in the pick-up forms."""
    sms_part_price: Annotated[float, Field(ge=0, le=10)] = 0.0
    """What one SMS part costs the office (zł), shown before a list is sent; 0: only parts are shown."""
    optout_words: Annotated[list[Annotated[str, Field(min_length=1, max_length=40)]], Field(min_length=1)] = [
        "STOP",
        "NIE",
        "STOP SMS",
    ]
    """A reply that is one of these (any case, with or without diacritics) stops every SMS to
    that number (docs/notifications.md, "Opting out by SMS"); "START" undoes it."""
    optout_key_file: str | None = None
    """The opt-out list's key (32 random bytes, created at first start); default: the database
    file's name + ``.optout-key``. Back it up apart from the database."""
    inbound_rate: str = "60/minute"
    """Incoming-SMS webhook calls one client address may make (the provider's servers)."""

    @field_validator("subscribe_rate", "kiosk_subscribe_rate", "inbound_rate")
    @classmethod
    def _rate(cls, value: str) -> str:
        return _rate_limit(value)

    def threshold(self, service: str) -> NoticeThreshold:
        return self.services.get(service, self.near)


class BookingPlan(_Strict):
    """How one service takes appointments (docs/booking.md; [booking.plans.<service>])."""

    slot_min: Annotated[int, Field(ge=5, le=240)] = 15
    """Length of one appointment slot; slots start at the service's opening time."""
    per_hour: Annotated[int, Field(ge=1, le=120)] = 4
    """Appointments taken per hour of opening: the counters' time kept for booked residents.
    Spread over the slots of each hour (6 an hour in 15-minute slots: 2, 1, 2, 1)."""
    days_ahead: Annotated[int, Field(ge=1, le=365)] = 30
    """How far ahead a resident may book (today counts as day 0)."""
    notice_min: Annotated[int, Field(ge=0, le=7 * 24 * 60)] = 60
    """A slot must start at least this long after the booking is made."""
    stop_before_close_min: Annotated[int, Field(ge=0, le=480)] = 0
    """The last slot ends this long before the service closes (leaves the end of the day to walk-ins)."""


class Booking(_Strict):
    """Appointments booked online or by phone (docs/booking.md, docs/configuration.md [booking]).

    Why a section of its own: booking is off unless a service has a plan here, and the
    personal data it keeps (a name, a phone number or an e-mail address) has its own rules."""

    plans: dict[Id, BookingPlan] = {}
    """The services that take bookings, each with its plan."""
    holidays: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] | None = "PL"
    """Public holidays of this country (the ``holidays`` package) take no bookings; none: only ``closures``."""
    closures: list[date] = []
    """Other days the office takes no bookings (``["2026-12-24", "2026-12-31"]``)."""
    retention_days: Annotated[int, Field(ge=0, le=365)] = 14
    """A booking's name and contact are erased this many days after the visit day."""
    per_contact: Annotated[int, Field(ge=1, le=50)] = 2
    """Upcoming bookings one phone number or e-mail address may hold (all services together)."""
    remind_hours: Annotated[int, Field(ge=0, le=7 * 24)] = 24
    """With [notify]: a reminder goes out this many hours before the visit (0: no reminder);
    the confirmation goes out at once (docs/booking.md, "Confirmation and reminder")."""
    per_address: str = "10/10 minutes;30/day"
    """Booking attempts one client address may make (online form), counted before the attempt."""
    lookups_per_address: str = "20/10 minutes"
    """Codes one client address may look up or try: with 31^6 codes, this makes guessing hopeless."""
    early_min: Annotated[int, Field(ge=0, le=240)] = 30
    """Check-in opens this long before the booked time."""
    late_min: Annotated[int, Field(ge=0, le=240)] = 15
    """Check-in closes this long after the booked time (then ``late`` decides)."""
    call_window_min: Annotated[int, Field(ge=0, le=120)] = 5
    """A checked-in appointment may be called from this long before its time (ahead of walk-ins)."""
    late: Literal["walk_in", "refuse"] = "walk_in"
    """After ``late_min``: join the walk-in queue (a normal ticket) or be refused."""
    prefix: Annotated[str, Field(pattern=r"^[A-Z]{1,2}$")] = "R"
    """Ticket prefix of checked-in appointments (R001), distinct from the services' prefixes."""

    @field_validator("per_address", "lookups_per_address")
    @classmethod
    def _rate(cls, value: str) -> str:
        return _rate_limit(value)

    @field_validator("holidays", mode="before")
    @classmethod
    def _no_holidays(cls, value: object) -> object:
        return None if value == "" else value  # TOML has no null: "" means "no public holidays"


class SurveySettings(_Strict):
    """The after-visit survey (docs/notifications.md, "After-visit survey"): present = on."""

    days: Annotated[int, Field(ge=1, le=60)] = 7
    """A finished ticket's page offers the survey this many days after the visit."""


class ReportsSettings(_Strict):
    """The monthly report by e-mail (docs/reports.md, "Monthly report by e-mail").

    The office head's address lives here, in the site config the service reads, and nowhere
    else: ``numerek-report-mail`` never prints or logs it."""

    monthly_to: Annotated[
        list[Annotated[str, Field(pattern=r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")]], Field(max_length=20)
    ] = []
    """Who gets the monthly report (PDF and XLSX) on the first working day of the month."""
    lang: Literal["pl", "en"] = "pl"
    """The report's language."""
    notify_config: str | None = None
    """The notify config file whose e-mail gateway sends the report (relative to this file);
    default: ``[notify] config``. Lets an office mail reports without turning on residents'
    notifications (the server offers them whenever ``[notify]`` is present)."""


class SiteConfig(_Strict):
    office: Office
    mqtt: BrokerConfig = BrokerConfig()
    http: Http = Http()
    storage: Storage = Storage()
    limits: Limits = Limits()
    public: Public = Public()
    notify: Notifications | None = None
    booking: Booking = Booking()
    survey: SurveySettings | None = None
    reports: ReportsSettings = ReportsSettings()
    services: Annotated[list[Service], Field(min_length=1)]
    counters: Annotated[list[Counter], Field(min_length=1)]

    @model_validator(mode="after")
    def _cross_check(self) -> SiteConfig:
        ids = [s.id for s in self.services]
        if len(set(ids)) != len(ids):
            raise ValueError(f"service ids must be unique: {ids}")
        prefixes = [s.prefix for s in self.services]
        if len(set(prefixes)) != len(prefixes):
            raise ValueError(f"service prefixes must be unique: {prefixes}")
        cids = [c.id for c in self.counters]
        if len(set(cids)) != len(cids):
            raise ValueError(f"counter ids must be unique: {cids}")
        for c in self.counters:
            for s in c.services:
                if s not in ids:
                    raise ValueError(f"counter {c.id!r} serves unknown service {s!r}")
            if len(set(c.services)) != len(c.services):
                raise ValueError(f"counter {c.id!r} lists a service twice")
        for s in self.public.services or ():
            if s not in ids:
                raise ValueError(f"[public] services lists unknown service {s!r}")
        for s in self.notify.services if self.notify else ():
            if s not in ids:
                raise ValueError(f"[notify.services] names unknown service {s!r}")
        for s in self.notify.pickup if self.notify else ():
            if s not in ids:
                raise ValueError(f"[notify.pickup] names unknown service {s!r}")
        for s in self.booking.plans:
            if s not in ids:
                raise ValueError(f"[booking.plans] names unknown service {s!r}")
        if self.booking.plans and self.booking.prefix in prefixes:
            raise ValueError(
                f"[booking] prefix {self.booking.prefix!r} is a service's prefix; appointments need their own"
            )
        return self

    def service(self, service_id: str) -> Service | None:
        return next((s for s in self.services if s.id == service_id), None)

    def counter(self, counter_id: str) -> Counter | None:
        return next((c for c in self.counters if c.id == counter_id), None)


def parse_config(text: str, base_dir: Path | None = None, source: str | Path = "site config") -> SiteConfig:
    """A site config from TOML text; a relative database path is relative to ``base_dir``."""
    return _finish(config.validate(SiteConfig, config.parse_toml(text, source), source), base_dir)


def load_config(path: str | Path) -> SiteConfig:
    """Read and validate a site config (:class:`ConfigError` names the file and each field);
    a relative database path is relative to the file."""
    p = Path(path)
    return _finish(config.load(p, SiteConfig), p.resolve().parent)


def _finish(cfg: SiteConfig, base_dir: Path | None) -> SiteConfig:
    if base_dir is not None and not Path(cfg.storage.database).is_absolute():
        db = str(base_dir / cfg.storage.database)
        cfg = cfg.model_copy(update={"storage": cfg.storage.model_copy(update={"database": db})})
    if base_dir is not None and cfg.notify is not None and not Path(cfg.notify.config).is_absolute():
        notify = cfg.notify.model_copy(update={"config": str(base_dir / cfg.notify.config)})
        cfg = cfg.model_copy(update={"notify": notify})
    if base_dir is not None and cfg.reports.notify_config and not Path(cfg.reports.notify_config).is_absolute():
        reports = cfg.reports.model_copy(update={"notify_config": str(base_dir / cfg.reports.notify_config)})
        cfg = cfg.model_copy(update={"reports": reports})
    return cfg


EXAMPLE_CONFIG = Path(__file__).parent / "examples" / "county_office.toml"
