"""Gammu's SMS daemon (``gammu-smsd``, files backend): a USB GSM modem on the Pi.

How a message goes out: ``gammu-smsd-inject`` composes it (it splits long texts into
concatenated parts and encodes UCS-2 when asked) into a private staging folder; the file is
then renamed into the daemon's outbox under a name of ours — atomic, so the daemon never
reads half a file. The daemon transmits it and moves it to its sent folder (or its error
folder), keeping the name; :meth:`GammuGateway.status` looks for the name there.

Why the name carries the notice's key: ``OUT<priority><date>_<time>_00_numerek_<key>.smsbackup``
(the number travels inside the file; the name, which ends up in our database and logs, has none).
At start the gateway reads the keys of every file in the outbox, sent and error folders; a
send with a key already there answers with that file instead of making a second SMS. So a
crash between handing a message over and recording it cannot send it twice: the gateway is
idempotent (as long as the sent folder is kept longer than a notice can be retried).
A call ("you are called") gets priority A, everything else C: the daemon sends in name order.
"""

from __future__ import annotations

import configparser
import hashlib
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from notify.config import GammuConfig
from notify.message import Channel, Delivery, Message, SendResult
from notify.sms_text import Encoding, analyse

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
KEY = re.compile(r"^[A-Za-z0-9-]{1,32}$")
WRITTEN = re.compile(r"Written message with ID (\S+)")
NAME = re.compile(r"^OUT[A-Z]\d{8}_\d{6}_\d{2}_numerek_(?P<key>[A-Za-z0-9-]+)\.smsbackup$")


class GammuSetupError(RuntimeError):
    pass


INBOX_NAME = re.compile(r"^IN(?P<stamp>\d{8}_\d{6}_\d{2})_(?P<number>[^_/]{1,40})_(?P<part>\d{2})\.txt$")
"""gammu-smsd's files backend names a received text ``IN<date>_<time>_<serial>_<number>_<part>.txt``."""


@dataclass(frozen=True)
class SpoolPaths:
    outbox: Path
    sent: Path
    error: Path
    inbox: Path | None = None


@dataclass(frozen=True)
class Incoming:
    """One received text (its parts joined), as the daemon saved it in its inbox folder."""

    sender: str
    text: str
    files: tuple[Path, ...] = ()

    def forget(self) -> None:
        """Delete the daemon's files of this text: call it once its effect is committed."""
        for path in self.files:
            path.unlink(missing_ok=True)


def read_spool_paths(smsdrc: Path) -> SpoolPaths:
    """The daemon's folders from its config, with the checks that make status possible."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        with smsdrc.open(encoding="utf-8") as f:
            parser.read_file(f)
    except OSError as exc:
        raise GammuSetupError(f"cannot read {smsdrc}: {exc.strerror}") from exc
    except configparser.Error as exc:
        raise GammuSetupError(f"{smsdrc} is not a gammu config: {exc}") from exc
    if not parser.has_section("smsd"):
        raise GammuSetupError(f"{smsdrc} has no [smsd] section")
    smsd = parser["smsd"]
    if smsd.get("service", "").strip().lower() != "files":
        raise GammuSetupError(f"{smsdrc}: [smsd] service must be 'files' (the outbox is a folder)")
    paths = {}
    for key in ("outboxpath", "sentsmspath", "errorsmspath"):
        value = smsd.get(key, "").strip()
        if not value:
            raise GammuSetupError(f"{smsdrc}: [smsd] {key} is not set")
        path = Path(value)
        if not path.is_absolute():
            raise GammuSetupError(f"{smsdrc}: [smsd] {key} must be an absolute path")
        paths[key] = path
    if len({paths["outboxpath"], paths["sentsmspath"], paths["errorsmspath"]}) != 3:
        raise GammuSetupError(f"{smsdrc}: outbox, sent and error folders must differ (else sent messages are deleted)")
    inbox = smsd.get("inboxpath", "").strip()
    return SpoolPaths(paths["outboxpath"], paths["sentsmspath"], paths["errorsmspath"], Path(inbox) if inbox else None)


def _decode(data: bytes) -> str:
    """The inbox file's text: ``inboxformat = unicode`` writes UTF-16 with a BOM, ``standard`` UTF-8."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", "replace")
    return data.decode("utf-8", "replace")


def file_key(key: str | None) -> str:
    """A key fit for a file name: kept if it is short and plain, else a hash of it."""
    if key is None:
        return os.urandom(8).hex()
    if KEY.match(key):
        return key
    return hashlib.sha256(key.encode()).hexdigest()[:32]


class GammuGateway:
    channel = Channel.SMS
    idempotent = True

    def __init__(self, config: GammuConfig) -> None:
        self.config = config
        self.paths = read_spool_paths(config.smsdrc)
        self.staging = config.staging or self.paths.outbox.parent / "numerek-staging"
        self.staging.mkdir(mode=0o750, parents=True, exist_ok=True)
        self.inject_rc = self.staging / "inject.smsdrc"
        # gammu-smsd-inject wants a [gammu] section even though it never opens the phone.
        self.inject_rc.write_text(
            f"[gammu]\nconnection = none\nmodel = dummy\ndevice = {self.staging}\n\n"
            f"[smsd]\nservice = files\noutboxpath = {self.staging}/\noutboxformat = detail\n",
            encoding="utf-8",
        )
        for leftover in self.staging.glob("OUT*"):
            leftover.unlink()  # composed but never handed over (a crash before the rename)
        self._lock = threading.Lock()
        self._handed: dict[str, str] = {}
        for folder in (self.paths.outbox, self.paths.sent, self.paths.error):
            for name in os.listdir(folder):
                m = NAME.match(name)
                if m:
                    self._handed[m["key"]] = name

    def send(self, message: Message) -> SendResult:
        if message.channel is not Channel.SMS:
            return SendResult.failed("the Gammu gateway sends SMS only")
        if not E164.match(message.recipient):
            return SendResult.failed("the recipient is not a phone number in E.164 form")
        if not message.text:
            return SendResult.failed("empty message")
        key = file_key(message.key)
        with self._lock:
            if key in self._handed:
                return SendResult.accepted(self._handed[key], reason="already handed to gammu-smsd")
            return self._inject(message, key)

    def _inject(self, message: Message, key: str) -> SendResult:
        units = len(message.text.encode("utf-16-le")) // 2
        args = [self.config.inject, "-c", str(self.inject_rc), "TEXT", message.recipient, "-len", str(units)]
        if analyse(message.text).encoding is Encoding.UCS2:
            args.append("-unicode")
        args += ["-text", message.text]
        try:
            proc = subprocess.run(
                args, capture_output=True, text=True, timeout=self.config.inject_timeout_s, stdin=subprocess.DEVNULL
            )
        except OSError as exc:  # not installed, not executable: nothing reached the outbox
            return SendResult.retry(f"cannot run {self.config.inject}: {exc.strerror}")
        except subprocess.TimeoutExpired:
            return SendResult.retry("gammu-smsd-inject did not finish")  # nothing reached the outbox
        found = WRITTEN.search(proc.stdout + proc.stderr)
        if proc.returncode != 0 or not found:
            detail = (proc.stderr.strip().splitlines() or ["no output"])[-1].replace(message.recipient, "…")
            return SendResult.retry(f"gammu-smsd-inject failed ({proc.returncode}): {detail}")
        staged = Path(found[1])
        stamp = time.strftime("%Y%m%d_%H%M%S", time.localtime())
        name = f"OUT{'A' if message.urgent else 'C'}{stamp}_00_numerek_{key}.smsbackup"
        try:
            os.rename(staged, self.paths.outbox / name)
        except OSError as exc:
            staged.unlink(missing_ok=True)
            return SendResult.retry(f"cannot move the message into the outbox: {exc.strerror}")
        self._handed[key] = name
        return SendResult.accepted(name)

    def status(self, gateway_id: str) -> Delivery | None:
        if "/" in gateway_id or not gateway_id.startswith("OUT"):
            return Delivery.UNKNOWN
        # Outbox first: the daemon renames outbox -> sent, so this order never misses a moving file.
        for folder, state in (
            (self.paths.outbox, Delivery.QUEUED),
            (self.paths.sent, Delivery.SENT),
            (self.paths.error, Delivery.FAILED),
        ):
            if (folder / gateway_id).exists():
                return state
        return Delivery.UNKNOWN

    def purge(self, before: datetime) -> int:
        """Delete sent and failed messages older than ``before`` (they hold phone numbers)."""
        cutoff = before.timestamp()
        removed = 0
        with self._lock:
            for folder in (self.paths.sent, self.paths.error):
                for entry in os.scandir(folder):
                    if entry.name.startswith("OUT") and entry.stat().st_mtime < cutoff:
                        os.unlink(entry.path)
                        m = NAME.match(entry.name)
                        if m:
                            self._handed.pop(m["key"], None)
                        removed += 1
        return removed

    def take_inbox(self) -> list[Incoming]:
        """Received texts from the daemon's inbox folder; :meth:`Incoming.forget` deletes each
        once the caller has committed what it did with it (a crash in between reads it again:
        an opt-out is harmless to record twice).

        Why deleted: the file's name and text hold the sender's number; what the office keeps
        of a reply is its effect (an opt-out's keyed hash, notify/optout.py), not the number.
        Replies that are not an opt-out word are dropped too (the office reads no SMS here;
        say so in the messages if it should). Parts of one long text are joined."""
        if self.paths.inbox is None or not self.paths.inbox.is_dir():
            return []
        groups: dict[tuple[str, str], list[tuple[str, Path]]] = {}
        try:
            entries = list(os.scandir(self.paths.inbox))
        except OSError:  # not readable by the server's user: replies wait there, sending goes on
            return []
        for entry in entries:
            m = INBOX_NAME.match(entry.name)
            if m:
                groups.setdefault((m["stamp"], m["number"]), []).append((m["part"], Path(entry.path)))
        found: list[Incoming] = []
        for (_stamp, number), parts in sorted(groups.items()):
            parts.sort()
            try:
                text = "".join(_decode(path.read_bytes()) for _, path in parts)
            except OSError:
                continue  # the daemon is still writing it, or it went: next round
            found.append(Incoming(number, text, tuple(path for _, path in parts)))
        return found

    def close(self) -> None:
        pass
