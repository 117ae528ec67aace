"""OpenLineage RunEvents for lineage catalogs (Marquez, DataHub, OpenMetadata): docs/openlineage.md.

Training and retraining jobs are runs that read a dataset and write a model generation
(START, COMPLETE, FAIL); an erasure request's execution is a run that reads the dataset
and writes the model (START, COMPLETE, FAIL) with a ``lethe_erasure`` facet. Services call
``lineage_training_event`` / ``lineage_erasure_event`` inside the transaction of the state
change; on commit ``lethe.emit_openlineage`` is queued on the ``default`` queue, and the
worker builds the event from the rows and sends it (``lineage_event_send``). The catalog
being down never fails a job or an erasure: the task retries with backoff, then logs.

Every event is fixed by its arguments: the run id is a uuid5 of the job or request, the
event time is the commit's, and the facets come from rows that no longer change (the
generation's lineage, the request's execution record, its certificate). A retried or
duplicated emission sends the same event again. Events carry no personal data: counts,
digests, manifest versions, ids of requests and certificates, never subject or record ids.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any
from urllib.parse import urlsplit

import attr
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    DatasetFacet,
    RunFacet,
    dataset_type_dataset,
    dataset_version_dataset,
    error_message_run,
    job_type_job,
)

from governance.models import (
    DeletionCertificate,
    ErasureRequest,
    Record,
    SliceAssignment,
    TrainingJob,
    UnlearningModel,
)

log = logging.getLogger(__name__)

TRAINING, ERASURE = "training_job", "erasure_request"
SEND_TIMEOUT_S = 10.0
PRODUCER = "urn:lethe:governance"
# Served by Lethe itself (governance/static/lethe/openlineage/, as /static/...).
SCHEMA_PATH = "/static/lethe/openlineage/"


def lineage_configured() -> bool:
    """Whether events are sent: ``LETHE_OPENLINEAGE_URL``, or the client's own configuration.

    Asked of the client's own lookup (``OPENLINEAGE_URL``, ``OPENLINEAGE_CONFIG``, an
    ``openlineage.yml``, ``OPENLINEAGE__TRANSPORT__*``) without building a client: one built
    with no configuration prints events on the console and warns so, which in a deployment
    without a catalog would be noise in every process.
    """
    if settings.LETHE_OPENLINEAGE_URL:
        return True
    own = OpenLineageClient._load_config_from_env_variables() or {}
    if own.get("transport") or OpenLineageClient._find_yaml_config_path():
        return True
    try:  # OPENLINEAGE_URL, read by the client (KeyError when unset)
        OpenLineageClient._http_transport_from_env_variables()
    except KeyError:
        return False
    return True


def lineage_training_event(*, job: TrainingJob, state: str) -> None:
    """Queue the job's START, COMPLETE or FAIL event once the current transaction commits."""
    _enqueue_on_commit(TRAINING, job.pk, state)


def lineage_erasure_event(*, request: ErasureRequest, state: str) -> None:
    """Queue the execution's START, COMPLETE or FAIL event once the transaction commits."""
    _enqueue_on_commit(ERASURE, request.pk, state)


def _enqueue_on_commit(subject: str, pk: int, state: str) -> None:
    RunState(state)  # a wrong name fails here, in the caller's tests, not in a worker
    try:
        if not lineage_configured():
            return
    except Exception:  # a broken client configuration never fails the state change
        log.exception(
            "OpenLineage configuration unreadable; %s event for %s %s", state, subject, pk
        )
        return
    at = timezone.now().isoformat()
    transaction.on_commit(lambda: _enqueue(subject, pk, state, at))


def _enqueue(subject: str, pk: int, state: str, at: str) -> None:
    """Send the task; a broker that refuses it is logged, never raised into the job."""
    from celery_worker.tasks import emit_openlineage

    try:
        emit_openlineage.delay(subject, pk, state, at)
    except Exception:
        log.exception("OpenLineage %s event for %s %s not queued", state, subject, pk)


def lineage_event_send(*, subject: str, pk: int, state: str, at: str) -> str:
    """Build the event and send it (the task's body); raises what the transport raises.

    Returns the run id.
    """
    event = lineage_event_build(subject=subject, pk=pk, state=state, at=at)
    client = _client()
    try:
        client.emit(event)
    finally:
        client.close()
    return event.run.runId


def lineage_event_build(*, subject: str, pk: int, state: str, at: str) -> RunEvent:
    """The RunEvent for one state change of a training job or an erasure request."""
    build = _training_event if subject == TRAINING else _erasure_event
    return build(pk, RunState(state), at)


def _client() -> OpenLineageClient:
    """``LETHE_OPENLINEAGE_URL`` with one attempt per task run (Celery's retries back off
    for hours; the transport's own would hold a worker slot), else the client as its own
    configuration makes it."""
    url = settings.LETHE_OPENLINEAGE_URL
    if not url:
        return OpenLineageClient()
    parts = urlsplit(url)
    endpoint = parts.path.lstrip("/") or "api/v1/lineage"
    transport = {
        "type": "http",
        "url": f"{parts.scheme}://{parts.netloc}/",
        "endpoint": endpoint + (f"?{parts.query}" if parts.query else ""),
        "timeout": SEND_TIMEOUT_S,
        "retry": {"total": 0, "status_forcelist": []},
    }
    return OpenLineageClient(config={"transport": transport})


# --- names ------------------------------------------------------------------------------


def lineage_namespace() -> str:
    """``lethe://<LETHE_OPENLINEAGE_NAMESPACE>``, else the first named host Lethe serves."""
    named = [h for h in settings.ALLOWED_HOSTS if h not in ("*", "") and not h.startswith(".")]
    return f"lethe://{settings.LETHE_OPENLINEAGE_NAMESPACE or (named or ['lethe'])[0]}"


def _run_id(kind: str, pk: int, created: Any) -> str:
    """Stable per job or request; its creation time keeps a reset database's ids apart."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{lineage_namespace()}/{kind}/{pk}@{created}"))


def _schema_url(name: str) -> str:
    host = lineage_namespace().removeprefix("lethe://")
    return f"https://{host}{SCHEMA_PATH}{name}.json#/$defs/{name}"


def _dataset_name(name: str) -> str:
    return f"datasets/{name}"


def _model_name(name: str) -> str:
    return f"models/{name}"


# --- custom facets ----------------------------------------------------------------------


@attr.define
class LetheContentDatasetFacet(DatasetFacet):
    """``lethe_content``: the records a generation learned from, counted and digested."""

    recordCount: int
    digest: str

    @staticmethod
    def _get_schema() -> str:
        return _schema_url("LetheContentDatasetFacet")


@attr.define
class LetheS3tPlanDatasetFacet(DatasetFacet):
    """``lethe_s3t_plan``: the model's S3T plan and the generation the event is about."""

    shards: int
    slices: int
    sequences: int
    policy: str
    generation: int
    baseModel: str
    stages: int | None = None
    retrainedShards: list[int] | None = None

    @staticmethod
    def _get_schema() -> str:
        return _schema_url("LetheS3tPlanDatasetFacet")


@attr.define
class LetheErasureRunFacet(RunFacet):
    """``lethe_erasure``: what the request's execution did (no personal data)."""

    requestId: int
    recordsErased: int
    stagesDeactivated: int
    models: list[dict[str, Any]]
    stagesDestroyed: int | None = None
    certificateId: str | None = None

    @staticmethod
    def _get_schema() -> str:
        return _schema_url("LetheErasureRunFacet")


# --- events -----------------------------------------------------------------------------


def _job(name: str, job_type: str) -> Job:
    kind = job_type_job.JobTypeJobFacet(
        processingType="BATCH", integration="LETHE", jobType=job_type
    )
    return Job(namespace=lineage_namespace(), name=name, facets={"jobType": kind})


def _model_output(model: UnlearningModel, generation: int, **plan: Any) -> OutputDataset:
    facets: dict[str, Any] = {
        "datasetType": dataset_type_dataset.DatasetTypeDatasetFacet(datasetType="MODEL"),
        "lethe_s3t_plan": LetheS3tPlanDatasetFacet(
            shards=model.num_shards,
            slices=model.num_slices,
            sequences=model.budget,
            policy=model.sequence_policy,
            generation=generation,
            baseModel=model.base_model,
            **plan,
        ),
    }
    return OutputDataset(namespace=lineage_namespace(), name=_model_name(model.name), facets=facets)


def _error(message: str) -> dict[str, Any]:
    facet = error_message_run.ErrorMessageRunFacet(message=message, programmingLanguage="python")
    return {"errorMessage": facet} if message else {}


def _training_event(pk: int, state: RunState, at: str) -> RunEvent:
    from unlearning.data import lineage_digest

    job = TrainingJob.objects.select_related("model__dataset").get(pk=pk)
    model = job.model
    ids = SliceAssignment.objects.filter(model=model, generation=job.generation).values_list(
        "record__external_id", flat=True
    )
    keys = list(ids)
    digest = lineage_digest(keys)
    content = LetheContentDatasetFacet(recordCount=len(keys), digest=digest)
    version = dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=digest)
    source = InputDataset(
        namespace=lineage_namespace(),
        name=_dataset_name(model.dataset.name),
        facets={"datasetVersion": version, "lethe_content": content},
    )
    retrain = job.kind == TrainingJob.Kind.RETRAIN
    plan: dict[str, Any] = {"stages": job.stages_total}
    if retrain:
        plan["retrainedShards"] = [int(i) for i in job.retrained_shards or []]
    failed = _error(job.error) if state == RunState.FAIL else {}
    return RunEvent(
        eventType=state,
        eventTime=at,
        run=Run(runId=_run_id("training-jobs", job.pk, job.created_at.isoformat()), facets=failed),
        job=_job(
            f"{_model_name(model.name)}/{'retrain' if retrain else 'train'}",
            "RETRAINING" if retrain else "TRAINING",
        ),
        inputs=[source],
        outputs=[_model_output(model, job.generation, **plan)],
        producer=PRODUCER,
    )


def _erasure_event(pk: int, state: RunState, at: str) -> RunEvent:
    request = ErasureRequest.objects.get(pk=pk)
    execution = request.execution or {}
    erased = list(execution.get("records_erased", []))
    done = list(execution.get("models", []))
    models = UnlearningModel.objects.in_bulk([m["model_id"] for m in done])
    stages = sum(len(m["stages"]) for m in done)
    facet = LetheErasureRunFacet(
        requestId=request.pk,
        recordsErased=len(erased),
        stagesDeactivated=stages,
        models=[_manifest_change(models[m["model_id"]], m) for m in done],
    )
    if state == RunState.COMPLETE:
        facet.stagesDestroyed = stages  # certification refuses while any holds bytes
        certificate = DeletionCertificate.objects.filter(request=request).first()
        facet.certificateId = certificate.certificate_id if certificate else None
    run_facets: dict[str, Any] = {"lethe_erasure": facet}
    if state == RunState.FAIL:
        run_facets.update(_error(request.error))
    datasets = set(
        Record.objects.filter(
            subject__external_ref=request.subject_ref,
            external_id__in=erased,
            status=Record.Status.ERASED,
        ).values_list("dataset__name", flat=True)
    )
    return RunEvent(
        eventType=state,
        eventTime=at,
        run=Run(
            runId=_run_id("erasure-requests", request.pk, request.received_at.isoformat()),
            facets=run_facets,
        ),
        job=_job("erasure", "ERASURE"),
        inputs=[
            InputDataset(namespace=lineage_namespace(), name=_dataset_name(name))
            for name in sorted(datasets)
        ],
        outputs=[
            _model_output(model, (m["manifest_after"] or {}).get("generation", model.generation))
            for m in done
            for model in [models[m["model_id"]]]
        ],
        producer=PRODUCER,
    )


def _manifest_change(model: UnlearningModel, done: dict[str, Any]) -> dict[str, Any]:
    before, after = done.get("manifest_before") or {}, done.get("manifest_after") or {}
    return {
        "model": _model_name(model.name),
        "manifestVersionBefore": before.get("version"),
        "manifestVersionAfter": after.get("version"),
    }
