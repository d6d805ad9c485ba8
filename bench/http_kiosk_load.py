"""One HTTP kiosk load process for bench/peer_bench.py: closed loop, N "take a ticket" requests in flight.

    python bench/http_kiosk_load.py --peer fqm --port P --task 1 --inflight 16 --seconds 5 --out result.json

The HTTP twin of bench/kiosk_load.py, for the peer queue systems the side-by-side comparison runs
(docs/performance.md, issue 14). Each of the ``inflight`` connections is one kiosk: HTTP/1.1 with
keep-alive, one request at a time, the next sent as soon as the answer is in. The request is the
peer's own "take a ticket" request, the one its touch screen sends; its answer is checked (status,
where it sends the browser, the ticket number if the answer carries one) so an error page is never
counted as a ticket. Run as separate processes (asyncio, raw HTTP/1.1 on a socket, no HTTP library
in the loop) so the client is not the bottleneck; its CPU time is reported with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote_plus


class NotATicket(Exception):
    """An answer that did not issue a ticket: an error page, a redirect to the wrong place, a repeat."""


@dataclass
class Issued:
    """The ticket numbers answered so far; a repeat is an error, not a ticket (a remembered or lost reply)."""

    numbers: list[str] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set)

    def add(self, number: str) -> None:
        if number in self._seen:
            raise NotATicket(f"ticket {number} answered twice")
        self._seen.add(number)
        self.numbers.append(number)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


class Fqm:
    """FQM (Free Queue Manager, github.com/mrf345/FQM), its touch screen in "registered ticket" mode.

    The touch screen's button opens ``/serial/<task>`` (a form: name or number, CSRF token); the
    kiosk user's submit POSTs it back and FQM stores the ticket and redirects the browser to
    ``/touch/1`` ("ticket issued"). Any failure redirects to ``/`` or shows the form again (200).
    The answer carries no ticket number, so peer_bench.py counts FQM's new tickets in its database
    after the cell (every one distinct, as many as the answers counted here).
    """

    def __init__(self, host: str, task: int, kiosk: str) -> None:
        self.host = host
        self.task = task
        self.kiosk = kiosk
        self.cookie = ""
        self.csrf = ""
        self.sent = 0

    def first(self) -> bytes:
        """The form page, once per connection (as the kiosk's browser loads it): session cookie and CSRF token."""
        return f"GET /serial/{self.task} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode()

    def took_form(self, answer: Answer) -> None:
        found = re.search(rb'name="csrf_token" type="hidden" value="([^"]+)"', answer.body)
        if answer.status != 200 or not found:
            raise NotATicket(f"no ticket form: HTTP {answer.status} {answer.body[:120]!r}")
        self.csrf = found.group(1).decode()
        self.remember(answer)

    def remember(self, answer: Answer) -> None:
        cookie = answer.headers.get("set-cookie", "")
        if cookie.startswith("session="):
            self.cookie = cookie.split(";", 1)[0]

    def request(self) -> bytes:
        self.sent += 1
        body = f"csrf_token={quote_plus(self.csrf)}&name=kiosk+{self.kiosk}+{self.sent}&submit=Register".encode()
        head = (
            f"POST /serial/{self.task} HTTP/1.1\r\nHost: {self.host}\r\nCookie: {self.cookie}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    def ticket(self, answer: Answer) -> str:
        """'' for a ticket issued (FQM's answer has no number), NotATicket otherwise."""
        location = answer.headers.get("location", "")
        if answer.status != 302 or not location.split("?")[0].endswith("/touch/1"):
            raise NotATicket(f"HTTP {answer.status} to {location or '-'}: {answer.body[:120]!r}")
        self.remember(answer)
        return ""


PEERS = {"fqm": Fqm}


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> Answer:
    """One HTTP/1.1 request and its answer on a kept-alive connection."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            parts.append(await reader.readexactly(size + 2))
        await reader.readuntil(b"\r\n")
        body = b"".join(p[:-2] for p in parts)
    else:
        body = await reader.read()
    return Answer(status, headers, body)


@dataclass
class Tally:
    """What the kiosks of one process saw; ``go`` starts them together once every one has its form."""

    inflight: int
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    ok: int = 0
    answers: int = 0
    ready: int = 0
    reconnects: int = 0
    go: asyncio.Event = field(default_factory=asyncio.Event)
    deadline: float = float("inf")


async def kiosk(args, number: int, tally: Tally, issued: Issued) -> None:
    peer = PEERS[args.peer](f"127.0.0.1:{args.port}", args.task, f"{args.kiosk}-{number}")
    reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    peer.took_form(await exchange(reader, writer, peer.first()))
    tally.ready += 1
    if tally.ready == tally.inflight:
        tally.go.set()
    await tally.go.wait()
    while time.perf_counter() < tally.deadline and (not args.count or tally.answers < args.count):
        t0 = time.perf_counter()
        answer = await exchange(reader, writer, peer.request())
        tally.latencies.append(time.perf_counter() - t0)
        tally.answers += 1
        try:
            number_ = peer.ticket(answer)
            if number_:
                issued.add(number_)
            tally.ok += 1
        except NotATicket as e:
            tally.errors.append(str(e)[:200])
        if answer.headers.get("connection", "").lower() == "close":
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
            tally.reconnects += 1
    writer.close()


async def run(args) -> dict:
    tally = Tally(args.inflight)
    issued = Issued()
    tasks = [asyncio.create_task(kiosk(args, i, tally, issued)) for i in range(args.inflight)]
    await tally.go.wait()
    if args.ready:  # every process has its forms: the orchestrator reads the server's CPU, then says go
        Path(args.ready).touch()
        while not Path(args.go).exists():
            await asyncio.sleep(0.005)
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    tally.deadline = started + (args.seconds if not args.count else 3600)
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    return {
        "latencies": tally.latencies,
        "elapsed": elapsed,
        "ok": tally.ok,
        "refused": len(tally.errors),
        "errors": tally.errors[:20],
        "cpu_s": cpu,
        "numbers": issued.numbers,
        "reconnects": tally.reconnects,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", choices=sorted(PEERS), required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--task", type=int, default=1, help="the peer's task/service id the kiosk's button takes")
    ap.add_argument("--kiosk", default=uuid.uuid4().hex[:6])
    ap.add_argument("--inflight", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--count", type=int, default=0, help="stop after this many answers instead of a duration")
    ap.add_argument("--ready", help="a file to create once every kiosk has its form (then wait for --go)")
    ap.add_argument("--go", help="the file whose creation starts the timed load")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    result = asyncio.run(run(args))
    with open(args.out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
