"""POST datasets/{id}/records/: every body format, idempotency, partial acceptance and the
limits, through the real URLconf. The parsers and row checks alone are in test_ingest*."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from governance.models import AuditEvent, Dataset, Record, Subject
from tests.governance.api_helpers import API, create_dataset, error_of
from tests.personas import sample_rows


@pytest.fixture
def dataset_id(integration, sample):
    return create_dataset(integration.client, sample, records=())


@pytest.fixture
def rows(sample):
    return sample_rows(sample.train[:12])


def url(dataset_id):
    return f"{API}/datasets/{dataset_id}/records/"


def snapshot():
    """Every stored record, field by field (timestamps included)."""
    return {
        r["external_id"]: r
        for r in Record.objects.values(
            "id", "dataset_id", "subject__external_ref", "external_id", "text", "label",
            "status", "created_at", "updated_at", "erased_at",
        )
    }  # fmt: skip


def stored(dataset_id):
    """external_id -> (subject_id, text, label) of the dataset's records."""
    return {
        r.external_id: (r.subject.external_ref, r.text, r.label)
        for r in Record.objects.filter(dataset_id=dataset_id).select_related("subject")
    }


def expected(rows):
    return {r["external_id"]: (r["subject_id"], r["text"], r["label"]) for r in rows}


def counts(response):
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"created", "updated", "unchanged", "rejected"}
    return body["created"], body["updated"], body["unchanged"], body["rejected"]


def as_csv(rows):
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["external_id", "subject_id", "text", "label"])
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def as_jsonl(rows):
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def post_as(client, dataset_id, rows, how):
    """Send ``rows`` in one of the accepted shapes."""
    target = url(dataset_id)
    if how == "json-list":
        return client.post(target, rows, format="json")
    if how == "json-records":
        return client.post(target, {"records": rows}, format="json")
    if how == "jsonl":
        return client.post(target, data=as_jsonl(rows), content_type="application/x-ndjson")
    if how == "csv":
        return client.post(target, data=as_csv(rows), content_type="text/csv")
    if how == "upload-csv":
        upload = SimpleUploadedFile("rows.csv", as_csv(rows), "text/csv")
        return client.post(target, {"file": upload}, format="multipart")
    if how == "upload-jsonl":
        upload = SimpleUploadedFile("rows.jsonl", as_jsonl(rows), "application/octet-stream")
        return client.post(target, {"file": upload}, format="multipart")
    raise AssertionError(how)


FORMATS = ("json-list", "json-records", "jsonl", "csv", "upload-csv", "upload-jsonl")


# --- happy paths --------------------------------------------------------------------------


@pytest.mark.parametrize("how", FORMATS)
def test_every_format_creates_the_records(integration, dataset_id, rows, how):
    rows[0]["text"] = 'Quoted "text", with a comma\nand a second line'  # CSV must keep it

    created, updated, unchanged, rejected = counts(
        post_as(integration.client, dataset_id, rows, how)
    )

    assert (created, updated, unchanged, rejected) == (len(rows), 0, 0, [])
    assert stored(dataset_id) == expected(rows)
    assert Subject.objects.filter(external_ref__in=[r["subject_id"] for r in rows]).count() == len(
        {r["subject_id"] for r in rows}
    )
    assert AuditEvent.objects.filter(action="records.upserted").count() == 1


@pytest.mark.parametrize("how", FORMATS)
def test_posting_the_same_batch_twice_changes_nothing(integration, dataset_id, rows, how):
    counts(post_as(integration.client, dataset_id, rows, how))
    before = snapshot()
    subjects = list(Subject.objects.order_by("pk").values_list("pk", "external_ref"))
    events = AuditEvent.objects.count()

    again = counts(post_as(integration.client, dataset_id, rows, how))

    assert again == (0, 0, len(rows), [])
    assert snapshot() == before
    assert list(Subject.objects.order_by("pk").values_list("pk", "external_ref")) == subjects
    assert AuditEvent.objects.count() == events  # nothing changed, nothing to record


def test_updates_change_text_label_and_subject(integration, dataset_id, rows, sample):
    counts(post_as(integration.client, dataset_id, rows, "json-list"))
    before = snapshot()
    new_label = next(label for label in sample.labels if label != rows[1]["label"])
    changed = [
        {**rows[0], "text": "A corrected message."},
        {**rows[1], "label": new_label},
        {**rows[2], "subject_id": "subj-moved"},
        rows[3],
    ]

    result = counts(integration.client.post(url(dataset_id), changed, format="json"))

    assert result == (0, 3, 1, [])
    assert stored(dataset_id) == expected(changed + rows[4:])
    after = snapshot()
    for row in changed[:3]:
        old, new = before[row["external_id"]], after[row["external_id"]]
        assert (new["id"], new["created_at"]) == (old["id"], old["created_at"])
        assert new["updated_at"] > old["updated_at"]
    assert after[rows[3]["external_id"]] == before[rows[3]["external_id"]]


def test_mixed_batch_keeps_valid_rows_and_reports_each_bad_one(integration, dataset_id, rows):
    good = rows[:4]
    batch = [
        good[0],
        {**rows[5], "label": "astrology"},  # 1
        good[1],
        {k: v for k, v in rows[6].items() if k != "text"},  # 3
        {**rows[7], "priority": "high"},  # 4
        {**good[0], "text": "the same record again"},  # 5: duplicate external id
        good[2],
        {**rows[8], "subject_id": 42},  # 7
        "not a row",  # 8
        {**rows[9], "text": "   "},  # 9
        {**rows[10], "external_id": ""},  # 10
        good[3],
    ]

    created, updated, unchanged, rejected = counts(
        integration.client.post(url(dataset_id), batch, format="json")
    )

    assert (created, updated, unchanged) == (4, 0, 0)
    fields = {1: "label", 3: "text", 4: "priority", 5: "external_id", 7: "subject_id", 9: "text"}
    fields[10] = "external_id"
    assert [r["index"] for r in rejected] == [1, 3, 4, 5, 7, 8, 9, 10]
    for error in rejected:
        assert set(error) == {"index", "field", "error"}
        if error["index"] == 8:
            assert error["field"] is None
            assert "object" in error["error"]
            continue
        field = fields[error["index"]]
        assert error["field"] == field
        assert error["error"].split(": ")[0].strip("'") == field, error  # an extra one quoted
    by_index = {r["index"]: r["error"] for r in rejected}
    assert "'astrology'" in by_index[1]
    assert "billing" in by_index[1]
    assert "repeats row 0" in by_index[5]
    assert stored(dataset_id) == expected(good)  # the first row 0 wins, its text unchanged
    # Nothing of a rejected row is kept: neither its record nor a subject only it named.
    assert not Subject.objects.filter(external_ref=42).exists()
    lone = {rows[i]["subject_id"] for i in (5, 6, 7, 9, 10)} - {r["subject_id"] for r in good}
    assert not Subject.objects.filter(external_ref__in=lone).exists()


def test_erased_record_is_never_reingested(integration, dataset_id, rows):
    counts(post_as(integration.client, dataset_id, rows[:3], "json-list"))
    erased_at = timezone.now()
    Record.objects.filter(external_id=rows[1]["external_id"]).update(
        status="erased", erased_at=erased_at, text=""
    )
    before = snapshot()

    created, updated, unchanged, rejected = counts(
        integration.client.post(
            url(dataset_id),
            [{**rows[0], "text": "changed"}, {**rows[1], "subject_id": "subj-new"}, rows[3]],
            format="json",
        )
    )

    assert (created, updated, unchanged) == (1, 1, 0)
    assert [(r["index"], r["field"]) for r in rejected] == [(1, "external_id")]
    assert rejected[0]["error"].startswith("external_id: ")
    assert "erased" in rejected[0]["error"]
    record = Record.objects.get(external_id=rows[1]["external_id"])
    assert (record.status, record.text, record.erased_at) == ("erased", "", erased_at)
    assert snapshot()[rows[1]["external_id"]] == before[rows[1]["external_id"]]
    assert Record.objects.get(external_id=rows[0]["external_id"]).text == "changed"
    assert Record.objects.filter(external_id=rows[3]["external_id"]).exists()
    assert not Subject.objects.filter(external_ref="subj-new").exists()  # the rejected row's


def test_rows_go_to_the_dataset_in_the_url(integration, sample, rows):
    first = create_dataset(integration.client, sample, name="first", records=())
    second = create_dataset(integration.client, sample, name="second", records=())
    counts(integration.client.post(url(first), rows[:2], format="json"))

    # The same external ids in another dataset are other records.
    assert counts(integration.client.post(url(second), rows[:2], format="json"))[0] == 2
    assert stored(first) == stored(second) == expected(rows[:2])


# --- whole-request failures: a 4xx and nothing written ------------------------------------


def test_batch_over_the_row_limit_is_400_and_writes_nothing(integration, dataset_id, rows):
    with override_settings(LETHE_MAX_BATCH_ROWS=3):
        assert counts(integration.client.post(url(dataset_id), rows[:3], format="json"))[0] == 3
        response = integration.client.post(url(dataset_id), rows[3:7], format="json")

    error = error_of(response, 400, "batch_too_large")
    assert "4 rows" in error["message"]
    assert "limit is 3" in error["message"]
    assert error["details"] == {"limit": 3, "rows": 4}
    assert set(stored(dataset_id)) == {r["external_id"] for r in rows[:3]}


@pytest.mark.parametrize("how", FORMATS)
def test_body_over_the_size_limit_is_413_and_writes_nothing(integration, dataset_id, rows, how):
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=500, LETHE_MAX_UPLOAD_BYTES=500):
        response = post_as(integration.client, dataset_id, rows, how)

    error = error_of(response, 413, "payload_too_large")
    assert "500 bytes" in error["message"]
    assert error["details"] == {"limit": 500}
    assert not Record.objects.exists()
    assert not Subject.objects.exists()


@pytest.mark.parametrize(
    ("data", "content_type", "code", "words"),
    [
        ('[{"external_id": "a",}]', "application/json", "parse_error", "JSON"),
        ('{"external_id": "a"}\n{"external_id": "b",\n', "application/x-ndjson", "parse_error",
         "line 2"),
        ("id,subject_id,text,label\n1,s,t,bug\n", "text/csv", "parse_error", "'id'"),
        ('{"rows": []}', "application/json", "invalid", "records"),
        ('"text"', "application/json", "invalid", "records"),
        ("external_id=a&subject_id=s", "application/x-www-form-urlencoded",
         "unsupported_media_type", "application/x-www-form-urlencoded"),
        ("a record", "text/plain", "unsupported_media_type", "text/plain"),
    ],
)  # fmt: skip
def test_unreadable_body_is_rejected_whole(integration, dataset_id, data, content_type, code,
                                           words):  # fmt: skip
    response = integration.client.post(url(dataset_id), data=data, content_type=content_type)

    error = error_of(response, 415 if code == "unsupported_media_type" else 400, code)
    assert words in error["message"], error["message"]
    assert not Record.objects.exists()


def test_valid_lines_before_a_broken_jsonl_line_are_not_half_applied(integration, dataset_id, rows):
    body = as_jsonl(rows[:3]) + b'{"external_id": \n'

    response = integration.client.post(
        url(dataset_id), data=body, content_type="application/x-ndjson"
    )

    assert "line 4" in error_of(response, 400, "parse_error")["message"]
    assert not Record.objects.exists()


def test_multipart_without_a_file_is_400_naming_it(integration, dataset_id):
    response = integration.client.post(url(dataset_id), {"rows": "x"}, format="multipart")

    error = error_of(response, 400, "invalid")
    assert '"file"' in error["message"]
    assert "file" in error["details"]


@pytest.mark.parametrize("dataset", ["999", str(2**63)])
def test_unknown_dataset_is_404_and_writes_nothing(integration, rows, dataset):
    response = integration.client.post(url(dataset), rows, format="json")

    error_of(response, 404, "not_found")
    assert not Record.objects.exists()
    assert not Subject.objects.exists()


# --- who may ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("persona", "allowed"),
    [("integration", True), ("engineer", True), ("officer", False), ("auditor", False)],
)
def test_only_ingesters_upsert(request, dataset_id, rows, persona, allowed):
    client = request.getfixturevalue(persona).client

    response = client.post(url(dataset_id), rows, format="json")

    if allowed:
        assert counts(response)[0] == len(rows)
    else:
        error = error_of(response, 403, "permission_denied")
        assert "integration" in error["message"]
        assert not Record.objects.exists()


@pytest.mark.parametrize("token", [None, "Token not-a-real-key"], ids=["no-token", "bad-token"])
def test_unauthenticated_upsert_is_401(dataset_id, rows, token):
    client = APIClient()
    if token:
        client.credentials(HTTP_AUTHORIZATION=token)

    response = client.post(url(dataset_id), rows, format="json")

    error_of(response, 401, "not_authenticated" if token is None else "authentication_failed")
    assert not Record.objects.exists()
    assert Dataset.objects.filter(pk=dataset_id).exists()
