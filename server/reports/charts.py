"""Charts for the dashboard (SVG) and the monthly summary (PDF), drawn with matplotlib.

Why matplotlib on the server: the office LAN has no internet, so a chart library from a
CDN is out; matplotlib draws SVG for the browser and the very same figures into the PDF,
with DejaVu Sans (shipped with it) covering Polish letters. Nothing to vendor or update
in the browser, and the charts print well.
"""

from __future__ import annotations

import io
from datetime import date
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from server.reports.i18n import labels  # noqa: E402

CHARTS = ("heatmap", "daily", "wait", "utilisation", "ratings")
BLUE, ORANGE, GREY, RED = "#1f5fa8", "#e08a1e", "#9aa3ad", "#c0392b"
plt.rcParams.update(
    {
        "font.family": "DejaVu Sans",
        "font.size": 9,
        "svg.fonttype": "none",
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
)


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color=GREY)
    ax.set_xticks([])
    ax.set_yticks([])


def figure(name: str, s: dict[str, Any], lang: str) -> Figure:
    """One chart of a summary (:meth:`ReportData.summary`) as a matplotlib figure."""
    L = labels(lang)
    fig = Figure(figsize=(7.5, 3.2), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    if name == "heatmap":
        counts = s["arrivals_heatmap"]["counts"]
        hours = [h for h in range(24) if any(row[h] for row in counts)] or list(range(7, 18))
        lo, hi = min(hours), max(hours) + 1
        data = [row[lo:hi] for row in counts]
        im = ax.imshow(data, aspect="auto", cmap="YlOrRd")
        ax.set_yticks(range(7), L["weekdays"].split())
        ax.set_xticks(range(hi - lo), [str(h) for h in range(lo, hi)])
        ax.set_xlabel(L["hour"])
        big = max(max(r) for r in data) if data else 0
        for y, row in enumerate(data):
            for x, v in enumerate(row):
                if v:
                    ax.text(
                        x, y, str(v), ha="center", va="center", fontsize=7, color="white" if v > big * 0.6 else "black"
                    )
        fig.colorbar(im, ax=ax, shrink=0.8)
        ax.set_title(L["heatmap"])
    elif name == "daily":
        rows = s["by_day"]
        if not rows:
            _empty(ax, L["no_data"])
        else:
            days = [date.fromisoformat(r["day"]) for r in rows]
            x = range(len(days))
            if len(days) <= 62:
                ax.bar([i - 0.2 for i in x], [r["issued"] for r in rows], 0.4, color=GREY, label=L["issued"])
                ax.bar([i + 0.2 for i in x], [r["served"] for r in rows], 0.4, color=BLUE, label=L["served"])
            else:  # hundreds of bars: one filled area and one line draw many times faster
                ax.fill_between(list(x), [r["issued"] for r in rows], step="mid", color=GREY, label=L["issued"])
                ax.step(list(x), [r["served"] for r in rows], where="mid", color=BLUE, lw=0.8, label=L["served"])
            step = max(1, len(days) // 15)
            ax.set_xticks(list(x)[::step], [d.strftime("%d.%m") for d in days][::step], rotation=45)
            ax2 = ax.twinx()
            ax2.plot(
                list(x),
                [(r["wait_mean_s"] or 0) / 60 for r in rows],
                color=ORANGE,
                marker="o",
                ms=3,
                label=f"{L['wait']} ({L['mean']}, {L['min']})",
            )
            ax2.set_ylabel(f"{L['wait']} [{L['min']}]")
            ax2.spines["top"].set_visible(False)
            h1, l1 = ax.get_legend_handles_labels()
            h2, l2 = ax2.get_legend_handles_labels()
            ax.legend(h1 + h2, l1 + l2, loc="upper left", fontsize=7, frameon=False)
        ax.set_title(L["daily"])
    elif name == "wait":
        rows = [r for r in s["by_service"] if r["wait"]["n"]]
        if not rows:
            _empty(ax, L["no_data"])
        else:
            names = [r["name"].get(lang, r["service"]) for r in rows]
            y = range(len(rows))
            ax.barh(
                [i + 0.2 for i in y], [r["wait"]["median_s"] / 60 for r in rows], 0.4, color=BLUE, label=L["median"]
            )
            ax.barh([i - 0.2 for i in y], [r["wait"]["p90_s"] / 60 for r in rows], 0.4, color=ORANGE, label=L["p90"])
            for i, r in enumerate(rows):
                ax.plot(
                    [r["target_wait_s"] / 60] * 2,
                    [i - 0.45, i + 0.45],
                    color=RED,
                    lw=2,
                    label=L["target"] if i == 0 else None,
                )
            ax.set_yticks(list(y), names)
            ax.invert_yaxis()
            ax.set_xlabel(L["min"])
            ax.legend(fontsize=7, frameon=False, loc="lower right")
        ax.set_title(L["wait_by_service"])
    elif name == "utilisation":
        rows = [r for r in s["by_counter"] if r["utilisation"] is not None]
        if not rows:
            _empty(ax, L["no_data"])
        else:
            few = len(rows) <= 20  # a big office: short labels, no figures on the bars (text is slow to draw)
            ax.bar(range(len(rows)), [r["utilisation"] * 100 for r in rows], color=BLUE)
            ax.set_xticks(
                range(len(rows)),
                [r["name"] if few else r["counter"] for r in rows],
                rotation=30 if few else 90,
                fontsize=9 if few else 6,
            )
            ax.set_ylim(0, 100)
            ax.set_ylabel("%")
            for i, r in enumerate(rows if few else ()):
                ax.text(i, r["utilisation"] * 100 + 2, f"{r['utilisation'] * 100:.0f}%", ha="center", fontsize=7)
        ax.set_title(L["util_by_counter"])
    elif name == "ratings":
        counts = s["totals"]["rating"]["counts"]
        if not sum(counts.values()):
            _empty(ax, L["no_data"])
        else:
            ax.bar(list(counts), list(counts.values()), color=[RED, ORANGE, GREY, "#5b9bd5", BLUE])
            mean = s["totals"]["rating"]["mean"]
            ax.set_title(f"{L['rating_dist']} — {L['mean']} {mean:.2f} ({s['totals']['rating']['n']} {L['ratings']})")
        if not sum(counts.values()):
            ax.set_title(L["rating_dist"])
    else:
        raise KeyError(name)
    return fig


def svg(name: str, s: dict[str, Any], lang: str) -> bytes:
    buf = io.BytesIO()
    figure(name, s, lang).savefig(buf, format="svg")
    return buf.getvalue()


def _fmt_min(v: float | None) -> str:
    return "—" if v is None else f"{v / 60:.1f}"


def _table_page(pdf: PdfPages, title: str, header: list[str], rows: list[list[str]]) -> None:
    fig = Figure(figsize=(11.69, 8.27))
    ax = fig.add_subplot()
    ax.axis("off")
    ax.set_title(title, loc="left", fontsize=13)
    if rows:
        import textwrap

        wrapped = ["\n".join(textwrap.wrap(str(h), 14)) for h in header]
        widths = [0.2] + [0.8 / (len(header) - 1)] * (len(header) - 1)
        t = ax.table(
            cellText=rows, colLabels=wrapped, colWidths=widths, loc="upper left", cellLoc="right", colLoc="center"
        )
        t.auto_set_font_size(False)
        t.set_fontsize(8)
        t.scale(1, 1.4)
        for (row, col), cell in t.get_celld().items():
            if row == 0:
                cell.set_height(cell.get_height() * 2.2)
            elif col == 0:
                cell.set_text_props(ha="left")
    pdf.savefig(fig)


def monthly_pdf(s: dict[str, Any], lang: str, month_label: str) -> bytes:
    """The printable monthly summary: headline figures, charts, and the per-service/counter/clerk tables."""
    L = labels(lang)
    buf = io.BytesIO()
    with PdfPages(buf, metadata={"Title": f"{L['month_summary']} {month_label}", "Creator": "Numerek"}) as pdf:
        t = s["totals"]
        fig = Figure(figsize=(11.69, 8.27))
        fig.text(0.05, 0.93, f"{s['office']}", fontsize=16, weight="bold")
        fig.text(
            0.05,
            0.89,
            f"{L['month_summary']}: {month_label}  ({s['filters']['from']} – {s['filters']['to']})",
            fontsize=12,
        )
        w, st = t["wait"], t["service_time"]
        share = w["within_target_share"]
        lines = [
            f"{L['issued']}: {t['issued']}    {L['served']}: {t['served']}    {L['no_show']}: {t['no_show']}    "
            f"{L['transferred']}: {t['transferred']}",
            f"{L['wait']} [{L['min']}]: {L['mean']} {_fmt_min(w['mean_s'])}, {L['median']} {_fmt_min(w['median_s'])}, "
            f"{L['p90']} {_fmt_min(w['p90_s'])}, {L['max']} {_fmt_min(w['max_s'])}",
            f"{L['within_target']}: {'—' if share is None else f'{share * 100:.1f}%'}",
            f"{L['service_time']} [{L['min']}]: {L['mean']} {_fmt_min(st['mean_s'])}, "
            f"{L['median']} {_fmt_min(st['median_s'])}, {L['p90']} {_fmt_min(st['p90_s'])}",
            f"{L['satisfaction']}: {t['rating']['mean'] if t['rating']['mean'] is not None else '—'} "
            f"({t['rating']['n']} {L['ratings']})",
        ]
        for i, line in enumerate(lines):
            fig.text(0.05, 0.82 - i * 0.04, line, fontsize=11)
        sub = figure("daily", s, lang)
        img = io.BytesIO()
        sub.savefig(img, format="png", dpi=110)
        img.seek(0)
        ax = fig.add_axes((0.05, 0.03, 0.9, 0.55))
        ax.imshow(plt.imread(img))
        ax.axis("off")
        pdf.savefig(fig)
        page = Figure(figsize=(11.69, 8.27))
        for i, name in enumerate(("heatmap", "wait", "utilisation", "ratings")):
            img = io.BytesIO()
            figure(name, s, lang).savefig(img, format="png", dpi=110)
            img.seek(0)
            a = page.add_subplot(2, 2, i + 1)
            a.imshow(plt.imread(img))
            a.axis("off")
        page.subplots_adjust(0.02, 0.02, 0.98, 0.98, 0.05, 0.05)
        pdf.savefig(page)
        _table_page(
            pdf,
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
                    r["name"].get(lang, r["service"]),
                    r["issued"],
                    r["served"],
                    r["no_show"],
                    _fmt_min(r["wait"]["mean_s"]),
                    _fmt_min(r["wait"]["median_s"]),
                    _fmt_min(r["wait"]["p90_s"]),
                    "—"
                    if r["wait"]["within_target_share"] is None
                    else f"{r['wait']['within_target_share'] * 100:.1f}%",
                    _fmt_min(r["service_time"]["mean_s"]),
                    r["rating"]["mean"] or "—",
                ]
                for r in s["by_service"]
            ],
        )
        for key, title in (("by_counter", L["by_counter"]), ("by_clerk", L["by_clerk"])):
            ident = "name" if key == "by_counter" else "clerk"
            _table_page(
                pdf,
                title,
                [
                    L["counter"] if key == "by_counter" else L["clerk"],
                    L["served"],
                    L["no_show"],
                    L["open_h"],
                    L["busy_h"],
                    L["served_per_hour"],
                    L["utilisation"],
                    L["rating"],
                ],
                [
                    [
                        r[ident],
                        r["served"],
                        r["no_show"],
                        r["open_h"],
                        r["busy_h"],
                        r["served_per_hour"] or "—",
                        "—" if r["utilisation"] is None else f"{r['utilisation'] * 100:.0f}%",
                        r["rating_mean"] or "—",
                    ]
                    for r in s[key][:40]
                ],
            )
    return buf.getvalue()
