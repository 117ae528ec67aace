"""Bulk record ingest (flow 1): turning a request body into rows.

Parsing only: ``governance.services.record_rows.validate_rows`` checks each row and
``governance.services.datasets.records_upsert`` writes the rows that pass. A syntax error
(bad JSON line, bad CSV header) rejects the whole request with a 400 naming the place.

What a row holds depends on the dataset's task (docs/tasks.md), so the CSV header a body
must have does too (``record_rows.CSV_FIELDS``). Image datasets may also send a multipart
upload with a ``rows`` part (the rows, as JSON) and one ``images`` part per image file, a
row's ``image`` naming its file; ``ingest_from_request`` returns those files by name.

Body size: Django enforces ``DATA_UPLOAD_MAX_MEMORY_SIZE`` only when ``request.body`` is
read (DRF's JSON parser does that) and never on multipart files, so the parsers here check
the same limit themselves; one setting, ``LETHE_MAX_UPLOAD_BYTES``, sets all of them.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.request import Request

from governance.errors import ApplicationError
from governance.services.record_rows import (
    CLASSIFICATION,
    CSV_FIELDS,
    FIELDS,
    IMAGE_CLASSIFICATION,
)

SHAPE_HELP = (
    'Send a JSON list of records, {"records": [...]}, JSONL, CSV or a multipart "file" '
    '(or "rows" with "images").'
)

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


def parse_csv(
    data: bytes, what: str = "request body", *, fields: Sequence[str] = FIELDS
) -> list[dict[str, str]]:
    """CSV rows by column name; the header must name exactly ``fields`` (any order)."""
    # strict: an unclosed quote would otherwise swallow the rest of the file into one field.
    reader = csv.reader(io.StringIO(_decode(data, what), newline=""), strict=True)
    line = 1  # where the record being read starts, which is where a quoting error begins
    try:
        header = next(reader, None)
        if header is None:
            return []
        names = _checked_header(header, fields)
        rows = []
        line = reader.line_num + 1
        for cells in reader:
            if cells:  # blank line
                rows.append(_csv_row(names, cells))
            line = reader.line_num + 1
        return rows
    except csv.Error as exc:
        raise ParseError(f"Invalid CSV on line {line}: {exc}.") from None


def parse_csv_file(data: bytes, what: str, fields: Sequence[str] = FIELDS) -> list[Any]:
    return parse_csv(data, what, fields=fields)


def _checked_header(header: list[str], fields: Sequence[str]) -> list[str]:
    names = [name.strip() for name in header]
    expected = ", ".join(fields)
    for name in names:
        if names.count(name) > 1:
            raise ParseError(f"CSV header repeats column {name!r}.")
        if name not in fields:
            raise ParseError(f"CSV header has unexpected column {name!r}; expected {expected}.")
    for name in fields:
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


@dataclass(frozen=True)
class CsvBody:
    """A CSV body read but not yet parsed: its header depends on the dataset's task, which
    the view knows and the parser does not (``ingest_from_request`` parses it)."""

    data: bytes


class CSVParser(parsers.BaseParser):
    """CSV with a header naming exactly the task's columns (any order); for classification
    external_id, subject_id, text, label."""

    media_type = "text/csv"

    def parse(  # type: ignore[override]  # the stub expects a mapping
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> CsvBody:
        return CsvBody(_read_limited(stream))


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


def _parse_json_file(data: bytes, what: str, fields: Sequence[str] = FIELDS) -> list[Any]:
    return _records_from_json(_json_value(_decode(data, what), f"in the {what}"))


def _parse_json_lines_file(data: bytes, what: str, fields: Sequence[str] = FIELDS) -> list[Any]:
    return parse_json_lines(data, what)


# An upload's file name decides; the part's declared type is the fallback.
_FILE_PARSERS: dict[str, Callable[[bytes, str, Sequence[str]], list[Any]]] = {
    ".csv": parse_csv_file,
    "text/csv": parse_csv_file,
    ".json": _parse_json_file,
    "application/json": _parse_json_file,
    ".jsonl": _parse_json_lines_file,
    ".ndjson": _parse_json_lines_file,
    "application/x-ndjson": _parse_json_lines_file,
    "application/jsonl": _parse_json_lines_file,
    "application/json-lines": _parse_json_lines_file,
}


@dataclass(frozen=True)
class IngestBody:
    """A records request's raw rows, and its uploaded images by file name when it sent a
    multipart ``rows`` part (None otherwise: an image row's ``image`` is then base64)."""

    rows: list[Any]
    files: dict[str, bytes] | None = None


def rows_from_request(request: Request, *, task: str = CLASSIFICATION) -> list[Any]:
    """The raw rows of a records request: a JSON list or ``{"records": [...]}``, JSONL, CSV,
    or a multipart upload whose ``file`` is ``.csv``, ``.jsonl``/``.ndjson`` or ``.json``.

    Rows are returned unchecked (any JSON value); pass them to ``validate_rows``.
    """
    return ingest_from_request(request, task=task).rows


def ingest_from_request(request: Request, *, task: str = CLASSIFICATION) -> IngestBody:
    """``rows_from_request``, and for an image dataset the images of a multipart ``rows``
    upload: a ``rows`` part (a JSON text field, or a file read as a ``file`` upload is) and
    ``images`` file parts, each named by its file name in the ``image`` field of a row."""
    fields = CSV_FIELDS[task]
    if request.content_type.startswith("multipart/form-data"):
        if task == IMAGE_CLASSIFICATION and "rows" in request.data:
            return _rows_with_images(request, fields)
        if request.FILES.getlist("images"):
            raise ApplicationError(
                code="invalid",
                message='images: send image files with a "rows" part, not with "file"',
                details={"rows": ["required"]},
            )
        return IngestBody(_rows_from_upload(request, fields))
    if isinstance(request.data, CsvBody):
        return IngestBody(parse_csv(request.data.data, fields=fields))
    return IngestBody(_records_from_json(request.data))


def _rows_from_upload(request: Request, fields: Sequence[str]) -> list[Any]:
    upload = request.FILES.get("file")
    if upload is None:
        raise ApplicationError(
            code="invalid",
            message='The multipart upload has no "file" field'
            + (' (or "rows" with "images")' if fields == CSV_FIELDS[IMAGE_CLASSIFICATION] else "")
            + ".",
            details={"file": ["required"]},
        )
    return _upload_rows(upload, fields, "file")


def _upload_rows(upload: Any, fields: Sequence[str], part: str) -> list[Any]:
    _check_size(upload.size)
    suffix = PurePath(upload.name or "").suffix.lower()
    media_type = (upload.content_type or "").split(";")[0].strip().lower()
    parse = _FILE_PARSERS.get(suffix) or _FILE_PARSERS.get(media_type)
    if parse is None:
        raise ApplicationError(
            code="unsupported_media_type",
            message=f"Cannot read {upload.name!r}: name it .csv, .jsonl, .ndjson or .json.",
            details={part: ["type"]},
            status=415,
        )
    return parse(upload.read(), "uploaded file", fields)


def _rows_with_images(request: Request, fields: Sequence[str]) -> IngestBody:
    if "file" in request.data:
        raise ApplicationError(
            code="invalid",
            message='rows: send either a "file" or a "rows" part, not both',
            details={"rows": ["either"]},
        )
    part = request.data["rows"]
    if isinstance(part, str):
        rows = _records_from_json(_json_value(part, 'in the "rows" part'))
    else:
        rows = _upload_rows(part, fields, "rows")
    files: dict[str, bytes] = {}
    for upload in request.FILES.getlist("images"):
        name = str(upload.name or "")
        if name in files:
            raise ApplicationError(
                code="invalid",
                message=f"images: two uploaded files are named {name!r}; names must differ",
                details={"images": ["unique"]},
            )
        files[name] = upload.read()
    named = {row.get("image") for row in rows if isinstance(row, dict)}
    if unused := sorted(name for name in files if name not in named):
        raise ApplicationError(
            code="invalid",
            message=f"images: no row names the uploaded file {unused[0]!r}",
            details={"images": ["unused"]},
        )
    return IngestBody(rows, files)
