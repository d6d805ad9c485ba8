"""The after-visit survey on the real server process: one anonymous answer set per finished
ticket, the results for managers."""

from __future__ import annotations

import httpx

from tests.harness import Broker, ServerProcess, free_port, write_config
from tests.test_notify_server import issue, peer, press, rows  # noqa: F401 - peer is a fixture

ANSWERS = {"overall": "5", "wait": "3", "courtesy": "4", "settled": "1", "lang": "pl"}


def survey_office(tmp_path, broker: Broker) -> ServerProcess:
    http_port = free_port()
    cfg = write_config(tmp_path / "office.toml", broker.port, http_port)
    cfg.write_text(cfg.read_text(encoding="utf-8") + "\n[survey]\ndays = 7\n", encoding="utf-8")
    return ServerProcess(cfg, http_port=http_port).start()


def test_a_finished_visit_is_rated_once_anonymously_and_managers_see_the_means(tmp_path, broker, peer):  # noqa: F811
    server = survey_office(tmp_path, broker)
    try:
        mine = issue(peer, "rej", "r1")
        token = mine["token"]
        early = server.anonymous_get(f"/t/{token}/ankieta")
        assert "Ankieta będzie dostępna po zakończeniu wizyty" in early.text
        assert server.anonymous_post(f"/t/{token}/ankieta", data=ANSWERS).status_code == 409
        assert "Oceń wizytę" not in server.anonymous_get(f"/t/{token}").text

        press(peer, "1", "n1")  # called
        press(peer, "1", "n2")  # finished (nobody else waits)
        assert "Oceń wizytę" in server.anonymous_get(f"/t/{token}").text
        form = server.anonymous_get(f"/t/{token}/ankieta")
        assert "Czy udało się załatwić sprawę?" in form.text

        partial = server.anonymous_post(f"/t/{token}/ankieta", data={**ANSWERS, "wait": "7"})
        assert partial.status_code == 422 and "Odpowiedz na wszystkie pytania" in partial.text
        assert rows(server.database, "SELECT COUNT(*) FROM survey_answers") == [(0,)]

        done = server.anonymous_post(f"/t/{token}/ankieta", data=ANSWERS)
        assert done.status_code == 200 and "Dziękujemy za odpowiedzi" in done.text
        again = server.anonymous_post(f"/t/{token}/ankieta", data={**ANSWERS, "overall": "1"})
        assert again.status_code == 409 and "zostały już wysłane" in again.text
        assert "Oceń wizytę" not in server.anonymous_get(f"/t/{token}").text

        # anonymous: the answers keep the day and the service, nothing that names the ticket
        columns = [r[1] for r in rows(server.database, "PRAGMA table_info(survey_answers)")]
        assert columns == ["day", "service", "overall", "wait", "courtesy", "settled"]
        assert rows(server.database, "SELECT service, overall, wait, courtesy, settled FROM survey_answers") == [
            ("rej", 5, 3, 4, 1)
        ]
        assert rows(server.database, "SELECT COUNT(*) FROM survey_done WHERE token_hash = ?", (token,)) == [(0,)]

        clerk = server.get("/reports/survey", follow_redirects=False)
        assert clerk.status_code in (303, 403)
        from server.auth import Users

        users = Users(server._database())
        users.add("kierownik", "manager", "kierownik-haslo-2026")
        users.close()
        manager = httpx.Client(base_url=server.url, timeout=10)
        login = {"name": "kierownik", "password": "kierownik-haslo-2026"}
        assert manager.post("/login", data=login, follow_redirects=False).status_code == 303
        results = manager.get("/reports/survey")
        assert results.status_code == 200
        row = results.text.split("<td>Rejestracja pojazdów</td>")[1].split("</tr>")[0]
        assert row == "<td>1</td><td>5.0</td><td>3.0</td><td>4.0</td><td>100%</td>"
    finally:
        server.stop()
