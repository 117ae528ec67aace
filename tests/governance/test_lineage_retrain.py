"""While a retrain runs, lineage shows the generation that serves as well as the new one.

Otherwise the stages that actually answer predictions vanish from a subject's lineage for
as long as the new generation trains: an officer would see only stages that serve nothing.
"""

from __future__ import annotations

from governance.models import SliceAssignment, Stage, UnlearningModel
from tests.governance import web_helpers
from tests.governance.api_helpers import API, create_dataset, run_training_inline, train_tiny_model
from tests.governance.web_helpers import busiest_subject

artifacts = web_helpers.artifacts


def test_lineage_during_a_retrain_shows_the_serving_and_the_new_generation(
    engineer, integration, officer, sample, artifacts, django_capture_on_commit_callbacks
):
    from governance.services.erasure_execution import erasure_request_execute
    from governance.services.retraining import models_retrain_due

    dataset_id = create_dataset(integration.client, sample)
    model_id = train_tiny_model(
        engineer, dataset_id, django_capture_on_commit_callbacks, retrain_threshold=2
    )
    erased = busiest_subject(model_id)
    hit = SliceAssignment.objects.filter(model=model_id, record__subject__external_ref=erased)
    shard = hit.values_list("slice__shard__index", flat=True)[0]
    neighbour = (
        SliceAssignment.objects.filter(model=model_id, slice__shard__index=shard)
        .exclude(record__subject__external_ref=erased)
        .values_list("record__subject__external_ref", flat=True)
        .first()
    )
    filed = integration.client.post(
        f"{API}/erasure-requests/", {"subject_id": erased}, format="json"
    ).json()
    with django_capture_on_commit_callbacks(execute=False):
        officer.client.post(f"{API}/erasure-requests/{filed['id']}/approve/", {}, format="json")
    assert erasure_request_execute(request_id=filed["id"]) == "completed"
    with django_capture_on_commit_callbacks(execute=False):
        (retrain,) = models_retrain_due(actor="scheduler")
    assert UnlearningModel.objects.get(pk=model_id).generation == 2  # training, not serving
    # The scheduler retrains only what was lost: the hit shard keeps its clean stages.
    assert (retrain.retrain_mode, retrain.retrained_shards) == ("suffix", [shard])
    new_stages = Stage.objects.filter(shard__model=model_id, shard__generation=2)
    kept = new_stages.filter(shard__index=shard, state="trained").count()
    assert kept + retrain.stages_total == new_stages.filter(shard__index=shard).count()
    assert kept > 0

    during = officer.client.get(f"{API}/subjects/{neighbour}/lineage/").json()

    (model,) = during["models"]
    generations = {r["generation"] for r in model["records"]}
    assert generations == {1, 2}
    serving = [s for r in model["records"] if r["generation"] == 1 for s in r["stages"]]
    assert any(s["serving"] for s in serving)  # the stages that answer now are shown
    assert not any(
        s["serving"] for r in model["records"] if r["generation"] == 2 for s in r["stages"]
    )

    run_training_inline(retrain.pk)
    after = officer.client.get(f"{API}/subjects/{neighbour}/lineage/").json()
    (model,) = after["models"]
    assert {r["generation"] for r in model["records"]} == {2}  # swapped: only what serves
    assert any(s["serving"] for r in model["records"] for s in r["stages"])
