"""PDF helpers shared by the certificate rendering and the record-keeping report.

Both use fpdf2's core fonts only (no font files to ship), so every text goes through
``pdf_text`` first: the core fonts have Latin-1 and nothing else.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from fpdf import FPDF

T = TypeVar("T")

# Characters NFKD cannot reduce to Latin-1 but that have a conventional spelling in it.
_TRANSLITERATIONS = str.maketrans(
    {
        "Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "Ħ": "H", "ħ": "h", "ı": "i", "ŀ": "l",
        "Œ": "OE", "œ": "oe", "Ŋ": "N", "ŋ": "n", "ſ": "s", "ẞ": "SS",
        "‘": "'", "’": "'", "‚": ",", "“": '"', "”": '"', "„": '"', "–": "-", "—": "-",
        "−": "-", "…": "...", "•": "*", "€": "EUR", "™": "TM", "\u2028": "\n",
    }
)  # fmt: skip


class FooterPDF(FPDF):
    """A document whose every page ends in ``<footer_text>page n/N``, centred in 7 points."""

    footer_text = ""
    footer_y = -12.0  # mm from the bottom edge

    def footer(self) -> None:
        self.set_y(self.footer_y)
        self.set_font("helvetica", size=7)
        self.cell(0, 5, f"{self.footer_text}page {self.page_no()}/{{nb}}", align="C")


def pdf_table(
    pdf: FPDF,
    columns: Sequence[tuple[str, str, float]],
    items: Iterable[T],
    text_of: Callable[[T, str], str],
    *,
    line_height: float,
) -> None:
    """A table in 7-point type: a header of titles, then one row per item.

    ``columns`` holds (key, title, width in mm); each cell is ``text_of(item, key)``,
    made printable with ``pdf_text``.
    """
    pdf.set_font("helvetica", size=7)
    widths = tuple(width for _, _, width in columns)
    with pdf.table(col_widths=widths, text_align="LEFT", line_height=line_height, padding=1) as t:
        header = t.row()
        for _, title, _ in columns:
            header.cell(title)
        for item in items:
            row = t.row()
            for key, _, _ in columns:
                row.cell(pdf_text(text_of(item, key)))


def pdf_text(text: str) -> str:
    """``text`` in Latin-1, the only encoding the PDF core fonts have.

    Accented letters are reduced to their base letter when Latin-1 lacks them (NFKD), a few
    letters and punctuation marks get their conventional spelling, and anything else becomes
    ``<U+XXXX>`` so the reader can still tell which character it was.
    """
    return "".join(_latin1(char) for char in text.translate(_TRANSLITERATIONS))


def _latin1(char: str) -> str:
    if char == "\n" or (ord(char) < 0x100 and char.isprintable()):
        return char
    base = "".join(_base_letters(unicodedata.normalize("NFKD", char)))
    return base or f"<U+{ord(char):04X}>"


def _base_letters(chars: Iterable[str]) -> Iterable[str]:
    for char in chars:
        if ord(char) < 0x100 and char.isprintable() and not unicodedata.combining(char):
            yield char
