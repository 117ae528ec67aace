"""Verify a deletion certificate: its Ed25519 signature offline, then (with a database)
its claims against lineage as it is now. Exit 1 when anything fails.

Without ``--public-key`` the signature is checked with the key it names: this server's
current key, or (with a database) one that signed here before a key rotation
(``governance.certificates.keys``); a key id that never signed here fails."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, connection

from governance.certificates.signing import SignatureCheck


class Command(BaseCommand):
    help = "Verify a certificate's signature and, unless --offline, its claims against lineage."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="certificate JSON as served by the API ('-' for stdin)")
        parser.add_argument(
            "--public-key",
            help="PEM file of the signing key (default: the key the signature names, "
            "current or registered here)",
        )
        parser.add_argument(
            "--offline", action="store_true", help="check the signature only, no database"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        envelope = _read(options["file"])
        check = _signature_check(envelope, options["public_key"], offline=options["offline"])
        if not check.ok:
            raise CommandError(f"signature INVALID: {check.reason}")
        body = envelope["certificate"]
        self.stdout.write(
            f"signature OK: {check.key_id}, certificate {body.get('certificate_id')} "
            f"for request {body.get('request_id')} ({body.get('subject_ref')!r})"
        )
        if options["offline"]:
            return
        if not _database_reachable():
            self.stdout.write("claims not checked: no database reachable (use --offline)")
            raise CommandError("claims not checked")
        from governance.certificates.claims import certificate_claims_check

        claims = certificate_claims_check(envelope)
        for claim in claims:
            mark = "OK  " if claim["ok"] else "FAIL"
            self.stdout.write(f"  {mark} {claim['claim']}: {claim['detail']}")
        failed = [c["claim"] for c in claims if not c["ok"]]
        if failed:
            raise CommandError(f"claims FAILED: {', '.join(failed)}")
        self.stdout.write(f"claims OK: {len(claims)} checks against lineage")


def _signature_check(envelope: Any, public_key: str | None, *, offline: bool) -> SignatureCheck:
    """With a PEM given, that key; else the key the signature names, from the registry.

    Offline (or with no database) only the current key is at hand: a certificate signed
    before a rotation then needs ``--public-key`` with the old key.
    """
    from governance.certificates.signing import certificate_verify

    if public_key:
        try:
            pem = Path(public_key).read_bytes()
        except OSError as exc:
            raise CommandError(f"--public-key: cannot read {public_key}: {exc.strerror}") from None
        return certificate_verify(envelope, public_key_pem=pem)
    if offline or not _database_reachable():
        return certificate_verify(envelope)
    from governance.certificates.keys import certificate_verify_stored

    return certificate_verify_stored(envelope)


def _read(name: str) -> Any:
    import sys

    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        return json.loads(text)
    except OSError as exc:
        raise CommandError(f"file: cannot read {name}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise CommandError(f"file: {name} is not JSON ({exc.msg} at line {exc.lineno})") from None


def _database_reachable() -> bool:
    try:
        connection.ensure_connection()
    except DatabaseError:
        return False
    return True
