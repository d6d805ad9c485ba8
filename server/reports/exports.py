"""Report tables as rows, for CSV and XLSX. The numbers are the JSON API's, flattened.

Column names are stable English identifiers (the same as the JSON keys, joined with
``_``), so a spreadsheet built on an export keeps working when the UI language changes.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

from openpyxl import Workbook

TABLES = ("totals", "by_service", "by_counter", "by_clerk", "by_day", "heatmap", "tickets")
XLSX_MAX_ROWS = 1_048_000  # a worksheet holds 1,048,576 rows


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


def table(name: str, summary: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of one report table (all but ``tickets``)."""
    if name == "totals":
        flat = flatten(summary["totals"])
        filters = {f"filter_{k}": v for k, v in summary["filters"].items()}
        return ["figure", "value"], [[k, v] for k, v in {**filters, **flat}.items()]
    if name == "heatmap":
        counts = summary["arrivals_heatmap"]["counts"]
        days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
        return ["weekday", *[f"h{h:02d}" for h in range(24)]], [[days[i], *row] for i, row in enumerate(counts)]
    rows = [flatten(r) for r in summary[name]]
    header: list[str] = []
    for r in rows:
        header += [k for k in r if k not in header]
    return header, [[r.get(k) for k in header] for r in rows]


def csv_stream(header: list[str], rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    for i, row in enumerate(rows, 1):
        w.writerow(["" if v is None else v for v in row])
        if i % 2000 == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def xlsx(sheets: list[tuple[str, list[str], Iterable[Iterable[Any]]]]) -> bytes:
    """A workbook with one sheet per table (write-only mode: flat memory for big sheets)."""
    wb = Workbook(write_only=True)
    for title, header, rows in sheets:
        ws = wb.create_sheet(title[:31])
        ws.append(header)
        for i, row in enumerate(rows):
            if i >= XLSX_MAX_ROWS:
                raise OverflowError("too many rows for one worksheet; export CSV or choose a shorter period")
            ws.append(list(row))
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
