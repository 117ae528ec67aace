"""Step 6, the erasure: file a request for the subject with the most records left, show
its impact preview, approve it and execute it here with ``erasure_request_execute`` (the
copy that approval queued for the worker finds the request completed and does nothing).

Only requests an earlier demo filed are resumed (their idempotency keys carry
``KEY_PREFIX``): the demo never decides a request a person filed in the UI.
"""

from __future__ import annotations

import time
from typing import Any

from django.contrib.auth.models import User

from governance.demo.accounts import DemoAccount
from governance.demo.console import Console
from governance.models import ErasureRequest, UnlearningModel
from governance.selectors.demo import erasure_request_resumable, subject_busiest, user_get
from governance.services.demo import DemoError
from governance.services.erasure import (
    erasure_request_approve,
    erasure_request_create,
    erasure_request_retry,
)
from governance.services.erasure_execution import erasure_request_execute

KEY_PREFIX = "demo-erasure-"  # idempotency keys of the requests the demo files
REASON = "Data subject asked to be forgotten (GDPR Art. 17); filed by the demo."
Status = ErasureRequest.Status


def erasure_run(
    console: Console, *, model: UnlearningModel, accounts: dict[str, DemoAccount]
) -> ErasureRequest | None:
    """File (or resume), approve and execute one request; None when no one is left."""
    officer = user_get(accounts["officer"].username)
    request = erasure_request_resumable(filed_by=officer, key_prefix=KEY_PREFIX)
    if request is not None:
        console.fields([("resuming", f"request {request.pk} left {request.status} by a past run")])
    else:
        request = _file(console, model=model, officer=officer)
        if request is None:
            return None
    _print_impact(console, request.impact)
    request = _decide(console, request, officer=officer)
    return _execute(console, request)


def _file(console: Console, *, model: UnlearningModel, officer: User) -> ErasureRequest | None:
    subject = subject_busiest(model.dataset_id)
    if subject is None:
        console.write("  every subject is erased already; nothing left to erase")
        return None
    request, _ = erasure_request_create(
        actor=officer,
        subject_ref=subject,
        reason=REASON,
        channel=ErasureRequest.Channel.WEB,
        idempotency_key=f"{KEY_PREFIX}{subject}",
    )
    console.fields(
        [
            ("subject", f"{subject}, the data subject with the most messages left"),
            (
                "filed",
                f"request {request.pk} by {officer.username} (channel web), "
                f"due {request.due_at:%Y-%m-%d} (one month, GDPR Art. 12(3))",
            ),
        ]
    )
    return request


def _decide(console: Console, request: ErasureRequest, *, officer: User) -> ErasureRequest:
    """Retry a failed request; approve a received one (which also queues it for the worker)."""
    if request.status == Status.FAILED:
        request = erasure_request_retry(actor=officer, request=request)
    if request.status == Status.RECEIVED:
        request = erasure_request_approve(
            actor=officer, request=request, note="Identity verified; approved in the demo."
        )
        console.fields([("approved", f"by {officer.username}; execution queued for the worker")])
    return request


def _execute(console: Console, request: ErasureRequest) -> ErasureRequest:
    started = time.monotonic()
    status = erasure_request_execute(request_id=request.pk)
    request.refresh_from_db()
    execution = request.execution
    stages = sum(len(m["stages"]) for m in execution.get("models", []))
    console.fields(
        [
            (
                "executed",
                f"{status} in {(time.monotonic() - started) * 1000:.0f} ms, here; the copy "
                "queued for the worker will find it done and do nothing",
            ),
            (
                "effect",
                f"{len(execution.get('records_erased', []))} records wiped to tombstones, "
                f"{stages} stages deactivated and their bytes destroyed; no gradient step",
            ),
        ]
    )
    if status != Status.COMPLETED:
        raise DemoError(f"erasure request {request.pk} ended {status}: {request.error}")
    return request


IMPACT_HEADERS = (
    "model",
    "shard",
    "slices",
    "serving depth",
    "sequence",
    "stages off",
    "retraining needed",
)


def _print_impact(console: Console, impact: dict[str, Any]) -> None:
    """The preview: records found, then per shard what serving loses, then each sequence."""
    found = impact.get("records_found", 0)
    untrained = impact.get("records_not_yet_trained", 0)
    console.fields([("impact", f"{found} records found, {untrained} not yet trained")])
    rows = [
        _impact_row(model, generation, shard)
        for model in impact.get("models", [])
        for generation in model.get("generations", [])
        for shard in generation.get("shards", [])
    ]
    if rows:
        console.table(IMPACT_HEADERS, rows)
    for model in impact.get("models", []):
        for generation in model.get("generations", []):
            for seq in generation.get("sequences_truncated", []):
                console.write(
                    f"    shard {seq['shard']} sequence {seq['sequence']} "
                    f"(slices {'-'.join(map(str, seq['order']))}): depth "
                    f"{seq['depth_before']} → {seq['depth_after']}"
                )


def _impact_row(
    model: dict[str, Any], generation: dict[str, Any], shard: dict[str, Any]
) -> tuple[object, ...]:
    return (
        f"{model['name']} gen {generation['generation']}",
        shard["shard"],
        ", ".join(str(s) for s in shard["slices"]),
        f"{shard['depth_before']} → {shard['depth_after']}",
        f"{shard['sequence_before']} → {shard['sequence_after']}",
        model["stages_to_deactivate"],
        "yes" if model["retraining_needed"] else "no",
    )
