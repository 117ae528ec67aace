"""``audit_chain_held``: the chain's lock taken once and its head kept in memory, within one
transaction, without ever linking an event to one that a rolled-back savepoint removed."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from governance.models import AuditEvent
from governance.services.audit import audit_chain_held, audit_event_append, audit_head
from governance.services.audit_integrity import audit_chain_verify

pytestmark = pytest.mark.django_db


def _append(i: int) -> AuditEvent:
    return audit_event_append(
        actor="test", action="thing.happened", object_type="thing", object_id=str(i)
    )


def _chain() -> list[tuple[int, str]]:
    return list(AuditEvent.objects.order_by("seq").values_list("seq", "object_id"))


def test_appends_after_the_first_are_one_insert_each():
    with transaction.atomic():
        _append(0)  # an event before the block: the block must link to it
    with transaction.atomic(), audit_chain_held(), CaptureQueriesContext(connection) as held:
        for i in range(1, 5):
            _append(i)
    with transaction.atomic(), CaptureQueriesContext(connection) as plain:
        for i in range(5, 9):
            _append(i)

    inserts = [q for q in held.captured_queries if q["sql"].startswith("INSERT")]
    assert len(inserts) == 4
    # Plain: every append reads the head (and locks, on PostgreSQL) and inserts. Held: the
    # first does the same, the other three only insert.
    per_append = len(plain) // 4
    assert per_append in (2, 3)
    assert len(plain) == 4 * per_append
    assert len(held) == per_append + 3
    report = audit_chain_verify()
    assert (report.ok, report.checked) == (True, 9), report.reason


def test_a_rolled_back_savepoint_is_not_linked_to():
    with transaction.atomic(), audit_chain_held():
        _append(0)
        try:
            with transaction.atomic():  # a savepoint
                _append(1)
                raise RuntimeError("undone")
        except RuntimeError:
            pass
        _append(2)  # must link to event 0, not to the rolled-back event 1
        assert audit_head(lock=True).seq == 2

    assert _chain() == [(1, "0"), (2, "2")]
    report = audit_chain_verify()
    assert report.ok, report.reason


def test_a_rolled_back_savepoint_opened_after_the_head_was_known_keeps_it():
    with transaction.atomic(), audit_chain_held():
        _append(0)
        try:
            with transaction.atomic():
                raise RuntimeError("nothing appended in here")
        except RuntimeError:
            pass
        with CaptureQueriesContext(connection) as after:
            _append(1)

    assert [q["sql"].split()[0] for q in after.captured_queries] == ["INSERT"]
    assert _chain() == [(1, "0"), (2, "1")]
    assert audit_chain_verify().ok


def test_the_head_is_forgotten_at_the_end_of_the_block():
    with transaction.atomic(), audit_chain_held():
        _append(0)
    with transaction.atomic():
        # Written behind the block's back (as another process would, after its commit).
        _append(1)
    with transaction.atomic(), audit_chain_held():
        _append(2)
    assert _chain() == [(1, "0"), (2, "1"), (3, "2")]
    assert audit_chain_verify().ok


@pytest.mark.django_db(transaction=True)  # no test transaction around it
def test_the_block_needs_a_transaction():
    with (
        pytest.raises(RuntimeError, match="inside the state change's transaction"),
        audit_chain_held(),
    ):
        pass
