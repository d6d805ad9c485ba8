"""The monthly report by e-mail: ``numerek-report-mail`` as a process, a simulated office in a
real SQLite file, aiosmtpd with STARTTLS and login as the office's mail server.

What the office head notices: one e-mail with the month in its subject, a PDF whose text
(read by poppler's pdftotext) has the month's figures, and an XLSX with the same figures.
What the IT person notices: a bad address, a missing config or database is one clear line
and exit status 2 with nothing sent; a mail server that is down exits 75, which the systemd
unit retries; the address never appears in the output (the journal).
"""

from __future__ import annotations

import email
import io
import shutil
import sqlite3
import ssl
import subprocess
import sys
from datetime import date
from email import policy
from pathlib import Path

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from openpyxl import load_workbook

from notify.message import Attachment, Channel, Message
from server.config import load_config
from server.reports.mail import is_first_working_day, last_month
from tests.harness import ROOT, free_port, run_tool, write_config
from tests.notify_support import Mailbox

HEAD = "naczelnik@starostwo.example.pl"
HOURS = '{ mon = "08:00-16:00", tue = "08:00-16:00", wed = "08:00-17:00", thu = "08:00-16:00", fri = "08:00-15:00" }'
POPPLER = shutil.which("pdftotext")
SYSTEMD = ROOT / "systemd"
ANALYZE = shutil.which("systemd-analyze")


def authenticate(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"urzad", b"haslo-123")
    return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def office(tmp_path_factory) -> Path:
    """Two working weeks (26 October – 6 November 2026) of the test office, simulated into a real file."""
    tmp = tmp_path_factory.mktemp("monthmail")
    cfg = write_config(tmp / "office.toml", free_port(), free_port(), hours=HOURS)
    sim = run_tool(
        "server.simulate",
        *("--config", str(cfg), "--database", str(tmp / "numerek.db")),
        *("--start", "2026-10-26", "--days", "12", "--scale", "0.5", "--seed", "5"),
    )
    assert sim.returncode == 0, sim.stderr
    return tmp


@pytest.fixture
def relay(tmp_path):
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    box = Mailbox()
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=server_ctx,
        require_starttls=True,
        authenticator=authenticate,
        auth_required=True,
    )
    controller.start()
    yield controller.port, box, ca_file
    controller.stop()


def site(office: Path, tmp: Path, port: int, ca_file: Path, reports: str | None = None, notify: bool = True) -> Path:
    """The office's site config with [notify] naming a notify config whose e-mail gateway is the relay."""
    (tmp / "notify.toml").write_text(
        f"""email = "mail"

[notify]
office = "Urząd Testowy"

[gateways.mail]
type = "smtp"
host = "127.0.0.1"
port = {port}
security = "starttls"
username = "urzad"
password = "haslo-123"
sender = "kolejka@starostwo.example.pl"
sender_name = "Urząd Testowy w Łodzi"
ca_file = "{ca_file}"
timeout_s = 20
""",
        encoding="utf-8",
    )
    text = (office / "office.toml").read_text(encoding="utf-8")
    if notify:
        text += f'\n[notify]\nconfig = "{tmp / "notify.toml"}"\n'
    text += reports if reports is not None else f'\n[reports]\nmonthly_to = ["{HEAD}"]\n'
    path = tmp / "site.toml"
    path.write_text(text, encoding="utf-8")
    return path


def report_mail(config: Path, database: Path, *args: str) -> subprocess.CompletedProcess:
    """``numerek-report-mail`` as systemd runs it (``python -m server.reports.mail``, forked: harness.run_tool)."""
    return run_tool("server.reports.mail", "--config", str(config), "--database", str(database), *args)


def october(office: Path) -> tuple[int, int]:
    """Issued and served in October 2026, counted straight from the database."""
    conn = sqlite3.connect(office / "numerek.db")
    issued, served = conn.execute(
        "SELECT COUNT(*), SUM(status = 'finished') FROM tickets WHERE day BETWEEN '2026-10-01' AND '2026-10-31'"
    ).fetchone()
    conn.close()
    return issued, served


@pytest.mark.skipif(not POPPLER, reason="poppler-utils is not installed")
def test_the_office_head_gets_one_email_with_the_months_pdf_and_xlsx(office, relay, tmp_path):
    port, box, ca_file = relay
    done = report_mail(site(office, tmp_path, port, ca_file), office / "numerek.db", "--month", "2026-10")
    assert done.returncode == 0, done.stderr
    assert HEAD not in done.stdout + done.stderr  # the journal never holds the address
    assert "sent to recipient 1 of 1" in done.stdout

    [envelope] = box.envelopes
    assert envelope.rcpt_tos == [HEAD]
    mail = email.message_from_bytes(envelope.content, policy=policy.default)
    assert mail["Subject"] == "Numerek — Podsumowanie miesiąca: październik 2026 — Urząd Testowy w Łodzi"
    issued, served = october(office)
    body = mail.get_body(preferencelist=("plain",)).get_content()
    assert f"Wydane bilety: {issued}" in body and f"Obsłużeni: {served}" in body

    files = {part.get_filename(): part for part in mail.iter_attachments()}
    assert set(files) == {"numerek-2026-10.pdf", "numerek-2026-10.xlsx"}
    pdf = files["numerek-2026-10.pdf"]
    assert pdf.get_content_type() == "application/pdf"
    (tmp_path / "r.pdf").write_bytes(pdf.get_content())
    text = subprocess.run(
        ["pdftotext", "-layout", str(tmp_path / "r.pdf"), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "październik 2026" in text
    assert str(issued) in text and str(served) in text

    xlsx = files["numerek-2026-10.xlsx"]
    assert xlsx.get_content_type() == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    book = load_workbook(io.BytesIO(xlsx.get_content()))
    numbers = [c for ws in book.worksheets for row in ws.iter_rows(values_only=True) for c in row]
    assert issued in numbers and served in numbers


def test_an_office_without_residents_notifications_mails_the_report_with_its_own_notify_file(office, relay, tmp_path):
    """[reports] notify_config (relative to the site config) instead of [notify], which would
    turn on the ticket page's contact form."""
    port, box, ca_file = relay
    reports = f'\n[reports]\nmonthly_to = ["{HEAD}"]\nnotify_config = "notify.toml"\nlang = "en"\n'
    config = site(office, tmp_path, port, ca_file, reports=reports, notify=False)
    assert "[notify]\nconfig" not in config.read_text(encoding="utf-8")
    done = report_mail(config, office / "numerek.db", "--month", "2026-10")
    assert done.returncode == 0, done.stderr
    [envelope] = box.envelopes
    mail = email.message_from_bytes(envelope.content, policy=policy.default)
    assert mail["Subject"] == "Numerek — Monthly summary: October 2026 — Urząd Testowy w Łodzi"


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("bad address", "recipient 2 of 2 is not an e-mail address"),
        ("no recipients", "no recipient: set [reports] monthly_to"),
        ("no notify config", "no mail server"),
        ("no database", "no such database file"),
        ("bad month", "give the month as YYYY-MM"),
        ("empty month", "has no tickets in 2026-09"),
    ],
)
def test_a_bad_address_or_missing_config_is_one_clear_line_exit_2_and_nothing_sent(
    office, relay, tmp_path, case, error
):
    port, box, ca_file = relay
    reports = "\n[reports]\nmonthly_to = []\n" if case == "no recipients" else None
    config = site(office, tmp_path, port, ca_file, reports=reports, notify=case != "no notify config")
    database = tmp_path / "missing.db" if case == "no database" else office / "numerek.db"
    args = {
        "bad address": ["--to", HEAD, "--to", "naczelnik(at)starostwo.pl", "--month", "2026-10"],
        "bad month": ["--month", "2026-13"],
        "empty month": ["--month", "2026-09"],
    }.get(case, ["--month", "2026-10"])
    done = report_mail(config, database, *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert error in done.stderr and done.stderr.strip().endswith("nothing sent"), done.stderr
    assert "Traceback" not in done.stderr and "naczelnik" not in done.stderr
    assert box.envelopes == []


def test_a_recipient_the_mail_server_refuses_exits_1_without_the_address_in_the_journal(office, relay, tmp_path):
    port, box, ca_file = relay
    box.refuse[HEAD] = f"550 5.1.1 <{HEAD}>: Recipient address rejected: User unknown"
    done = report_mail(site(office, tmp_path, port, ca_file), office / "numerek.db", "--month", "2026-10")
    assert done.returncode == 1, done.stdout + done.stderr  # permanent: the unit does not retry it
    assert "not sent to recipient 1 of 1: the mail server refused the recipient (550 5.1.1 <<recipient>>" in done.stderr
    assert HEAD not in done.stdout + done.stderr
    assert box.envelopes == []


def test_a_mail_server_that_is_down_exits_75_so_systemd_tries_again(office, tmp_path):
    config = site(office, tmp_path, free_port(), tmp_path / "none.pem")  # nothing listens there
    done = report_mail(config, office / "numerek.db", "--month", "2026-10")
    assert done.returncode == 75, done.stdout + done.stderr
    assert "will be tried again" in done.stderr and HEAD not in done.stderr


def test_a_dry_run_builds_the_report_and_sends_nothing(office, relay, tmp_path):
    port, box, ca_file = relay
    done = report_mail(site(office, tmp_path, port, ca_file), office / "numerek.db", "--month", "2026-10", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "dry run: not sent to 1 recipient(s)" in done.stdout
    assert "numerek-2026-10.pdf" in done.stdout and f"Wydane bilety: {october(office)[0]}" in done.stdout
    assert box.envelopes == []


def test_an_sms_cannot_carry_attachments():
    pdf = Attachment("raport.pdf", "application/pdf", b"%PDF-1.7")
    with pytest.raises(ValueError, match="SMS cannot carry attachments"):
        Message(Channel.SMS, "+48600100200", "raport", attachments=(pdf,))
    assert Message(Channel.EMAIL, HEAD, "raport", attachments=(pdf,)).attachments == (pdf,)


def test_the_report_goes_on_the_first_working_day_counting_polish_holidays(office):
    cfg = load_config(office / "office.toml")
    firsts = [d for d in (date(2027, 1, n) for n in range(1, 5)) if is_first_working_day(cfg, d)]
    assert firsts == [date(2027, 1, 4)]  # 1 January (a Friday) is New Year's Day
    firsts = [d for d in (date(2026, 5, n) for n in range(1, 5)) if is_first_working_day(cfg, d)]
    assert firsts == [date(2026, 5, 4)]  # 1 May a Friday, 3 May a Sunday (and a holiday)
    assert is_first_working_day(cfg, date(2026, 12, 1)) and not is_first_working_day(cfg, date(2026, 12, 2))
    assert last_month(date(2027, 1, 4)) == date(2026, 12, 1)


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
def test_the_report_mail_units_pass_systemd_analyze_and_fire_on_weekdays_1_to_4(tmp_path):
    bindir = Path(sys.executable).parent
    assert (bindir / "numerek-report-mail").exists()
    for name in ("numerek-report-mail.service", "numerek-report-mail.timer"):
        text = (SYSTEMD / name).read_text().replace("/opt/numerek/venv/bin/", f"{bindir}/")
        (tmp_path / name).write_text(text)
    units = [str(tmp_path / "numerek-report-mail.service"), str(tmp_path / "numerek-report-mail.timer")]
    done = subprocess.run([ANALYZE, "verify", *units], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), done.stdout + done.stderr
    score = subprocess.run(
        [ANALYZE, "security", "--offline=yes", "--threshold=20", units[0]], capture_output=True, text=True, timeout=120
    )
    assert score.returncode == 0, score.stdout[-1500:]
    [spec] = [
        line.split("=", 1)[1]
        for line in (SYSTEMD / "numerek-report-mail.timer").read_text().splitlines()
        if line.startswith("OnCalendar=")
    ]
    cal = subprocess.run(
        [ANALYZE, "calendar", "--iterations=8", "--base-time=2026-12-07 12:00 UTC", spec],
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapses = [
        line.split(":", 1)[1].strip() for line in cal.stdout.splitlines() if "Iter." in line or "Next elapse" in line
    ]
    assert elapses[:3] == ["Fri 2027-01-01 06:00:00 UTC", "Mon 2027-01-04 06:00:00 UTC", "Mon 2027-02-01 06:00:00 UTC"]
