"""The audit trail checked against what was signed about it: checkpoints and certificates.

A keyed hash chain (``services.audit``) shows that every event was written by the server
and that none was changed or removed from the middle, but it cannot show that the newest
events are still there: a trail cut after event #N is a valid chain of N events. What
notices a cut is a signed statement made before it. Lethe has two kinds:

- **Checkpoints**: Ed25519 signatures over ``{seq, hash}`` of the head, written at every
  certificate (inside the transaction that issues it) and on a schedule (beat,
  ``LETHE_AUDIT_CHECKPOINT_INTERVAL_S``). Each is also logged, so a log collector holds a
  copy outside the database.
- **Certificates**: each signed body cites ``audit_chain_head``, and each issuance is an
  ``erasure.completed`` event naming the certificate.

``audit_chain_verify`` walks the chain and checks it against all of them, so a deleted tail,
an appended forgery and a re-hashed suffix are each named with the event where they start.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from cryptography.exceptions import InvalidSignature
from django.db import transaction
from django.utils import timezone

from governance.canonical import canonical_bytes
from governance.certificates.keys import (
    certificate_verify_stored,
    registered_public_key,
    signing_key_register,
)
from governance.certificates.signing import signer_key_id, signing_key
from governance.models import AuditCheckpoint, AuditEvent, DeletionCertificate
from governance.services.audit import GENESIS_HASH, audit_head, event_problem

logger = logging.getLogger(__name__)

CHECKPOINT_TYPE = "lethe.audit-checkpoint/v1"
COMPLETED = "erasure.completed"


# --- checkpoints --------------------------------------------------------------------------


def checkpoint_body(checkpoint: AuditCheckpoint) -> dict[str, Any]:
    """What a checkpoint's signature covers (canonical JSON, like a certificate body)."""
    return {
        "type": CHECKPOINT_TYPE,
        "seq": checkpoint.seq,
        "hash": checkpoint.hash,
        "created_at": checkpoint.created_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "reason": checkpoint.reason,
        "key_id": checkpoint.key_id,
    }


def audit_checkpoint_create(*, reason: str, key_id: str | None = None) -> AuditCheckpoint | None:
    """Sign the trail's current head; None when the trail is empty.

    A scheduled checkpoint is skipped (None) when the head has not moved since the last
    one. Runs in the caller's transaction when there is one (without a savepoint of its
    own: a failure here fails it), so a certificate and the checkpoint covering its
    issuance commit together. ``key_id``: the current key's id, when the caller has
    registered it in this transaction already (a certificate's signer).
    """
    with transaction.atomic(savepoint=False):
        head = audit_head()
        if head is None:
            return None
        if (
            reason == AuditCheckpoint.Reason.SCHEDULED
            and AuditCheckpoint.objects.filter(seq=head.seq, hash=head.hash).exists()
        ):
            return None
        key = signing_key()
        checkpoint = AuditCheckpoint(
            seq=head.seq,
            hash=head.hash,
            created_at=timezone.now(),
            reason=reason,
            # Registered before it is stored, so the checkpoint verifies after a rotation.
            key_id=key_id if key_id == signer_key_id() else signing_key_register(),
        )
        signature = key.sign(canonical_bytes(checkpoint_body(checkpoint)))
        checkpoint.signature = base64.b64encode(signature).decode("ascii")
        checkpoint.save(force_insert=True)
    # The log line is the copy outside the database: enough to re-check the trail later.
    logger.info(
        "audit checkpoint #%s: head #%s %s, %s, signature %s",
        checkpoint.pk,
        checkpoint.seq,
        checkpoint.hash,
        checkpoint.key_id,
        checkpoint.signature,
    )
    return checkpoint


def checkpoint_signature_ok(checkpoint: AuditCheckpoint) -> bool:
    """Whether ``checkpoint`` carries a valid signature over its body by the key it names
    (this server's current key or one registered before a rotation)."""
    public_key = registered_public_key(checkpoint.key_id)
    if public_key is None:
        return False
    try:
        raw = base64.b64decode(checkpoint.signature, validate=True)
        public_key.verify(raw, canonical_bytes(checkpoint_body(checkpoint)))
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True


# --- verification -------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainReport:
    """Result of verifying the audit trail.

    ``first_bad_seq`` is where the trouble starts: the first bad event, or for a cut tail
    the first missing one. ``warnings`` list anchors that could not be used (signed by a
    key this server does not hold), which do not make the trail fail.
    """

    ok: bool
    checked: int
    head: str
    first_bad_seq: int | None = None
    reason: str = ""
    head_seq: int = 0
    certificates_checked: int = 0
    checkpoints_checked: int = 0
    warnings: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class _Anchor:
    seq: int
    hash: str
    source: str


@dataclass
class _Anchors:
    at: dict[int, list[_Anchor]] = field(default_factory=lambda: defaultdict(list))
    certificates: dict[str, int] = field(default_factory=dict)  # certificate id → request
    other_key: set[str] = field(default_factory=set)  # certificates signed by another key
    checkpoints: int = 0
    warnings: list[str] = field(default_factory=list)
    forged: str = ""
    forged_seq: int | None = None

    def add(self, seq: int, digest: str, source: str) -> None:
        self.at[seq].append(_Anchor(seq, digest, source))


def audit_chain_verify(*, batch: int = 5000, expect: tuple[int, str] | None = None) -> ChainReport:
    """Re-hash every event in order and check the trail against every signed anchor.

    Names the first event whose hash, link or MAC is wrong; an event that differs from what
    a checkpoint or certificate signed; a tail cut below what one of them signed; and an
    ``erasure.completed`` event whose certificate is missing, or the reverse. ``expect``
    adds a head held outside the database (``verify_audit_chain --expect SEQ:HASH``).
    """
    anchors = _anchors_load(expect)
    if anchors.forged:
        return _report(anchors, False, 0, GENESIS_HASH, 0, anchors.forged_seq, anchors.forged)
    prev, seq, checked = GENESIS_HASH, 0, 0
    completed: dict[str, int] = {}
    while True:
        events = list(AuditEvent.objects.filter(seq__gt=seq).order_by("seq")[:batch])
        if not events:
            break
        for event in events:
            problem = event_problem(event, seq + 1, prev) or _anchor_problem(anchors, event)
            if problem:
                return _report(anchors, False, checked, prev, seq, event.seq, problem)
            if event.action == COMPLETED:
                completed[str(event.payload.get("certificate_id", ""))] = event.seq
            prev, seq, checked = event.hash, event.seq, checked + 1
    problem, bad_seq = _tail_problem(anchors, seq)
    if not problem:
        problem, bad_seq = _certificate_problem(anchors, completed)
    return _report(anchors, not problem, checked, prev, seq, bad_seq, problem)


def _report(
    anchors: _Anchors,
    ok: bool,
    checked: int,
    head: str,
    head_seq: int,
    first_bad_seq: int | None,
    reason: str,
) -> ChainReport:
    return ChainReport(
        ok=ok,
        checked=checked,
        head=head,
        first_bad_seq=None if ok else first_bad_seq,
        reason=reason,
        head_seq=head_seq,
        certificates_checked=len(anchors.certificates),
        checkpoints_checked=anchors.checkpoints,
        warnings=tuple(anchors.warnings),
    )


def _anchors_load(expect: tuple[int, str] | None) -> _Anchors:
    anchors = _Anchors()
    for checkpoint in AuditCheckpoint.objects.order_by("seq", "pk").iterator():
        when = checkpoint.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        name = f"checkpoint {checkpoint.pk} ({checkpoint.reason}, {when})"
        if registered_public_key(checkpoint.key_id) is None:
            anchors.warnings.append(
                f"{name} is signed by {checkpoint.key_id}, a key this server never registered"
            )
        elif not checkpoint_signature_ok(checkpoint):
            anchors.forged = f"{name}: its signature does not verify (forged or altered)"
            anchors.forged_seq = checkpoint.seq
            return anchors
        else:
            anchors.checkpoints += 1
            anchors.add(checkpoint.seq, checkpoint.hash, name)
    for certificate in DeletionCertificate.objects.only(
        "certificate_id", "request_id", "envelope", "key_id"
    ).iterator():
        name = f"certificate {certificate.certificate_id} (request {certificate.request_id})"
        if registered_public_key(certificate.key_id) is None:
            anchors.warnings.append(
                f"{name} is signed by {certificate.key_id}, a key this server never registered"
            )
            anchors.other_key.add(str(certificate.certificate_id))
            continue
        check = certificate_verify_stored(certificate.envelope)
        if not check.ok:
            anchors.forged = f"{name}: {check.reason}"
            return anchors
        anchors.certificates[str(certificate.certificate_id)] = certificate.request_id
        head = certificate.envelope["certificate"].get("audit_chain_head")
        if head:
            anchors.add(int(head["seq"]), str(head["hash"]), name)
    if expect is not None:
        anchors.add(expect[0], expect[1], "the expected head given")
    return anchors


def _anchor_problem(anchors: _Anchors, event: AuditEvent) -> str:
    for anchor in anchors.at.get(event.seq, ()):
        if anchor.hash != event.hash:
            return (
                f"event #{event.seq} is not the event {anchor.source} signed "
                f"(signed {anchor.hash[:16]}…, found {event.hash[:16]}…): "
                "the trail was rewritten from here"
            )
    return ""


def _tail_problem(anchors: _Anchors, head_seq: int) -> tuple[str, int | None]:
    beyond = [a for seq, found in anchors.at.items() if seq > head_seq for a in found]
    if not beyond:
        return ("", None)
    newest = max(beyond, key=lambda anchor: anchor.seq)
    return (
        f"trail truncated: {newest.source} signed event #{newest.seq}, "
        f"but the trail ends at #{head_seq}",
        head_seq + 1,
    )


def _certificate_problem(anchors: _Anchors, completed: dict[str, int]) -> tuple[str, int | None]:
    for certificate_id, seq in completed.items():
        if certificate_id not in anchors.certificates and certificate_id not in anchors.other_key:
            return (f"event #{seq} records certificate {certificate_id}, which is missing", seq)
    for certificate_id, request_id in anchors.certificates.items():
        if certificate_id not in completed:
            return (
                f"certificate {certificate_id} (request {request_id}) has no "
                f"{COMPLETED} event in the trail",
                None,
            )
    return ("", None)
