"""A record a stage trained on is immutable as trained: rewriting it could make a certificate lie.

The attack: re-attribute a subject's trained records to another subject id, then erase
the original subject. If the upsert rewrote the rows, the erasure would find nothing and
sign "no records found" while stages trained on that person's texts kept serving.
"""

from __future__ import annotations

from governance.models import DeletionCertificate, Record, SliceAssignment, Stage, Subject
from tests.governance import web_helpers
from tests.governance.api_helpers import API
from tests.governance.web_helpers import busiest_subject

artifacts = web_helpers.artifacts
trained = web_helpers.trained


def upsert(client, dataset_id, rows):
    response = client.post(f"{API}/datasets/{dataset_id}/records/", rows, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def row_of(record, **changes):
    return {
        "external_id": record.external_id,
        "subject_id": record.subject.external_ref,
        "text": record.text,
        "label": record.label,
        **changes,
    }


def trained_records(subject):
    records = Record.objects.filter(subject__external_ref=subject).select_related("subject")
    return [r for r in records.order_by("pk") if SliceAssignment.objects.filter(record=r).exists()]


def test_reattributing_trained_records_is_refused_and_the_erasure_still_reaches_them(
    officer, integration, trained, django_capture_on_commit_callbacks
):
    subject = busiest_subject(trained["model"])
    records = trained_records(subject)
    assert records
    late = {
        "external_id": "late-1",
        "subject_id": "other",
        "text": "new",
        "label": records[0].label,
    }

    body = upsert(
        integration.client,
        trained["dataset"],
        [row_of(r, subject_id="someone-else") for r in records] + [late],
    )

    assert body["created"] == 1  # the valid row is kept
    assert (body["updated"], body["unchanged"]) == (0, 0)
    assert [(e["index"], e["field"]) for e in body["rejected"]] == [
        (i, "external_id") for i in range(len(records))
    ]
    assert "erasure" in body["rejected"][0]["error"]
    assert {r.subject.external_ref for r in trained_records(subject)} == {subject}
    assert not Subject.objects.filter(external_ref="someone-else").exists()  # nothing left behind

    filed = integration.client.post(
        f"{API}/erasure-requests/", {"subject_id": subject}, format="json"
    ).json()
    with django_capture_on_commit_callbacks(execute=False):
        officer.client.post(f"{API}/erasure-requests/{filed['id']}/approve/", {}, format="json")
    from governance.services.erasure_execution import erasure_request_execute

    assert erasure_request_execute(request_id=filed["id"]) == "completed"
    body = DeletionCertificate.objects.get(request=filed["id"]).envelope["certificate"]
    assert body["outcome"] == "erased"
    assert sorted(body["records_erased"]) == sorted(r.external_id for r in records)
    readers = Stage.objects.filter(slices__assignments__record__in=records).distinct()
    assert readers.exists()
    assert set(readers.values_list("state", flat=True)) <= {"deactivated", "destroyed"}


def test_editing_a_trained_record_text_or_label_is_refused(integration, trained, sample):
    record = trained_records(busiest_subject(trained["model"]))[0]
    other_label = next(label for label in sample.labels if label != record.label)

    body = upsert(integration.client, trained["dataset"], [row_of(record, text=record.text + "!")])
    relabel = upsert(integration.client, trained["dataset"], [row_of(record, label=other_label)])

    for result in (body, relabel):
        assert (result["created"], result["updated"]) == (0, 0)
        assert [e["field"] for e in result["rejected"]] == ["external_id"]
    fresh = Record.objects.get(pk=record.pk)
    assert (fresh.text, fresh.label) == (record.text, record.label)


def test_resending_a_trained_record_unchanged_is_still_idempotent(integration, trained):
    record = trained_records(busiest_subject(trained["model"]))[0]

    body = upsert(integration.client, trained["dataset"], [row_of(record)])

    assert (body["created"], body["updated"], body["unchanged"], body["rejected"]) == (0, 0, 1, [])


def test_records_not_yet_trained_can_still_change(integration, trained, sample):
    row = {
        "external_id": "late-2",
        "subject_id": "newcomer",
        "text": "hi",
        "label": sample.labels[0],
    }
    upsert(integration.client, trained["dataset"], [row])

    body = upsert(integration.client, trained["dataset"], [{**row, "subject_id": "renamed"}])

    assert (body["updated"], body["rejected"]) == (1, [])
    assert Record.objects.get(external_id="late-2").subject.external_ref == "renamed"
