"""Reading record files (JSON, JSONL, CSV) into batches for ``datasets/{id}/records/``.

A data platform's export can be far larger than one request may be (the server's
``LETHE_MAX_UPLOAD_BYTES`` and ``LETHE_MAX_BATCH_ROWS``), so files are streamed and cut into
batches, and every row keeps its position in the file: the server reports a rejected row
by its index in the request, and the caller needs it by its place in the file.

The server reads each format itself; the client sends what the server would have read:

* JSONL: one JSON value per non-blank line (split on ``\\n`` only, as the server does); a
  line that is not JSON becomes a rejected row here, so the other rows are still sent;
* JSON: a list of records or ``{"records": [...]}``;
* CSV: the header and each batch's rows are written back as CSV and sent as ``text/csv``,
  so the server's header check and its rules for short and long rows apply unchanged.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

Format = Literal["json", "jsonl", "csv"]
SUFFIX_FORMATS: dict[str, Format] = {
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
}


@dataclass(frozen=True)
class RejectedRow:
    """A row that was not stored: where it is in the file, the field at fault, and why.

    ``index`` counts the file's records from 0 (blank lines are not records); ``line`` is
    the line the record starts on (None for a JSON file); ``field`` is None when the fault
    is the row as a whole (not JSON, not an object).
    """

    index: int
    field: str | None
    error: str
    line: int | None = None
    external_id: str | None = None


@dataclass(frozen=True)
class PushProgress:
    """Reported after every batch: how far through the file, and the totals so far."""

    rows_sent: int
    batches: int
    bytes_read: int
    bytes_total: int | None
    created: int
    updated: int
    unchanged: int
    rejected: int


@dataclass
class PushResult:
    """The totals of a whole push; ``rejected`` in file order."""

    rows: int = 0
    batches: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every row of the file was stored."""
        return not self.rejected


@dataclass(frozen=True)
class SourceRow:
    """One record of the file as read: its place, and its value or why it has none."""

    index: int
    line: int | None
    value: Any = None
    csv_cells: list[str] | None = None
    error: str | None = None
    csv_external_id: str | None = None

    @property
    def external_id(self) -> str | None:
        """The row's ``external_id`` when it has a readable one, to name it in a rejection."""
        if isinstance(self.value, dict):
            value = self.value.get("external_id")
            return value if isinstance(value, str) else None
        return self.csv_external_id


@dataclass
class Batch:
    """Rows to send in one request: a JSON list, or a CSV text with its header."""

    rows: list[SourceRow]
    content_type: str
    body: bytes
    bytes_read: int


def file_format(path: Path, explicit: str | None = None) -> Format:
    """The format named, or the one the file's suffix says; ValueError when neither does."""
    if explicit is not None:
        if explicit not in ("json", "jsonl", "csv"):
            raise ValueError(f"format: {explicit!r} is not one of json, jsonl, csv")
        return explicit  # type: ignore[return-value]  # checked just above
    try:
        return SUFFIX_FORMATS[path.suffix.lower()]
    except KeyError:
        raise ValueError(
            f"{path.name}: cannot tell the format from the suffix; "
            "name it .json, .jsonl, .ndjson or .csv, or pass the format"
        ) from None


def batches(
    path: Path, fmt: Format, *, batch_size: int, max_batch_bytes: int
) -> Iterator[tuple[Batch, list[SourceRow]]]:
    """``(batch, unreadable rows before it)`` until the file ends.

    Rows that cannot be read (a JSONL line that is not JSON) are handed back beside the
    batch they fell in, so their rejection is reported in order with the server's.
    """
    with path.open("rb") as stream:
        if fmt == "csv":
            yield from _csv_batches(stream, batch_size, max_batch_bytes)
        else:
            rows = _json_rows(stream) if fmt == "json" else _jsonl_rows(stream)
            yield from _json_batches(rows, stream, batch_size, max_batch_bytes)


def _json_rows(stream: IO[bytes]) -> Iterator[tuple[SourceRow, int]]:
    """A JSON file's records (a list, or ``{"records": [...]}``); read whole, as JSON must be."""
    data = stream.read()
    try:
        value = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"not a JSON document: {exc}") from None
    if isinstance(value, dict) and value.keys() == {"records"}:
        value = value["records"]
    if not isinstance(value, list):
        raise ValueError('a JSON file holds a list of records or {"records": [...]}')
    for index, item in enumerate(value):
        # Bytes are not known per element; the last row reports the whole file read.
        yield (
            SourceRow(index=index, line=None, value=item),
            len(data) if index == len(value) - 1 else 0,
        )


def _jsonl_rows(stream: IO[bytes]) -> Iterator[tuple[SourceRow, int]]:
    """One record per non-blank line; a line that is not JSON becomes a row with an error."""
    index = 0
    for number, raw in enumerate(_lines(stream), start=1):
        text = _decode(raw, number).rstrip("\r\n")
        if not text.strip():
            yield SourceRow(index=-1, line=number), len(raw)  # blank: no record, but bytes read
            continue
        try:
            row = SourceRow(index=index, line=number, value=json.loads(text))
        except ValueError as exc:
            row = SourceRow(index=index, line=number, error=f"invalid JSON on line {number}: {exc}")
        index += 1
        yield row, len(raw)


def _lines(stream: IO[bytes]) -> Iterator[bytes]:
    """Split on ``\\n`` only: U+2028 and friends may stand unescaped inside JSON strings."""
    buffer = b""
    while chunk := stream.read(1 << 16):
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for line in complete:
            yield line + b"\n"
    if buffer:
        yield buffer


def _decode(raw: bytes, line: int) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"line {line} is not UTF-8 (byte offset {exc.start})") from None
    return text.removeprefix("\ufeff") if line == 1 else text


def _json_batches(
    rows: Iterator[tuple[SourceRow, int]], stream: IO[bytes], batch_size: int, max_batch_bytes: int
) -> Iterator[tuple[Batch, list[SourceRow]]]:
    pending: list[SourceRow] = []
    unreadable: list[SourceRow] = []
    encoded: list[bytes] = []
    size = 0
    read = 0
    for row, nbytes in rows:
        read += nbytes
        if row.index < 0:
            continue
        if row.error is not None:
            unreadable.append(row)
            continue
        item = json.dumps(row.value, ensure_ascii=False).encode("utf-8")
        if pending and (len(pending) >= batch_size or size + len(item) > max_batch_bytes):
            yield _json_batch(pending, encoded, read - nbytes), unreadable
            pending, encoded, unreadable, size = [], [], [], 0
        pending.append(row)
        encoded.append(item)
        size += len(item) + 1
    if pending or unreadable:
        yield _json_batch(pending, encoded, read), unreadable


def _json_batch(rows: list[SourceRow], encoded: list[bytes], bytes_read: int) -> Batch:
    body = b"[" + b",".join(encoded) + b"]"
    return Batch(rows=rows, content_type="application/json", body=body, bytes_read=bytes_read)


class _CountingLines:
    """Text lines of a binary stream for ``csv.reader``, counting the bytes handed out."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._lines = _lines(stream)
        self.bytes_read = 0
        self.number = 0

    def __iter__(self) -> _CountingLines:
        return self

    def __next__(self) -> str:
        raw = next(self._lines)
        self.bytes_read += len(raw)
        self.number += 1
        return _decode(raw, self.number)


def _csv_batches(
    stream: IO[bytes], batch_size: int, max_batch_bytes: int
) -> Iterator[tuple[Batch, list[SourceRow]]]:
    lines = _CountingLines(stream)
    # strict: an unclosed quote would otherwise swallow the rest of the file into one field.
    reader = csv.reader(lines, strict=True)
    try:
        header = next(reader, None)
        if header is None:
            return
        names = [name.strip() for name in header]
        id_column = names.index("external_id") if "external_id" in names else None
        pending: list[SourceRow] = []
        size = 0
        index = 0
        start = lines.number + 1
        for cells in reader:
            if cells:  # a blank line is no record (the server skips it too)
                eid = cells[id_column] if id_column is not None and id_column < len(cells) else None
                row = SourceRow(index=index, line=start, csv_cells=cells, csv_external_id=eid)
                cost = sum(len(c) + 3 for c in cells)
                if pending and (len(pending) >= batch_size or size + cost > max_batch_bytes):
                    yield _csv_batch(header, pending, lines.bytes_read), []
                    pending, size = [], 0
                pending.append(row)
                size += cost
                index += 1
            start = lines.number + 1
    except csv.Error as exc:
        raise ValueError(f"invalid CSV on line {start}: {exc}") from None
    if pending:
        yield _csv_batch(header, pending, lines.bytes_read), []


def _csv_batch(header: list[str], rows: list[SourceRow], bytes_read: int) -> Batch:
    text = io.StringIO(newline="")
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(row.csv_cells or [] for row in rows)
    return Batch(
        rows=rows,
        content_type="text/csv; charset=utf-8",
        body=text.getvalue().encode("utf-8"),
        bytes_read=bytes_read,
    )
