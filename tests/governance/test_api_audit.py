"""GET audit/events/ and audit/verify/: keyset paging, filters, roles, tamper reporting."""

from __future__ import annotations

import pytest
from django.db import transaction

from governance.services.audit import audit_event_append
from tests.governance.test_audit import _tamper

EVENTS = "/api/v1/audit/events/"
VERIFY = "/api/v1/audit/verify/"


def _append(n, action="thing.happened"):
    for i in range(n):
        with transaction.atomic():
            audit_event_append(
                actor="test", action=action, object_type="thing", object_id=str(i), payload={"i": i}
            )


def test_events_page_through_the_chain_in_order(auditor):
    before = auditor.client.get(EVENTS, {"limit": 1000}).json()["results"]  # persona creation
    _append(5)
    seqs, after = [], before[-1]["seq"]
    while after is not None:
        body = auditor.client.get(EVENTS, {"after_seq": after, "limit": 2}).json()
        seqs += [e["seq"] for e in body["results"]]
        after = body["next_after_seq"]
    assert seqs == list(range(before[-1]["seq"] + 1, before[-1]["seq"] + 6))


def test_events_filter_by_action_and_object(officer):
    _append(3, action="a.one")
    _append(2, action="a.two")
    body = officer.client.get(EVENTS, {"action": "a.two"}).json()
    assert [e["action"] for e in body["results"]] == ["a.two", "a.two"]
    body = officer.client.get(EVENTS, {"action": "a.one", "object_id": "1"}).json()
    assert [(e["action"], e["object_id"]) for e in body["results"]] == [("a.one", "1")]
    assert body["next_after_seq"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"after_seq": "x"}, "after_seq"),
        ({"colour": "red"}, "colour"),
        ({"since": "yesterday"}, "since"),
    ],
)
def test_bad_filters_are_400_naming_the_field(auditor, params, field):
    response = auditor.client.get(EVENTS, params)
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith(field)


def test_verify_reports_ok_then_the_first_tampered_event(auditor):
    _append(3)
    body = auditor.client.get(VERIFY).json()
    assert body["ok"] is True
    assert body["first_bad_seq"] is None
    target = auditor.client.get(EVENTS, {"action": "thing.happened"}).json()["results"][1]["seq"]
    _tamper("UPDATE governance_auditevent SET actor = %s WHERE seq = %s", ["mallory", target])
    body = auditor.client.get(VERIFY).json()
    assert (body["ok"], body["first_bad_seq"]) == (False, target)


@pytest.mark.parametrize("url", [EVENTS, VERIFY])
def test_only_officers_and_auditors_read_the_trail(engineer, integration, url):
    for persona in (engineer, integration):
        response = persona.client.get(url)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "permission_denied"
