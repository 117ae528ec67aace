"""Re-checking what a certificate claims against the database as it is now.

A valid signature proves who issued a certificate; these checks show that what it says is
still true here: the request completed, the records are tombstones, the stages' bytes and
the erased records' image bytes are gone, the manifests named exist, no serving stage reads
an erased record (I2) and the audit chain holds the head the certificate names.
``i2_check`` is also the check the erasure runs before it records ``i2_check`` in the body,
so issue and verification agree.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from governance.artifacts import stage_bytes_exist
from governance.images import image_bytes_exist
from governance.models import (
    AuditEvent,
    DeletionCertificate,
    ErasureRequest,
    Record,
    ServingManifest,
    Stage,
    UnlearningModel,
)
from governance.selectors.manifests import manifest_latest

PASSED, FAILED = "passed", "failed"
GONE_STATES = (Stage.State.DESTROYED, Stage.State.RETIRED)


_LATEST: Any = object()


def i2_check(model: UnlearningModel, manifest: ServingManifest | None = _LATEST) -> str:
    """I2 on the manifest in force: "passed" when no serving stage reads an erased record.

    A serving stage that is not trained (deactivated, destroyed) fails it too. One
    statement, whatever the number of stages; ``manifest``: the one in force when the
    caller already holds it (the erasure, right after publishing it).
    """
    manifest = manifest_latest(model) if manifest is _LATEST else manifest
    if manifest is None:
        return PASSED
    ids = [s["id"] for e in manifest.entries for s in e["stages"]]
    erased = Stage.objects.filter(
        pk__in=ids, slices__assignments__record__status=Record.Status.ERASED
    ).values("pk")
    dirty = (
        Stage.objects.filter(pk__in=ids)
        .filter(~Q(state=Stage.State.TRAINED) | Q(pk__in=erased))
        .exists()
    )
    return FAILED if dirty else PASSED


def certificate_claims_check(envelope: Any) -> list[dict[str, Any]]:
    """Re-check what a (signature-verified) certificate claims against the database now.

    Each check is ``{"claim", "ok", "detail"}``: the request exists and completed for that
    subject; the certificate is the one stored; every record listed is an erased tombstone
    with no content; the store holds no bytes of their images (and at least as many image
    objects were theirs as the body says were deleted); every stage listed is destroyed (or
    retired) and has no bytes; the manifests named exist with those digests; the serving
    manifests hold no stage whose lineage has an erased record (I2, now); the audit chain
    holds the head it names.
    """
    body = envelope.get("certificate") if isinstance(envelope, dict) else None
    if not isinstance(body, dict):
        return [_claim("certificate", False, "no certificate body")]
    checks = [_request_claim(body), _issued_claim(body), _records_claim(body)]
    if "image_objects_deleted" in body:  # certificates from before image records lack it
        checks.append(_images_claim(body))
    for model in body.get("models") or []:
        checks += _model_claims(model)
    head = body.get("audit_chain_head") or {}
    if head:
        checks.append(_chain_head_claim(head))
    return checks


def _request_claim(body: dict[str, Any]) -> dict[str, Any]:
    request = ErasureRequest.objects.filter(pk=_int(body.get("request_id"))).first()
    return _claim(
        "request",
        request is not None
        and request.subject_ref == body.get("subject_ref")
        and request.status == ErasureRequest.Status.COMPLETED,
        f"request {body.get('request_id')} for {body.get('subject_ref')!r}"
        + (f" is {request.status}" if request else " does not exist"),
    )


def _issued_claim(body: dict[str, Any]) -> dict[str, Any]:
    stored = DeletionCertificate.objects.filter(certificate_id=body.get("certificate_id")).first()
    return _claim(
        "issued",
        stored is not None and stored.envelope.get("certificate") == body,
        "matches the certificate stored at issue"
        if stored
        else "no certificate with this id was issued here",
    )


def _records_claim(body: dict[str, Any]) -> dict[str, Any]:
    erased = list(body.get("records_erased") or [])
    rows = Record.objects.filter(
        subject__external_ref=body.get("subject_ref"), external_id__in=erased
    )
    clean = [r.external_id for r in rows if r.status == Record.Status.ERASED and _wiped(r)]
    missing = sorted(set(erased) - set(clean))
    return _claim(
        "records_erased",
        not missing,
        f"{len(clean)} of {len(erased)} records are erased tombstones"
        + (f"; not erased: {missing[:10]}" if missing else ""),
    )


def _wiped(record: Record) -> bool:
    return not (record.text or record.response or record.messages or record.image_digest)


def _images_claim(body: dict[str, Any]) -> dict[str, Any]:
    """No bytes of the erased records' images are left in the store (object or version),
    asked of the store every process shares, never of a local folder."""
    claimed = body.get("image_objects_deleted")
    keys = list(
        Record.objects.filter(
            subject__external_ref=body.get("subject_ref"),
            external_id__in=list(body.get("records_erased") or []),
            status=Record.Status.ERASED,
        )
        .exclude(image_key="")
        .values_list("image_key", flat=True)
    )
    left = image_bytes_exist(keys)
    counted = isinstance(claimed, int) and not isinstance(claimed, bool) and claimed <= len(keys)
    return _claim(
        "image_objects_deleted",
        counted and not left,
        f"{len(keys)} image objects of the erased records, {len(left)} with bytes left"
        + (f": {left[:5]}" if left else "")
        + ("" if counted else f"; the certificate claims {claimed!r}"),
    )


def _chain_head_claim(head: dict[str, Any]) -> dict[str, Any]:
    event = AuditEvent.objects.filter(seq=_int(head.get("seq"))).first()
    same = event is not None and event.hash == head.get("hash")
    return _claim(
        "audit_chain_head",
        same,
        f"event #{head.get('seq')} " + ("has the named hash" if same else "differs"),
    )


def _model_claims(claim: dict[str, Any]) -> list[dict[str, Any]]:
    model = UnlearningModel.objects.filter(pk=_int(claim.get("model_id"))).first()
    name = f"model {claim.get('model_id')}"
    if model is None:
        return [_claim(name, False, "no such model")]
    listed = claim.get("stages_deactivated") or []
    alive = _stages_alive(model, listed)
    out = [
        _claim(
            f"{name} stages destroyed",
            not alive,
            f"{len(listed) - len(alive)} of {len(listed)} stages destroyed, no bytes left"
            + (f"; still present: {alive}" if alive else ""),
        )
    ]
    for which in ("manifest_before", "manifest_after"):
        ref = claim.get(which)
        if ref:
            ok = ServingManifest.objects.filter(
                model=model, version=ref.get("version"), digest=ref.get("digest")
            ).exists()
            out.append(_claim(f"{name} {which}", ok, f"version {ref.get('version')}"))
    out.append(_claim(f"{name} I2 now", i2_check(model) == PASSED, "serving lineage clean"))
    return out


def _stages_alive(model: UnlearningModel, listed: list[Any]) -> list[Any]:
    """Ids of the listed stages that are not destroyed (or retired) or still have bytes in
    the artifact store."""
    ids = [d.get("id") for d in listed]
    stages = {s.pk: s for s in Stage.objects.filter(pk__in=ids).select_related("shard")}
    alive = []
    for d in listed:
        stage = stages.get(d.get("id"))
        if stage is None or stage.state not in GONE_STATES:
            alive.append(d.get("id"))
            continue
        # Asked of the store every process shares (a HEAD, a listing of the stage's objects
        # and of a versioned bucket's versions), never of a folder on this machine.
        if stage_bytes_exist(stage):
            alive.append(stage.pk)
    return alive


def _claim(claim: str, ok: bool, detail: str) -> dict[str, Any]:
    return {"claim": claim, "ok": bool(ok), "detail": detail}


def _int(value: Any) -> int:
    """A claimed id as an integer; anything else matches no row."""
    return value if isinstance(value, int) and not isinstance(value, bool) else -1
