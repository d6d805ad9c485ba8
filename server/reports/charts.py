"""Charts for the dashboard (SVG) and the monthly report (PDF), drawn with matplotlib.

Why matplotlib on the server: the office LAN has no internet, so a chart library from a
CDN is out; matplotlib draws SVG for the browser and the very same drawing, as vectors,
into the PDF, with DejaVu Sans (shipped with it) covering Polish letters. Nothing to vendor
or update in the browser, and the charts print sharply.

Why a fixed layout instead of matplotlib's "constrained" one: the constrained layout
measures every text several times and was about 40 % of a chart's drawing time. Each chart
here has a title line, then a legend line, then the plot, with margins in inches; a legend
therefore never sits on the data (tests/test_reports_charts.py checks the boxes).

Drawn charts are kept by :class:`server.reports.cache.RenderCache` (why: see there).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure, SubFigure  # noqa: E402

from server.reports.i18n import fmt_date_short, labels  # noqa: E402
from server.reports.models import Summary  # noqa: E402

CHARTS = ("heatmap", "daily", "wait", "utilisation", "ratings")
BLUE, ORANGE, GREY, RED, LIGHT_BLUE = "#1f5fa8", "#e08a1e", "#9aa3ad", "#c0392b", "#5b9bd5"
SIZE_IN = (7.5, 3.4)  # one dashboard chart (750 × 340 px at 100 dpi)
plt.rcParams.update(
    {
        "font.family": "DejaVu Sans",
        "font.size": 9,
        "svg.fonttype": "none",  # text stays text: searchable, sharp, small
        "pdf.fonttype": 42,  # TrueType in the PDF: copyable Polish text
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
)
# matplotlib is not thread-safe: one drawing at a time (a Pi has no spare core to draw two anyway).
_DRAWING = threading.Lock()

Canvas = Figure | SubFigure


def _size_in(fig: Canvas) -> tuple[float, float]:
    box = fig.bbox
    dpi = fig.figure.dpi if isinstance(fig, SubFigure) else fig.dpi
    return box.width / dpi, box.height / dpi


def _frame(fig: Canvas, title: str, left: float, bottom: float, right: float = 0.25) -> Axes:
    """Title line, legend line, then the plot: margins in inches, so the layout holds at any size."""
    w, h = _size_in(fig)
    fig.text(0.1 / w, 1 - 0.08 / h, title, ha="left", va="top", fontsize=10, weight="bold")
    top = 0.62  # title (0.08–0.3 in) and legend line (0.3–0.55 in) above the plot
    return fig.add_axes((left / w, bottom / h, 1 - (left + right) / w, 1 - (top + bottom) / h))


def _legend(fig: Canvas, ax: Axes, handles: list[Any] | None = None, labels_: list[str] | None = None) -> None:
    """The legend on its own line between the title and the plot: it never covers data."""
    h, lab = ax.get_legend_handles_labels()
    if handles is not None and labels_ is not None:
        h, lab = handles, labels_
    if not h:
        return
    w, hh = _size_in(fig)
    fig.legend(
        h,
        lab,
        loc="upper left",
        bbox_to_anchor=(0.1 / w, 1 - 0.3 / hh),
        ncols=len(h),
        fontsize=8,
        frameon=False,
        borderaxespad=0,
        handlelength=1.5,
    )


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color=GREY)
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ("left", "bottom"):
        ax.spines[side].set_visible(False)


def _heatmap(fig: Canvas, s: Summary, lang: str) -> None:
    L = labels(lang)
    heat = s.arrivals_heatmap
    title = L["heatmap_title"].format(start=fmt_date_short(s.date_from, lang), end=fmt_date_short(s.date_to, lang))
    ax = _frame(fig, title, left=0.75, bottom=0.45)
    counts = heat.counts
    hours = [h for h in range(24) if any(row[h] for row in counts)] or list(range(7, 18))
    lo, hi = min(hours), max(hours) + 1
    data = [row[lo:hi] for row in counts]
    big = max(max(r) for r in data) or 1
    # pcolormesh, not imshow: cells are vectors in SVG and PDF; each cell has its figure, so no colour bar
    ax.pcolormesh(data, cmap="YlOrRd", vmin=0, vmax=big, edgecolors="white", linewidth=0.5)
    ax.invert_yaxis()
    days = L["weekdays"].split()
    ax.set_yticks([i + 0.5 for i in range(7)], [f"{d} ({n})" for d, n in zip(days, heat.days, strict=True)])
    ax.set_xticks([i + 0.5 for i in range(hi - lo)], [str(h) for h in range(lo, hi)])
    ax.set_xlabel(L["hour_local"])
    ax.tick_params(length=0)
    for side in ("left", "bottom"):
        ax.spines[side].set_visible(False)
    for y, row in enumerate(data):
        for x, v in enumerate(row):
            if v:
                ax.text(
                    x + 0.5,
                    y + 0.5,
                    str(v),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if v > big * 0.6 else "black",
                )
    w, h = _size_in(fig)
    fig.text(0.1 / w, 1 - 0.32 / h, L["heatmap_note"], ha="left", va="top", fontsize=8, color="#404a55")


def _daily(fig: Canvas, s: Summary, lang: str) -> None:
    L = labels(lang)
    ax = _frame(fig, L["daily"], left=0.55, bottom=0.6, right=0.7)
    rows = s.by_day
    if not rows:
        _empty(ax, L["no_data"])
        return
    x = list(range(len(rows)))
    issued, served = [r.issued for r in rows], [r.served for r in rows]
    if len(rows) <= 62:
        ax.bar([i - 0.2 for i in x], issued, 0.4, color=GREY, label=L["issued"])
        ax.bar([i + 0.2 for i in x], served, 0.4, color=BLUE, label=L["served"])
    else:  # hundreds of bars: one filled area and one line draw many times faster
        ax.fill_between(x, issued, step="mid", color=GREY, label=L["issued"])
        ax.step(x, served, where="mid", color=BLUE, lw=0.8, label=L["served"])
    step = max(1, len(rows) // 15)
    ax.set_xticks(x[::step], [fmt_date_short(r.day, lang) for r in rows][::step], rotation=45, ha="right")
    ax.set_ylabel(L["tickets"])
    ax2 = ax.twinx()
    ax2.plot(x, [(r.wait_mean_s or 0) / 60 for r in rows], color=ORANGE, marker="o", ms=3, label=L["wait_mean_min"])
    ax2.set_ylabel(f"{L['wait']} [{L['min']}]")
    ax2.set_ylim(bottom=0)
    ax2.spines["top"].set_visible(False)
    ax2.spines["right"].set_visible(True)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    _legend(fig, ax, h1 + h2, l1 + l2)


def _wait(fig: Canvas, s: Summary, lang: str) -> None:
    L = labels(lang)
    rows = [r for r in s.by_service if r.wait.n]
    ax = _frame(fig, L["wait_by_service"], left=1.9, bottom=0.45)
    if not rows:
        _empty(ax, L["no_data"])
        return
    y = range(len(rows))
    ax.barh([i - 0.2 for i in y], [(r.wait.median_s or 0) / 60 for r in rows], 0.4, color=BLUE, label=L["median"])
    ax.barh([i + 0.2 for i in y], [(r.wait.p90_s or 0) / 60 for r in rows], 0.4, color=ORANGE, label=L["p90"])
    for i, r in enumerate(rows):
        ax.plot(
            [r.target_wait_s / 60] * 2, [i - 0.45, i + 0.45], color=RED, lw=2, label=L["target"] if i == 0 else None
        )
    ax.set_yticks(list(y), [r.name.get(lang, r.service) for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel(L["min"])
    handles, names = ax.get_legend_handles_labels()
    order = [names.index(n) for n in (L["median"], L["p90"], L["target"])]
    _legend(fig, ax, [handles[i] for i in order], [names[i] for i in order])


def _utilisation(fig: Canvas, s: Summary, lang: str) -> None:
    L = labels(lang)
    rows = [r for r in s.by_counter if r.utilisation is not None]
    few = len(rows) <= 20  # a big office: short labels, no figures on the bars (text is slow to draw)
    ax = _frame(fig, L["util_by_counter"], left=0.55, bottom=0.85 if few else 0.5)
    if not rows:
        _empty(ax, L["no_data"])
        return
    values = [(r.utilisation or 0) * 100 for r in rows]
    ax.bar(range(len(rows)), values, color=BLUE)
    ax.set_xticks(
        range(len(rows)),
        [r.name if few else r.counter for r in rows],
        rotation=30 if few else 90,
        ha="right" if few else "center",
        fontsize=8 if few else 6,
    )
    ax.set_ylim(0, 110)
    ax.set_yticks(range(0, 101, 25))
    ax.set_ylabel("%")
    for i, v in enumerate(values if few else ()):
        ax.text(i, v + 2, f"{v:.0f}%", ha="center", fontsize=7)


def _ratings(fig: Canvas, s: Summary, lang: str) -> None:
    L = labels(lang)
    r = s.totals.rating
    title = L["rating_dist"]
    if r.n and r.mean is not None:
        title = f"{title} — {L['mean']} {L.number(r.mean, 2)} ({r.n} {L['ratings']})"
    ax = _frame(fig, title, left=0.55, bottom=0.45)
    if not r.n:
        _empty(ax, L["no_data"])
        return
    ax.bar(list(r.counts), list(r.counts.values()), color=[RED, ORANGE, GREY, LIGHT_BLUE, BLUE])
    ax.set_xlabel(L["grade"])


DRAW: dict[str, Callable[[Canvas, Summary, str], None]] = {
    "heatmap": _heatmap,
    "daily": _daily,
    "wait": _wait,
    "utilisation": _utilisation,
    "ratings": _ratings,
}


def draw(fig: Canvas, name: str, s: Summary, lang: str) -> None:
    """Draw one chart of a summary onto a figure (the dashboard's) or a sub-figure (a PDF page's)."""
    DRAW[name](fig, s, lang)


def figure(name: str, s: Summary, lang: str) -> Figure:
    """One chart as a matplotlib figure of the dashboard's size."""
    if name not in DRAW:
        raise KeyError(name)
    fig = Figure(figsize=SIZE_IN, dpi=100)
    draw(fig, name, s, lang)
    return fig


def svg(name: str, s: Summary, lang: str) -> bytes:
    buf = io.BytesIO()
    with _DRAWING:
        figure(name, s, lang).savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()


def locked(render: Callable[[], Any]) -> Any:
    """Run a drawing function under the matplotlib lock (the monthly PDF)."""
    with _DRAWING:
        return render()
