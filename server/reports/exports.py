"""Report tables for spreadsheets: plain CSV, Excel-ready CSV for a Polish office, and typed XLSX.

The numbers are the JSON API's (seconds, shares 0..1, hours), one column per figure:

* **plain CSV** (``.csv``): comma, UTF-8 without BOM, dot decimals, ISO dates, and column
  names that are stable English identifiers (the JSON keys joined with ``_``), so scripts
  built on an export keep working when the UI language changes;
* **Excel CSV** (``.csv?excel=1``): what Excel in a Polish office opens with a double click —
  ``;`` between fields, UTF-8 with a byte-order mark (without it Excel reads Polish letters
  as mojibake), column names in the chosen language, decimal comma, dates
  ``2026-11-02`` and times ``2026-11-02 09:15:00`` that Excel recognises;
* **XLSX**: real cell types — numbers as numbers, office days as dates, times as date-times
  in the office's zone, shares as percentages — with column names in the chosen language.

Spreadsheet formula injection (OWASP "CSV Injection"): text that people type — clerk ids,
counter and service names, the office's name — could start with ``=``, ``+``, ``-``, ``@``,
a tab or a carriage return and run as a formula when a manager opens the file. In both CSVs
such text gets a leading apostrophe (Excel and LibreOffice then show it as text); in XLSX
it is stored as a string cell with Excel's "quote prefix" style, never as a formula.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal

from server.reports.models import Summary

if TYPE_CHECKING:
    from openpyxl.worksheet._write_only import WriteOnlyWorksheet

TABLES = ("totals", "by_service", "by_counter", "by_clerk", "by_day", "heatmap", "tickets")
XLSX_MAX_ROWS = 1_048_000  # a worksheet holds 1,048,576 rows
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # OWASP: what a spreadsheet may take as a formula

Kind = Literal["text", "int", "seconds", "share", "hours", "number", "date", "datetime", "bool"]
# Number formats where Excel's "General" would mislead (a share shown as 0.8123); dates and
# date-times get openpyxl's own date formats. Other numbers stay "General": a styled cell
# costs openpyxl about twice a plain one.
XLSX_FORMATS: dict[str, str] = {"share": "0.0%", "hours": "0.00"}


class ExcelPolish(csv.excel):
    """The CSV dialect Excel uses in a Polish locale (list separator ``;``)."""

    delimiter = ";"


def neutralise(text: str) -> str:
    """OWASP's escape for spreadsheet formula injection: text a spreadsheet could take for a
    formula gets a leading apostrophe."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


@dataclass(frozen=True)
class Column:
    key: str  # the plain CSV's header and the JSON path joined with "_"
    pl: str
    en: str
    kind: Kind = "int"

    def label(self, lang: str) -> str:
        return self.en if lang == "en" else self.pl


def _stats(prefix: str, pl: str, en: str, with_max: bool, wait: bool) -> list[Column]:
    cols = [
        Column(f"{prefix}_n", f"{pl} – liczba", f"{en} – count"),
        Column(f"{prefix}_mean_s", f"{pl} – średnia [s]", f"{en} – mean [s]", "seconds"),
        Column(f"{prefix}_median_s", f"{pl} – mediana [s]", f"{en} – median [s]", "seconds"),
        Column(f"{prefix}_p90_s", f"{pl} – 90. percentyl [s]", f"{en} – 90th percentile [s]", "seconds"),
    ]
    if with_max:
        cols.append(Column(f"{prefix}_max_s", f"{pl} – maks. [s]", f"{en} – max [s]", "seconds"))
    if wait:
        cols += [
            Column(f"{prefix}_within_target", "W czasie docelowym – liczba", "Within target – count"),
            Column(f"{prefix}_within_target_share", "W czasie docelowym – udział", "Within target – share", "share"),
        ]
    return cols


BLOCK = [
    Column("issued", "Wydane bilety", "Tickets issued"),
    Column("served", "Obsłużeni", "Served"),
    Column("no_show", "Nieobecni", "No-shows"),
    Column("transferred", "Przekierowani", "Transferred"),
    Column("not_called", "Niewywołani", "Never called"),
    *_stats("wait", "Czas oczekiwania", "Wait", with_max=True, wait=True),
    *_stats("service_time", "Czas obsługi", "Service time", with_max=False, wait=False),
    Column("rating_n", "Oceny – liczba", "Ratings – count"),
    Column("rating_mean", "Ocena – średnia", "Rating – mean", "number"),
    *[Column(f"rating_counts_{k}", f"Oceny {k}", f"Ratings of {k}") for k in range(1, 6)],
]
STAFF = [
    Column("served", "Obsłużeni", "Served"),
    Column("no_show", "Nieobecni", "No-shows"),
    Column("open_h", "Godziny otwarcia", "Open hours", "hours"),
    Column("busy_h", "Godziny obsługi", "Busy hours", "hours"),
    Column("served_per_hour", "Obsłużeni na godzinę", "Served per hour", "number"),
    Column("utilisation", "Wykorzystanie", "Utilisation", "share"),
    Column("rating_n", "Oceny – liczba", "Ratings – count"),
    Column("rating_mean", "Ocena – średnia", "Rating – mean", "number"),
]
WEEKDAYS = {"pl": ("Pn", "Wt", "Śr", "Cz", "Pt", "So", "Nd"), "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")}
WEEKDAY_IDS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

COLUMNS: dict[str, list[Column]] = {
    "totals": [Column("figure", "Wskaźnik", "Figure", "text"), Column("value", "Wartość", "Value", "text")],
    "by_service": [
        Column("service", "Sprawa (id)", "Service (id)", "text"),
        Column("name_pl", "Sprawa", "Service (Polish)", "text"),
        Column("name_en", "Sprawa (ang.)", "Service", "text"),
        Column("target_wait_s", "Czas docelowy [s]", "Target wait [s]"),
        *BLOCK,
    ],
    "by_counter": [
        Column("counter", "Stanowisko (id)", "Counter (id)", "text"),
        Column("name", "Stanowisko", "Counter", "text"),
        *STAFF,
    ],
    "by_clerk": [Column("clerk", "Urzędnik", "Clerk", "text"), *STAFF],
    "by_day": [
        Column("day", "Dzień", "Day", "date"),
        Column("issued", "Wydane bilety", "Tickets issued"),
        Column("served", "Obsłużeni", "Served"),
        Column("no_show", "Nieobecni", "No-shows"),
        Column("wait_mean_s", "Czas oczekiwania – średnia [s]", "Wait – mean [s]", "seconds"),
        Column("within_target_share", "W czasie docelowym – udział", "Within target – share", "share"),
    ],
    "heatmap": [
        Column("weekday", "Dzień tygodnia", "Weekday", "text"),
        *[Column(f"h{h:02d}", f"godz. {h}", f"{h}:00") for h in range(24)],
        Column("days", "Dni z biletami", "Days with tickets"),
    ],
    "tickets": [
        Column("day", "Dzień", "Day", "date"),
        Column("number", "Numer", "Number", "text"),
        Column("issued_service", "Sprawa przy wydaniu", "Service issued for", "text"),
        Column("service", "Sprawa", "Service", "text"),
        Column("priority", "Pierwszeństwo", "Priority", "bool"),
        Column("status", "Stan", "Status", "text"),
        Column("issued_at", "Wydany", "Issued at", "datetime"),
        Column("first_called_at", "Pierwsze wywołanie", "First called at", "datetime"),
        Column("started_at", "Początek obsługi", "Service started at", "datetime"),
        Column("finished_at", "Koniec obsługi", "Finished at", "datetime"),
        Column("wait_s", "Czas oczekiwania [s]", "Wait [s]", "seconds"),
        Column("service_s", "Czas obsługi [s]", "Service time [s]", "seconds"),
        Column("counter", "Stanowisko", "Counter", "text"),
        Column("clerk", "Urzędnik", "Clerk", "text"),
        Column("recalls", "Ponowne wywołania", "Recalls"),
        Column("transfers", "Przekierowania", "Transfers"),
        Column("estimated_wait_s", "Szacowany czas oczekiwania [s]", "Estimated wait [s]"),
        Column("rating", "Ocena", "Rating"),
    ],
}
FILTER_COLUMNS = [
    Column("filter_from", "Filtr: od", "Filter: from", "date"),
    Column("filter_to", "Filtr: do", "Filter: to", "date"),
    Column("filter_service", "Filtr: sprawa", "Filter: service", "text"),
    Column("filter_counter", "Filtr: stanowisko", "Filter: counter", "text"),
    Column("filter_clerk", "Filtr: urzędnik", "Filter: clerk", "text"),
]


def _flat(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}_{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


def flatten(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in row.items():
        if k == "name" and isinstance(v, dict):
            out["name_pl"], out["name_en"] = v.get("pl"), v.get("en")
        else:
            _flat(k, v, out)
    return out


def _figure_label(key: str, lang: str) -> str:
    return next((c.label(lang) for c in (*FILTER_COLUMNS, *BLOCK) if c.key == key), key)


def _weekday_label(key: str, lang: str) -> str:
    return WEEKDAYS["en" if lang == "en" else "pl"][WEEKDAY_IDS.index(key)]


@dataclass
class Table:
    """One table ready to write: columns, then rows of plain Python values (dates as dates).

    ``row_kinds``: for a table whose values' kind changes by row (the totals: every column but the first);
    ``row_label``: how a labelled export (Excel CSV, XLSX) names the first column's ids."""

    name: str
    columns: list[Column]
    rows: Iterable[Sequence[Any]]
    row_kinds: list[Kind] | None = None
    row_label: Callable[[str, str], str] | None = None

    def typed_rows(self, lang: str | None) -> Iterator[tuple[Sequence[Any], list[Kind]]]:
        """Rows with their kinds; the first column named in ``lang`` (None: ids) when the table has a ``row_label``."""
        kinds = [c.kind for c in self.columns]
        for i, row in enumerate(self.rows):
            if self.row_label is not None and lang is not None:
                row = [self.row_label(row[0], lang), *row[1:]]
            yield row, kinds if self.row_kinds is None else [kinds[0]] + [self.row_kinds[i]] * (len(kinds) - 1)


def table(name: str, s: Summary, lang: str = "pl") -> Table:
    """Header and rows of one report table (all but ``tickets``)."""
    cols = COLUMNS[name]
    if name == "totals":
        figures = [*FILTER_COLUMNS, *BLOCK]
        flat = flatten({f"filter_{k}": v for k, v in s.filters.items()}) | flatten(s.totals.model_dump())
        flat["filter_from"], flat["filter_to"] = s.date_from, s.date_to
        return Table(name, cols, [[c.key, flat[c.key]] for c in figures], [c.kind for c in figures], _figure_label)
    if name == "heatmap":
        heat = s.arrivals_heatmap
        cells = [[WEEKDAY_IDS[i], *row, heat.days[i]] for i, row in enumerate(heat.counts)]
        return Table(name, cols, cells, row_label=_weekday_label)
    flat_rows = [flatten(r.model_dump()) for r in getattr(s, name)]
    return Table(name, cols, [[r.get(c.key) for c in cols] for r in flat_rows])


def raw_table(rows: Iterable[tuple[Any, ...]]) -> Table:
    return Table("tickets", COLUMNS["tickets"], rows)


# ---------------------------------------------------------------------- CSV


def _plain(value: Any, kind: Kind) -> Any:
    if value is None:
        return ""
    if isinstance(value, str):
        return neutralise(value)
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _excel(lang: str) -> Callable[[Any, Kind], Any]:
    yes, no = ("tak", "nie") if lang == "pl" else ("yes", "no")
    comma = lang == "pl"

    def cell(value: Any, kind: Kind) -> Any:
        if value is None:
            return ""
        if isinstance(value, bool):
            return yes if value else no
        if isinstance(value, str):
            return neutralise(value)
        if isinstance(value, datetime):
            return value.strftime("%Y-%m-%d %H:%M:%S")  # local time, no zone: what Excel parses
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, float):
            return repr(value).replace(".", ",") if comma else repr(value)
        return value

    return cell


def csv_stream(t: Table, excel: bool = False, lang: str = "pl") -> Iterator[str]:
    """The table as CSV text in pieces (a raw-ticket export of a year is streamed).

    ``excel``: the Polish Excel dialect with a BOM, labelled columns and decimal commas."""
    buf = io.StringIO()
    if excel:
        buf.write("\ufeff")
        w = csv.writer(buf, dialect=ExcelPolish)
        w.writerow([c.label(lang) for c in t.columns])
        convert = _excel(lang)
        rows = t.typed_rows(lang)
    else:
        w = csv.writer(buf)
        w.writerow([c.key for c in t.columns])
        convert = _plain
        rows = t.typed_rows(None)
    for i, (row, kinds) in enumerate(rows, 1):
        w.writerow([convert(v, k) for v, k in zip(row, kinds, strict=True)])
        if i % 2000 == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


# ---------------------------------------------------------------------- XLSX


class _Cells:
    """Typed cells for a write-only sheet: one styled template per kind, copied per cell."""

    def __init__(self, ws: WriteOnlyWorksheet) -> None:
        from openpyxl.cell import WriteOnlyCell

        self.ws = ws
        self.formats = XLSX_FORMATS
        self.cell = WriteOnlyCell

    def text(self, value: str) -> Any:
        if not value.startswith(FORMULA_STARTS):
            return value  # openpyxl writes plain text as an inline string
        cell = self.cell(self.ws, value)
        cell.data_type = "s"  # never a formula, whatever it starts with
        cell.quotePrefix = True  # Excel's own mark for "typed as text"
        return cell

    def value(self, value: Any, kind: Kind) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, bool):
            return value
        if isinstance(value, datetime):
            # Excel has no zones: the office's local time. openpyxl gives a date or date-time
            # its date format itself (yyyy-mm-dd, yyyy-mm-dd h:mm:ss), cheaper than a styled cell.
            return value.replace(tzinfo=None)
        if isinstance(value, date):
            return value
        fmt = self.formats.get(kind)
        if fmt is None:
            return value
        cell = self.cell(self.ws, value)
        cell.number_format = fmt
        return cell


def xlsx(tables: list[Table], lang: str = "pl") -> bytes:
    """A workbook with one sheet per table (write-only mode: flat memory for big sheets).

    openpyxl is imported here, on the first export: it is a fifth of the server's start-up
    imports (0.15 s on a Pi-class core), and most servers never write a spreadsheet."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    wb = Workbook(write_only=True)
    bold = Font(bold=True)
    for t in tables:
        ws = wb.create_sheet(t.name[:31])
        ws.freeze_panes = "A2"
        for i, c in enumerate(t.columns):
            ws.column_dimensions[get_column_letter(i + 1)].width = max(10, min(40, len(c.label(lang)) + 2))
        cells = _Cells(ws)
        header = []
        for c in t.columns:
            h = WriteOnlyCell(ws, c.label(lang))
            h.font = bold
            header.append(h)
        ws.append(header)
        for i, (row, kinds) in enumerate(t.typed_rows(lang)):
            if i >= XLSX_MAX_ROWS:
                raise OverflowError("too many rows for one worksheet; export CSV or choose a shorter period")
            ws.append([cells.value(v, k) for v, k in zip(row, kinds, strict=True)])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


COMPARISON_COLUMNS = [
    Column("figure", "Wskaźnik", "Figure", "text"),
    Column("value", "Wartość", "Value", "number"),
    Column("previous", "Okres porównawczy", "Comparison period", "number"),
    Column("change", "Zmiana", "Change", "number"),
]


def comparison_table(now: Summary, before: Summary | None) -> Table:
    """Each headline figure of ``now`` beside the comparison period's and the change (a share's
    change is in percentage points, shown as a percentage)."""
    a = flatten(now.totals.model_dump())
    b = flatten(before.totals.model_dump()) if before is not None else {}
    rows = []
    for c in BLOCK:
        v, p = a.get(c.key), b.get(c.key)
        change = v - p if isinstance(v, int | float) and isinstance(p, int | float) else None
        rows.append([c.key, v, p, change])
    return Table("comparison", COMPARISON_COLUMNS, rows, [c.kind for c in BLOCK], _figure_label)
