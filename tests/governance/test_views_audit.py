"""The audit page: newest-first keyset paging on seq, filters, and the chain check with its
Re-verify button (which must name the first bad event after tampering)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from governance.models import AuditEvent
from tests.governance.web_helpers import browser, find, find_all, ids_on, messages_text


def append(n, **fields):
    from governance.services.audit import audit_event_append

    for i in range(n):
        with transaction.atomic():
            audit_event_append(
                actor=fields.get("actor", "test"),
                action=fields.get("action", "thing.happened"),
                object_type=fields.get("object_type", "thing"),
                object_id=fields.get("object_id", str(i)),
                payload={"i": i},
            )


def tamper(sql, params):
    """Change a row behind the application's back, past the append-only trigger (as
    tests/governance/test_audit.py does)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = replica")
            cursor.execute(sql, params)
            cursor.execute("SET session_replication_role = DEFAULT")
        else:
            cursor.execute("DROP TRIGGER lethe_audit_append_only")
            cursor.execute(sql, params)
            cursor.execute(
                "CREATE TRIGGER lethe_audit_append_only BEFORE UPDATE ON governance_auditevent "
                "BEGIN SELECT RAISE(ABORT, 'append-only'); END;"
            )


def seqs(page):
    return [int(e["data-seq"]) for e in find_all(page, data_testid="audit-event")]


def test_trail_is_newest_first_and_pages_older_and_newer_by_seq(auditor):
    append(118)  # plus the two events that created the auditor: 120
    client = browser(auditor)

    first = client.get("/audit/")
    older = client.get("/audit/" + find(first, data_testid="audit-older")["href"])
    oldest = client.get("/audit/" + find(older, data_testid="audit-older")["href"])
    back = client.get("/audit/" + find(oldest, data_testid="audit-newer")["href"])

    assert seqs(first) == list(range(120, 70, -1))
    assert "audit-newer" not in ids_on(first)
    assert seqs(older) == list(range(70, 20, -1))
    assert seqs(oldest) == list(range(20, 0, -1))
    assert "audit-older" not in ids_on(oldest)
    assert seqs(back) == list(range(70, 20, -1))


def test_filters_by_action_actor_object_and_dates(auditor):
    append(3, action="erasure.approved", actor="user:olivia", object_type="erasurerequest",
           object_id="7")  # fmt: skip
    append(2, action="manifest.published", actor="worker", object_type="servingmanifest")
    client = browser(auditor)
    today = timezone.now().date()

    def shown(**query):
        page = client.get("/audit/", query)
        assert page.status_code == 200
        return {(e["data-action"]) for e in find_all(page, data_testid="audit-event")}, page

    assert shown(action="erasure.approved")[0] == {"erasure.approved"}
    assert len(seqs(shown(action="erasure.approved")[1])) == 3
    assert shown(actor="worker")[0] == {"manifest.published"}
    assert shown(object_type="erasurerequest", object_id="7")[0] == {"erasure.approved"}
    assert shown(object_type="erasurerequest", object_id="8")[0] == set()
    assert "manifest.published" in shown(since=today.isoformat())[0]
    assert shown(since=(today + timedelta(days=1)).isoformat())[0] == set()
    assert shown(until=(today - timedelta(days=1)).isoformat())[0] == set()
    assert "manifest.published" in shown(until=today.isoformat())[0]  # inclusive


def test_bad_filter_dates_are_reported_next_to_their_field(auditor):
    page = browser(auditor).get("/audit/", {"since": "soon", "until": "2020-01-01"})

    assert "YYYY-MM-DD" in find(page, data_testid="error-since").text
    bad_range = browser(auditor).get("/audit/", {"since": "2021-01-01", "until": "2020-01-01"})
    assert "before the start date" in find(bad_range, data_testid="error-until").text


@pytest.mark.parametrize("persona", ["officer", "auditor"])
def test_reverify_shows_ok_then_the_first_bad_event_after_tampering(request, persona):
    client = browser(request.getfixturevalue(persona))
    append(5)
    total = AuditEvent.objects.count()

    page = client.get("/audit/")
    status = find(page, data_testid="audit-verify")
    assert status["data-ok"] == "true"
    assert f"{total} events re-hashed" in status.text

    tamper("UPDATE governance_auditevent SET payload = %s WHERE seq = 3", ['{"i": 99}'])
    response = client.post("/audit/verify/")
    after = client.get(response["Location"])

    assert response.status_code == 302
    status = find(after, data_testid="audit-verify")
    assert (status["data-ok"], status["data-first-bad-seq"]) == ("false", "3")
    assert "hash does not match" in status.text
    assert "broken at event #3" in messages_text(after)
    assert [e["data-seq"] for e in find_all(after, data_testid="audit-event", data_bad="true")] == [
        "3"
    ]
    link = find(after, data_testid="first-bad-event")["href"]
    assert seqs(client.get("/audit/" + link))[0] == 3


def test_reverify_returns_to_the_filtered_page(auditor):
    response = browser(auditor).post("/audit/verify/", {"query": "action=x&actor=y"})

    assert response["Location"] == "/audit/?action=x&actor=y"
