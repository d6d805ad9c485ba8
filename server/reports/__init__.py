"""Manager reports: figures (docs/reports.md), dashboard, live view, JSON API, exports, monthly PDF."""

from server.reports.web import build_reports_router, mount

__all__ = ["build_reports_router", "mount"]
