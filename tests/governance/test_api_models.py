"""POST models/, GET models/{id}/, POST models/{id}/train/ and predict/ through the real
URLconf. Training runs inline (one test); the Celery hand-off is captured, never sent."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from governance.models import TrainingJob, TrainingTask, UnlearningModel
from tests.governance.api_helpers import (
    API,
    PERSONAS,
    create_dataset,
    error_of,
    run_training_inline,
    tiny_model,
)

URL = f"{API}/models/"


@pytest.fixture
def dataset_id(integration, sample):
    return create_dataset(integration.client, sample)


@pytest.fixture
def model_id(engineer, dataset_id):
    response = engineer.client.post(URL, tiny_model(dataset_id), format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


@pytest.fixture
def artifacts(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    return settings.ARTIFACT_ROOT


# --- create -------------------------------------------------------------------------------


def test_create_answers_201_with_the_plan(engineer, dataset_id):
    response = engineer.client.post(URL, tiny_model(dataset_id, batch_size=8), format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    model = UnlearningModel.objects.get()
    assert body == {
        "id": model.pk,
        "name": "tiny",
        "dataset": dataset_id,
        "base_model": "tiny-bert",
        "task": "classification",
        "status": "created",
        "generation": 0,
        "plan": {
            "shards": 2,
            "slices": 2,
            "sequences": 2,
            "sequence_policy": "cyclic",
            "precision": "fp32",
            "stage_epochs": "scaled",
            "lora_targets": ["query", "value"],  # resolved at creation and stored
        },
        "progress": None,
        "manifest_version": None,
        "shards": [],
    }
    assert (model.lora_rank, model.lora_alpha, model.epochs, model.batch_size) == (4, 8, 1, 8)
    assert (model.learning_rate, model.seed, model.created_by) == (0.01, 3, engineer.user)


def test_create_fills_defaults(engineer, dataset_id):
    body = tiny_model(dataset_id)
    for optional in ("lora", "epochs", "learning_rate", "seed"):
        del body[optional]

    assert engineer.client.post(URL, body, format="json").status_code == 201

    model = UnlearningModel.objects.get()
    assert (model.lora_rank, model.lora_alpha, model.epochs, model.seed) == (8, 16, 2, 0)
    assert model.precision == "fp32"


def test_create_keeps_the_precision_asked_for(engineer, dataset_id):
    response = engineer.client.post(URL, tiny_model(dataset_id, precision="bf16"), format="json")

    assert response.status_code == 201, response.content
    assert response.json()["plan"]["precision"] == "bf16"
    model = UnlearningModel.objects.get()
    assert model.precision == "bf16"
    from governance import engine

    assert engine.train_settings(model).precision == "bf16"


def test_create_keeps_the_stage_epochs_asked_for(engineer, dataset_id):
    response = engineer.client.post(
        URL, tiny_model(dataset_id, stage_epochs="fixed"), format="json"
    )

    assert response.status_code == 201, response.content
    assert response.json()["plan"]["stage_epochs"] == "fixed"
    model = UnlearningModel.objects.get()
    from governance import engine

    settings = engine.train_settings(model)
    assert [settings.epochs_at(i, model.num_slices) for i in (1, 2)] == [1, 1]
    model.stage_epochs = "scaled"  # the default: stage 1 of 2 sees half the data, twice
    assert [engine.train_settings(model).epochs_at(i, 2) for i in (1, 2)] == [2, 1]


def test_duplicate_name_is_409(engineer, dataset_id, model_id):
    response = engineer.client.post(URL, tiny_model(dataset_id, seed=9), format="json")

    error = error_of(response, 409, "conflict", names="name")
    assert "'tiny'" in error["message"]
    assert list(UnlearningModel.objects.values_list("pk", "seed")) == [(model_id, 3)]


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"colour": "red"}, "colour", "unknown field"),
        ({"name": None}, "name", ""),
        ({"name": 12}, "name", "string"),
        ({"dataset": 999_999}, "dataset", "no such dataset"),
        ({"dataset": 2**63}, "dataset", "no such dataset"),
        ({"dataset": "support"}, "dataset", "integer"),
        ({"base_model": "gpt-17"}, "base_model", "gpt-17"),
        ({"base_model": "/"}, "base_model", "LETHE_MODEL_ROOT"),
        ({"base_model": "/etc"}, "base_model", "LETHE_MODEL_ROOT"),  # no probing of paths
        ({"slice_priors": [0.5, 0.5]}, "slice_priors", "bms"),  # cyclic ignores priors
        ({"base_model": "tiny-vit"}, "base_model", "vision model"),
        ({"base_model": 7}, "base_model", "string"),
        ({"sequence_policy": "zigzag"}, "sequence_policy", "zigzag"),
        ({"shards": 0}, "shards", ""),
        ({"slices": 5}, "slices", "4 blocks"),  # tiny-bert has 4 blocks
        ({"slices": 17}, "slices", ""),
        ({"sequences": 3}, "sequences", "2"),  # L = 2: only 2! = 2 orders exist
        ({"slices": 3, "sequences": 4, "sequence_policy": "bms"}, "sequences", "bms"),
        ({"slices": 3, "sequences": 5, "sequence_policy": "full"}, "sequences", "6"),
        ({"sequence_policy": "bms", "slice_priors": [1.0]}, "slice_priors", "2 entries"),
        ({"sequence_policy": "bms", "slice_priors": [0.7, 0.7]}, "slice_priors", "sum to 1"),
        ({"sequence_policy": "bms", "slice_priors": [-0.5, 1.5]}, "slice_priors.0", ""),
        ({"sequence_policy": "bms", "slice_priors": "uniform"}, "slice_priors", ""),
        ({"lora": {"rank": 0}}, "lora.rank", ""),
        ({"lora": {"rank": 257}}, "lora.rank", "256"),
        ({"lora": {"alpha": 0}}, "lora.alpha", ""),
        ({"lora": {"rnak": 4}}, "lora.rnak", "unknown field"),
        ({"lora": 4}, "lora", "dictionary"),
        ({"epochs": 0}, "epochs", ""),
        ({"learning_rate": 0}, "learning_rate", ""),
        ({"learning_rate": "fast"}, "learning_rate", ""),
        ({"seed": -1}, "seed", ""),
        ({"retrain_threshold": 3}, "retrain_threshold", "slices"),
        ({"precision": "fp8"}, "precision", "fp8"),
        ({"stage_epochs": "doubled"}, "stage_epochs", "doubled"),
    ],
)
def test_invalid_create_is_400_naming_the_field(engineer, dataset_id, overrides, field, words):
    response = engineer.client.post(URL, tiny_model(dataset_id, **overrides), format="json")

    error = error_of(response, 400, "invalid", names=field)
    assert words in error["message"], error["message"]
    assert not error["message"].startswith(f"{field}: {field}:")  # named once
    assert field.split(".")[0] in str(error["details"])
    assert not UnlearningModel.objects.exists()


@pytest.mark.parametrize("missing", ["name", "dataset", "shards", "slices", "sequences",
                                     "sequence_policy"])  # fmt: skip
def test_missing_required_field_is_400_naming_it(engineer, dataset_id, missing):
    body = tiny_model(dataset_id)
    del body[missing]

    error = error_of(engineer.client.post(URL, body, format="json"), 400, "invalid", names=missing)
    assert "required" in error["message"]
    assert not UnlearningModel.objects.exists()


def test_minilm_allows_six_slices_not_seven(engineer, dataset_id):
    body = tiny_model(dataset_id, base_model="minilm", slices=7, sequences=7)
    error = error_of(engineer.client.post(URL, body, format="json"), 400, "invalid", names="slices")
    assert "6 blocks" in error["message"]

    body = tiny_model(dataset_id, base_model="minilm", slices=6, sequences=6)
    assert engineer.client.post(URL, body, format="json").status_code == 201


@pytest.mark.parametrize(
    ("data", "content_type", "status", "code"),
    [
        ('{"name": "tiny",', "application/json", 400, "parse_error"),
        ("name,dataset\ntiny,1\n", "text/csv", 415, "unsupported_media_type"),
        ("name=tiny", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ],
)
def test_unreadable_create_body(engineer, dataset_id, data, content_type, status, code):
    error_of(engineer.client.post(URL, data=data, content_type=content_type), status, code)
    assert not UnlearningModel.objects.exists()


# --- detail, train, predict on an untrained model -----------------------------------------


@pytest.mark.parametrize("persona", PERSONAS)
def test_every_role_reads_a_model(request, model_id, persona):
    response = request.getfixturevalue(persona).client.get(f"{URL}{model_id}/")

    assert response.status_code == 200, response.content
    assert (response.json()["id"], response.json()["status"]) == (model_id, "created")


@pytest.mark.parametrize("action", ["", "train/", "predict/"])
@pytest.mark.parametrize("model", ["999999", str(2**63)])
def test_unknown_model_is_404(engineer, action, model):
    call = engineer.client.get if action == "" else engineer.client.post
    body = {"inputs": ["hello"]} if action == "predict/" else None

    error_of(call(f"{URL}{model}/{action}", body, format="json"), 404, "not_found")
    assert not TrainingJob.objects.exists()


def test_train_answers_202_and_a_second_train_while_queued_is_409(
    engineer, model_id, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = engineer.client.post(f"{URL}{model_id}/train/")

    assert response.status_code == 202, response.content
    job = TrainingJob.objects.get()
    assert response.json() == {
        "job": job.pk,
        "status": "queued",
        "generation": 1,
        "stages_total": job.stages_total,
    }
    assert job.stages_total == 2 * 4  # per shard, orders 0-1 and 1-0: stages 0, 0-1, 1, 1-0
    assert TrainingTask.objects.filter(job=job).count() == 4  # shards x sequences
    assert len(callbacks) == 1  # the hand-off to the broker waits for the commit

    detail = engineer.client.get(f"{URL}{model_id}/").json()
    assert (detail["status"], detail["generation"]) == ("training", 1)
    assert detail["progress"]["status"] == "queued"
    assert detail["progress"]["stages_done"] == 0
    assert [s["index"] for s in detail["shards"]] == [0, 1]

    with django_capture_on_commit_callbacks(execute=False) as again:
        second = engineer.client.post(f"{URL}{model_id}/train/")

    error = error_of(second, 409, "conflict", names="model")
    assert "already" in error["message"]
    assert TrainingJob.objects.count() == 1
    assert TrainingTask.objects.count() == 4
    assert again == []
    assert UnlearningModel.objects.get().generation == 1


def test_train_with_too_few_records_is_400_naming_the_dataset(engineer, integration, sample):
    dataset_id = create_dataset(integration.client, sample, records=sample.train[:3])
    model = engineer.client.post(URL, tiny_model(dataset_id), format="json").json()["id"]

    response = engineer.client.post(f"{URL}{model}/train/")

    error = error_of(response, 400, "invalid", names="dataset")
    assert "3 active records" in error["message"]
    assert "4" in error["message"]
    assert not TrainingJob.objects.exists()
    assert UnlearningModel.objects.get().status == "created"


def test_predict_before_any_manifest_is_409_model_not_ready(integration, model_id):
    response = integration.client.post(
        f"{URL}{model_id}/predict/", {"inputs": ["hello"]}, format="json"
    )

    assert "train" in error_of(response, 409, "model_not_ready", names="model")["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "inputs"),
        ({"inputs": []}, "inputs"),
        ({"inputs": ["x"] * 257}, "inputs"),
        ({"inputs": "hello"}, "inputs"),
        ({"inputs": [123]}, "inputs.0"),
        ({"inputs": ["ok", None]}, "inputs.1"),
        ({"inputs": ["ok", {"text": "hi"}]}, "inputs.1"),
        ({"inputs": [""]}, "inputs.0"),
        ({"inputs": ["x" * 20_001]}, "inputs.0"),
        ({"inputs": ["hello"], "top_k": 3}, "top_k"),
        ({"input": ["hello"]}, "input"),
    ],
)
def test_invalid_predict_is_400_naming_the_field(engineer, model_id, body, field):
    # Checked before the model's readiness: an untrained model still says what is wrong.
    response = engineer.client.post(f"{URL}{model_id}/predict/", body, format="json")

    error_of(response, 400, "invalid", names=field)


def test_predict_accepts_256_inputs(engineer, model_id):
    # The limit is inclusive: 256 inputs pass validation and reach the readiness check.
    response = engineer.client.post(
        f"{URL}{model_id}/predict/", {"inputs": ["x"] * 256}, format="json"
    )
    error_of(response, 409, "model_not_ready")


def test_predict_body_must_be_json(engineer, model_id):
    response = engineer.client.post(
        f"{URL}{model_id}/predict/", data="hello", content_type="text/plain"
    )
    error_of(response, 415, "unsupported_media_type")


# --- trained, through the API -------------------------------------------------------------


def test_trained_model_reports_its_shards_and_predicts(
    engineer, integration, model_id, sample, artifacts, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        job = engineer.client.post(f"{URL}{model_id}/train/").json()["job"]
    run_training_inline(job)

    detail = engineer.client.get(f"{URL}{model_id}/").json()

    assert (detail["status"], detail["generation"], detail["manifest_version"]) == ("ready", 1, 1)
    assert detail["plan"] == {
        "shards": 2, "slices": 2, "sequences": 2, "sequence_policy": "cyclic",
        "precision": "fp32", "stage_epochs": "scaled", "lora_targets": ["query", "value"],
    }  # fmt: skip
    progress = detail["progress"]
    assert (progress["job"], progress["status"], progress["error"]) == (job, "succeeded", None)
    assert progress["stages_done"] == progress["stages_total"] == 8
    assert isinstance(progress["current_loss"], float)
    assert len(detail["shards"]) == 2
    for index, shard in enumerate(detail["shards"]):
        assert set(shard) == {
            "index", "serving_sequence", "depth", "deleted_slices", "deletions_left"
        }  # fmt: skip
        assert (shard["index"], shard["serving_sequence"], shard["depth"]) == (index, 0, 2)
        assert shard["deleted_slices"] == []
        assert shard["deletions_left"] > 0

    inputs = ["I was charged twice for my order", "my parcel never arrived", "thanks!"]
    for client in (engineer.client, integration.client):
        response = client.post(f"{URL}{model_id}/predict/", {"inputs": inputs}, format="json")
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["manifest_version"] == 1
        assert len(body["predictions"]) == len(inputs)
        for prediction in body["predictions"]:
            assert prediction["label"] in sample.labels
            assert list(prediction["scores"]) == list(sample.labels)
            assert prediction["label"] == max(prediction["scores"], key=prediction["scores"].get)
            assert abs(sum(prediction["scores"].values()) - 1) < 1e-4

    # A finished job no longer blocks the next one: a new generation is queued.
    with django_capture_on_commit_callbacks(execute=False):
        retrain = engineer.client.post(f"{URL}{model_id}/train/")
    assert retrain.status_code == 202
    assert retrain.json()["generation"] == 2


# --- who may ------------------------------------------------------------------------------

ENGINEER_ONLY = {"engineer"}


@pytest.mark.parametrize("persona", PERSONAS)
def test_only_engineers_create_models(request, dataset_id, persona):
    response = request.getfixturevalue(persona).client.post(
        URL, tiny_model(dataset_id), format="json"
    )

    if persona in ENGINEER_ONLY:
        assert response.status_code == 201, response.content
    else:
        assert "ml_engineer" in error_of(response, 403, "permission_denied")["message"]
        assert not UnlearningModel.objects.exists()


@pytest.mark.parametrize("persona", PERSONAS)
def test_only_engineers_train(request, model_id, persona, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        response = request.getfixturevalue(persona).client.post(f"{URL}{model_id}/train/")

    if persona in ENGINEER_ONLY:
        assert response.status_code == 202, response.content
    else:
        assert "ml_engineer" in error_of(response, 403, "permission_denied")["message"]
        assert not TrainingJob.objects.exists()
        assert UnlearningModel.objects.get().status == "created"


@pytest.mark.parametrize("persona", PERSONAS)
def test_only_engineers_and_integrations_predict(request, model_id, persona):
    response = request.getfixturevalue(persona).client.post(
        f"{URL}{model_id}/predict/", {"inputs": ["hello"]}, format="json"
    )

    if persona in {"engineer", "integration"}:
        error_of(response, 409, "model_not_ready")  # allowed in; the model is not ready
    else:
        error = error_of(response, 403, "permission_denied")
        assert "ml_engineer" in error["message"]
        assert "integration" in error["message"]


@pytest.mark.parametrize(
    ("method", "path"),
    [("post", ""), ("get", "{id}/"), ("post", "{id}/train/"), ("post", "{id}/predict/")],
    ids=["create", "detail", "train", "predict"],
)
@pytest.mark.parametrize("token", [None, "Token not-a-real-key"], ids=["no-token", "bad-token"])
def test_unauthenticated_model_requests_are_401(dataset_id, model_id, method, path, token):
    client = APIClient()
    if token:
        client.credentials(HTTP_AUTHORIZATION=token)

    body = tiny_model(dataset_id, name="other") if path == "" else {"inputs": ["hello"]}
    response = getattr(client, method)(URL + path.format(id=model_id), body, format="json")

    error_of(response, 401, "not_authenticated" if token is None else "authentication_failed")
    assert UnlearningModel.objects.count() == 1
    assert not TrainingJob.objects.exists()
