"""The reads of ``manage.py demo``: the objects it finds by name, and the facts it prints.

The demo reuses what an earlier run created, so most of these look a named object up and
return None when there is none yet; the rules they lean on (which requests are open, which
training tasks are done) stay on the models.
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db.models import Count
from django.utils import timezone

from governance.models import (
    ApiToken,
    Dataset,
    DeletionCertificate,
    ErasureRequest,
    Record,
    Stage,
    TrainingJob,
    TrainingTask,
    UnlearningModel,
)
from governance.services.accounts import token_hash


def user_named(username: str) -> User | None:
    return User.objects.filter(username=username).first()


def user_get(username: str) -> User:
    """An account the demo has made sure exists this run (DoesNotExist otherwise)."""
    return User.objects.get(username=username)


def user_in_group(user: User, group: str) -> bool:
    """Membership of the group itself: unlike ``user_has_role``, a superuser is not enough."""
    return user.groups.filter(name=group).exists()


def api_token_holds(*, user: User, key: str) -> bool:
    """Whether ``key`` is still one of ``user``'s working API tokens (only its hash is
    stored): a revoked or expired one is no longer worth printing."""
    token = ApiToken.objects.filter(user=user, key_hash=token_hash(key)).first()
    return token is not None and token.state(timezone.now()) is ApiToken.State.ACTIVE


def dataset_named(name: str) -> Dataset | None:
    return Dataset.objects.filter(name=name).first()


def dataset_subject_count(dataset: Dataset) -> int:
    """Distinct data subjects with records, erased ones included (the sample's size)."""
    return Record.objects.filter(dataset=dataset).values("subject").distinct().count()


def dataset_record_counts(dataset: Dataset) -> dict[str, int]:
    """Records per ``Record.Status`` value; a status with no records is absent."""
    rows = (
        Record.objects.filter(dataset=dataset)
        .values_list("status")
        .annotate(n=Count("pk"))
        .values_list("status", "n")
    )
    return dict(rows)


def subject_busiest(dataset: Dataset | int) -> str | None:
    """The subject with the most active records (ties: the lowest ref), or None if none."""
    busiest = (
        Record.objects.filter(dataset=dataset, status=Record.Status.ACTIVE)
        .values("subject__external_ref")
        .annotate(n=Count("pk"))
        .order_by("-n", "subject__external_ref")
        .first()
    )
    return None if busiest is None else str(busiest["subject__external_ref"])


def model_named(name: str) -> UnlearningModel | None:
    return UnlearningModel.objects.filter(name=name).first()


def training_job_latest(model: UnlearningModel) -> TrainingJob | None:
    return TrainingJob.objects.filter(model=model).order_by("-pk").first()


def training_job_find(job_id: int) -> TrainingJob | None:
    return TrainingJob.objects.filter(pk=job_id).first()


def training_tasks_unfinished(job: TrainingJob) -> list[int]:
    """The ids of the job's tasks not yet done, in the order they were queued."""
    tasks = TrainingTask.objects.filter(job=job).exclude(status=TrainingTask.Status.DONE)
    return list(tasks.order_by("pk").values_list("pk", flat=True))


def stages_in_training(model: UnlearningModel) -> set[int]:
    """Stages of ``model`` someone holds a training lease on right now."""
    training = Stage.objects.filter(shard__model=model, state=Stage.State.TRAINING)
    return set(training.values_list("pk", flat=True))


def erasure_request_resumable(*, filed_by: User, key_prefix: str) -> ErasureRequest | None:
    """The oldest open request ``filed_by`` filed under an idempotency key with the prefix.

    The prefix marks the requests an earlier demo filed: a request a person filed in the
    UI is never picked, so the demo never decides one it did not file.
    """
    mine = ErasureRequest.objects.open().filter(
        filed_by=filed_by, idempotency_key__startswith=key_prefix
    )
    return mine.order_by("pk").first()


def certificate_of(request: ErasureRequest) -> DeletionCertificate:
    return DeletionCertificate.objects.get(request=request)
