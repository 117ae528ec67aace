"""Idempotency fingerprints in the canonical JSON form (``governance.canonical``).

``ErasureRequest.fingerprint`` was SHA-256 over ``json.dumps(body, sort_keys=True)``
(a space after each separator, non-ASCII escaped); it is now SHA-256 over the canonical
bytes every other hash in Lethe covers. This recomputes each stored fingerprint from the
row's own fields, which hold the filed body as it was filed (subject_ref, reason,
channel), so a client that replays an Idempotency-Key after the upgrade still gets its
first request back instead of a 422. Reversing restores the old form.

Both forms are written out here rather than imported: a migration must keep meaning what
it meant when it ran, whatever later becomes of the application's code.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from django.db import migrations


def _legacy(body: dict[str, str]) -> bytes:
    return json.dumps(body, sort_keys=True).encode()


def _canonical(body: dict[str, str]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def _recompute(apps: Any, form: Callable[[dict[str, str]], bytes]) -> None:
    ErasureRequest = apps.get_model("governance", "ErasureRequest")
    rows = ErasureRequest.objects.exclude(fingerprint="").only(
        "pk", "subject_ref", "reason", "channel", "fingerprint"
    )
    for row in rows.iterator(chunk_size=2000):
        body = {"subject_ref": row.subject_ref, "reason": row.reason, "channel": row.channel}
        fingerprint = hashlib.sha256(form(body)).hexdigest()
        if fingerprint != row.fingerprint:
            # update(), not save(): save() would bump updated_at, which the stuck sweeper reads.
            ErasureRequest.objects.filter(pk=row.pk).update(fingerprint=fingerprint)


def forwards(apps: Any, schema_editor: Any) -> None:
    _recompute(apps, _canonical)


def backwards(apps: Any, schema_editor: Any) -> None:
    _recompute(apps, _legacy)


class Migration(migrations.Migration):
    dependencies = [
        ("governance", "0004_record_erased_index"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards, elidable=False),
    ]
