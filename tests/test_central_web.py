"""The centre's pages over HTTP (numerek-central-web as a process): login, the live view and
the report with its CSV, on figures replicated from a real branch (docs/multi-branch.md)."""

from __future__ import annotations

import io
import signal
import sqlite3
import statistics
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from openpyxl import load_workbook

from tests.central_support import (
    PG_BIN,
    Branch,
    CentralBroker,
    IngesterProcess,
    Postgres,
    clock_off,
    libfaketime,
    wait_caught_up,
    write_central_config,
)
from tests.harness import ROOT, free_port, run_tool, start_tool, wait_for

pytestmark = pytest.mark.skipif(
    not (PG_BIN / "initdb").exists() or libfaketime() is None,
    reason="PostgreSQL 15 and faketime are installed by .ci/setup",
)

MANAGER = ("boss", "a-long-manager-password-1")
CLERK = ("desk", "a-long-clerk-password-22")


@pytest.fixture(scope="module")
def centre(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("centre")
    pg = Postgres().start()
    dsn = pg.create_db("central")
    central = CentralBroker(tmp / "central", ["wola"]).start()
    port = free_port()
    config = write_central_config(tmp / "central" / "central.toml", central, dsn, http_port=port)
    users = str(tmp / "central" / "central-users.db")
    for (name, password), role in ((MANAGER, "manager"), (CLERK, "clerk")):
        done = run_tool(
            "server.auth", "--database", users, "add", name, "--role", role, "--password-stdin", input=password + "\n"
        )
        assert done.returncode == 0, done.stderr
    ingester = IngesterProcess(config).start()
    # The branch's machine clock is three hours behind the centre's: waits are the branch's own times.
    branch = Branch(tmp / "wola", "wola", central, env=clock_off("-3h"))
    web = start_tool("central.web", "--config", str(config), log=tmp / "web.log")
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(url + "/health", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        for _ in range(6):
            branch.issue("rej")
        for _ in range(3):
            branch.issue("pj")
        for _ in range(4):
            assert branch.next("1")["ok"]
        wait_caught_up(dsn, branch)
        wait_for(up, 30, "numerek-central-web")
        yield url, branch
    finally:
        web.terminate()
        web.wait(10)
        branch.close()
        ingester.stop()
        central.stop()
        pg.destroy()


def _signed_in(url: str, who: tuple[str, str] = MANAGER) -> httpx.Client:
    c = httpx.Client(base_url=url, timeout=10)
    r = c.post("/login", data={"name": who[0], "password": who[1], "next": "/"})
    assert r.status_code == 303, r.text
    return c


def test_the_centres_pages_need_a_manager_login(centre):
    url, _branch = centre
    r = httpx.get(url + "/report", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=%2Freport")
    assert httpx.get(url + "/api/live").status_code == 401
    assert httpx.get(url + "/report.csv").status_code == 303
    wrong = httpx.post(url + "/login", data={"name": MANAGER[0], "password": "not-the-password"})
    assert wrong.status_code == 401 and "Nieprawidłowa" in wrong.text
    clerk = httpx.post(url + "/login", data={"name": CLERK[0], "password": CLERK[1]})
    assert clerk.status_code == 401  # the reports hold every branch's figures: managers only
    # Another site's form cannot sign anybody in or out (CSRF).
    forged = httpx.post(
        url + "/login", data={"name": MANAGER[0], "password": MANAGER[1]}, headers={"Origin": "https://evil.example"}
    )
    assert forged.status_code == 403
    # No open redirect after the login.
    c = httpx.Client(base_url=url)
    r = c.post("/login", data={"name": MANAGER[0], "password": MANAGER[1], "next": "//evil.example/"})
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert r.headers["x-frame-options"] == "DENY" and r.headers["cache-control"] == "no-store"


def test_the_live_view_shows_each_branchs_waiting_tickets_as_the_branch_has_them(centre):
    url, branch = centre
    c = _signed_in(url)
    live = {b["branch"]: b for b in c.get("/api/live").json()}
    assert live["wola"]["waiting"] == branch.own_waiting() == 5
    assert live["wola"]["in_contact"] and live["wola"]["behind"] == 0
    assert 0 < live["wola"]["longest_wait_s"] < 600  # not 3 hours: the branch's clock, not the centre's
    assert live["mokotow"]["in_contact"] is False  # configured, never heard from: shown, not hidden
    page = c.get("/")
    assert page.status_code == 200 and "Urząd Dzielnicy Wola" in page.text and "brak kontaktu" in page.text


def _own_report(branch: Branch) -> dict[str, tuple[int, float, float]]:
    """visits, median and p90 wait (s) per service, from the branch's own database."""
    with sqlite3.connect(f"file:{branch.server.database}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT issued_service, issued_at, first_called_at FROM tickets").fetchall()
    visits = Counter(s for s, _i, _c in rows)
    out = {}
    for service in visits:
        waits = [c - i for s, i, c in rows if s == service and c is not None]
        if waits:
            q = statistics.quantiles(waits, n=10, method="inclusive") if len(waits) > 1 else [waits[0]] * 9
            out[service] = (visits[service], statistics.median(waits), q[8])
        else:
            out[service] = (visits[service], None, None)
    return out


def test_the_report_and_its_csv_give_the_branchs_own_figures(centre):
    url, branch = centre
    c = _signed_in(url)
    today = (datetime.now(UTC) - timedelta(hours=3)).date()  # the branch's day
    q = {"from": (today - timedelta(days=1)).isoformat(), "to": (today + timedelta(days=1)).isoformat()}
    page = c.get("/report", params=q)
    assert page.status_code == 200 and "Urząd Dzielnicy Wola" in page.text
    figures = {r["service"]: r for r in c.get("/api/report", params=q).json() if r["branch"] == "wola"}
    csv = c.get("/report.csv", params={**q, "branch": "wola"})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in csv.headers["content-disposition"]
    lines = [line.split(";") for line in csv.text.lstrip("\ufeff").strip().split("\r\n")]
    assert lines[0][0] == "oddział / branch"
    own = _own_report(branch)
    got = {row[1]: row for row in lines[1:] if row[0] == "wola" and row[1] != "razem / total"}
    assert set(got) == set(own) == {"rej", "pj"}
    for service, (visits, median, p90) in own.items():
        assert int(got[service][2]) == visits == figures[service]["visits"]
        if median is not None:
            assert figures[service]["median_wait_s"] == pytest.approx(median, abs=0.01)
            assert figures[service]["p90_wait_s"] == pytest.approx(p90, abs=0.01)
            assert got[service][4] == f"{median / 60:.1f}".replace(".", ",")
            assert got[service][5] == f"{p90 / 60:.1f}".replace(".", ",")
    total = next(row for row in lines[1:] if row[1] == "razem / total")
    assert int(total[2]) == 9


def test_a_bad_report_period_is_refused_with_a_clear_error(centre):
    url, _branch = centre
    c = _signed_in(url)
    assert c.get("/report", params={"from": "2026-13-01"}).status_code == 422
    r = c.get("/report", params={"from": "2026-12-07", "to": "2026-12-01"})
    assert r.status_code == 422 and "before" in r.text
    assert c.get("/report", params={"branch": "../etc"}).status_code == 422


def test_the_report_downloads_as_the_branch_reports_xlsx_and_pdf_with_the_branchs_figures(centre, tmp_path):
    url, branch = centre
    assert httpx.get(url + "/report.xlsx").status_code == 303  # managers only
    c = _signed_in(url)
    today = (datetime.now(UTC) - timedelta(hours=3)).date()
    q = {"from": (today - timedelta(days=1)).isoformat(), "to": (today + timedelta(days=1)).isoformat()}
    r = c.get("/report.xlsx", params=q, timeout=120)
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    wb = load_workbook(io.BytesIO(r.content), read_only=True)
    rows = list(wb["branches"].iter_rows(values_only=True))
    wola = next(row for row in rows[1:] if row[0] == "wola")
    assert wola[1] == "Urząd Dzielnicy Wola" and wola[2] == sum(v for v, _m, _p in _own_report(branch).values())
    # Drawing a PDF takes seconds on a busy machine: a generous bound, not a timing test.
    pdf = c.get("/report.pdf", params={"month": today.strftime("%Y-%m"), "branch": "wola"}, timeout=120)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    (tmp_path / "r.pdf").write_bytes(pdf.content)
    text = subprocess.run(["pdftotext", "-layout", str(tmp_path / "r.pdf"), "-"], capture_output=True, text=True).stdout
    assert "Urząd Dzielnicy Wola" in text
    assert c.get("/report.pdf", params={"month": "2026-13"}).status_code == 422


def test_the_public_list_shows_every_branchs_waiting_and_links_to_its_own_status_and_booking(centre):
    url, branch = centre
    page = httpx.get(url + "/kolejka")  # no login: residents' phones
    assert page.status_code == 200
    rows = {r["branch"]: r for r in httpx.get(url + "/api/public/branches").json()}
    assert rows["wola"]["waiting"] == branch.own_waiting()
    assert rows["wola"]["status_url"] == "https://wola.example.pl/kolejka"
    assert rows["wola"]["booking_url"] == "https://wola.example.pl/rezerwacja"
    assert rows["mokotow"]["waiting"] is None and rows["mokotow"]["status_url"] is None  # never heard, no address
    assert 'href="https://wola.example.pl/rezerwacja"' in page.text and "Urząd Dzielnicy Mokotów" in page.text


_DEVICE = """
import sys, time
from protocol.device import DeviceConnection
from protocol.mqtt import BrokerConfig
conn = DeviceConnection(BrokerConfig(port=int(sys.argv[1])), sys.argv[2]).start()
while not conn.connected:
    time.sleep(0.05)
print("connected", flush=True)
time.sleep(600)
"""


def _device(branch: Branch, device: str) -> subprocess.Popen:
    """A device of the branch (the real connection code, its retained last will), as its own process."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _DEVICE, str(branch.broker.port), device], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "connected"
    return proc


def test_the_live_view_shows_a_branchs_device_offline_when_its_connection_dies_and_clears_it_when_it_is_back(centre):
    url, branch = centre
    c = _signed_in(url)

    def offline() -> list[str] | None:
        return {b["branch"]: b for b in c.get("/api/live").json()}["wola"]["devices_offline"]

    def branch_says(device: str) -> str | None:
        return branch.server.get("/api/devices").json().get(device, {}).get("availability")

    kiosk = _device(branch, "kiosk-k7")
    display = _device(branch, "display-hall")
    try:
        wait_for(lambda: offline() == [], 30, "the centre to know the branch's devices, all online")
        kiosk.send_signal(signal.SIGKILL)  # the kiosk's connection dies: the broker publishes its last will
        kiosk.wait(10)
        wait_for(lambda: offline() == ["kiosk-k7"], 30, "the centre to show the kiosk offline")
        wait_for(
            lambda: (branch_says("kiosk-k7"), branch_says("display-hall")) == ("offline", "online"),
            30,
            "the branch server to say the same",
        )
        page = c.get("/")
        row = page.text.split('data-branch="wola"')[1].split("</tr>")[0]
        assert "kiosk-k7" in row and "display-hall" not in row
        kiosk = _device(branch, "kiosk-k7")  # back: its "online" replaces the will
        wait_for(lambda: offline() == [], 30, "the centre to clear the kiosk")
        assert "wszystkie online / all online" in c.get("/").text.split('data-branch="wola"')[1].split("</tr>")[0]
    finally:
        for proc in (kiosk, display):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
