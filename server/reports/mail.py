"""``numerek-report-mail``: the monthly report (PDF + XLSX) by e-mail to the office head.

Why it sends through the SMTP gateway directly instead of the notification outbox: the
outbox stores a notice as a row of template values (JSON) and composes the text at send
time (notify/outbox.py); the report's two files (a few hundred kB) would need a new table
for binary parts, a schema migration, a new notice kind and erasure rules for them. For one
e-mail a month that is too much machinery; the durability the outbox gives (retry with
backoff after a crash or a relay that is down) comes here from systemd instead: the job is
a oneshot service started by a timer, and it exits with 75 (EX_TEMPFAIL) when the relay
said "try later" or could not be reached, which the unit restarts after a delay
(systemd/numerek-report-mail.service). A permanent refusal (5xx) or bad input exits 1 or 2
and is not retried.

Personal data: the recipients come from ``[reports] monthly_to`` in the site config (or
``--to``); no output line names an address, so the journal never holds one. The report
itself holds no data about residents (docs/reports.md, "Personal data").

Exit status: 0 sent (or nothing to do), 1 refused by the mail server, 2 bad arguments,
config or database (nothing sent), 75 temporary failure (try again later).
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from server.config import ConfigError, SiteConfig, load_config

if TYPE_CHECKING:
    from notify.config import SmtpConfig
    from server.reports.monthly import MonthlyReport

EX_TEMPFAIL = 75
EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")
MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class Refused(Exception):
    """Bad input: the message says what to fix; nothing has been sent."""


def last_month(today: date) -> date:
    return (today.replace(day=1) - timedelta(days=1)).replace(day=1)


def is_first_working_day(cfg: SiteConfig, day: date) -> bool:
    """Monday–Friday, not a public holiday or closure ([booking] holidays/closures), and no
    earlier day of the month is one. The timer fires Mon–Fri on days 1–4 at 07:00 (1 May
    on a Friday and 3 May make 4 May the first); this picks the one day."""
    from server.booking.plan import closed_reason

    def working(d: date) -> bool:
        return d.weekday() < 5 and closed_reason(cfg, d) is None

    return working(day) and not any(working(day.replace(day=n)) for n in range(1, day.day))


def _parse_month(text: str) -> date:
    m = MONTH.match(text)
    if not m:
        raise Refused(f"--month {text!r}: give the month as YYYY-MM, e.g. 2026-11")
    return date(int(m.group(1)), int(m.group(2)), 1)


def _recipients(cfg: SiteConfig, given: list[str] | None) -> list[str]:
    recipients = given if given else list(cfg.reports.monthly_to)
    if not recipients:
        raise Refused("no recipient: set [reports] monthly_to in the site config or give --to ADDRESS")
    for n, address in enumerate(recipients, 1):
        if not EMAIL.match(address):  # the address itself is not repeated: it may be personal data
            raise Refused(f"recipient {n} of {len(recipients)} is not an e-mail address (name@domain.pl)")
    return recipients


def _smtp_config(cfg: SiteConfig) -> SmtpConfig:
    """The e-mail gateway of ``[reports] notify_config``, else of ``[notify] config``."""
    from notify.config import SmtpConfig
    from notify.config import load as load_notify

    name = cfg.reports.notify_config or (cfg.notify.config if cfg.notify else None)
    if name is None:
        raise Refused("no mail server: set [reports] notify_config (or [notify] config) to a notify config file")
    path = Path(name)
    try:
        notify = load_notify(path)
    except OSError as exc:
        raise Refused(f"{path}: {exc.strerror}") from exc
    except ValidationError as exc:
        where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise Refused(f"{path} is not valid: {where}") from exc
    except ValueError as exc:
        raise Refused(f"{path} is not valid: {exc}") from exc
    if notify.email is None:
        raise Refused(f'{path}: no e-mail gateway (email = "NAME" with a [gateways.NAME] type = "smtp")')
    gateway = notify.gateways[notify.email]
    assert isinstance(gateway, SmtpConfig)  # the notify config's own validator checked the type
    return gateway


def run(args: argparse.Namespace) -> int:
    from server.reports.figures import ReportData
    from server.reports.monthly import build_monthly_report, month_filters, month_name

    try:
        cfg = load_config(args.config)
    except (ConfigError, OSError) as exc:
        raise Refused(str(exc)) from exc
    now = datetime.now(UTC)  # the server's clock
    today = now.astimezone(cfg.office.tz).date()
    if args.only_first_working_day and not is_first_working_day(cfg, today):
        print(f"{today:%Y-%m-%d} is not the month's first working day: nothing to do")
        return 0
    month = _parse_month(args.month) if args.month else last_month(today)
    if month >= today.replace(day=1):
        raise Refused(f"--month {month:%Y-%m} has not ended yet (today is {today:%Y-%m-%d})")
    lang = args.lang or cfg.reports.lang
    recipients = _recipients(cfg, args.to)
    smtp = _smtp_config(cfg)  # checked in a dry run too: it is how the IT person tests the set-up
    database = Path(args.database)
    if not database.is_file():
        raise Refused(f"{database}: no such database file")
    try:
        data = ReportData(str(database), cfg, now=lambda: now)
        issued = data.summary(month_filters(month)).totals.issued
    except sqlite3.Error as exc:
        raise Refused(f"{database} cannot be read as Numerek's database ({exc})") from exc
    if not issued:
        raise Refused(f"{database} has no tickets in {month:%Y-%m}: is it the right database and month?")
    report = build_monthly_report(data, month, lang)
    files = report.attachments()
    print(f"{report.subject}")
    print(
        f"{month_name(month, lang)}: {issued} tickets; " + ", ".join(f"{n} ({len(b) // 1024} kB)" for n, _, b in files)
    )
    if args.dry_run:
        print(f"dry run: not sent to {len(recipients)} recipient(s); the message's text:\n")
        print(report.text)
        return 0
    return _send(smtp, report, recipients)


def _send(smtp_config: SmtpConfig, report: MonthlyReport, recipients: list[str]) -> int:
    from notify.gateways.smtp import SmtpGateway
    from notify.message import Attachment, Channel, Message, Outcome

    gateway = SmtpGateway(smtp_config)
    attachments = tuple(Attachment(n, t, b) for n, t, b in report.attachments())
    status = 0
    for n, address in enumerate(recipients, 1):
        message = Message(Channel.EMAIL, address, report.text, report.subject, attachments=attachments)
        result = gateway.send(message)
        who = f"recipient {n} of {len(recipients)}"
        # A relay's reply may quote the address ("550 <x@y.pl>: Recipient address rejected").
        reason = re.sub(re.escape(address), "<recipient>", result.reason, flags=re.IGNORECASE)
        if result.outcome is Outcome.ACCEPTED:
            print(f"sent to {who}: {reason}")
        elif result.outcome is Outcome.FAILED:
            print(f"not sent to {who}: {reason}", file=sys.stderr)
            status = status or 1
        else:  # retry or unknown: the relay may be down; systemd starts the job again later
            print(f"not sent to {who} (will be tried again): {reason}", file=sys.stderr)
            status = EX_TEMPFAIL
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="numerek-report-mail",
        description="Send the monthly report (PDF and XLSX) by e-mail to the office head ([reports] monthly_to).",
    )
    parser.add_argument("--config", required=True, help="the site config (numerek.toml)")
    parser.add_argument("--database", required=True, help="the server's database file")
    parser.add_argument("--month", help="YYYY-MM (default: last month, in the office's time zone)")
    parser.add_argument("--to", action="append", metavar="ADDRESS", help="instead of [reports] monthly_to (repeat)")
    parser.add_argument("--lang", choices=("pl", "en"), help="default: [reports] lang")
    parser.add_argument("--dry-run", action="store_true", help="build the report and say what would go; send nothing")
    parser.add_argument(
        "--only-first-working-day",
        action="store_true",
        help="do nothing unless today is the month's first working day (for the systemd timer)",
    )
    args = parser.parse_args(argv)
    try:
        return run(args)
    except Refused as exc:
        print(f"numerek-report-mail: {exc}; nothing sent", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
