"""Bulk ingest: body parsing (JSON, JSONL, CSV, uploads) and per-row validation."""

from __future__ import annotations

import json
from unittest import mock

import pytest
from django.core.exceptions import RequestDataTooBig
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from rest_framework.exceptions import ParseError
from rest_framework.test import APIClient

from governance.api.ingest import MultiPartParser, parse_csv, parse_json_lines
from governance.services.record_rows import RowError, validate_rows

pytestmark = pytest.mark.urls("tests.governance.throwaway_urls")

LABELS = ("billing", "bug", "praise")


def row(**overrides):
    return {"external_id": "r1", "subject_id": "s1", "text": "hello", "label": "bug", **overrides}


def post(body, content_type):
    return APIClient().post("/api/rows/", data=body, content_type=content_type)


def error_of(response, status, code):
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code
    return error


# --- JSON Lines ---------------------------------------------------------------------------


def test_json_lines_parse_one_value_per_line_skipping_blank_lines():
    data = b'{"a": 1}\r\n\n  \n[2]\n"x"\n'

    assert parse_json_lines(data) == [{"a": 1}, [2], "x"]


def test_json_lines_keep_unicode_line_separators_inside_strings():
    data = '{"text": "one\u2028two\u0085three"}\n'.encode()

    assert parse_json_lines(data) == [{"text": "one\u2028two\u0085three"}]


def test_malformed_json_line_names_the_line():
    data = b'{"a": 1}\n\n{"a": 2,}\n{"a": 3}\n'

    with pytest.raises(ParseError, match="line 3"):
        parse_json_lines(data)


def test_deeply_nested_json_line_is_a_parse_error():
    with pytest.raises(ParseError, match="nested too deeply"):
        parse_json_lines(b"[" * 100_000)


def test_huge_integer_in_json_line_is_a_parse_error():
    with pytest.raises(ParseError, match="line 1"):
        parse_json_lines(b"1" * 5000)


def test_non_utf8_body_is_a_clear_parse_error():
    with pytest.raises(ParseError, match=r"not UTF-8: byte 0xe9 at offset 10"):
        parse_json_lines(b'{"text": "\xe9t\xe9"}')


# --- CSV ----------------------------------------------------------------------------------


def test_csv_reads_header_in_any_order_with_bom_and_quoted_newlines():
    data = '\ufefflabel,text,external_id,subject_id\r\nbug,"two\nlines, comma",r1,s1\r\n\r\n'

    assert parse_csv(data.encode()) == [
        {"label": "bug", "text": "two\nlines, comma", "external_id": "r1", "subject_id": "s1"}
    ]


def test_empty_csv_has_no_rows():
    assert parse_csv(b"") == []
    assert parse_csv(b"external_id,subject_id,text,label\n") == []


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("external_id,subject_id,text", "missing column 'label'"),
        ("external_id,subject_id,text,label,extra", "unexpected column 'extra'"),
        ("external_id,subject_id,text,text,label", "repeats column 'text'"),
    ],
)
def test_csv_header_problems_name_the_column(header, message):
    with pytest.raises(ParseError, match=message):
        parse_csv(f"{header}\nr1,s1,hello,bug\n".encode())


def test_csv_short_and_long_rows_become_row_errors():
    rows = parse_csv(b"external_id,subject_id,text,label\nr1,s1,hi\nr2,s2,hi,bug,surplus\n")

    valid, errors = validate_rows(rows, labels=LABELS, max_rows=10)

    assert valid == []
    assert errors == [
        RowError(0, "label: missing field", "label"),
        RowError(1, errors[1].error, "column 5"),
    ]
    assert "'column 5': unexpected field" in errors[1].error


@pytest.mark.parametrize(
    "body",
    [
        'r1,s1,"unclosed,bug\nr2,s2,hi,bug\n',  # would swallow every later row
        'r1,s1,"quoted"tail,bug\n',
        "r1,s1," + "x" * 200_000 + ",bug\n",
    ],
)
def test_csv_syntax_error_names_the_line_where_the_record_starts(body):
    data = f"external_id,subject_id,text,label\n\nr0,s0,fine,bug\n{body}".encode()

    with pytest.raises(ParseError, match="Invalid CSV on line 4"):
        parse_csv(data)


def test_csv_nul_reaches_validation_as_a_row_error():
    rows = parse_csv(b"external_id,subject_id,text,label\nr1,s1,a\x00b,bug\n")

    _, errors = validate_rows(rows, labels=LABELS, max_rows=10)

    assert errors[0].field == "text"
    assert "NUL" in errors[0].error


# --- rows_from_request through a view ---------------------------------------------------------

JSONL = b'{"external_id": "a"}\n{"external_id": "b"}\n'
JSONL_ROWS = [{"external_id": "a"}, {"external_id": "b"}]
CSV = b"external_id,subject_id,text,label\nr1,s1,hello,bug\n"
CSV_ROWS = [{"external_id": "r1", "subject_id": "s1", "text": "hello", "label": "bug"}]


@pytest.mark.parametrize(
    "body", [[{"external_id": "a"}, 3], {"records": [{"external_id": "a"}, 3]}]
)
def test_json_body_is_a_list_or_records_object(body):
    response = post(json.dumps(body), "application/json")

    assert response.status_code == 200
    assert response.json() == {"rows": [{"external_id": "a"}, 3]}


@pytest.mark.parametrize(
    "body", ['{"rows": []}', '{"records": [], "more": 1}', '{"records": {}}', '"text"']
)
def test_json_body_without_a_record_list_is_rejected(body):
    error = error_of(post(body, "application/json"), 400, "invalid")

    assert "records" in error["message"]


def test_empty_body_is_rejected():
    error_of(post(b"", "application/json"), 400, "invalid")


@pytest.mark.parametrize(
    "media_type",
    ["application/x-ndjson", "application/jsonl", "application/json-lines; charset=utf-8"],
)
def test_json_lines_media_types(media_type):
    response = post(JSONL, media_type)

    assert response.json() == {"rows": JSONL_ROWS}


def test_csv_body():
    assert post(CSV, "text/csv").json() == {"rows": CSV_ROWS}


def test_malformed_jsonl_body_is_400_naming_the_line():
    error = error_of(post(b'{"a": 1}\n{oops}\n', "application/x-ndjson"), 400, "parse_error")

    assert "line 2" in error["message"]


def test_non_utf8_csv_body_is_400():
    error = error_of(post("caf\u00e9".encode("latin-1"), "text/csv"), 400, "parse_error")

    assert "UTF-8" in error["message"]


def test_unknown_body_type_is_415():
    error_of(post(b"<rows/>", "application/xml"), 415, "unsupported_media_type")


@pytest.mark.parametrize(
    ("name", "content", "content_type", "expected"),
    [
        ("rows.csv", CSV, "text/csv", CSV_ROWS),
        ("ROWS.JSONL", JSONL, "application/octet-stream", JSONL_ROWS),
        ("rows.ndjson", JSONL, "application/octet-stream", JSONL_ROWS),
        ("rows.json", b'{"records": [{"x": 1}]}', "application/json", [{"x": 1}]),
        ("export.txt", CSV, "text/csv", CSV_ROWS),  # no known suffix: the part's type decides
    ],
)
def test_multipart_upload_dispatches_on_file_name_then_type(name, content, content_type, expected):
    upload = SimpleUploadedFile(name, content, content_type=content_type)

    response = APIClient().post("/api/rows/", {"file": upload})

    assert response.status_code == 200, response.content
    assert response.json() == {"rows": expected}


def test_multipart_upload_of_unknown_type_is_415():
    upload = SimpleUploadedFile("rows.xlsx", b"PK\x03\x04", content_type="application/zip")

    error = error_of(
        APIClient().post("/api/rows/", {"file": upload}), 415, "unsupported_media_type"
    )

    assert ".csv" in error["message"]


def test_multipart_without_file_field_is_400():
    error = error_of(APIClient().post("/api/rows/", {"other": "x"}), 400, "invalid")

    assert error["details"] == {"file": ["required"]}


def test_multipart_upload_with_bad_json_is_400():
    upload = SimpleUploadedFile("rows.json", b"[1,", content_type="application/json")

    error_of(APIClient().post("/api/rows/", {"file": upload}), 400, "parse_error")


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=64)
@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (json.dumps([row(text="x" * 100)]), "application/json"),
        (b'{"text": "' + b"x" * 100 + b'"}\n', "application/x-ndjson"),
        (CSV + b"r2,s2," + b"x" * 100 + b",bug\n", "text/csv"),
    ],
)
def test_oversize_bodies_are_413(body, content_type):
    error = error_of(post(body, content_type), 413, "payload_too_large")

    assert error["details"] == {"limit": 64}
    assert "64 bytes" in error["message"]


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=64)
def test_oversize_upload_is_413_before_it_is_read():
    upload = SimpleUploadedFile("rows.csv", CSV * 10, content_type="text/csv")

    error_of(APIClient().post("/api/rows/", {"file": upload}), 413, "payload_too_large")


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=64)
def test_multipart_parser_refuses_by_content_length_without_reading():
    stream = mock.Mock(read=mock.Mock(side_effect=AssertionError("read the body")))
    request = mock.Mock(META={"CONTENT_LENGTH": "65"})

    with pytest.raises(RequestDataTooBig):
        MultiPartParser().parse(stream, "multipart/form-data; boundary=x", {"request": request})


def test_bodies_within_the_limit_pass():
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=len(CSV)):
        assert post(CSV, "text/csv").status_code == 200
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=len(CSV) - 1):
        assert post(CSV, "text/csv").status_code == 413
