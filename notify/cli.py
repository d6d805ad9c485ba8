"""``numerek-notify --config notify.toml --check [--send-test +48600100200|name@example.pl]``

For the IT person setting up an office: validates the config (every mistake on its own
line, naming the field), checks each gateway as far as it can without sending (Gammu's
folders and running daemon, the SMTP login), and with ``--send-test`` sends the test
message through the gateway that serves that kind of address and reports what became of
it. Exit status: 0 all good, 1 a check failed, 2 the config is invalid.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

from pydantic import ValidationError

from notify import phone
from notify.config import GammuConfig, HttpSmsConfig, NotifyConfig, SmtpConfig, load
from notify.gateways import Gateway, open_gateway
from notify.message import Channel, Delivery, Message, NoticeKind, Outcome
from notify.sms_text import prepare
from notify.templates import LANGUAGES, render


def _check_gammu(gateway: Gateway, config: GammuConfig) -> list[str]:
    from notify.gateways.gammu import GammuGateway

    assert isinstance(gateway, GammuGateway)
    problems = []
    p = gateway.paths
    if not os.access(p.outbox, os.W_OK):
        problems.append(f"cannot write to the outbox {p.outbox}")
    for folder in (p.sent, p.error):
        if not os.access(folder, os.R_OK):
            problems.append(f"cannot read {folder}")
    if shutil.which(config.inject) is None:
        problems.append(f"{config.inject} is not installed (apt install gammu-smsd)")
    print(f"  outbox {p.outbox}, sent {p.sent}, error {p.error}; staging {gateway.staging}")
    monitor = subprocess.run(
        ["gammu-smsd-monitor", "-c", str(config.smsdrc), "-n", "1", "-d", "0"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if monitor.returncode == 0 and "Client:" in monitor.stdout:
        fields = dict(
            line.split(":", 1) for line in monitor.stdout.splitlines() if ":" in line and not line.startswith(" ")
        )
        print(
            f"  gammu-smsd is running: {fields.get('PhoneID', '').strip() or fields.get('Client', '').strip()},"
            f" signal {fields.get('NetworkSignal', '?').strip()}, sent {fields.get('Sent', '?').strip()},"
            f" failed {fields.get('Failed', '?').strip()}"
        )
    else:
        problems.append(
            "gammu-smsd is not running (gammu-smsd-monitor cannot reach it): messages would wait in the outbox"
        )
    return problems


def _check_smtp(gateway: Gateway, config: SmtpConfig) -> list[str]:
    from notify.gateways.smtp import SmtpGateway

    assert isinstance(gateway, SmtpGateway)
    try:
        smtp = gateway.connect()
    except Exception as exc:  # noqa: BLE001 - every failure is a finding to print
        return [f"cannot open a session with {config.host}:{config.port}: {type(exc).__name__}: {exc}"]
    smtp.noop()
    smtp.quit()
    login = f", logged in as {config.username}" if config.username else ""
    print(f"  {config.host}:{config.port} answers ({config.security}{login})")
    return []


def check(config: NotifyConfig) -> tuple[dict[str, Gateway], list[str]]:
    gateways: dict[str, Gateway] = {}
    problems: list[str] = []
    for name, section in config.gateways.items():
        print(f"{name} ({section.type}):")
        try:
            gateway = open_gateway(section)
        except Exception as exc:  # noqa: BLE001 - a broken section is reported, the others still checked
            problems.append(f"{name}: {exc}")
            print(f"  PROBLEM: {exc}")
            continue
        gateways[name] = gateway
        found: list[str] = []
        if isinstance(section, GammuConfig):
            found = _check_gammu(gateway, section)
        elif isinstance(section, SmtpConfig):
            found = _check_smtp(gateway, section)
        elif isinstance(section, HttpSmsConfig):
            print(f"  {section.url} as {section.sender!r}; no request made (--send-test sends one)")
        for problem in found:
            print(f"  PROBLEM: {problem}")
        problems += [f"{name}: {p}" for p in found]
    return gateways, problems


def send_test(config: NotifyConfig, gateways: dict[str, Gateway], target: str, lang: str, wait: float) -> bool:
    s = config.notify
    rendered = render(NoticeKind.TEST, lang, {"office": s.office}, s.zone)
    key = f"test-{uuid.uuid4().hex[:12]}"
    if "@" in target:
        name = config.email
        if name is None or name not in gateways:
            print("no working e-mail gateway: set email = NAME in the config")
            return False
        message = Message(Channel.EMAIL, target, rendered.text, rendered.subject, rendered.html(), key=key)
        shown = target
    else:
        name = config.sms
        if name is None or name not in gateways:
            print("no working SMS gateway: set sms = NAME in the config")
            return False
        try:
            number = phone.normalise(target, s.default_region)
        except phone.InvalidPhoneNumber as exc:
            print(f"{target!r}: {exc}")
            return False
        text, cost = prepare(rendered.text, s.transliterate)
        print(f"test SMS: {text!r}: {cost.describe()}")
        message = Message(Channel.SMS, number, text, key=key)
        shown = phone.redact(number)
    gateway = gateways[name]
    result = gateway.send(message)
    print(
        f"sent to {shown} through {name}: {result.outcome.value}"
        + (f" ({result.gateway_id})" if result.gateway_id else "")
    )
    if result.reason:
        print(f"  {result.reason}")
    if result.outcome is not Outcome.ACCEPTED or result.gateway_id is None:
        return False
    deadline = time.monotonic() + wait
    status = gateway.status(result.gateway_id)
    while status is Delivery.QUEUED and time.monotonic() < deadline:
        time.sleep(0.5)
        status = gateway.status(result.gateway_id)
    if status is not None:
        print(f"delivery: {status.value}")
    return status is not Delivery.FAILED


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="numerek-notify", description="Check the notification gateways.")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--check", action="store_true", help="validate the config and check every gateway")
    parser.add_argument("--send-test", metavar="NUMBER_OR_ADDRESS", help="send the test message there")
    parser.add_argument("--lang", choices=LANGUAGES, default="pl")
    parser.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the gateway to pass it on")
    args = parser.parse_args(argv)
    if not args.check and not args.send_test:
        parser.error("nothing to do: give --check and/or --send-test")
    try:
        config = load(args.config)
    except OSError as exc:
        print(f"{args.config}: {exc.strerror}", file=sys.stderr)
        return 2
    except ValueError as exc:  # TOML syntax (tomllib.TOMLDecodeError) or pydantic's ValidationError
        print(f"{args.config} is not valid:", file=sys.stderr)
        if isinstance(exc, ValidationError):
            for error in exc.errors():
                where = ".".join(str(p) for p in error["loc"])
                print(f"  {where}: {error['msg']}", file=sys.stderr)
        else:
            print(f"  {exc}", file=sys.stderr)
        return 2
    channels = ", ".join(f"{c} → {getattr(config, c)}" for c in ("sms", "email") if getattr(config, c))
    print(f"{args.config}: valid (office {config.notify.office!r}; {channels or 'no channel configured'})")
    gateways, problems = check(config)
    ok = not problems
    if args.send_test:
        ok = send_test(config, gateways, args.send_test, args.lang, args.wait) and ok
    for gateway in gateways.values():
        gateway.close()
    print("all checks passed" if ok else f"{len(problems) or 1} problem(s) found")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
