"""The model pages: the stage grid's states, training progress (and its JSON poll), the
manifest history. Rows are built by hand here so every state appears; the erasure tests
in test_views_erasure.py check the grid against a real training and erasure."""

from __future__ import annotations

import pytest

from governance.models import Sequence, ServingManifest, Shard, Slice, Stage, TrainingJob
from tests.factories import TrainingJobFactory, UnlearningModelFactory
from tests.governance.web_helpers import browser, find, find_all, ids_on

# (sequence index, order, states of its stages by position; None = no stage row)
PLAN = [
    (0, [0, 1, 2], ["trained", "trained", "deactivated"]),
    (1, [1, 2, 0], ["trained", "training", "pending"]),
    (2, [2, 0, 1], ["destroyed", "retired", None]),
]


@pytest.fixture
def model(db):
    model = UnlearningModelFactory(
        name="grid-model", dataset__name="support", num_shards=1, num_slices=3, budget=3,
        generation=1, status="ready",
    )  # fmt: skip
    shard = Shard.objects.create(model=model, generation=1, index=0)
    for i in range(3):
        Slice.objects.create(shard=shard, index=i)
    stages = {}
    for index, order, states in PLAN:
        Sequence.objects.create(shard=shard, index=index, order=order)
        for position, state in enumerate(states, start=1):
            if state is not None:
                prefix = "-".join(str(s) for s in order[:position])
                stages[prefix] = Stage.objects.create(
                    shard=shard, prefix=prefix, position=position, state=state,
                    tensor_digest=f"sha256:{prefix:0>64}",
                )  # fmt: skip
    serving = [stages["0"], stages["0-1"]]
    ServingManifest.objects.create(
        model=model, version=1, generation=1, digest="sha256:" + "ab" * 32, reason="trained",
        entries=[{"shard": 0, "sequence": 0, "depth": 2,
                  "stages": [{"id": s.pk, "prefix": s.prefix, "digest": ""} for s in serving]}],
    )  # fmt: skip
    return model


def test_grid_shows_every_stage_state_with_a_text_label(engineer, model):
    page = browser(engineer).get(f"/models/{model.pk}/")

    assert page.status_code == 200
    rows = find_all(page, data_testid="grid-sequence")
    assert [r["data-sequence"] for r in rows] == ["0", "1", "2"]
    assert [r["data-serving"] for r in rows] == ["true", "false", "false"]
    cells = find_all(page, data_testid="grid-cell")
    states = [c["data-state"] for c in cells]
    assert states == [
        "serving", "serving", "deactivated",
        "trained", "training", "pending",
        "destroyed", "retired", "missing",
    ]  # fmt: skip
    assert [c["data-prefix"] for c in cells[:3]] == ["0", "0-1", "0-1-2"]
    labels = [c.text.split(" slices")[0] for c in cells]
    assert labels[:3] == ["Trained, serving", "Trained, serving", "Deactivated"]
    assert labels[6] == "Destroyed"
    legend = find(page, data_testid="grid-legend").text
    for label in ("Trained, serving", "Trained, not serving", "Pending", "Training",
                  "Deactivated", "Destroyed", "Retired"):  # fmt: skip
        assert label in legend
    assert "0 → 1 → 2" in rows[0].text
    assert "serving, depth 2" in rows[0].text


def test_manifest_history_lists_versions_with_short_digests(auditor, model):
    page = browser(auditor).get(f"/models/{model.pk}/")

    (row,) = find_all(page, data_testid="manifest-row")
    assert row["data-version"] == "1"
    assert "abababababab" in row.text
    assert "trained" in row.text
    assert "0:2" in row.text


def test_progress_polls_while_a_job_runs_and_stops_when_it_ends(engineer, model):
    job = TrainingJobFactory(model=model, status="running", stages_total=9, stages_done=4)
    client = browser(engineer)

    running = client.get(f"/models/{model.pk}/")
    progress = find(running, data_testid="training-progress")
    body = client.get(progress["data-poll-url"]).json()

    assert progress["data-status"] == "running"
    assert find(running, "progress")["value"] == "4"
    assert body["job"] == {
        "id": job.pk, "kind": "initial", "status": "running", "stages_done": 4,
        "stages_total": 9, "percent": 44, "active": True, "current_loss": None,
    }  # fmt: skip

    TrainingJob.objects.filter(pk=job.pk).update(status="succeeded", stages_done=9)
    done = client.get(f"/models/{model.pk}/")
    assert find(done, data_testid="training-progress").get("data-poll-url") is None
    assert client.get(f"/models/{model.pk}/progress.json").json()["job"]["active"] is False


def test_dashboard_shows_shard_health_and_queued_retraining(officer, model):
    TrainingJobFactory(model=model, generation=2, kind="retrain", status="queued", stages_total=3)

    page = browser(officer).get("/")

    card = find(page, data_testid="model-health-card", data_model_id=str(model.pk))
    (shard,) = find_all(page, data_testid="shard-health")
    assert (shard["data-shard"], shard["data-depth"]) == ("0", "2")
    assert "sequence 0" in shard.text
    assert "2 of 3" in shard.text
    assert find(page, data_testid="retrain-status")["data-state"] == "queued"
    assert "Retraining queued (0/3 stages)" in card.text


def test_model_list_and_unknown_generation(officer, model):
    client = browser(officer)

    listing = client.get("/models/")
    (row,) = find_all(listing, data_testid="model-row")
    assert "grid-model" in row.text
    assert "1 × 3 × 3" in row.text
    assert client.get(f"/models/{model.pk}/?generation=7").status_code == 404
    assert client.get(f"/models/{model.pk}/?generation=x").status_code == 404
    assert "model-grid" in ids_on(client.get(f"/models/{model.pk}/?generation=1"))
    assert client.get("/models/999999/").status_code == 404
