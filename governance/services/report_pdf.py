"""The record-keeping report's PDF layout: its columns, how a row's values fit a cell, and
the summary table. ``services.reports.report_pdf`` draws the page with them; they live
apart so the report module stays about which requests a report holds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fpdf.enums import XPos, YPos

from governance.pdf import pdf_text

if TYPE_CHECKING:
    from fpdf import FPDF

    from governance.services.reports import ReportRow

# PDF columns: (field, heading, width in mm); the widths fill landscape A4 inside 10 mm
# margins (277 mm). Long values wrap inside their cell.
PDF_COLUMNS = (
    ("request_id", "Request", 13),
    ("subject_ref", "Subject", 30),
    ("channel", "Channel", 14),
    ("status", "Status", 17),
    ("received_at", "Received", 20),
    ("deadline", "Deadline", 20),
    ("completed_at", "Answered", 20),
    ("outcome", "Outcome", 22),
    ("records_erased", "Records erased", 14),
    ("reviewer", "Reviewer", 24),
    ("certificate_id", "Certificate", 29),
    ("days_to_complete", "Days", 10),
    ("notes", "Decision note / extension reason", 44),
)
# A cell taller than a page cannot be drawn; the CSV and JSON carry the full text.
PDF_CELL_LIMIT = 300
SUMMARY_LABELS = {
    "total": "Requests received in the period",
    "open": "Still open",
    "overdue_open": "Open and past their deadline",
    "extended": "Deadline extended",
    "answered": "Answered (completed or rejected)",
    "within_deadline_pct": "Answered within the deadline (%)",
    "median_days_to_complete": "Median days to answer",
    "p95_days_to_complete": "95th percentile days to answer",
    "mean_days_to_complete": "Mean days to answer",
    "records_erased": "Records erased",
}


def pdf_summary(pdf: FPDF, summary: dict[str, Any]) -> None:
    """The summary as a two-column table of labels and values."""
    pdf.ln(2)
    pdf.set_font("helvetica", "B", 11)
    pdf.cell(0, 7, "Summary", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("helvetica", size=8)
    by_status = ", ".join(f"{k} {v}" for k, v in summary["by_status"].items() if v) or "-"
    by_outcome = ", ".join(f"{k} {v}" for k, v in summary["by_outcome"].items() if v) or "-"
    lines = [(label, _text(summary[key])) for key, label in SUMMARY_LABELS.items()]
    lines += [("By status", by_status), ("By outcome", by_outcome)]
    layout = {"align": "LEFT", "text_align": "LEFT", "line_height": 4, "padding": 1}
    with pdf.table(col_widths=(70, 90), width=160, first_row_as_headings=False, **layout) as table:
        for label, value in lines:
            cells = table.row()
            cells.cell(label)
            cells.cell(pdf_text(value))


def pdf_value(row: ReportRow, key: str) -> str:
    """What the cell of column ``key`` shows for ``row``: short times, both notes, cut."""
    if key == "notes":
        parts = [row.decision_note]
        if row.extension_reason:
            parts.append(f"Extended: {row.extension_reason}")
        text = "\n".join(p for p in parts if p)
    elif key == "deadline":
        text = _short_time(row.deadline) + (" (extended)" if row.extended_due_at else "")
    else:
        value = getattr(row, key)
        text = _short_time(value) if isinstance(value, datetime) else _text(value)
    if len(text) > PDF_CELL_LIMIT:
        text = text[: PDF_CELL_LIMIT - 1] + "…"
    return text


def _short_time(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if value else "-"


def _text(value: object) -> str:
    return "-" if value is None or value == "" else str(value)
