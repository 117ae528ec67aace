"""OpenLineage events (docs/openlineage.md), received over HTTP by a real server on loopback
from the openlineage-python client's own HTTP transport, and checked against the
OpenLineage JSON schema (tests/governance/openlineage_spec/: the client ships none) and
Lethe's facet schemas (governance/static/lethe/openlineage/).

The Celery task runs eagerly here, retries included (immediately, without their backoff);
tests/integration runs tasks on real workers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

from celery_worker.celery import app
from governance.models import (
    DeletionCertificate,
    ErasureRequest,
    Record,
    SliceAssignment,
    Stage,
    TrainingJob,
)
from governance.services import erasure_execution
from governance.services.lineage_events import (
    TRAINING,
    lineage_configured,
    lineage_event_build,
    lineage_training_event,
)
from tests.governance import web_helpers
from tests.governance.api_helpers import API, create_dataset, run_training_inline, tiny_model
from tests.governance.web_helpers import busiest_subject
from tests.net import free_port

REPO = Path(__file__).resolve().parents[2]
SPEC = Path(__file__).with_name("openlineage_spec")
LETHE_SCHEMAS = REPO / "governance" / "static" / "lethe" / "openlineage"
NAMESPACE = "lethe.test"
artifacts = web_helpers.artifacts
trained = web_helpers.trained


# --- a catalog on loopback --------------------------------------------------------------


class Receiver:
    """An HTTP server that records every POST and answers with the next scripted status."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, Any], int]] = []
        self.script: list[int] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.lock:
                    status = receiver.script.pop(0) if receiver.script else 200
                    receiver.posts.append((self.path, body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def accepted(self) -> list[dict[str, Any]]:
        return [body for _, body, status in self.posts if status < 300]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def client_env(monkeypatch, tmp_path) -> Iterator[None]:
    """No client configuration from this machine: no OPENLINEAGE_* variables, no
    openlineage.yml in the working folder or home. The client writes OPENLINEAGE__ aliases
    into the environment itself; they are removed afterwards."""
    before = {k: v for k, v in os.environ.items() if k.startswith("OPENLINEAGE")}
    for name in before:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    yield
    for name in [k for k in os.environ if k.startswith("OPENLINEAGE")]:
        del os.environ[name]
    os.environ.update(before)


@pytest.fixture
def eager() -> Iterator[None]:
    """Celery tasks run in this process when sent, their retries too (an eager task that
    propagated its errors would raise its first retry instead of making it)."""
    saved = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, False
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = saved


@pytest.fixture
def lineage(settings, receiver, client_env, eager) -> Receiver:
    settings.LETHE_OPENLINEAGE_URL = receiver.url
    settings.LETHE_OPENLINEAGE_NAMESPACE = NAMESPACE
    return receiver


# --- the schemas ------------------------------------------------------------------------


def _registry() -> Registry:
    """The spec's schemas under their openlineage.io URLs, Lethe's under the URL its
    events name (served by Lethe at /static/lethe/openlineage/)."""
    resources = []
    for path in sorted(SPEC.glob("*.json")):
        contents = json.loads(path.read_text())
        resources.append((contents["$id"], Resource.from_contents(contents)))
    for path in sorted(LETHE_SCHEMAS.glob("*.json")):
        url = f"https://{NAMESPACE}/static/lethe/openlineage/{path.name}"
        resources.append((url, Resource.from_contents(json.loads(path.read_text()))))
    return Registry().with_resources(resources)


REGISTRY = _registry()


def facets_of(event: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield from event["run"].get("facets", {}).items()
    yield from event["job"].get("facets", {}).items()
    for dataset in [*event.get("inputs", []), *event.get("outputs", [])]:
        for kind in ("facets", "inputFacets", "outputFacets"):
            yield from dataset.get(kind, {}).items()


def assert_valid(event: dict[str, Any]) -> None:
    """The event against the OpenLineage schema; each facet against the schema its
    _schemaURL names (a spec facet's, or one Lethe ships)."""
    core = REGISTRY.contents("https://openlineage.io/spec/2-0-2/OpenLineage.json")
    Draft202012Validator(core, registry=REGISTRY, format_checker=FormatChecker()).validate(event)
    for name, facet in facets_of(event):
        url, _, pointer = facet["_schemaURL"].partition("#")
        if name.startswith("lethe_"):
            assert url.startswith(f"https://{NAMESPACE}/static/lethe/openlineage/"), url
            assert (LETHE_SCHEMAS / url.rsplit("/", 1)[1]).is_file()
        schema = REGISTRY.resolver().lookup(facet["_schemaURL"]).contents
        assert pointer.startswith("/$defs/"), pointer
        Draft202012Validator(
            {"$ref": facet["_schemaURL"]}, registry=REGISTRY, format_checker=FormatChecker()
        ).validate(facet)
        assert schema  # resolved: not a dangling URL


def test_the_schema_check_refuses_a_wrong_custom_facet():
    event = {
        "eventType": "START",
        "eventTime": "2026-01-01T00:00:00+00:00",
        "producer": "urn:lethe:governance",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {
            "runId": str(uuid.uuid4()),
            "facets": {
                "lethe_erasure": {
                    "_producer": "urn:lethe:governance",
                    "_schemaURL": f"https://{NAMESPACE}/static/lethe/openlineage/"
                    "LetheErasureRunFacet.json#/$defs/LetheErasureRunFacet",
                    "requestId": 1,
                    "recordsErased": 2,
                    "stagesDeactivated": 1,
                    "models": [],
                    "recordIds": ["r-1"],  # not in the schema: no personal data slips in
                }
            },
        },
        "job": {"namespace": "lethe://x", "name": "erasure"},
    }
    with pytest.raises(Exception, match="recordIds"):
        assert_valid(event)
    del event["run"]["facets"]["lethe_erasure"]["recordIds"]
    assert_valid(event)
    del event["run"]["facets"]["lethe_erasure"]["_producer"]
    with pytest.raises(Exception, match="_producer"):
        assert_valid(event)


# --- training ---------------------------------------------------------------------------


def _queue_training(engineer, integration, sample, capture) -> int:
    """A tiny model's first training job, planned (its Celery tasks dropped)."""
    dataset_id = create_dataset(integration.client, sample)
    model = engineer.client.post(f"{API}/models/", tiny_model(dataset_id), format="json").json()
    with capture(execute=False):
        response = engineer.client.post(f"{API}/models/{model['id']}/train/")
    return int(response.json()["job"])


def _lineage_digest(ids: list[str]) -> str:
    return "sha256:" + hashlib.sha256("".join(f"{i}\n" for i in sorted(ids)).encode()).hexdigest()


def test_training_emits_start_then_complete(
    lineage, engineer, integration, sample, artifacts, django_capture_on_commit_callbacks
):
    job_id = _queue_training(engineer, integration, sample, django_capture_on_commit_callbacks)

    with django_capture_on_commit_callbacks(execute=True):
        run_training_inline(job_id)

    assert TrainingJob.objects.get(pk=job_id).status == "succeeded"
    assert [path for path, _, _ in lineage.posts] == ["/api/v1/lineage"] * 2
    start, complete = lineage.accepted()
    assert [start["eventType"], complete["eventType"]] == ["START", "COMPLETE"]
    for event in (start, complete):
        assert_valid(event)
    assert start["run"]["runId"] == complete["run"]["runId"]
    assert start["eventTime"] <= complete["eventTime"]
    job = complete["job"]
    assert (job["namespace"], job["name"]) == (f"lethe://{NAMESPACE}", "models/tiny/train")
    assert job["facets"]["jobType"]["jobType"] == "TRAINING"
    (source,) = complete["inputs"]
    assert (source["namespace"], source["name"]) == (f"lethe://{NAMESPACE}", "datasets/support")
    ids = list(
        SliceAssignment.objects.filter(model__jobs=job_id, generation=1).values_list(
            "record__external_id", flat=True
        )
    )
    assert len(ids) == Record.objects.filter(dataset__name="support").count()
    content = source["facets"]["lethe_content"]
    assert content["recordCount"] == len(ids)
    assert content["digest"] == _lineage_digest(ids)
    assert source["facets"]["datasetVersion"]["datasetVersion"] == content["digest"]
    (model,) = complete["outputs"]
    assert model["name"] == "models/tiny"
    assert model["facets"]["datasetType"]["datasetType"] == "MODEL"
    plan = model["facets"]["lethe_s3t_plan"]
    assert {k: plan[k] for k in ("shards", "slices", "sequences", "policy", "generation")} == {
        "shards": 2,
        "slices": 2,
        "sequences": 2,
        "policy": "cyclic",
        "generation": 1,
    }
    assert plan["stages"] == Stage.objects.filter(shard__model__jobs=job_id).count()


def test_a_failing_catalog_is_retried_with_the_same_event(
    lineage, engineer, integration, sample, artifacts, django_capture_on_commit_callbacks
):
    job = TrainingJob.objects.get(
        pk=_queue_training(engineer, integration, sample, django_capture_on_commit_callbacks)
    )
    lineage.script = [500, 503]

    with django_capture_on_commit_callbacks(execute=True):
        lineage_training_event(job=job, state="START")

    assert [status for _, _, status in lineage.posts] == [500, 503, 200]
    first, second, third = (body for _, body, _ in lineage.posts)
    assert first == second == third  # one event: run id, time and facets fixed
    assert_valid(third)
    again = lineage_event_build(subject=TRAINING, pk=job.pk, state="START", at=third["eventTime"])
    assert again.run.runId == third["run"]["runId"]


def test_an_unreachable_catalog_never_fails_the_job(
    settings, client_env, eager, engineer, integration, sample, artifacts, caplog,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    settings.LETHE_OPENLINEAGE_URL = f"http://127.0.0.1:{free_port()}"  # connection refused
    job_id = _queue_training(engineer, integration, sample, django_capture_on_commit_callbacks)

    with caplog.at_level(logging.ERROR), django_capture_on_commit_callbacks(execute=True):
        run_training_inline(job_id)

    assert TrainingJob.objects.get(pk=job_id).status == "succeeded"
    exhausted = [r for r in caplog.records if "retries exhausted" in r.getMessage()]
    assert [r.getMessage().split()[1] for r in exhausted] == ["START", "COMPLETE"]


def test_nothing_is_sent_unconfigured(
    settings, receiver, client_env, eager, engineer, integration, sample, artifacts,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    settings.LETHE_OPENLINEAGE_URL = None
    job = TrainingJob.objects.get(
        pk=_queue_training(engineer, integration, sample, django_capture_on_commit_callbacks)
    )
    assert not lineage_configured()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        lineage_training_event(job=job, state="START")

    assert callbacks == []
    assert receiver.posts == []


def test_the_clients_own_configuration_is_honoured(
    settings, receiver, client_env, eager, monkeypatch, engineer, integration, sample, artifacts,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    settings.LETHE_OPENLINEAGE_URL = None
    monkeypatch.setenv("OPENLINEAGE_URL", receiver.url)
    monkeypatch.setenv("OPENLINEAGE_ENDPOINT", "catalog/lineage")
    job = TrainingJob.objects.get(
        pk=_queue_training(engineer, integration, sample, django_capture_on_commit_callbacks)
    )

    with django_capture_on_commit_callbacks(execute=True):
        lineage_training_event(job=job, state="START")

    ((path, event, _),) = receiver.posts
    assert path == "/catalog/lineage"
    assert event["eventType"] == "START"
    assert event["job"]["namespace"] == "lethe://localhost"  # no namespace set: the host


# --- erasure ----------------------------------------------------------------------------


def test_an_erasure_emits_its_facet(
    lineage, officer, integration, trained, django_capture_on_commit_callbacks
):
    subject = busiest_subject(trained["model"])
    body = integration.client.post(
        f"{API}/erasure-requests/", {"subject_id": subject}, format="json"
    ).json()
    with django_capture_on_commit_callbacks(execute=False):
        officer.client.post(f"{API}/erasure-requests/{body['id']}/approve/", {}, format="json")

    with django_capture_on_commit_callbacks(execute=True):
        status = erasure_execution.erasure_request_execute(request_id=body["id"])

    assert status == "completed"
    start, complete = lineage.accepted()
    assert [start["eventType"], complete["eventType"]] == ["START", "COMPLETE"]
    assert start["run"]["runId"] == complete["run"]["runId"]
    for event in (start, complete):
        assert_valid(event)
    request = ErasureRequest.objects.get(pk=body["id"])
    erased = Record.objects.filter(subject__external_ref=subject, status="erased")
    destroyed = Stage.objects.filter(
        pk__in=request.execution["models"][0]["stages"], state="destroyed"
    )
    facet = complete["run"]["facets"]["lethe_erasure"]
    assert facet["requestId"] == request.pk
    assert facet["recordsErased"] == erased.count() > 0
    assert facet["stagesDeactivated"] == facet["stagesDestroyed"] == destroyed.count() > 0
    assert facet["certificateId"] == DeletionCertificate.objects.get(request=request).certificate_id
    (change,) = facet["models"]
    assert change["model"] == "models/tiny"
    assert change["manifestVersionAfter"] == change["manifestVersionBefore"] + 1
    assert "certificateId" not in start["run"]["facets"]["lethe_erasure"]
    assert "stagesDestroyed" not in start["run"]["facets"]["lethe_erasure"]
    assert [d["name"] for d in complete["inputs"]] == ["datasets/support"]
    assert [d["name"] for d in complete["outputs"]] == ["models/tiny"]
    assert complete["job"]["name"] == "erasure"
    assert subject not in json.dumps(complete)  # no personal data in the catalog
    assert not any(r.external_id in json.dumps(complete) for r in erased)
