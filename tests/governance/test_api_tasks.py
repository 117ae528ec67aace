"""Model creation and requests checked against the dataset's task, before any worker runs:
a base model that cannot do the task, a request the model's task cannot answer, and bad
prompts or images are each a 400 naming the field."""

from __future__ import annotations

import base64
import json

import pytest

from governance.models import UnlearningModel
from tests.governance.api_helpers import API, create_dataset, error_of, tiny_model


def _dataset(integration, name: str, task: str, labels: list[str] | None = None) -> int:
    body: dict = {"name": name, "task": task}
    if labels is not None:
        body["labels"] = labels
    response = integration.client.post(f"{API}/datasets/", body, format="json")
    assert response.status_code == 201, response.content
    return int(response.json()["id"])


@pytest.fixture
def chats(integration):
    return _dataset(integration, "chats", "generation")


@pytest.fixture
def shapes(integration):
    return _dataset(integration, "shapes", "image_classification", ["circle", "square"])


@pytest.mark.parametrize(
    ("task", "base_model", "words"),
    [
        ("generation", "tiny-bert", "encoder"),  # an encoder cannot generate
        ("generation", "tiny-vit", "vision"),
        ("generation", "minilm", "encoder"),
        ("image_classification", "tiny-bert", "encoder"),
        ("image_classification", "tiny-gpt2", "decoder"),
    ],
)
def test_a_base_model_that_cannot_do_the_task_is_refused_at_creation(
    engineer, integration, task, base_model, words
):
    labels = None if task == "generation" else ["circle", "square"]
    dataset = _dataset(integration, f"ds-{task}-{base_model}", task, labels)

    response = engineer.client.post(
        f"{API}/models/", tiny_model(dataset, base_model=base_model), format="json"
    )

    error = error_of(response, 400, "invalid", "base_model")
    assert words in error["message"]
    assert not UnlearningModel.objects.exists()


def test_a_generation_model_gets_attention_and_mlp_targets_and_shows_its_task(engineer, chats):
    response = engineer.client.post(
        f"{API}/models/", tiny_model(chats, base_model="tiny-llama"), format="json"
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["task"] == "generation"
    assert body["plan"]["lora_targets"] == [
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
    ]  # fmt: skip
    assert UnlearningModel.objects.get().lora_targets == body["plan"]["lora_targets"]


def test_lora_targets_can_be_chosen_and_bad_ones_are_named(engineer, chats):
    chosen = tiny_model(chats, base_model="tiny-llama", lora={"rank": 4, "targets": ["q_proj"]})
    created = engineer.client.post(f"{API}/models/", chosen, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["plan"]["lora_targets"] == ["q_proj"]

    for targets in (["q proj"], ["q_proj", "q_proj"]):
        body = tiny_model(
            chats, name=f"bad-{len(targets)}", base_model="tiny-llama", lora={"targets": targets}
        )
        error_of(
            engineer.client.post(f"{API}/models/", body, format="json"),
            400,
            "invalid",
            "lora.targets",
        )


def test_a_local_checkpoint_of_no_known_family_is_refused_at_creation(
    engineer, integration, sample, settings, tmp_path
):
    settings.LETHE_MODEL_ROOT = tmp_path
    folder = tmp_path / "mystery"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "wav2vec2"}))
    dataset = create_dataset(integration.client, sample)

    response = engineer.client.post(
        f"{API}/models/", tiny_model(dataset, base_model=str(folder)), format="json"
    )

    assert "wav2vec2" in error_of(response, 400, "invalid", "base_model")["message"]


@pytest.fixture
def generation_model(engineer, chats):
    body = tiny_model(chats, base_model="tiny-gpt2")
    return int(engineer.client.post(f"{API}/models/", body, format="json").json()["id"])


@pytest.fixture
def classification_model(engineer, integration, sample):
    dataset = create_dataset(integration.client, sample)
    body = tiny_model(dataset, name="classifier")
    return int(engineer.client.post(f"{API}/models/", body, format="json").json()["id"])


def test_each_endpoint_refuses_the_other_task_naming_the_model(
    integration, generation_model, classification_model
):
    predict = integration.client.post(
        f"{API}/models/{generation_model}/predict/", {"inputs": ["hi"]}, format="json"
    )
    generate = integration.client.post(
        f"{API}/models/{classification_model}/generate/", {"inputs": ["hi"]}, format="json"
    )

    assert "generate/" in error_of(predict, 400, "task_mismatch", "model")["message"]
    assert "predict/" in error_of(generate, 400, "task_mismatch", "model")["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"inputs": []}, "inputs"),
        ({"inputs": ["  "]}, "inputs[0]"),
        ({"inputs": [7]}, "inputs[0]"),
        ({"inputs": [[{"role": "robot", "content": "hi"}]]}, "inputs[0][0]"),
        ({"inputs": [[{"role": "user"}]]}, "inputs[0][0]"),
        ({"inputs": ["hi"], "max_new_tokens": 0}, "max_new_tokens"),
        ({"inputs": ["hi"], "temperature": -1}, "temperature"),
        ({"inputs": ["hi"], "top_p": 0}, "top_p"),
        ({"inputs": ["hi"], "beam": 4}, "beam"),
    ],
)
def test_bad_generation_requests_name_the_field(integration, generation_model, body, field):
    response = integration.client.post(
        f"{API}/models/{generation_model}/generate/", body, format="json"
    )

    error_of(response, 400, "invalid", field)


@pytest.fixture
def image_model(engineer, shapes):
    body = tiny_model(shapes, base_model="tiny-vit")
    created = engineer.client.post(f"{API}/models/", body, format="json")
    assert created.status_code == 201, created.content
    return int(created.json()["id"])


@pytest.mark.parametrize(
    ("images", "field", "words"),
    [
        (["not base64!"], "images[0]", "base64"),
        ([base64.b64encode(b"GIF89a" + b"\0" * 20).decode()], "images[0]", "GIF"),
        ([base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 8).decode()], "images[0]", ""),
        ([], "images", ""),
    ],
)
def test_bad_images_are_named_before_the_model_is_asked(
    integration, image_model, images, field, words
):
    response = integration.client.post(
        f"{API}/models/{image_model}/predict/", {"images": images}, format="json"
    )

    assert words in error_of(response, 400, "invalid", field)["message"]


def test_an_image_classifier_takes_images_not_texts(integration, image_model):
    response = integration.client.post(
        f"{API}/models/{image_model}/predict/", {"inputs": ["a circle"]}, format="json"
    )

    error_of(response, 400, "invalid", "inputs")


def test_a_text_classifier_refuses_images_instead_of_ignoring_them(
    integration, classification_model
):
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()
    response = integration.client.post(
        f"{API}/models/{classification_model}/predict/",
        {"inputs": ["hello"], "images": [png]},
        format="json",
    )

    error_of(response, 400, "invalid", "images")


def test_multipart_images_are_checked_and_reach_the_model(integration, image_model):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from unlearning.sample_images import shape_images

    good = shape_images(1, seed=1)[0][0]
    url = f"{API}/models/{image_model}/predict/"
    bad = integration.client.post(
        url,
        {"images": [SimpleUploadedFile("a.png", good), SimpleUploadedFile("b.gif", b"GIF89a")]},
        format="multipart",
    )
    untrained = integration.client.post(
        url, {"images": [SimpleUploadedFile("a.png", good)]}, format="multipart"
    )

    assert "GIF" in error_of(bad, 400, "invalid", "images[1]")["message"]
    error_of(untrained, 409, "model_not_ready", "model")  # parsed and checked: no manifest yet
