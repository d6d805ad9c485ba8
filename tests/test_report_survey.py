"""The survey's figures in the monthly report (numerek-report-mail's attachments and body):
answers given on the real server, the report built from its database file."""

from __future__ import annotations

import io
import sqlite3
import subprocess
from datetime import date

from openpyxl import load_workbook

from tests.test_notify_server import issue, peer, press  # noqa: F401 - peer is a fixture
from tests.test_survey import ANSWERS, survey_office


def test_the_monthly_report_carries_the_months_survey_answers(tmp_path, broker, peer):  # noqa: F811
    server = survey_office(tmp_path, broker)
    try:
        mine = issue(peer, "rej", "r1")
        press(peer, "1", "n1")  # called
        press(peer, "1", "n2")  # finished
        assert server.anonymous_post(f"/t/{mine['token']}/ankieta", data=ANSWERS).status_code == 200
    finally:
        server.stop()
    from server.config import load_config
    from server.reports.figures import ReportData
    from server.reports.monthly import build_monthly_report

    day = sqlite3.connect(str(server.database)).execute("SELECT day FROM survey_answers").fetchone()[0]
    data = ReportData(str(server.database), load_config(server.config))
    try:
        report = build_monthly_report(data, date.fromisoformat(day), "pl")
        english = build_monthly_report(data, date.fromisoformat(day), "en")
    finally:
        data.close()
    assert "Ankieta po wizycie:" in report.text
    assert "Rejestracja pojazdów: 1 odp., wizyta 5,00, oczekiwanie 3,00, urzędnik 4,00 (1–5), załatwione 100 %" in (
        report.text.replace("\u00a0", " ")
    )
    assert "Vehicle registration: 1 answer sets, visit 5.00, waiting 3.00" in english.text
    wb = load_workbook(io.BytesIO(report.xlsx))
    assert wb.sheetnames[-1] == "survey"
    assert [c.value for c in next(wb["survey"].iter_rows(min_row=2))] == ["rej", 1, 5, 3, 4, 1]
    pdf = tmp_path / "m.pdf"
    pdf.write_bytes(report.pdf)
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "Ankieta po wizycie" in text and "Uprzejmość i pomoc" in text
