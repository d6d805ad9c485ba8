"""The clerk panel against the real server: the page, its HTTP actions, same events as the buttons."""

from __future__ import annotations

import html
import os
import re
import time
import uuid
from collections.abc import Callable

import pytest

from tests.browser import CHROMIUM
from tests.harness import TEST_RECALL_GUARD_S, ServerProcess, wait_for
from tests.test_counter_support import BASE, events, issue, press, start_unit


def panel_command(server: ServerProcess, counter: str, action: str, **fields) -> tuple[int, dict]:
    """What the page's JavaScript POSTs for one click."""
    body = {"v": 1, "id": f"panel-{uuid.uuid4().hex[:10]}", "action": action, **fields}
    r = server.post(f"/api/counters/{counter}/commands", json=body)
    return r.status_code, r.json()


def shown(server: ServerProcess, counter: str) -> str:
    ticket = server.get(f"/api/counters/{counter}").json()["ticket"]
    return ticket["number"] if ticket else ""


def test_panel_page_offers_every_clerk_action_and_the_counters_services(server):
    r = server.get("/clerk/1")
    assert r.status_code == 200
    page = r.text
    for action in ("next", "recall", "start", "finish", "no_show", "transfer", "pause", "open", "close", "sign_out"):
        assert f'data-action="{action}"' in page
    assert "Stanowisko 1" in page
    assert "Rejestracja pojazdów" in page and "Prawo jazdy" in page  # the queues it serves
    assert 'value="service:pasz"' in page and 'value="counter:2"' in page  # transfer targets
    assert 'value="counter:1"' not in page  # not to itself
    assert "http://" not in page and "https://" not in page  # nothing from outside: works offline
    # A phone caller's booking or a ticket for someone at the desk is one click away.
    assert '<a href="/recepcja?lang=pl">Recepcja: bilety i rezerwacje telefoniczne</a>' in page
    assert server.get("/recepcja").status_code == 200
    index = server.get("/clerk")
    assert index.status_code == 200 and 'href="/clerk/3"' in index.text


def test_without_a_clerk_login_nobody_can_see_or_command_a_counter(server, peer):
    """Residents' phones reach this port through the ticket's QR code: they may see their ticket
    and the queues, never call, close or watch a counter."""
    peer.subscribe(f"{BASE}/kiosk/k1/response/#")
    reply = peer.request(
        f"{BASE}/kiosk/k1/request",
        {"v": 1, "id": "t-1", "service": "rej"},
        response_topic=f"{BASE}/kiosk/k1/response/t-1",
    )
    token = reply["ticket"]["token"]
    before = events(server.database)
    body = {"v": 1, "id": "phone-1", "action": "next", "current": ""}
    assert server.anonymous_post("/api/counters/1/commands", json=body).status_code == 401
    wrong = server.anonymous_post("/api/counters/1/commands", json=body, auth=("test-clerk", "not-the-password"))
    assert wrong.status_code == 401
    for path in ("/api/counters/1", "/api/counters/1/waiting", "/api/devices"):
        assert server.anonymous_get(path).status_code == 401, path
    page = server.anonymous_get("/clerk/1?lang=en")
    assert page.status_code == 303 and page.headers["location"] == "/login?next=%2Fclerk%2F1%3Flang%3Den"
    assert server.anonymous_get("/clerk").status_code == 303
    assert events(server.database) == before  # nothing was done
    assert server.get("/api/counters/1").json()["ticket"] is None
    # What stays public: the resident's own ticket page, the queues, health.
    assert server.anonymous_get(f"/t/{token}").status_code == 200
    assert server.anonymous_get("/api/queues").json()[0]["waiting"] == 1
    assert server.anonymous_get("/health").status_code == 200
    # A script may use HTTP Basic with a clerk login.
    ok = server.anonymous_post("/api/counters/1/commands", json=body, auth=server.CLERK)
    assert ok.status_code == 200 and ok.json()["ticket"]["number"] == "A001"


def test_a_clerk_login_opens_the_panel_but_not_the_reports_or_the_admin_page(server):
    import httpx

    browser = httpx.Client(base_url=server.url, timeout=10)
    form = {"name": server.CLERK[0], "password": server.CLERK[1], "next": "/clerk/2"}
    r = browser.post("/login", data=form)
    assert r.status_code == 303 and r.headers["location"] == "/clerk/2"
    assert "httponly" in r.headers["set-cookie"].lower() and "samesite=lax" in r.headers["set-cookie"].lower()
    assert "secure" not in r.headers["set-cookie"].lower()  # plain http: a Secure cookie would never come back
    proxied = httpx.post(server.url + "/login", data=form, headers={"X-Forwarded-Proto": "https"})
    assert "; secure" in proxied.headers["set-cookie"].lower()  # behind an HTTPS reverse proxy on this machine
    assert browser.get("/clerk/2").status_code == 200
    assert browser.get("/reports").status_code == 403
    assert browser.get("/reports/api/summary").status_code == 403
    assert browser.get("/admin").status_code == 403
    # Asked for the reports, a clerk lands on the clerk panel instead of a 403.
    assert browser.post("/login", data={**form, "next": "/reports"}).headers["location"] == "/clerk"
    browser.post("/logout")
    assert browser.get("/api/counters/2").status_code == 401


POLISH_BUTTONS = (
    "Wyjdź z panelu",
    "Następny",
    "Wezwij ponownie",
    "Klient podszedł",
    "Zakończ obsługę",
    "Nie przyszedł",
    "Przerwa",
    "Otwórz",
    "Zamknij",
    "Przekaż",
    "Zaloguj",
    "Wyloguj",
)
ENGLISH_BUTTONS = (
    "Leave the panel",
    "Next",
    "Recall",
    "Client arrived",
    "Finish",
    "No-show",
    "Pause",
    "Open",
    "Close",
    "Transfer",
    "Sign in",
    "Sign out",
)


def button_labels(page: str) -> list[str]:
    return [html.unescape(label).strip() for label in re.findall(r"<button[^>]*>(.*?)</button>", page, re.S)]


def language_links(page: str) -> dict[str, str]:
    """The language switch: link text -> href (the current language is not a link)."""
    nav = re.search(r'<nav class="lang".*?</nav>', page, re.S)
    assert nav, "no language switch on the page"
    return {name: html.unescape(href) for href, name in re.findall(r'<a href="([^"]*)"[^>]*>([^<]*)</a>', nav.group())}


def test_panel_in_english_shows_english_labels_and_no_polish_ones(server):
    r = server.get("/clerk/1?lang=en")
    assert r.status_code == 200
    page = r.text
    assert '<html lang="en">' in page
    assert button_labels(page) == list(ENGLISH_BUTTONS)
    for polish in POLISH_BUTTONS + ("Urzędnik", "Kolejki", "Obsługiwany numer", "Brak połączenia", "usługa:"):
        assert polish not in page, polish
    assert "Vehicle registration" in page and "Driving licences" in page  # service names from the config's `en`
    assert "Rejestracja pojazdów" not in page
    assert ">service: Passports<" in page and ">counter: Stanowisko 2<" in page  # transfer targets
    assert "No connection to the server" in page  # the offline banner
    assert language_links(page) == {"Polski": "/clerk/1"}  # back to Polish, same counter


def test_panel_is_polish_by_default_and_for_an_unknown_language(server):
    for query in ("", "?lang=pl", "?lang=xx", "?lang=", "?lang=%3Cscript%3E"):
        r = server.get(f"/clerk/1{query}")
        assert r.status_code == 200, query
        page = r.text
        assert '<html lang="pl">' in page, query
        assert button_labels(page) == list(POLISH_BUTTONS), query
        assert "Rejestracja pojazdów" in page and "Vehicle registration" not in page
        assert language_links(page) == {"English": "/clerk/1?lang=en"}, query  # switch keeps the counter
        assert page.count("<script") == 1 and "%3C" not in page  # the unknown value is not echoed into the page


def test_counter_choice_and_unknown_counter_pages_follow_the_language(server):
    index = server.get("/clerk?lang=en")
    assert index.status_code == 200 and '<html lang="en">' in index.text
    assert "Choose your counter" in index.text and "Wybierz" not in index.text
    assert 'href="/clerk/3?lang=en"' in index.text  # the chosen panel opens in the same language
    assert language_links(index.text) == {"Polski": "/clerk"}
    polish = server.get("/clerk")
    assert "Wybierz stanowisko" in polish.text and 'href="/clerk/3"' in polish.text
    assert language_links(polish.text) == {"English": "/clerk?lang=en"}
    missing = server.get("/clerk/99?lang=en")
    assert missing.status_code == 404 and '<html lang="en">' in missing.text
    assert "There is no counter “99”" in missing.text and 'href="/clerk/1?lang=en"' in missing.text


def test_unknown_counter_page_is_a_404_that_lists_the_real_counters(server):
    r = server.get("/clerk/99")
    assert r.status_code == 404
    assert "99" in r.text and 'href="/clerk/1"' in r.text
    assert server.get("/api/counters/99/waiting").status_code == 404


def test_waiting_list_marks_the_ticket_next_would_call(server, peer):
    peer.subscribe(f"{BASE}/kiosk/k1/response/#")
    issue(peer, "pj")
    issue(peer, "rej")
    issue(peer, "pasz")
    waiting = server.get("/api/counters/1/waiting").json()
    # Counter 1 prefers rej over pj; pasz is not served here.
    assert [(t["number"], t["next"]) for t in waiting] == [("A001", True), ("B001", False)]
    status, reply = panel_command(server, "1", "next", current="")
    assert status == 200 and reply["ticket"]["number"] == "A001"


def test_panel_double_click_calls_one_ticket(server, peer):
    peer.subscribe(f"{BASE}/kiosk/k1/response/#")
    for _ in range(3):
        issue(peer, "rej")
    first = panel_command(server, "2", "next", current="")
    second = panel_command(server, "2", "next", current="")  # the same click again, about nobody
    assert first[0] == 200 and first[1]["ticket"]["number"] == "A001"
    assert second[0] == 409 and second[1]["error"]["code"] == "stale"
    assert shown(server, "2") == "A001"
    assert [e["ticket"] for e in events(server.database, kinds=("call",))] == ["A001"]


def test_clerk_sign_in_is_recorded_against_the_clerks_calls(server, peer):
    peer.subscribe(f"{BASE}/kiosk/k1/response/#")
    issue(peer, "rej")
    assert panel_command(server, "1", "sign_in", clerk="4711")[0] == 200
    assert server.get("/api/counters/1").json()["clerk"] == "4711"
    assert panel_command(server, "1", "next", current="")[0] == 200
    assert panel_command(server, "1", "sign_out")[0] == 200
    rows = [(e["kind"], e["clerk"]) for e in events(server.database, counter="1") if e["kind"] != "counter_open"]
    assert rows == [("sign_in", "4711"), ("call", "4711"), ("sign_out", "4711")]
    status, reply = panel_command(server, "1", "sign_in", clerk="")
    assert status >= 400 and reply["error"]["code"] == "invalid_request"  # an empty badge changes nothing
    assert server.get("/api/counters/1").json()["clerk"] is None


def _scenario(do: Callable[[str, str], None], counter: str, server: ServerProcess) -> None:
    """One clerk's morning: call, recall, no-show, call, transfer, call, finish, pause, open."""
    for action, expect in (
        ("next", True),
        ("recall", "recall"),
        ("no_show", False),
        ("next", True),
        ("transfer", False),
        ("next", True),
        ("finish", False),
        ("pause", None),
        ("open", None),
    ):
        before = shown(server, counter)
        recalls = len(events(server.database, counter=counter, kinds=("recall",)))
        if action == "recall":
            time.sleep(TEST_RECALL_GUARD_S + 0.5)  # a recall during the call's announcement is refused
        do(action, before)
        if expect == "recall":
            wait_for(lambda n=recalls: len(events(server.database, counter=counter, kinds=("recall",))) > n, 10, action)
        elif expect is True:
            wait_for(lambda b=before: shown(server, counter) not in ("", b), 10, f"{action} to call a ticket")
        elif expect is False:
            wait_for(lambda: shown(server, counter) == "", 10, f"{action} to end the ticket")
        else:
            status = "paused" if action == "pause" else "open"
            wait_for(lambda s=status: server.get(f"/api/counters/{counter}").json()["status"] == s, 10, action)
        time.sleep(0.45)  # past the unit's double-press window: each step is a new press


def _normalised(rows: list[dict]) -> list[tuple[str, str | None]]:
    """Events with tickets renamed by first appearance, so two counters' days compare.

    (Services differ: counter 2 prefers pj, where counter 1's transfer sent a client.)"""
    names: dict[str, str] = {}
    out = []
    for e in rows:
        t = e["ticket"]
        if t is not None:
            t = names.setdefault(t, f"T{len(names) + 1}")
        out.append((e["kind"], t))
    return out


def test_panel_actions_give_the_same_events_as_the_buttons(server, broker, peer):
    peer.subscribe(f"{BASE}/kiosk/k1/response/#")
    for _ in range(6):
        issue(peer, "rej")
    # Transfers go to passports, which neither counter serves, so both days stay alike.
    unit, factory = start_unit(broker.port, counter="1", transfer=[{"pin": 25, "service": "pasz"}])
    try:
        station = unit.stations["1"]
        wait_for(lambda: station.state is not None and unit.online, 10, "the unit online")
        buttons = {
            "next": "next",
            "recall": "recall",
            "no_show": "no_show",
            "finish": "finish",
            "transfer": "transfer0",
        }

        def by_button(action: str, _before: str) -> None:
            if action in ("pause", "open"):
                press(station, "pause", hold_s=1.0)  # PAUSE held toggles pause/open
            else:
                press(station, buttons[action])

        _scenario(by_button, "1", server)
    finally:
        unit.stop()
        factory.reset()

    def by_panel(action: str, before: str) -> None:
        fields: dict = {}
        if action in ("next", "recall", "no_show", "finish", "transfer"):
            fields["current"] = before
        if action == "transfer":
            fields["target_service"] = "pasz"
        status, reply = panel_command(server, "2", action, **fields)
        assert status == 200, reply

    _scenario(by_panel, "2", server)
    from_buttons = _normalised(events(server.database, counter="1"))
    from_panel = _normalised(events(server.database, counter="2"))
    assert from_buttons == from_panel
    kinds = [k for k, _t in from_buttons]
    assert kinds == [
        "counter_open",
        "call",
        "recall",
        "no_show",
        "call",
        "transfer",
        "call",
        "finish",
        "counter_pause",
        "counter_open",
    ]


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_panel_screenshot_shows_the_called_ticket_and_queue_lengths(server, peer, artifacts, chromium):
    peer.subscribe(f"{BASE}/kiosk/k1/response/#")
    for _ in range(3):
        issue(peer, "rej")
    issue(peer, "pj")
    assert panel_command(server, "1", "sign_in", clerk="4711")[0] == 200
    assert panel_command(server, "1", "next", current="")[0] == 200
    page = chromium.open(f"{server.url}/clerk/1", login=server.CLERK)
    try:
        wait_for(lambda: page.text("ticket") == "A001", 15, "the script fetched the state and drew the number")
        counts = page.js("[...document.querySelectorAll('#waiting-counts tr')].map(r => r.textContent.trim())")
        assert any(c.startswith("Rejestracja") and c.endswith("2") for c in counts), counts  # A002, A003 wait
        page.screenshot(artifacts / "clerk_panel.png")
    finally:
        page.close()


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_clicks_in_the_real_page_call_sign_in_transfer_and_show_offline(server, peer, artifacts, chromium):
    peer.subscribe(f"{BASE}/kiosk/k1/response/#")
    for _ in range(3):
        issue(peer, "rej")
    page = chromium.open(f"{server.url}/clerk/1", login=server.CLERK)
    try:
        wait_for(lambda: page.text("status") == "Zamknięte", 15, "the page to load the counter's state")
        page.js(
            "document.getElementById('badge').value = '4711';document.getElementById('signin-form').requestSubmit()"
        )
        wait_for(lambda: page.text("clerk") == "4711", 10, "the clerk signed in")
        page.js("const b = document.querySelector('button[data-action=next]'); b.click(); b.click();")  # double click
        wait_for(lambda: page.text("ticket") == "A001", 10, "A001 on the page")
        assert "Wezwano A001" in page.text("message")
        page.click("recall")  # at once: the hall is still announcing A001, so no second announcement
        wait_for(lambda: "ogłaszany" in (page.text("message") or ""), 10, "the too_soon refusal in Polish")
        time.sleep(TEST_RECALL_GUARD_S + 0.5)
        page.click("recall")
        wait_for(lambda: events(server.database, kinds=("recall",)), 10, "a recall")
        page.js("document.getElementById('transfer-target').value = 'counter:2'")
        page.click("transfer")
        wait_for(lambda: server.get("/api/counters/2").json()["personal_waiting"] == 1, 10, "A001 sent to counter 2")
        wait_for(lambda: page.text("ticket") == "—", 10, "nobody served after the transfer")
        page.click("next")
        wait_for(lambda: page.text("ticket") == "A002", 10, "A002 on the page")
        wait_for(lambda: "Od wezwania 0:0" in (page.text("timer") or ""), 5, "the time since the call")
        page.screenshot(artifacts / "clerk_panel_serving.png")
        rows = [(e["kind"], e["ticket"], e["clerk"]) for e in events(server.database, counter="1") if e["ticket"]]
        assert rows == [
            ("call", "A001", "4711"),
            ("recall", "A001", "4711"),
            ("transfer", "A001", "4711"),
            ("call", "A002", "4711"),
        ]

        server.stop()
        wait_for(
            lambda: page.js("getComputedStyle(document.getElementById('offline')).display") == "block",
            10,
            "the offline banner",
        )
        assert page.js("document.querySelector('button[data-action=next]').disabled") is True
        page.screenshot(artifacts / "clerk_panel_offline.png")
        page.js("document.querySelector('button[data-action=next]').click()")  # disabled: nothing sent or kept
        server.start()
        wait_for(
            lambda: page.js("getComputedStyle(document.getElementById('offline')).display") == "none",
            20,
            "the page back online",
        )
        time.sleep(1.5)
        assert page.text("ticket") == "A002"
        assert [e["ticket"] for e in events(server.database, kinds=("call",))] == ["A001", "A002"]
    finally:
        page.close()


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_english_page_draws_states_messages_and_errors_in_english(server, peer, artifacts, chromium):
    peer.subscribe(f"{BASE}/kiosk/k1/response/#")
    for _ in range(2):
        issue(peer, "rej")
    page = chromium.open(f"{server.url}/clerk/1?lang=en", login=server.CLERK)
    try:
        wait_for(lambda: page.text("status") == "Closed", 15, "the page to load the counter's state")
        assert page.text("ticket-info") == "Nobody is being served"
        assert page.js("document.documentElement.lang") == "en"
        page.click("finish")  # nobody to finish: refused as no_current_ticket
        wait_for(lambda: page.text("message") == "There is no client at this counter.", 10, "the refusal in English")
        page.click("next")
        wait_for(lambda: page.text("ticket") == "A001", 10, "A001 on the page")
        assert page.text("message") == "Called A001"
        wait_for(lambda: page.text("status") == "Open", 10, "the counter open")
        assert page.text("ticket-info") == "Vehicle registration · called"
        wait_for(lambda: re.fullmatch(r"Called 0:0\d ago", page.text("timer") or ""), 5, "the time since the call")
        wait_for(lambda: "A002next" in (page.text("waiting-list") or ""), 10, "A002 tagged as next")
        time.sleep(TEST_RECALL_GUARD_S + 0.5)  # after the call's announcement
        page.click("recall")
        wait_for(lambda: "recalls: 1" in (page.text("ticket-info") or ""), 10, "the recall counted")
        assert page.text("offline") == "No connection to the server — commands are not being sent. Retrying…"
        page.screenshot(artifacts / "clerk_panel_en.png")
    finally:
        page.close()


def test_every_polish_text_and_every_refusal_code_has_an_english_text():
    from protocol.messages import ErrorCode
    from server.clerk_panel import TEXTS

    def keys(d: dict, prefix: str = "") -> set[str]:
        return {k2 for k, v in d.items() for k2 in (keys(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k})}

    assert set(TEXTS) == {"pl", "en"}
    assert keys(TEXTS["pl"]) == keys(TEXTS["en"])
    for lang in TEXTS:
        assert set(TEXTS[lang]["errors"]) >= {code.value for code in ErrorCode}, lang  # the clerk sees why, not a code


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_a_click_the_frozen_server_only_reads_after_its_deadline_calls_nobody(server, peer, artifacts, chromium):
    """The page sends each click with ``expires_at`` (server clock + 10 s): a server that froze
    (a stuck disk, SIGSTOP here) and wakes up later refuses it instead of calling a client
    whom nobody at the counter expects any more."""
    import signal

    from server.clerk_panel import COMMAND_TIMEOUT_S

    peer.subscribe(f"{BASE}/kiosk/k1/response/#")
    issue(peer, "rej")
    page = chromium.open(f"{server.url}/clerk/1", login=server.CLERK)
    try:
        wait_for(lambda: page.text("status") == "Zamknięte", 15, "the page to load the counter's state")
        os.kill(server.proc.pid, signal.SIGSTOP)
        try:
            page.js("document.querySelector('button[data-action=next]').click()")
            time.sleep(COMMAND_TIMEOUT_S + 1.5)  # the click's deadline passes while the server is frozen
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        wait_for(lambda: "za późno" in (page.text("message") or ""), 20, "the page says the click came too late")
        page.screenshot(artifacts / "clerk_panel_expired.png")
        assert events(server.database, kinds=("call",)) == []
        assert server.get("/api/counters/1").json()["ticket"] is None
        assert server.get("/api/counters/1").json()["waiting"]["rej"] == 1  # A001 still waits for a real click
        page.click("next")
        wait_for(lambda: page.text("ticket") == "A001", 10, "a fresh click calls A001")
    finally:
        page.close()
