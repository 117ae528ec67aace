"""What a valid record row is: the checks every ingest path applies before a write.

The API's parsers (``governance.api.ingest``) turn a body into rows; the demo, the
benchmarks and the tests build rows themselves. All of them pass the rows through
``validate_rows``, so a rule about record fields has this one home. A bad row is reported
by index and field; the other rows are kept.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from governance.errors import ApplicationError
from governance.subject_refs import SubjectRefError, subject_ref_clean

FIELDS = ("external_id", "subject_id", "text", "label")
MAX_ID_LENGTH = 200
MAX_TEXT_LENGTH = 20_000
LABELS_SHOWN = 10  # a message listing 1000 labels helps nobody

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # Unicode category Cc, exactly
_JSON_TYPES = {
    bool: "boolean",
    int: "number",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
    type(None): "null",
}


@dataclass(frozen=True)
class ValidRow:
    index: int  # position in the request, kept so rejections and results line up
    external_id: str
    subject_id: str
    text: str
    label: str


@dataclass(frozen=True)
class RowError:
    index: int
    error: str
    field: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "error": self.error}


class _Rejected(Exception):
    def __init__(self, field: str | None, error: str) -> None:
        super().__init__(error)
        self.field, self.error = field, error


def validate_rows(
    rows: Sequence[Any], *, labels: Sequence[str], max_rows: int
) -> tuple[list[ValidRow], list[RowError]]:
    """Split raw rows into valid ones and errors; nothing but ``batch_too_large`` raises.

    A row is an object with exactly the fields external_id, subject_id, text, label, all
    strings. The first row that carries an external_id claims it, even if it is rejected
    for another reason: a batch with two rows for one record never silently picks one.
    """
    if len(rows) > max_rows:
        raise ApplicationError(
            code="batch_too_large",
            message=f"The batch has {len(rows)} rows; the limit is {max_rows}. Split it.",
            details={"limit": max_rows, "rows": len(rows)},
        )
    allowed = frozenset(labels)
    seen: dict[str, int] = {}
    valid: list[ValidRow] = []
    errors: list[RowError] = []
    for index, row in enumerate(rows):
        try:
            valid.append(_valid_row(index, row, allowed, labels, seen))
        except _Rejected as rejected:
            errors.append(RowError(index, rejected.error, rejected.field))
    return valid, errors


def _valid_row(
    index: int, row: Any, allowed: frozenset[str], labels: Sequence[str], seen: dict[str, int]
) -> ValidRow:
    if not isinstance(row, dict):
        raise _Rejected(
            None, f"row must be an object with fields {', '.join(FIELDS)}, got {_json_type(row)}"
        )
    external_id = _identifier(row, "external_id")
    if (first := seen.setdefault(external_id, index)) != index:
        raise _Rejected("external_id", f"external_id: {external_id!r} repeats row {first}")
    if extra := [key for key in row if key not in FIELDS]:
        raise _Rejected(
            str(extra[0]),
            f"{_show(extra[0])}: unexpected field; a row has exactly {', '.join(FIELDS)}",
        )
    return ValidRow(
        index=index,
        external_id=external_id,
        subject_id=_subject_id(row),
        text=_text(row),
        label=_label(row, allowed, labels),
    )


def _string(row: dict[Any, Any], name: str) -> str:
    if name not in row:
        raise _Rejected(name, f"{name}: missing field")
    value = row[name]
    if not isinstance(value, str):
        raise _Rejected(name, f"{name}: must be a string, got {_json_type(value)}")
    if not _encodable(value):
        raise _Rejected(name, f"{name}: contains an unpaired surrogate (not valid Unicode)")
    return value


def _identifier(row: dict[Any, Any], name: str) -> str:
    value = _string(row, name).strip()
    if not value:
        raise _Rejected(name, f"{name}: must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise _Rejected(name, f"{name}: longer than {MAX_ID_LENGTH} characters")
    if match := _CONTROL.search(value):
        raise _Rejected(name, f"{name}: contains control character U+{ord(match[0]):04X}")
    return value


def _subject_id(row: dict[Any, Any]) -> str:
    try:
        return subject_ref_clean(_identifier(row, "subject_id"))
    except SubjectRefError as exc:
        raise _Rejected("subject_id", str(exc)) from None


def _text(row: dict[Any, Any]) -> str:
    value = _string(row, "text")
    if not value.strip():
        raise _Rejected("text", "text: must not be empty")
    if len(value) > MAX_TEXT_LENGTH:
        raise _Rejected("text", f"text: longer than {MAX_TEXT_LENGTH} characters")
    if "\x00" in value:  # PostgreSQL text columns cannot hold NUL
        raise _Rejected("text", "text: contains a NUL character")
    return value


def _label(row: dict[Any, Any], allowed: frozenset[str], labels: Sequence[str]) -> str:
    value = _string(row, "label")
    if value not in allowed:
        shown = ", ".join(labels[:LABELS_SHOWN])
        more = f" and {len(labels) - LABELS_SHOWN} more" if len(labels) > LABELS_SHOWN else ""
        raise _Rejected("label", f"label: {_show(value)} is not a dataset label ({shown}{more})")
    return value


def _encodable(value: str) -> bool:
    # Lone surrogates survive json.loads but not a UTF-8 database; encode() checks in C.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _show(value: Any, limit: int = 40) -> str:
    text = value if isinstance(value, str) else str(value)
    return repr(text[:limit] + "…" if len(text) > limit else text)
