"""Real parts for the notification tests: gammu-smsd with its dummy phone, a provider's HTTP
API, an SMTP server (aiosmtpd). Each is the real program or a real server on loopback; the
provider is ours only because no Polish provider runs on this machine, and it checks every
request the way a provider would.
"""

from __future__ import annotations

import asyncio
import configparser
import json
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.harness import wait_for

GAMMU_SMSD = shutil.which("gammu-smsd") or "/usr/bin/gammu-smsd"


class GammuDaemon:
    """gammu-smsd with Gammu's dummy phone driver and the files backend, in ``root``."""

    def __init__(self, root: Path, receive_every_s: int = 3600) -> None:
        self.root = root
        for sub in ("phone", "inbox", "outbox", "sent", "error", "staging"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self.rc = root / "smsdrc"
        self.log = root / "smsd.log"
        self.rc.write_text(
            f"[gammu]\ndevice = {root}/phone/\nmodel = dummy\nconnection = none\n\n"
            f"[smsd]\nservice = files\ninboxpath = {root}/inbox/\noutboxpath = {root}/outbox/\n"
            f"sentsmspath = {root}/sent/\nerrorsmspath = {root}/error/\nlogfile = {self.log}\n"
            f"debuglevel = 1\ncommtimeout = 1\nsendtimeout = 5\nloopsleep = 1\nreceivefrequency = {receive_every_s}\n"
            "checksecurity = 0\n",
            encoding="utf-8",
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> GammuDaemon:
        self.proc = subprocess.Popen(
            [GAMMU_SMSD, "-c", str(self.rc)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for(lambda: "Starting phone communication" in self.log_text(), 30, "gammu-smsd to start")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:  # gammu-smsd 1.42 can hang on a malformed outbox file
                self.proc.kill()
                self.proc.wait(15)
        self.proc = None

    def receive(self, number: str, text: str) -> Path:
        """A text arrives at the modem: Gammu's dummy phone keeps received SMS as SMS backup files
        in ``<device>/sms/1/<location>`` (its inbox folder, libgammu/phone/dummy/dummy.c); the
        daemon reads them every ``receivefrequency`` seconds, saves them to its inbox folder as
        ``IN<date>_<time>_<serial>_<number>_<part>.txt`` and deletes them from the phone."""
        folder = self.root / "phone" / "sms" / "1"
        folder.mkdir(parents=True, exist_ok=True)
        location = 1
        while (folder / str(location)).exists():
            location += 1
        stamp = time.strftime("%Y%m%dT%H%M%S")
        hexed = text.encode("utf-16-be").hex().upper()
        tmp = folder / f".incoming-{location}"
        tmp.write_text(
            f'[SMSBackup000]\nSMSC = "+48601000310"\nState = UnRead\nNumber = "{number}"\nCoding = Default\n'
            f"Folder = 1\nSent = {stamp}\nPDU = Deliver\nDateTime = {stamp}\nText00 = {hexed}\n",
            encoding="utf-8",
        )
        tmp.rename(folder / str(location))  # the dummy phone reads numbered files only: never half a file
        return folder / str(location)

    def phone_inbox(self) -> list[Path]:
        folder = self.root / "phone" / "sms" / "1"
        return sorted(p for p in folder.iterdir() if not p.name.startswith(".")) if folder.exists() else []

    def inbox(self) -> list[Path]:
        return sorted((self.root / "inbox").iterdir())

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def transmitted(self) -> list[str]:
        """The log's 'Transmitted <file> (…) to <number>' lines, one per message part, in order."""
        return [line for line in self.log_text().splitlines() if " Transmitted " in line]

    def sent(self) -> list[Path]:
        return sorted((self.root / "sent").iterdir())

    def outbox(self) -> list[Path]:
        return sorted((self.root / "outbox").iterdir())


@dataclass
class SentSms:
    number: str
    text: str
    parts: int
    unicode: bool


def read_smsbackup(path: Path) -> SentSms:
    """Decode a Gammu SMS backup file (gammu-smsbackup(5)): the parts' hex UCS-2 text, joined."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    # The comment lines repeat the text and Gammu may cut them inside a UTF-8 character: only Text## counts.
    parser.read_string(path.read_bytes().decode("utf-8", "replace"))
    sections = [s for s in parser.sections() if s.startswith("SMSBackup")]
    text, number, unicode = "", "", False
    for name in sections:
        sec = parser[name]
        number = sec["Number"].strip('"')
        unicode = sec["Coding"].startswith("Unicode")
        hexed = "".join(sec[k] for k in sorted(k for k in sec if k.startswith("Text")))
        text += bytes.fromhex(hexed).decode("utf-16-be")
    return SentSms(number, text, len(sections), unicode)


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    fields: dict[str, str]


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # never answer (until the provider stops): the client's read timeout fires


class Provider:
    """An SMS provider's API on 127.0.0.1: checks the bearer token, keeps idempotency keys.

    ``replies`` is a queue of scripted answers; when it is empty a message is accepted with a
    new id (and a repeated ``idx`` gets the first message's id back, like a provider that
    honours idempotency keys). ``messages`` are the ones the provider would have sent.
    """

    def __init__(self, token: str = "t0ken-123") -> None:
        self.token = token
        self.requests: list[Request] = []
        self.replies: list[Reply] = []
        self.messages: list[dict[str, str]] = []
        self.by_key: dict[str, str] = {}
        self.statuses: dict[str, str] = {}
        self.release = threading.Event()
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, reply: Reply) -> None:
                if reply.hang:
                    provider.release.wait(60)
                    return
                data = b"" if reply.body is None else json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                provider.requests.append(Request("GET", self.path, dict(self.headers), b"", {}))
                msg_id = urlsplit(self.path).path.rsplit("/", 1)[-1]
                if self.headers.get("Authorization") != f"Bearer {provider.token}":
                    return self._answer(Reply(401, {"message": "bad token"}))
                if msg_id not in provider.statuses:
                    return self._answer(Reply(404, {"message": "no such message"}))
                self._answer(Reply(200, {"id": msg_id, "status": provider.statuses[msg_id]}))

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                kind = self.headers.get("Content-Type", "")
                if kind.startswith("application/json"):
                    fields = {k: str(v) for k, v in json.loads(body.decode("utf-8")).items()}
                else:
                    fields = dict(parse_qsl(body.decode("ascii"), keep_blank_values=True))
                provider.requests.append(Request("POST", self.path, dict(self.headers), body, fields))
                if provider.replies:
                    return self._answer(provider.replies.pop(0))
                if self.headers.get("Authorization") != f"Bearer {provider.token}":
                    return self._answer(Reply(401, {"message": "bad token"}))
                for required in ("to", "message", "from"):
                    if not fields.get(required):
                        return self._answer(Reply(400, {"message": f"missing {required}"}))
                key = fields.get("idx")
                if key and key in provider.by_key:
                    return self._answer(Reply(200, {"list": [{"id": provider.by_key[key], "status": "QUEUE"}]}))
                msg_id = f"m{len(provider.messages) + 1:05d}"
                provider.messages.append(fields)
                provider.statuses[msg_id] = "QUEUE"
                if key:
                    provider.by_key[key] = msg_id
                self._answer(Reply(200, {"count": 1, "list": [{"id": msg_id, "points": 0.16, "status": "QUEUE"}]}))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/sms.do"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    """An aiosmtpd handler that keeps what it receives and refuses what it is told to."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []
        self.refuse: dict[str, str] = {}  # recipient -> SMTP reply
        self.stall_data = False
        self.released = asyncio.Event()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.stall_data:
            await self.released.wait()
            return "451 gave up"
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"
