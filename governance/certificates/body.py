"""The certificate body (DESIGN §6, docs/certificates.md), built from the database rows.

The body is what gets signed, so it holds only what ``canonical_bytes`` accepts: strings,
integers, booleans, null, lists and objects. It is read from the rows as they are when the
certificate is issued (inside the transaction that completes the request), so every claim
it makes is true at issue and ``certificates.claims`` can re-check each one later.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime
from typing import Any

from governance import engine
from governance.certificates.keys import signing_key_register
from governance.models import ErasureRequest, Sequence, Stage, UnlearningModel
from governance.services.audit import audit_head

CERTIFICATE_TYPE = "lethe.erasure-certificate/v1"


def certified_stages(done: list[dict[str, Any]]) -> dict[int, Stage]:
    """The rows of the stages phase 1 deactivated (``execution["models"]``), by id, with
    what the body reads of them: their state now and when their bytes were destroyed."""
    return {
        s.pk: s
        for s in Stage.objects.filter(pk__in=[i for m in done for i in m["stages"]]).only(
            "pk", "shard_id", "prefix", "position", "state", "destroyed_at"
        )
    }


def certificate_body(
    *, request: ErasureRequest, issued_at: datetime, stages: dict[int, Stage] | None = None
) -> dict[str, Any]:
    """The body for an executed request: records erased, models, timeline, chain head.

    ``request.execution`` is what phase 1 recorded; stage rows add what happened since
    (when their bytes were destroyed): ``stages``, when the caller already read them
    (``certified_stages``, in the transaction that issues the certificate).
    """
    execution = request.execution
    records = execution.get("records_erased", [])
    # Under the chain's lock: the head cited is the one the events announcing this
    # certificate link to, in the transaction that issues it.
    head = audit_head(lock=True)
    return {
        "type": CERTIFICATE_TYPE,
        "certificate_id": str(uuid.uuid4()),
        "request_id": request.pk,
        "subject_ref": request.subject_ref,
        "outcome": "erased" if records else "no_records_found",
        "records_found": len(records),
        "records_erased": records,
        # The erased records' image objects the purge deleted (every version), which the
        # certify phase asked the store are gone; claims.py asks it again.
        "image_objects_deleted": len(execution.get("image_keys", [])),
        "models": _models(execution.get("models", []), stages),
        "received_at": _iso(request.received_at),
        "due_at": _iso(request.deadline),
        "approved_at": _iso(request.approved_at),
        "approved_by": request.approved_by.get_username() if request.approved_by else "policy",
        "executed_at": execution.get("executed_at", ""),
        "issued_at": _iso(issued_at),
        "audit_chain_head": {"seq": head.seq, "hash": head.hash} if head else None,
        "issuer": "Lethe",
        # The signer is registered as it is named, in this transaction: rotation keeps
        # this certificate verifiable (governance.certificates.keys).
        "signing_key_id": signing_key_register(),
    }


def _models(done: list[dict[str, Any]], stages: dict[int, Stage] | None) -> list[dict[str, Any]]:
    """One entry per model phase 1 touched, in the order it recorded them."""
    by_id = stages if stages is not None else certified_stages(done)
    # Every sequence of the shards those stages belong to, in one statement.
    sequences: dict[int, list[Sequence]] = defaultdict(list)
    for seq in Sequence.objects.filter(shard_id__in={s.shard_id for s in by_id.values()}).order_by(
        "shard_id", "index"
    ):
        sequences[seq.shard_id].append(seq)
    # Phase 1 records each model's name; executions recorded before it did are looked up.
    names = {m["model_id"]: m["name"] for m in done if "name" in m}
    if len(names) < len(done):
        names = dict(
            UnlearningModel.objects.filter(pk__in=[m["model_id"] for m in done]).values_list(
                "pk", "name"
            )
        )
    return [_model(m, names.get(m["model_id"], ""), by_id, sequences) for m in done]


def _model(
    done: dict[str, Any],
    name: str,
    stages: dict[int, Stage],
    sequences: dict[int, list[Sequence]],
) -> dict[str, Any]:
    after = done["manifest_after"] or {}
    return {
        "model_id": done["model_id"],
        "name": name,
        "stages_deactivated": [
            _stage(d, stages[d["id"]], sequences[stages[d["id"]].shard_id])
            for d in done["stage_details"]
        ],
        "manifest_before": _manifest_claim(done["manifest_before"]),
        "manifest_after": _manifest_claim(after),
        "serving_depth_after": after.get("depths", {}),
        "i2_check": done["i2_check"],
    }


def _stage(detail: dict[str, Any], stage: Stage, sequences: list[Sequence]) -> dict[str, Any]:
    return {
        "id": detail["id"],
        "generation": detail["generation"],
        "shard": detail["shard"],
        "prefix": detail["prefix"],
        "sequence": _sequences_of(stage, sequences),
        "position": detail["position"],
        "state_before": detail["state_before"],
        "tensor_digest": detail["tensor_digest"],
        "destroyed_at": _iso(stage.destroyed_at),
    }


def _sequences_of(stage: Stage, sequences: list[Sequence]) -> list[int]:
    """Indices of the sequences whose prefix this stage is (shared prefixes: several);
    ``sequences``: its shard's, in index order."""
    return [
        seq.index
        for seq in sequences
        if engine.prefix_text(seq.order[: stage.position]) == stage.prefix
    ]


def _manifest_claim(ref: dict[str, Any] | None) -> dict[str, Any] | None:
    if not ref:
        return None
    return {"version": ref["version"], "generation": ref["generation"], "digest": ref["digest"]}


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""
