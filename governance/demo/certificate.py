"""Step 7, the deletion certificate: what it says, its signature checked, and its claims
re-checked against lineage and the artifacts now, not taken on trust."""

from __future__ import annotations

from typing import Any

from governance.certificates.claims import certificate_claims_check
from governance.certificates.signing import certificate_verify
from governance.demo.console import Console
from governance.models import ErasureRequest
from governance.selectors.demo import certificate_of
from governance.services.demo import DemoError

Pairs = list[tuple[str, object]]


def certificate_print(
    console: Console, *, request: ErasureRequest, base_url: str
) -> tuple[str, bool]:
    """Print the certificate of ``request``; DemoError unless it verifies and its claims hold.

    Returns the certificate id and whether the signature verified.
    """
    stored = certificate_of(request)
    envelope = stored.envelope
    body = envelope["certificate"]
    check = certificate_verify(envelope)
    claims = certificate_claims_check(envelope)
    held = sum(1 for claim in claims if claim["ok"])
    broken = "; ".join(f"{c['claim']}: {c['detail']}" for c in claims if not c["ok"])
    pairs = _body_pairs(body)
    pairs += [
        ("audit head", f"event #{(body.get('audit_chain_head') or {}).get('seq', '—')}"),
        ("key id", stored.key_id),
        (
            "signature",
            "verified OK (Ed25519 over canonical JSON)"
            if check.ok
            else f"NOT VERIFIED: {check.reason}",
        ),
        (
            "claims",
            f"{held}/{len(claims)} hold, re-checked against lineage and artifacts now"
            + (f"; failed: {broken}" if broken else ""),
        ),
    ]
    console.fields(pairs)
    path = f"api/v1/erasure-requests/{request.pk}/certificate/"
    console.write(f"  JSON: {base_url}{path}   PDF: add ?format=pdf")
    if not check.ok or broken:
        raise DemoError(
            f"certificate {body['certificate_id']} does not hold: {check.reason or broken}"
        )
    return str(body["certificate_id"]), check.ok


def _body_pairs(body: dict[str, Any]) -> Pairs:
    """What the signed body certifies: the request, the records, each model's stages."""
    erased = body["records_erased"]
    pairs: Pairs = [
        ("certificate", body["certificate_id"]),
        ("request", f"{body['request_id']} for {body['subject_ref']}: {body['outcome']}"),
        (
            "records erased",
            f"{len(erased)}: {', '.join(erased[:5])}{' …' if len(erased) > 5 else ''}",
        ),
    ]
    for model in body["models"]:
        pairs += _model_pairs(model)
    return pairs


def _model_pairs(model: dict[str, Any]) -> Pairs:
    stages = model["stages_deactivated"]
    before, after = model["manifest_before"] or {}, model["manifest_after"] or {}
    depths = model["serving_depth_after"]
    return [
        (
            f"model {model['name']}",
            f"{len(stages)} stages deactivated and destroyed\n"
            + "\n".join(
                f"shard {shard}: prefixes "
                + ", ".join(s["prefix"] for s in stages if s["shard"] == shard)
                for shard in sorted({s["shard"] for s in stages})
            ),
        ),
        (
            "manifest",
            f"v{before.get('version', '—')} → v{after.get('version', '—')}; serving "
            "depth after: " + ", ".join(f"shard {k} {v}" for k, v in sorted(depths.items())),
        ),
        ("I2 check", f"{model['i2_check']} (no serving stage read an erased record)"),
    ]
