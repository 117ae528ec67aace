"""verify_replay across device kinds and precisions, on the CPU: stages whose recipe says
they were trained on CUDA (or at another precision) are not compared, and say so, instead
of being reported as mismatches. The recipes are rewritten after a real CPU training."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from governance.models import AuditEvent, ServingManifest, Stage
from governance.services.replay import model_replay_verify, trained_on
from governance.services.training import model_create, model_train
from tests.governance import test_training_services as training

# The trained-model fixtures of the training tests, shared.
dataset = training.dataset
_run_all, _spec = training._run_all, training._spec

CUDA_FACTS = {
    "gpu_name": "NVIDIA H200",
    "capability": "9.0",
    "cuda": "12.8",
    "cudnn": 91002,
    "driver": "570.124.06",
}


@pytest.fixture
def model(dataset, settings, tmp_path, django_capture_on_commit_callbacks):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.LETHE_DEVICE = "cpu"
    created = model_create(actor="test", spec=_spec(dataset))
    with django_capture_on_commit_callbacks(execute=False):
        _run_all(model_train(actor="test", model=created))
    created.refresh_from_db()
    assert created.status == "ready"
    return created


def _chain(model, shard):
    """The serving stages of one shard, stage 1 first."""
    manifest = ServingManifest.objects.filter(model=model).order_by("-version").first()
    (entry,) = [e for e in manifest.entries if e["shard"] == shard]
    return [Stage.objects.get(pk=s["id"]) for s in entry["stages"]]


def _claim(stage, device="cuda", precision="bf16"):
    """Rewrite a stage's recipe as if a GPU worker had trained it."""
    recipe = dict(stage.recipe)
    recipe["runtime"] = {**recipe["runtime"], "device": device}
    if device == "cuda":
        recipe["runtime"]["cuda"] = CUDA_FACTS
    recipe["settings"] = {**recipe["settings"], "precision": precision}
    Stage.objects.filter(pk=stage.pk).update(recipe=recipe)


def test_stages_trained_on_cuda_are_not_compared_on_the_cpu(model):
    first, second = _chain(model, 0)
    _claim(first)

    report = model_replay_verify(actor="test", model=model)

    assert report.replays_on == "cpu/fp32"
    by_id = {s.stage_id: s for s in report.stages}
    assert by_id[first.pk].reason == (
        "cannot compare: stage trained on cuda/bf16, this process replays on cpu/fp32"
    )
    # The second stage ran on the CPU, but a replay here would rebuild it on other parents.
    assert by_id[second.pk].reason == (
        f"cannot compare: its parent stage {first.prefix} trained on cuda/bf16, "
        "this process replays on cpu/fp32"
    )
    assert [s.stage_id for s in report.not_compared] == [first.pk, second.pk]
    for s in report.not_compared:
        assert (s.compared, s.matches, s.replayed_digest) == (False, False, "")
    others = [s for s in report.stages if s.shard == 1]
    assert len(others) == 2
    assert all(s.matches and s.compared for s in others)
    assert not report.ok  # nothing proven about shard 0
    assert any(w.startswith("device: trained with 'cuda', replayed with 'cpu'") for w in
               report.recipe_warnings)  # fmt: skip
    event = AuditEvent.objects.filter(action="model.replay_verified").order_by("-seq").first()
    flagged = [s for s in event.payload["stages"] if "compared" in s]
    assert [(s["id"], s["compared"], s["matches"]) for s in flagged] == [
        (first.pk, False, False),
        (second.pk, False, False),
    ]


def test_a_deeper_stage_from_another_device_leaves_its_parents_compared(model):
    first, second = _chain(model, 1)
    _claim(second, device="cuda", precision="fp32")

    report = model_replay_verify(actor="test", model=model, shards=[1])

    by_id = {s.stage_id: s for s in report.stages}
    assert by_id[first.pk].matches
    assert by_id[second.pk].reason == (
        "cannot compare: stage trained on cuda/fp32, this process replays on cpu/fp32"
    )


def test_another_precision_on_the_same_device_is_not_compared_either(model):
    model.precision = "bf16"  # the stages were trained at fp32
    report = model_replay_verify(actor="test", model=model)
    assert report.replays_on == "cpu/bf16"
    assert len(report.not_compared) == len(report.stages) == 4
    assert all("trained on cpu/fp32, this process replays on cpu/bf16" in s.reason for s in
               report.stages)  # fmt: skip


def test_recipes_from_before_devices_count_as_cpu_fp32(model):
    for stage in Stage.objects.filter(shard__model=model, state="trained"):
        recipe = dict(stage.recipe)
        recipe["settings"] = {k: v for k, v in recipe["settings"].items() if k != "precision"}
        Stage.objects.filter(pk=stage.pk).update(recipe=recipe)
        assert trained_on(recipe) == "cpu/fp32"
    report = model_replay_verify(actor="test", model=model)
    assert report.ok
    assert report.recipe_warnings == []


def test_command_says_not_compared_and_exits_2(model):
    first, _ = _chain(model, 0)
    _claim(first)
    out = StringIO()
    with pytest.raises(CommandError, match="replay NOT COMPARED") as raised:
        call_command("verify_replay", str(model.pk), stdout=out)
    assert raised.value.returncode == 2
    lines = out.getvalue().splitlines()
    assert sum("NOT COMPARED: cannot compare" in line for line in lines) == 2
    assert sum(line.endswith(" MATCH") for line in lines) == 2
    assert not any("MISMATCH" in line for line in lines)
