"""Every web page passes axe-core's WCAG 2.1 A and AA rules in Debian's Chromium (issue 19).

The resident-facing pages (/kolejka, the booking site, the reception desk) have their own
axe tests beside their behaviour; this one walks the rest as each user sees them: the login
page, a resident's ticket page, the clerk panel, the manager's dashboard and live view, the
administration page and its change log.
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.browser import CHROMIUM, Page
from tests.harness import Broker, Peer, ServerProcess, free_port, wait_for, write_config

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)

BASE = "numerek"
ADMIN = ("administrator", "dostepne-strony-42")


@pytest.fixture(scope="module")
def office(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("a11y")
    broker = Broker(tmp).start()
    http_port = free_port()
    cfg = write_config(tmp / "office.toml", broker.port, http_port)
    server = ServerProcess(cfg, http_port=http_port)
    server.start()
    from server.auth import Users

    Users(server.database).add(ADMIN[0], "admin", ADMIN[1])
    peer = Peer(broker.port)
    peer.subscribe(f"{BASE}/kiosk/k1/response/#")
    answer = peer.request(
        f"{BASE}/kiosk/k1/request",
        {"v": 1, "id": "a11y-1", "service": "rej"},
        f"{BASE}/kiosk/k1/response/a11y",
        timeout=20,
    )
    assert answer["ok"], answer
    yield server, answer["ticket"]["token"], tmp
    peer.close()
    server.stop()
    broker.stop()


def _violations(page: Page) -> list[dict]:
    from tests.axe import axe_violations

    return axe_violations(page)


def _loaded(page: Page, path: str) -> None:
    wait_for(
        lambda: page.js(f"location.pathname === {json.dumps(path)} && document.readyState === 'complete'"),
        20,
        f"{path} loaded",
    )


def test_the_login_page_and_a_residents_ticket_page_pass_axe(office, chromium):
    server, token, _tmp = office
    found = {}
    for path in ("/login", f"/t/{token}", f"/t/{token}?lang=en", f"/t/{token}?lang=uk"):
        page = chromium.open(server.url + path)
        try:
            _loaded(page, path.split("?")[0])
            found[path] = _violations(page)
        finally:
            page.close()
    assert found == {p: [] for p in found}, found


@pytest.mark.parametrize(
    "path",
    ["/clerk/1", "/clerk/1?lang=en", "/reports", "/reports/live", "/admin", "/admin/log"],
)
def test_every_signed_in_page_passes_axe(office, path, chromium):
    server, _token, _tmp = office
    target = path.split("?")[0]
    page = chromium.open(f"{server.url}/login?next={httpx.QueryParams({'x': path})['x']}")
    try:
        wait_for(lambda: page.js("!!document.querySelector('input[name=password]')"), 20, "the login form")
        page.js(
            f"document.querySelector('input[name=name]').value = {json.dumps(ADMIN[0])};"
            f"document.querySelector('input[name=password]').value = {json.dumps(ADMIN[1])};"
            "document.querySelector('form[action=\"/login\"]').requestSubmit()"
        )
        _loaded(page, target)
        assert _violations(page) == [], path
    finally:
        page.close()


def test_the_ticket_page_shows_the_call_without_reloading_itself(office, chromium):
    """A reload moves a screen reader's place and a magnifier's view: the page changes in place."""
    server, token, _tmp = office
    page = chromium.open(f"{server.url}/t/{token}")
    try:
        _loaded(page, f"/t/{token}")
        page.js("window.stayed = true")
        r = server.post("/api/counters/1/commands", json={"v": 1, "id": "a11y-next", "action": "next"})
        assert r.status_code == 200 and r.json()["ok"], r.text
        wait_for(lambda: "Stanowisko 1" in page.js("document.getElementById('live').textContent"), 60, "the call")
        assert page.js("window.stayed === true"), "the page reloaded itself"
    finally:
        page.close()
