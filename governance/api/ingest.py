"""Bulk record ingest (flow 1): turning a request body into rows.

Parsing only: ``governance.services.record_rows.validate_rows`` checks each row and
``governance.services.datasets.records_upsert`` writes the rows that pass. A syntax error
(bad JSON line, bad CSV header) rejects the whole request with a 400 naming the place.

Body size: Django enforces ``DATA_UPLOAD_MAX_MEMORY_SIZE`` only when ``request.body`` is
read (DRF's JSON parser does that) and never on multipart files, so the parsers here check
the same limit themselves; one setting, ``LETHE_MAX_UPLOAD_BYTES``, sets all of them.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping
from pathlib import PurePath
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.request import Request

from governance.errors import ApplicationError
from governance.services.record_rows import FIELDS

SHAPE_HELP = 'Send a JSON list of records, {"records": [...]}, JSONL, CSV or a multipart "file".'

# --- reading bodies -----------------------------------------------------------------------


def _check_size(size: int | None) -> None:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if limit is not None and size is not None and size > limit:
        raise RequestDataTooBig(f"{size} bytes is over the limit of {limit} bytes")


def _read_limited(stream: IO[Any]) -> bytes:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    # One byte past the limit is enough to know the body is too big, without reading it all.
    data: bytes = stream.read() if limit is None else stream.read(limit + 1)
    _check_size(len(data))
    return data


def _decode(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8-sig")  # spreadsheet exports often start with a BOM
    except UnicodeDecodeError as exc:
        raise ParseError(
            f"The {what} is not UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start}."
        ) from None


def _json_value(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise ParseError(f"Invalid JSON {where}: nested too deeply.") from None
    except ValueError as exc:  # JSONDecodeError, and ints too long to convert
        detail = (
            f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else exc
        )
        raise ParseError(f"Invalid JSON {where}: {detail}.") from None


def parse_json_lines(data: bytes, what: str = "request body") -> list[Any]:
    rows = []
    # Split on "\n" only: str.splitlines() also splits on U+2028 and friends, which JSON
    # allows unescaped inside strings.
    for number, line in enumerate(_decode(data, what).split("\n"), start=1):
        if line.strip():
            rows.append(_json_value(line, f"on line {number}"))
    return rows


def parse_csv(data: bytes, what: str = "request body") -> list[dict[str, str]]:
    # strict: an unclosed quote would otherwise swallow the rest of the file into one field.
    reader = csv.reader(io.StringIO(_decode(data, what), newline=""), strict=True)
    line = 1  # where the record being read starts, which is where a quoting error begins
    try:
        header = next(reader, None)
        if header is None:
            return []
        names = _checked_header(header)
        rows = []
        line = reader.line_num + 1
        for cells in reader:
            if cells:  # blank line
                rows.append(_csv_row(names, cells))
            line = reader.line_num + 1
        return rows
    except csv.Error as exc:
        raise ParseError(f"Invalid CSV on line {line}: {exc}.") from None


def _checked_header(header: list[str]) -> list[str]:
    names = [name.strip() for name in header]
    expected = ", ".join(FIELDS)
    for name in names:
        if names.count(name) > 1:
            raise ParseError(f"CSV header repeats column {name!r}.")
        if name not in FIELDS:
            raise ParseError(f"CSV header has unexpected column {name!r}; expected {expected}.")
    for name in FIELDS:
        if name not in names:
            raise ParseError(f"CSV header is missing column {name!r}; expected {expected}.")
    return names


def _csv_row(header: list[str], cells: list[str]) -> dict[str, str]:
    # A short row lacks fields and a long one has unnamed ones; both become row errors.
    row = dict(zip(header, cells, strict=False))
    row.update({f"column {n}": cell for n, cell in enumerate(cells, 1) if n > len(header)})
    return row


def _records_from_json(data: Any) -> list[Any]:
    if isinstance(data, list):
        return data
    if isinstance(data, dict) and data.keys() == {"records"} and isinstance(data["records"], list):
        return data["records"]
    raise ApplicationError(code="invalid", message=f"No list of records found. {SHAPE_HELP}")


# --- DRF parsers --------------------------------------------------------------------------


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser (which enforces the body limit), plus a 400 for absurd nesting."""

    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("Invalid JSON: nested too deeply.") from None


class _RowsParser(parsers.BaseParser):
    """Reads the whole body (up to the limit) and hands it to ``rows``."""

    rows: staticmethod[[bytes], list[Any]]

    def parse(  # type: ignore[override]  # rows are a list, the stub expects a mapping
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> list[Any]:
        return self.rows(_read_limited(stream))


class JSONLinesParser(_RowsParser):
    """One JSON record per line; returns the list of decoded lines."""

    media_type = "application/x-ndjson"
    rows = staticmethod(parse_json_lines)


# DRF matches exactly one media type per parser class; these aliases share the code.
class JSONLParser(JSONLinesParser):
    media_type = "application/jsonl"


class JSONLinesAliasParser(JSONLinesParser):
    media_type = "application/json-lines"


class CSVParser(_RowsParser):
    """CSV with a header naming exactly external_id, subject_id, text, label (any order)."""

    media_type = "text/csv"
    rows = staticmethod(parse_csv)


class MultiPartParser(parsers.MultiPartParser):
    """Refuses an oversize upload before streaming it to a temporary file."""

    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> parsers.DataAndFiles[Any, Any]:
        if (request := (parser_context or {}).get("request")) is not None:
            length = str(request.META.get("CONTENT_LENGTH") or "")
            _check_size(int(length) if length.isdigit() else None)
        return super().parse(stream, media_type, parser_context)


# The records endpoint sets `parser_classes = INGEST_PARSER_CLASSES`; others take JSON only.
INGEST_PARSER_CLASSES: tuple[type[parsers.BaseParser], ...] = (
    JSONParser,
    JSONLinesParser,
    JSONLParser,
    JSONLinesAliasParser,
    CSVParser,
    MultiPartParser,
)


def _parse_json_file(data: bytes, what: str) -> list[Any]:
    return _records_from_json(_json_value(_decode(data, what), f"in the {what}"))


# An upload's file name decides; the part's declared type is the fallback.
_FILE_PARSERS: dict[str, Callable[[bytes, str], list[Any]]] = {
    ".csv": parse_csv,
    "text/csv": parse_csv,
    ".json": _parse_json_file,
    "application/json": _parse_json_file,
    ".jsonl": parse_json_lines,
    ".ndjson": parse_json_lines,
    "application/x-ndjson": parse_json_lines,
    "application/jsonl": parse_json_lines,
    "application/json-lines": parse_json_lines,
}


def rows_from_request(request: Request) -> list[Any]:
    """The raw rows of a records request: a JSON list or ``{"records": [...]}``, JSONL, CSV,
    or a multipart upload whose ``file`` is ``.csv``, ``.jsonl``/``.ndjson`` or ``.json``.

    Rows are returned unchecked (any JSON value); pass them to ``validate_rows``.
    """
    if request.content_type.startswith("multipart/form-data"):
        return _rows_from_upload(request)
    return _records_from_json(request.data)


def _rows_from_upload(request: Request) -> list[Any]:
    upload = request.FILES.get("file")
    if upload is None:
        raise ApplicationError(
            code="invalid",
            message='The multipart upload has no "file" field.',
            details={"file": ["required"]},
        )
    _check_size(upload.size)
    suffix = PurePath(upload.name or "").suffix.lower()
    media_type = (upload.content_type or "").split(";")[0].strip().lower()
    parse = _FILE_PARSERS.get(suffix) or _FILE_PARSERS.get(media_type)
    if parse is None:
        raise ApplicationError(
            code="unsupported_media_type",
            message=f"Cannot read {upload.name!r}: name it .csv, .jsonl, .ndjson or .json.",
            details={"file": ["type"]},
            status=415,
        )
    return parse(upload.read(), "uploaded file")
