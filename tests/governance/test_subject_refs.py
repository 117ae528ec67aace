"""One person, one subject id: NFC forms are one subject; invisible characters are refused.

Two Unicode spellings of one name must not be two subjects: an erasure filed with one
would find nothing under the other and certify "no records found".
"""

from __future__ import annotations

import unicodedata

import pytest

from governance.models import Record, Subject
from governance.subject_refs import SubjectRefError, subject_ref_clean, subject_refs_not_normal
from tests.governance.api_helpers import API, create_dataset, error_of
from tests.governance.web_helpers import browser

COMPOSED = "jos\u00e9@example.com"  # é as one code point
DECOMPOSED = "jose\u0301@example.com"  # e + combining acute accent
INVISIBLE = ["ann\u200ba", "ann\u202ea", "ann\ufeffa", "ann\u2028a", "ann\x07a"]


def test_both_spellings_clean_to_one_form():
    assert COMPOSED != DECOMPOSED
    assert subject_ref_clean(COMPOSED) == subject_ref_clean(DECOMPOSED) == COMPOSED
    assert subject_ref_clean("  anna  ") == "anna"


@pytest.mark.parametrize("ref", INVISIBLE)
def test_invisible_and_control_characters_are_refused_by_code_point(ref):
    bad = next(c for c in ref if unicodedata.category(c).startswith(("C", "Z")))
    with pytest.raises(SubjectRefError, match=f"U\\+{ord(bad):04X}"):
        subject_ref_clean(ref)


def rows(*subjects, label):
    return [
        {"external_id": f"r{i}", "subject_id": s, "text": f"message {i}", "label": label}
        for i, s in enumerate(subjects)
    ]


def test_ingest_stores_both_spellings_as_one_subject(integration, sample):
    dataset = create_dataset(integration.client, sample, records=())
    response = integration.client.post(
        f"{API}/datasets/{dataset}/records/",
        rows(COMPOSED, DECOMPOSED, label=sample.labels[0]),
        format="json",
    )

    assert response.json()["created"] == 2
    assert list(Subject.objects.values_list("external_ref", flat=True)) == [COMPOSED]
    assert subject_refs_not_normal() == []


def test_ingest_refuses_an_invisible_character_per_row_and_keeps_the_rest(integration, sample):
    dataset = create_dataset(integration.client, sample, records=())
    body = integration.client.post(
        f"{API}/datasets/{dataset}/records/",
        rows("anna", "ann\u200ba", label=sample.labels[0]),
        format="json",
    ).json()

    assert body["created"] == 1
    assert [(e["index"], e["field"]) for e in body["rejected"]] == [(1, "subject_id")]
    assert "U+200B" in body["rejected"][0]["error"]
    assert list(Subject.objects.values_list("external_ref", flat=True)) == ["anna"]


def test_an_erasure_filed_in_the_other_spelling_finds_the_records(integration, sample):
    dataset = create_dataset(integration.client, sample, records=())
    integration.client.post(
        f"{API}/datasets/{dataset}/records/", rows(COMPOSED, label=sample.labels[0]), format="json"
    )

    response = integration.client.post(
        f"{API}/erasure-requests/", {"subject_id": DECOMPOSED}, format="json"
    )

    assert response.status_code == 201, response.content
    assert response.json()["subject_id"] == COMPOSED
    assert response.json()["impact"]["records_found"] == Record.objects.count() == 1


def test_intake_and_lookups_refuse_invisible_characters_naming_the_field(
    integration, officer, sample
):
    create_dataset(integration.client, sample, records=())
    filed = integration.client.post(
        f"{API}/erasure-requests/", {"subject_id": "ann\u202ea"}, format="json"
    )
    listed = officer.client.get(f"{API}/erasure-requests/", {"subject_id": "ann\u200ba"})
    lineage = officer.client.get(f"{API}/subjects/ann%E2%80%8Ba/lineage/")

    for response in (filed, listed, lineage):
        assert "subject_id" in error_of(response, 400, "invalid")["details"]


def test_lineage_lookup_answers_for_the_other_spelling(integration, officer, sample):
    dataset = create_dataset(integration.client, sample, records=())
    integration.client.post(
        f"{API}/datasets/{dataset}/records/", rows(COMPOSED, label=sample.labels[0]), format="json"
    )

    response = officer.client.get(f"{API}/subjects/{DECOMPOSED}/lineage/")

    assert response.status_code == 200, response.content
    assert response.json()["subject_id"] == COMPOSED
    assert len(response.json()["records"]) == 1


def test_web_lookup_refuses_an_invisible_character(officer):
    page = browser(officer).get("/lineage/", {"subject_ref": "ann\u200ba"})

    assert page.status_code == 200
    assert "U+200B" in page.content.decode()
