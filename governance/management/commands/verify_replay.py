"""Retrain a model's serving stages from lineage and compare tensor digests (I4); exit 1
when any stage differs, exit 2 when none differs but some could not be compared here
(trained on another device kind or precision: run the check on such a worker). The
result is appended to the audit trail either way."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.errors import ApplicationError
from governance.models import UnlearningModel
from governance.services.replay import model_replay_verify


def _short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12] or "-"


class Command(BaseCommand):
    help = (
        "Replay the serving stages of a model from the base model on their lineage records "
        "and compare tensor digests with the recorded ones."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("model", help="model id or name")
        parser.add_argument(
            "--shard",
            dest="shards",
            type=int,
            nargs="+",
            action="extend",
            metavar="N",
            help="only these shard indices (repeatable); default: every serving shard",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        model = _model(str(options["model"]))
        try:
            report = model_replay_verify(actor="cli", model=model, shards=options["shards"])
        except ApplicationError as exc:
            raise CommandError(f"model {model.name!r}: {exc.message}") from None
        for s in report.stages:
            if not s.compared:
                verdict = f"NOT COMPARED: {s.reason}"
            else:
                verdict = "MATCH" if s.matches else f"MISMATCH: {s.reason}"
            self.stdout.write(
                f"shard {s.shard} stage {s.prefix} (#{s.stage_id}, position {s.position}): "
                f"recorded {_short(s.recorded_digest)} replayed {_short(s.replayed_digest)} "
                f"{verdict}"
            )
        for warning in report.recipe_warnings:
            self.stdout.write(f"recipe differs: {warning}")
        matched = sum(s.matches for s in report.stages)
        summary = (
            f"{matched}/{len(report.stages)} serving stages of model {model.name!r} "
            f"(manifest v{report.manifest_version}) match their replay"
        )
        mismatched = [s for s in report.stages if s.compared and not s.matches]
        if mismatched or not report.stages:
            raise CommandError(f"replay MISMATCH: {summary}")
        if report.not_compared:
            raise CommandError(
                f"replay NOT COMPARED: {summary}; {len(report.not_compared)} were trained on "
                f"another device kind or precision than this process ({report.replays_on}) "
                "and cannot be compared here",
                returncode=2,
            )
        self.stdout.write(f"replay OK: {summary}")


def _model(ref: str) -> UnlearningModel:
    """A model by id or, failing that, by name (a name may look like a number)."""
    found = None
    if ref.isdigit():
        found = UnlearningModel.objects.select_related("dataset").filter(pk=int(ref)).first()
    if found is None:
        found = UnlearningModel.objects.select_related("dataset").filter(name=ref).first()
    if found is None:
        raise CommandError(f"model {ref!r}: no model with this id or name")
    return found
