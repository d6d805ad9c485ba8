"""The side-by-side benchmark's own logic (bench/peer_bench.py, bench/http_kiosk_load.py): what counts as a ticket.

Cheap checks only, no servers: the benchmark itself runs the peers and Numerek's real server.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _module(name: str):
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


load = _module("http_kiosk_load")
peer_bench = _module("peer_bench")


def test_an_answer_repeating_a_ticket_number_is_not_counted_as_a_ticket():
    issued = load.Issued()
    issued.add("A001")
    issued.add("A002")
    with pytest.raises(load.NotATicket, match="A001 answered twice"):
        issued.add("A001")
    assert issued.numbers == ["A001", "A002"]


def test_an_fqm_answer_counts_as_a_ticket_only_when_it_sends_the_kiosk_to_ticket_issued():
    fqm = load.Fqm("127.0.0.1:1", 1, "k0")
    assert fqm.ticket(load.Answer(302, {"location": "/touch/1"}, b"")) == ""
    with pytest.raises(load.NotATicket):  # FQM's failure: back to its start page with a flashed error
        fqm.ticket(load.Answer(302, {"location": "/"}, b""))
    with pytest.raises(load.NotATicket):  # the form again: the name or the CSRF token refused
        fqm.ticket(load.Answer(200, {}, b"<form>"))
    with pytest.raises(load.NotATicket):
        fqm.ticket(load.Answer(500, {}, b"Internal Server Error"))


def test_a_peer_whose_database_lacks_a_ticket_per_answer_or_repeats_one_stops_the_benchmark():
    peer_bench.check_new_tickets("FQM", 3, [101, 102, 103])
    with pytest.raises(RuntimeError, match="3 answers counted as tickets, 2 tickets"):
        peer_bench.check_new_tickets("FQM", 3, [101, 102])
    with pytest.raises(RuntimeError, match="1 ticket numbers issued twice"):
        peer_bench.check_new_tickets("FQM", 3, [101, 102, 102])


def test_the_http_client_reads_sized_and_chunked_answers_on_one_kept_alive_connection():
    async def scenario():
        reader = asyncio.StreamReader()
        reader.feed_data(b"HTTP/1.1 302 FOUND\r\nLocation: /touch/1\r\nContent-Length: 5\r\n\r\nhello")
        reader.feed_data(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")

        class Writer:
            def write(self, _data: bytes) -> None:
                pass

        first = await load.exchange(reader, Writer(), b"")
        second = await load.exchange(reader, Writer(), b"")
        return first, second

    first, second = asyncio.run(scenario())
    assert (first.status, first.headers["location"], first.body) == (302, "/touch/1", b"hello")
    assert (second.status, second.body) == (200, b"abcde")
