""" "Your document is ready for pick-up": the clerk's form and the managers' CSV list, on the
real server process with aiosmtpd as the mail relay and gammu-smsd (dummy phone) for SMS."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.harness import Broker, ServerProcess, wait_for
from tests.notify_support import GammuDaemon, read_smsbackup
from tests.test_notify_server import Relay, notify_toml, office, rows

PICKUP = """
sms_part_price = 0.16

[notify.pickup.pj]
where = { pl = "w Wydziale Komunikacji", en = "at the Transport Department", uk = "у відділі транспорту" }
counter = { pl = "stanowisko 7", en = "desk 7", uk = "віконце 7" }
"""
MANAGER = ("kierownik", "kierownik-haslo-2026")


@pytest.fixture
def relay():
    from tests.harness import free_port

    r = Relay(free_port()).start()
    yield r
    r.stop()


@pytest.fixture
def smsd(tmp_path):
    daemon = GammuDaemon(tmp_path / "gammu").start()
    yield daemon
    daemon.stop()


def pickup_office(tmp_path: Path, broker: Broker, relay: Relay, smsd: GammuDaemon) -> ServerProcess:
    notify_toml(tmp_path, smtp_port=relay.port, smsd=smsd)
    server = office(tmp_path, broker, retention=24)
    server.config.write_text(server.config.read_text(encoding="utf-8") + PICKUP, encoding="utf-8")
    from server.auth import Users

    server.start()
    users = Users(server._database())
    users.add(MANAGER[0], "manager", MANAGER[1])
    users.close()
    return server


def manager(server: ServerProcess) -> httpx.Client:
    client = httpx.Client(base_url=server.url, timeout=10)
    answer = client.post("/login", data={"name": MANAGER[0], "password": MANAGER[1]}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return client


def test_a_clerk_marks_a_case_ready_and_the_resident_gets_the_place_and_hours(tmp_path, broker, relay, smsd):
    server = pickup_office(tmp_path, broker, relay, smsd)
    try:
        form = {
            "reference": "KM.5430.1.2026",
            "contact": "jan.kowalski@example.pl",
            "document": "prawo_jazdy",
            "service": "pj",
            "lang": "pl",
        }
        bad = server.post("/clerk/pickup", data={**form, "contact": "600 100"})
        assert bad.status_code == 422 and "Nic nie wysłano" in bad.text and "kontakt:" in bad.text
        assert rows(server.database, "SELECT COUNT(*) FROM notices") == [(0,)]

        sent = server.post("/clerk/pickup", data=form)
        assert sent.status_code == 200 and "Wysłano powiadomienie o sprawie KM.5430.1.2026" in sent.text
        wait_for(lambda: len(relay.mailbox.envelopes) == 1, 30, "the pick-up e-mail")
        mail = relay.messages()[0]
        assert mail["Subject"] == "Dokument do odbioru"
        assert mail.get_body(("plain",)).get_content().strip() == (
            "Urząd Testowy: Prawo jazdy do odbioru w Wydziale Komunikacji, stanowisko 7, pn–nd 00:00–24:00. "
            "Sygn. KM.5430.1.2026."
        )
        again = server.post("/clerk/pickup", data=form)  # a double click: the resident is told once
        assert "była już zgłoszona" in again.text
        assert rows(server.database, "SELECT user, source, reference, service, document FROM notify_pickups") == [
            ("test-clerk", "panel", "KM.5430.1.2026", "pj", "prawo_jazdy")
        ]
        anonymous = server.anonymous_post("/clerk/pickup", data=form, follow_redirects=False)
        assert anonymous.status_code in (303, 401)
    finally:
        server.stop()
    assert len(relay.mailbox.envelopes) == 1


GOOD_CSV = (
    "sygnatura;kontakt;dokument;usluga;jezyk\n"
    "KM.1/2026;600 100 200;Prawo jazdy;pj;pl\n"
    "KM.2/2026;anna@example.pl;dowod_rejestracyjny;Prawo jazdy;en\n"
)


def test_a_list_with_bad_rows_names_each_and_sends_only_the_good_ones_when_the_manager_says_so(
    tmp_path, broker, relay, smsd
):
    server = pickup_office(tmp_path, broker, relay, smsd)
    try:
        client = manager(server)
        bad = GOOD_CSV + "KM.3/2026;42 636 00 00;Prawo jazdy;pj;pl\n;anna@example.pl;paszport;rej;de\n"
        answer = client.post("/reports/pickups", files={"file": ("odbiory.csv", bad.encode("cp1250"), "text/csv")})
        assert answer.status_code == 422
        assert "nic nie zaimportowano" in answer.text
        assert "<td>4</td><td>kontakt: nie można wysłać SMS na ten numer: to nie jest numer komórkowy" in answer.text
        line5 = answer.text.split("<td>5</td>")[1].split("</tr>")[0]
        for problem in ("sygnatura:", "dokument: nieznany rodzaj", "usługa:", "język:"):
            assert problem in line5
        assert "<td>2</td>" not in answer.text and "<td>3</td>" not in answer.text
        assert rows(server.database, "SELECT COUNT(*) FROM notices") == [(0,)]

        # The manager chooses to send the two good rows now; the bad ones stay out.
        assert "Wyślij tylko poprawne wiersze (2)" in answer.text
        key = answer.text.split('name="key" value="')[1].split('"')[0]
        done = client.post("/reports/pickups/send", data={"key": key})
        assert done.status_code == 200 and "nowe powiadomienia: 2, wierszy: 2" in done.text
        assert sorted(r for (r,) in rows(server.database, "SELECT reference FROM notify_pickups")) == [
            "KM.1/2026",
            "KM.2/2026",
        ]
    finally:
        server.stop()


def test_a_good_list_shows_its_cost_first_and_is_sent_once_confirmed(tmp_path, broker, relay, smsd):
    server = pickup_office(tmp_path, broker, relay, smsd)
    try:
        client = manager(server)
        clerk_cannot = server.post("/reports/pickups", files={"file": ("x.csv", GOOD_CSV.encode(), "text/csv")})
        assert clerk_cannot.status_code in (303, 403)
        checked = client.post("/reports/pickups", files={"file": ("odbiory.csv", GOOD_CSV.encode(), "text/csv")})
        assert checked.status_code == 200, checked.text
        assert "2 wierszy poprawnych" in checked.text
        assert "SMS 1 (części: 2, koszt ok. 0.32 zł), e-mail 1" in checked.text
        assert rows(server.database, "SELECT COUNT(*) FROM notices") == [(0,)]  # nothing before the confirmation

        key = checked.text.split('name="key" value="')[1].split('"')[0]
        done = client.post("/reports/pickups/send", data={"key": key})
        assert done.status_code == 200 and "nowe powiadomienia: 2, wierszy: 2" in done.text
        replay = client.post("/reports/pickups/send", data={"key": key})
        assert replay.status_code == 409

        wait_for(lambda: len(relay.mailbox.envelopes) == 1, 30, "the English pick-up e-mail")
        wait_for(lambda: len(smsd.sent()) == 1, 60, "the pick-up SMS transmitted by gammu-smsd")
        assert relay.messages()[0]["Subject"] == "Document ready for pick-up"
        sms = read_smsbackup(smsd.sent()[0])
        assert sms.number == "+48600100200"
        assert sms.text.startswith("Urząd Testowy: Prawo jazdy do odbioru w Wydziale Komunikacji, stanowisko 7")
        assert sms.parts == 2
        assert "600 100 200" not in server.log() and "anna@example.pl" not in server.log()
    finally:
        server.stop()
