"""verify_replay (I4, flow 5): a tiny model trained inline through the API, its serving
stages replayed from lineage by the service and by the management command."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from governance.models import AuditEvent, Record, ServingManifest, Stage, UnlearningModel
from governance.services.replay import model_replay_verify
from tests.governance.api_helpers import API, create_dataset, run_training_inline, tiny_model


@pytest.fixture
def artifacts(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    return settings.ARTIFACT_ROOT


@pytest.fixture
def untrained(engineer, sample):
    dataset_id = create_dataset(engineer.client, sample)
    response = engineer.client.post(f"{API}/models/", tiny_model(dataset_id), format="json")
    assert response.status_code == 201, response.content
    return UnlearningModel.objects.get(pk=response.json()["id"])


@pytest.fixture
def model(engineer, untrained, artifacts, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        response = engineer.client.post(f"{API}/models/{untrained.pk}/train/")
    assert response.status_code == 202, response.content
    run_training_inline(response.json()["job"])
    untrained.refresh_from_db()
    assert untrained.status == "ready"
    return untrained


def serving_stages(model):
    """(stage id, shard, prefix) of every serving stage of the current manifest."""
    manifest = ServingManifest.objects.filter(model=model).order_by("-version").first()
    return [(s["id"], e["shard"], s["prefix"]) for e in manifest.entries for s in e["stages"]]


def stage_rows(model):
    return {
        s.pk: (s.state, s.tensor_digest, s.artifact_key, s.trained_at, s.recipe)
        for s in Stage.objects.filter(shard__model=model)
    }


def last_replay_event():
    return AuditEvent.objects.filter(action="model.replay_verified").order_by("-seq").first()


def test_every_serving_stage_replays_bit_exactly_and_is_audited(engineer, model):
    before = stage_rows(model)
    serving = serving_stages(model)
    assert len(serving) == 4  # 2 shards at depth 2

    report = model_replay_verify(actor=engineer.user, model=model)

    assert [(s.stage_id, s.shard, s.prefix) for s in report.stages] == serving
    for stage in report.stages:
        assert stage.matches, stage
        assert stage.reason == ""
        assert stage.replayed_digest == stage.recorded_digest
        assert stage.recorded_digest == Stage.objects.get(pk=stage.stage_id).tensor_digest
        assert stage.position == len(stage.prefix.split("-"))
    assert report.ok
    assert report.recipe_warnings == []  # same process, same runtime
    assert (report.model_id, report.manifest_version) == (model.pk, 1)
    event = last_replay_event()
    assert (event.actor, event.object_type, event.object_id) == (
        "user:emil",
        "unlearningmodel",
        str(model.pk),
    )
    assert event.payload == {
        "manifest_version": 1,
        "ok": True,
        "stages": [{"id": i, "prefix": p, "shard": sh, "matches": True} for i, sh, p in serving],
        "recipe_warnings": [],
    }
    assert stage_rows(model) == before  # verification changes nothing


def test_drifted_record_content_fails_only_the_stages_that_read_it(model):
    manifest = ServingManifest.objects.get(model=model, version=1)
    entry = manifest.entries[0]
    deepest = Stage.objects.get(pk=entry["stages"][-1]["id"])
    last_slice = deepest.slices.get(index=deepest.prefix_tuple[-1])
    # A record of the slice that only the deeper stage reads: stage 1 must still match.
    record = Record.objects.filter(assignments__slice=last_slice).order_by("pk").first()
    Record.objects.filter(pk=record.pk).update(text=record.text + " (edited after training)")
    readers = set(Stage.objects.filter(slices=last_slice).values_list("pk", flat=True))
    before = stage_rows(model)

    report = model_replay_verify(actor="test", model=model)

    mismatched = {s.stage_id for s in report.stages if not s.matches}
    assert mismatched == readers & {s.stage_id for s in report.stages}
    assert mismatched == {deepest.pk}
    assert len(report.stages) - len(mismatched) == 3
    (bad,) = [s for s in report.stages if not s.matches]
    assert bad.replayed_digest != bad.recorded_digest
    assert "content or the runtime changed" in bad.reason
    assert not report.ok
    event = last_replay_event()
    assert event.payload["ok"] is False
    assert [s["matches"] for s in event.payload["stages"]] == [
        s.stage_id != deepest.pk for s in report.stages
    ]

    out = StringIO()
    with pytest.raises(CommandError, match="MISMATCH"):
        call_command("verify_replay", str(model.pk), stdout=out)
    assert out.getvalue().count("MISMATCH") == 1
    assert f"(#{deepest.pk}," in next(
        line for line in out.getvalue().splitlines() if "MISMATCH" in line
    )
    assert stage_rows(model) == before


def test_erased_record_in_serving_lineage_is_an_i2_violation(model):
    manifest = ServingManifest.objects.get(model=model, version=1)
    entry = manifest.entries[1]
    first = Stage.objects.get(pk=entry["stages"][0]["id"])
    record = Record.objects.filter(assignments__slice__stages=first).order_by("pk").first()
    # Erased behind the erasure flow's back: the manifest was not refreshed.
    Record.objects.filter(pk=record.pk).update(status="erased", erased_at=timezone.now(), text="")

    report = model_replay_verify(actor="test", model=model)

    broken = [s for s in report.stages if not s.matches]
    assert {s.stage_id for s in broken} == {s["id"] for s in entry["stages"]}
    assert all("I2 violation" in s.reason and s.replayed_digest == "" for s in broken)
    assert all(record.external_id in s.reason for s in broken)
    assert all(s.matches for s in report.stages if s.shard != entry["shard"])
    assert not report.ok


def test_command_names_every_serving_stage_and_exits_zero(model):
    out = StringIO()
    call_command("verify_replay", model.name, stdout=out)  # returns: exit status 0

    lines = out.getvalue().splitlines()
    for stage_id, shard, prefix in serving_stages(model):
        (line,) = [line for line in lines if f"(#{stage_id}," in line]
        assert line.startswith(f"shard {shard} stage {prefix} ")
        assert line.endswith("MATCH")
        assert "MISMATCH" not in line
    assert lines[-1].startswith("replay OK: 4/4 serving stages")
    event = last_replay_event()
    assert (event.actor, event.payload["ok"]) == ("cli", True)


def test_unknown_model_and_model_without_manifest_are_command_errors(untrained):
    with pytest.raises(CommandError, match="no model"):
        call_command("verify_replay", "no-such-model", stdout=StringIO())
    with pytest.raises(CommandError, match="no model"):
        call_command("verify_replay", "987654", stdout=StringIO())
    with pytest.raises(CommandError, match="manifest"):
        call_command("verify_replay", str(untrained.pk), stdout=StringIO())
    assert last_replay_event() is None


def test_shard_option_restricts_the_replay(model):
    out = StringIO()
    call_command("verify_replay", str(model.pk), "--shard", "1", stdout=out)

    expected = [(i, p) for i, shard, p in serving_stages(model) if shard == 1]
    stage_lines = [line for line in out.getvalue().splitlines() if line.startswith("shard ")]
    assert len(stage_lines) == len(expected) == 2
    assert all(line.startswith("shard 1 ") for line in stage_lines)
    payload = last_replay_event().payload
    assert [(s["id"], s["prefix"], s["shard"]) for s in payload["stages"]] == [
        (i, p, 1) for i, p in expected
    ]
    with pytest.raises(CommandError, match="shard 5 does not serve"):
        call_command("verify_replay", str(model.pk), "--shard", "0", "5", stdout=StringIO())
