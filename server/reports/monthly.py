"""The monthly report for the office head: a printable PDF and an XLSX, compared with the month before.

:func:`build_monthly_report` is what the e-mail job (``numerek-report-mail``,
server/reports/mail.py) sends: it returns the subject, a short plain-text body and the two attachments,
all from the same cached figures as the dashboard. Nothing here sends anything.

The PDF (A4 landscape) is laid out for paper: page 1 has the headline figures with their
change against the previous month and the tickets-per-day chart; page 2 the four other
charts; then the tables by service, counter and clerk, one after another, a new page only
when the next rows do not fit (no near-empty pages). Charts are vectors, drawn by the same
code as the dashboard's SVGs (:mod:`server.reports.charts`), so they print sharply at any size.
"""

from __future__ import annotations

import calendar
import dataclasses
import io
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from server.reports import charts, exports, survey_month
from server.reports.cache import RenderCache
from server.reports.figures import Filters, ReportData
from server.reports.headline import Headline, headlines
from server.reports.i18n import Labels, labels
from server.reports.models import Summary
from server.reports.periods import Period, previous

A4_LANDSCAPE = (11.69, 8.27)
MARGIN = 0.5  # inches
ROW_H = 0.24
GREEN, RED, INK, MUTED, STRIPE = "#1e7a3c", "#c0392b", "#1d2733", "#5b6570", "#eef2f6"


@dataclass(frozen=True)
class MonthlyReport:
    """A month's report, ready to attach to an e-mail (or to serve for download)."""

    month: date  # its first day
    lang: str
    subject: str
    text: str  # a plain-text body: the headline figures with their changes
    pdf: bytes
    xlsx: bytes

    @property
    def filename(self) -> str:
        return f"numerek-{self.month:%Y-%m}"

    def attachments(self) -> list[tuple[str, str, bytes]]:
        """(file name, media type, content) of each attachment."""
        return [
            (f"{self.filename}.pdf", "application/pdf", self.pdf),
            (f"{self.filename}.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", self.xlsx),
        ]


def month_filters(month: date, like: Filters | None = None) -> Filters:
    first = month.replace(day=1)
    last = first.replace(day=calendar.monthrange(first.year, first.month)[1])
    return dataclasses.replace(like, date_from=first, date_to=last) if like else Filters(first, last)


def month_name(month: date, lang: str) -> str:
    from babel.dates import format_date

    from server.reports.i18n import LOCALES

    return format_date(month, "LLLL y", locale=LOCALES.get(lang, "pl_PL"))


def build_monthly_report(
    data: ReportData, month: date, lang: str = "pl", cache: RenderCache | None = None
) -> MonthlyReport:
    """The report for ``month`` (any day of it), compared with the month before.

    With the server's ``cache`` (``app.state.monthly_report`` passes it), a PDF or XLSX
    already made for the same figures (a manager downloaded it) is not made again."""
    f = month_filters(month)
    before = previous(Period(f.date_from, f.date_to))
    s = data.summary(f)
    p = data.summary(dataclasses.replace(f, date_from=before.first, date_to=before.last))
    L = labels(lang)
    heads = headlines(s.totals, p.totals, L)
    title = f"{L['month_summary']}: {month_name(f.date_from, lang)}"
    compared = f"{L['compared_with']}: {L.date(before.first)} – {L.date(before.last)}"
    if not p.totals.issued:
        compared += f" — {L['compare_empty']}"
    lines = [s.office, title, compared, ""]
    for h in heads:
        change = f"  ({L['previously']} {h.previous}; {h.delta})" if h.delta else ""
        lines.append(f"{h.label}: {h.value}{change}")
    survey = survey_month.month_rows(data.database, f.date_from, f.date_to)
    lines += _survey_lines(survey, s, L)
    cache = cache or RenderCache()
    keyed = repr(survey)
    return MonthlyReport(
        month=f.date_from,
        lang=lang,
        subject=f"Numerek — {title} — {s.office}",
        text="\n".join(lines) + "\n",
        pdf=cache.get((*monthly_key("pdf", lang, s, p), keyed), lambda: monthly_pdf(s, p, lang, survey=survey)),
        xlsx=cache.get((*monthly_key("xlsx", lang, s, p), keyed), lambda: monthly_xlsx(s, p, lang, survey)),
    )


def _service_name(s: Summary, service: str, lang: str) -> str:
    for r in s.by_service:
        if r.service == service:
            return r.name.get(lang, service)
    return service


def _survey_cells(survey: Sequence[survey_month.SurveyRow], s: Summary, L: Labels) -> list[list[str]]:
    return [
        [
            _service_name(s, r.service, L.lang),
            L.number(r.answers, 0),
            L.number(r.overall, 2),
            L.number(r.wait, 2),
            L.number(r.courtesy, 2),
            L.percent(r.settled_share, 0),
        ]
        for r in survey
    ]


def _survey_lines(survey: Sequence[survey_month.SurveyRow], s: Summary, L: Labels) -> list[str]:
    """The survey's figures for the e-mail's body; nothing when nobody answered."""
    if not survey:
        return []
    t = survey_month.texts(L.lang)
    keys = ("service", "answers", "overall", "wait", "courtesy", "settled")
    return ["", f"{t['title']}:"] + [
        t["line"].format(**dict(zip(keys, cells, strict=True))) for cells in _survey_cells(survey, s, L)
    ]


def _survey_table(survey: Sequence[survey_month.SurveyRow], lang: str) -> exports.Table:
    t = survey_month.texts(lang)
    columns = [
        exports.Column("service", t["service"], t["service"], "text"),
        exports.Column("answers", t["answers"], t["answers"]),
        exports.Column("overall", t["overall"], t["overall"], "number"),
        exports.Column("wait", t["wait"], t["wait"], "number"),
        exports.Column("courtesy", t["courtesy"], t["courtesy"], "number"),
        exports.Column("settled_share", t["settled"], t["settled"], "share"),
    ]
    rows = [[r.service, r.answers, r.overall, r.wait, r.courtesy, r.settled_share] for r in survey]
    return exports.Table("survey", columns, rows)


def monthly_key(kind: str, lang: str, s: Summary, before: Summary) -> tuple[str, ...]:
    return ("monthly", kind, lang, s.digest(), before.digest())


def monthly_xlsx(s: Summary, before: Summary | None, lang: str, survey: Sequence[survey_month.SurveyRow] = ()) -> bytes:
    """The month's tables as sheets, the first one comparing the headline figures; the survey's last."""
    tables = [exports.comparison_table(s, before)]
    tables += [exports.table(name, s, lang) for name in exports.TABLES if name != "tickets"]
    if survey:
        tables.append(_survey_table(survey, lang))
    return exports.xlsx(tables, lang)


# ---------------------------------------------------------------------- PDF


class _Pages:
    """A4 pages filled top to bottom; positions in inches from the page's top-left corner."""

    def __init__(self, pdf: PdfPages, footer: str) -> None:
        self.pdf = pdf
        self.footer = footer
        self.number = 0
        self.fig: Figure | None = None
        self.y = MARGIN

    def new(self) -> Figure:
        self.finish()
        self.number += 1
        self.fig = Figure(figsize=A4_LANDSCAPE)
        self.y = MARGIN
        return self.fig

    def finish(self) -> None:
        if self.fig is not None:
            self.text(MARGIN, A4_LANDSCAPE[1] - 0.3, f"{self.footer} — {self.number}", size=7, color=MUTED)
            self.pdf.savefig(self.fig)
            self.fig = None

    def room(self) -> float:
        return A4_LANDSCAPE[1] - MARGIN - self.y

    def text(self, x: float, y: float, s: str, size: float = 9, **kw: Any) -> None:
        assert self.fig is not None
        w, h = A4_LANDSCAPE
        self.fig.text(x / w, 1 - y / h, s, fontsize=size, va="top", **kw)

    def stripe(self, y: float, height: float, x0: float = MARGIN, x1: float = A4_LANDSCAPE[0] - MARGIN) -> None:
        assert self.fig is not None
        w, h = A4_LANDSCAPE
        box = Rectangle((x0 / w, 1 - (y + height) / h), (x1 - x0) / w, height / h, color=STRIPE, lw=0)
        self.fig.add_artist(box)

    def chart(self, name: str, s: Summary, lang: str, x: float, y: float, width: float, height: float) -> None:
        assert self.fig is not None
        w, h = A4_LANDSCAPE
        sub = self.fig.add_subfigure(_gridspec_cell(self.fig, x / w, 1 - (y + height) / h, width / w, height / h))
        charts.draw(sub, name, s, lang)

    def table(self, title: str, header: Sequence[str], rows: Sequence[Sequence[str]], first_w: float = 2.6) -> None:
        """Rows flow onto the next page when this one is full; the header repeats there."""
        width = A4_LANDSCAPE[0] - 2 * MARGIN
        other_w = (width - first_w) / max(1, len(header) - 1)
        xs = [MARGIN + first_w + i * other_w for i in range(len(header) - 1)]
        i = 0
        while True:
            need = 0.66 + ROW_H * min(3, max(1, len(rows) - i))  # title, header and three rows (or the rest)
            if self.fig is None or self.room() < need:
                self.new()
            self.text(MARGIN, self.y, title if i == 0 else f"{title} (…)", size=12, weight="bold", color=INK)
            self.y += 0.3
            self.text(MARGIN, self.y, header[0], size=8, weight="bold", color=MUTED)
            chars = max(6, int(other_w * 72 / 4.8))  # 8-point bold DejaVu: about 4.8 pt a character
            wrapped = ["\n".join(textwrap.wrap(head, chars)) for head in header[1:]]
            for x, head in zip(xs, wrapped, strict=True):
                self.text(x + other_w - 0.05, self.y, head, size=8, weight="bold", color=MUTED, ha="right")
            self.y += 0.14 * max(h.count("\n") + 1 for h in wrapped) + 0.14
            if not rows:
                self.text(MARGIN, self.y, "—", size=9, color=MUTED)
                self.y += ROW_H
            while i < len(rows) and self.room() >= ROW_H:
                if i % 2 == 0:
                    self.stripe(self.y - 0.03, ROW_H)
                self.text(MARGIN + 0.05, self.y, rows[i][0], size=8.5, color=INK)
                for x, cell in zip(xs, rows[i][1:], strict=True):
                    self.text(x + other_w - 0.05, self.y, cell, size=8.5, color=INK, ha="right")
                self.y += ROW_H
                i += 1
            self.y += 0.3
            if i >= len(rows):
                return


def _gridspec_cell(fig: Figure, left: float, bottom: float, width: float, height: float) -> Any:
    """A sub-figure's place on the page (fractions of the page): the middle cell of a 3 × 3 grid
    whose ratios are the margins (a sub-figure is placed by its grid's ratios alone)."""
    top = 1 - bottom - height
    gs = fig.add_gridspec(
        3,
        3,
        width_ratios=[max(left, 1e-6), width, max(1 - left - width, 1e-6)],
        height_ratios=[max(top, 1e-6), height, max(bottom, 1e-6)],
    )
    return gs[1, 1]


def _headline_block(pages: _Pages, heads: list[Headline], L: Labels, with_previous: bool) -> None:
    cols = [MARGIN, MARGIN + 3.2, MARGIN + 4.6, MARGIN + 6.0]
    pages.text(cols[0], pages.y, L["figure"], size=8, weight="bold", color=MUTED)
    pages.text(cols[1] + 1.0, pages.y, L["value"], size=8, weight="bold", color=MUTED, ha="right")
    if with_previous:
        pages.text(cols[2] + 1.0, pages.y, L["previously"], size=8, weight="bold", color=MUTED, ha="right")
        pages.text(cols[3] + 1.3, pages.y, L["change"], size=8, weight="bold", color=MUTED, ha="right")
    pages.y += 0.3
    for i, h in enumerate(heads):
        if i % 2 == 0:
            pages.stripe(pages.y - 0.04, 0.3)
        pages.text(cols[0] + 0.05, pages.y, h.label, size=10, color=INK)
        pages.text(cols[1] + 1.0, pages.y, h.value, size=10, weight="bold", color=INK, ha="right")
        if with_previous:
            pages.text(cols[2] + 1.0, pages.y, h.previous or "—", size=10, color=MUTED, ha="right")
            tone = {"better": GREEN, "worse": RED}.get(h.tone, INK)
            pages.text(cols[3] + 1.3, pages.y, h.delta or "—", size=10, color=tone, ha="right")
        pages.text(cols[3] + 1.5, pages.y, h.detail, size=8, color=MUTED)
        pages.y += 0.3


ExtraTable = tuple[str, Sequence[str], Sequence[Sequence[str]]]
"""(title, header, rows of text): a table a caller adds after the report's own (the centre's branches)."""


def monthly_pdf(
    s: Summary,
    before: Summary | None,
    lang: str,
    extra: Sequence[ExtraTable] = (),
    survey: Sequence[survey_month.SurveyRow] = (),
) -> bytes:
    """The printable monthly report (A4 landscape, vector charts)."""
    return charts.locked(lambda: _monthly_pdf(s, before, lang, extra, survey))


def _monthly_pdf(
    s: Summary,
    before: Summary | None,
    lang: str,
    extra: Sequence[ExtraTable] = (),
    survey: Sequence[survey_month.SurveyRow] = (),
) -> bytes:
    L = labels(lang)
    title = f"{L['month_summary']}: {month_name(s.date_from, lang)}"
    buf = io.BytesIO()
    meta = {"Title": f"{s.office} — {title}", "Creator": "Numerek", "CreationDate": None}
    with PdfPages(buf, metadata=meta) as pdf:
        pages = _Pages(pdf, f"Numerek — {s.office} — {title} — {L['page']}")
        pages.new()
        pages.text(MARGIN, pages.y, s.office, size=16, weight="bold", color=INK)
        pages.y += 0.35
        pages.text(MARGIN, pages.y, f"{title}  ({L.date(s.date_from)} – {L.date(s.date_to)})", size=12, color=INK)
        pages.y += 0.3
        if before is not None:
            span = f"{L['compared_with']}: {L.date(before.date_from)} – {L.date(before.date_to)}"
            if not before.totals.issued:
                span += f" — {L['compare_empty']}"
            pages.text(MARGIN, pages.y, span, size=9, color=MUTED)
        pages.y += 0.35
        compared = before is not None and before.totals.issued > 0
        heads = headlines(s.totals, before.totals if before else None, L)
        _headline_block(pages, heads, L, compared)
        pages.y += 0.1
        width = A4_LANDSCAPE[0] - 2 * MARGIN
        pages.chart("daily", s, lang, MARGIN, pages.y, width, pages.room())
        pages.new()
        half_w, half_h = width / 2, (A4_LANDSCAPE[1] - 2 * MARGIN) / 2
        for i, name in enumerate(("heatmap", "wait", "utilisation", "ratings")):
            pages.chart(name, s, lang, MARGIN + (i % 2) * half_w, MARGIN + (i // 2) * half_h, half_w, half_h)
        pages.finish()
        m = L.minutes
        pages.table(
            L["by_service"],
            [
                L["service"],
                L["issued"],
                L["served"],
                L["no_show"],
                f"{L['wait']} {L['mean']}",
                L["median"],
                L["p90"],
                L["within_target"],
                f"{L['service_time']} {L['mean']}",
                L["rating"],
            ],
            [
                [
                    r.name.get(lang, r.service),
                    L.number(r.issued, 0),
                    L.number(r.served, 0),
                    L.number(r.no_show, 0),
                    m(r.wait.mean_s),
                    m(r.wait.median_s),
                    m(r.wait.p90_s),
                    L.percent(r.wait.within_target_share),
                    m(r.service_time.mean_s),
                    L.number(r.rating.mean, 2),
                ]
                for r in s.by_service
            ],
        )
        staff_header = [L["served"], L["no_show"], L["open_h"], L["busy_h"], L["served_per_hour"], L["utilisation"]]
        for rows, title_, first in (
            (s.by_counter, L["by_counter"], L["counter"]),
            (s.by_clerk, L["by_clerk"], L["clerk"]),
        ):
            pages.table(
                title_,
                [first, *staff_header, L["rating"]],
                [
                    [
                        r.name if hasattr(r, "name") else r.clerk,
                        L.number(r.served, 0),
                        L.number(r.no_show, 0),
                        L.number(r.open_h, 2),
                        L.number(r.busy_h, 2),
                        L.number(r.served_per_hour, 2),
                        L.percent(r.utilisation, 0),
                        L.number(r.rating_mean, 2),
                    ]
                    for r in rows
                ],
            )
        if survey:
            t = survey_month.texts(lang)
            header = [t[k] for k in ("service", "answers", "overall", "wait", "courtesy", "settled")]
            pages.table(t["title"], header, _survey_cells(survey, s, L))
        for title_, header_, rows_ in extra:
            pages.table(title_, header_, rows_)
        pages.finish()
    return buf.getvalue()
