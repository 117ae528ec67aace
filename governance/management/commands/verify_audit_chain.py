"""Verify the audit trail: every hash, link and MAC, and every signed checkpoint and
certificate against it. Exit 1, naming where the trouble starts, when anything is wrong.

``--expect SEQ:HASH`` adds a head held outside the database (a checkpoint from the logs, a
copy an auditor kept), so a cut below it is named even if every later checkpoint and
certificate was removed with it. ``--checkpoint`` signs the head after a clean run.
"""

from __future__ import annotations

import re
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from governance.models import AuditCheckpoint
from governance.services.audit_integrity import audit_chain_verify, audit_checkpoint_create

_EXPECT = re.compile(r"^(\d+):([0-9a-f]{64})$")


class Command(BaseCommand):
    help = "Verify the audit trail's hash chain, MACs, checkpoints and certificates."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--expect", metavar="SEQ:HASH", help="a head held outside the database")
        parser.add_argument(
            "--checkpoint", action="store_true", help="sign the head after a clean run"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        expect = _expect(options["expect"]) if options["expect"] else None
        report = audit_chain_verify(expect=expect)
        for warning in report.warnings:
            self.stderr.write(f"warning: {warning}")
        if not report.ok:
            raise CommandError(
                f"audit chain BROKEN at event #{report.first_bad_seq}: {report.reason} "
                f"({report.checked} events verified before it)"
            )
        self.stdout.write(
            f"audit chain OK: {report.checked} events, head #{report.head_seq} {report.head}; "
            f"{report.checkpoints_checked} checkpoints and {report.certificates_checked} "
            "certificates agree"
        )
        if options["checkpoint"]:
            with transaction.atomic():
                checkpoint = audit_checkpoint_create(reason=AuditCheckpoint.Reason.MANUAL)
            if checkpoint is not None:
                self.stdout.write(f"checkpoint {checkpoint.pk} signed at #{checkpoint.seq}")


def _expect(value: str) -> tuple[int, str]:
    match = _EXPECT.match(value)
    if match is None:
        raise CommandError(f"--expect {value!r}: use SEQ:HASH (64 lowercase hex digits)")
    return int(match[1]), match[2]
