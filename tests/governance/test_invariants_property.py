"""I2 (serving) and I3 (purge) under random sequences of operations (hypothesis, stateful).

Two tiny S3T models (tiny-bert backbone, 2 shards, 2 or 3 slices, 2 cyclic sequences, one
epoch) are trained inline once, each on its own small dataset. Every example starts from
one of them, as trained (the database inside a savepoint rolled back afterwards, the
artifact folder restored from a copy), and applies a random sequence of: ingest (records
for new or known subjects, sometimes re-sending an erased record), erase (a known or an
unknown subject), train or retrain (a full new generation, the shards due, or chosen
shards; a retrain in suffix mode, the default, or full mode), erase during training
(between two tasks of the job, or while a stage trains) and predict. After every step the
invariants are recomputed from the rows and the artifact folder, never through the
services' own checks:

- I2: every stage the latest manifest names is ``trained``, its lineage (records reached
  through SliceAssignment -> Slice <- Stage.slices) holds no erased record, its bytes
  exist, and the manifest follows the depth rule (per shard: the longest prefix of clean
  trained stages over finished sequences, ties to the lowest index; depth 0 leaves).
- I3: every stage whose lineage holds an erased record is destroyed or retired (every
  request has completed by then) and no bytes remain at its artifact path or its store
  path; no file is left for a stage that is not trained; erased records are tombstones
  with no text and no label; a generation created after an erasure holds an erased record
  only in a shard carried over unchanged, and training never reads an erased record.
- Suffix retraining: a stage a suffix retrain keeps was trained and clean in the generation
  before, with the same tensor and lineage digests, and stays so (or is gone, after a later
  erasure); every other stage of a retrained shard starts pending.
- The audit chain verifies, and manifest versions are 1..n.
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path
from typing import Any, ClassVar
from unittest import mock

import hypothesis
import pytest
from django.conf import settings
from django.db import transaction
from hypothesis import HealthCheck
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from governance import engine
from governance.errors import ApplicationError
from governance.models import (
    Dataset,
    ErasureRequest,
    Record,
    Sequence,
    ServingManifest,
    Shard,
    Stage,
    TrainingJob,
    TrainingTask,
    UnlearningModel,
)
from governance.services import erasure, erasure_execution
from governance.services import training_tasks as training
from governance.services.audit_integrity import audit_chain_verify
from governance.services.datasets import dataset_create, records_upsert
from governance.services.record_rows import validate_rows
from governance.services.retraining import model_retrain, models_retrain_due
from governance.services.serving import model_predict, predictors
from governance.services.training import ModelSpec, model_create, model_train
from governance.services.training_tasks import training_task_fail, training_task_run
from unlearning.sample_data import LABELS

SHARDS = 2
SUBJECTS = 12  # per base model, 1 to 4 records each: every cell keeps a subject or two
# Short texts keep a stage at about one optimiser step on two CPU cores.
TEXTS = (
    "charged twice",
    "app crashes",
    "password reset",
    "parcel late",
    "return jacket",
    "great service",
)
GONE = (Stage.State.DESTROYED, Stage.State.RETIRED)


def _row(external_id: str, subject: str, n: int) -> dict[str, str]:
    label = n % len(LABELS)
    return {
        "external_id": external_id,
        "subject_id": subject,
        "text": f"{TEXTS[label]} {n}",
        "label": LABELS[label],
    }


def _upsert(dataset: Dataset, rows: list[dict[str, str]]) -> Any:
    valid, errors = validate_rows(rows, labels=LABELS, max_rows=10_000)
    assert not errors, errors
    return records_upsert(actor="integration", dataset=dataset, rows=valid)


# --- the independent checker -------------------------------------------------------------


def lineage(stage: Stage) -> Any:
    """The records a stage was trained on, recomputed from the lineage rows."""
    return Record.objects.filter(assignments__slice__in=stage.slices.all()).distinct()


def store_path(model: UnlearningModel, stage: Stage) -> Path:
    """The stage's plain key in the file-system store (where no attempt wrote it)."""
    key = engine.artifact_store(model, stage.shard.generation).object_key(engine.stage_key(stage))
    return Path(settings.ARTIFACT_ROOT) / key


def stage_file(stage: Stage) -> Path:
    """The file the stage row names in the file-system store."""
    return Path(settings.ARTIFACT_ROOT) / stage.artifact_key


def check_invariants(model_id: int, erased: dict[int, int]) -> None:
    """Raise AssertionError naming the invariant when a row or a file breaks I2 or I3.

    ``erased`` maps the primary key of every record erased so far to the model's newest
    generation at that moment (generations above it were created after the erasure).
    """
    model = UnlearningModel.objects.select_related("dataset").get(pk=model_id)
    assert not ErasureRequest.objects.exclude(status=ErasureRequest.Status.COMPLETED).exists(), (
        "every erasure request has completed"
    )
    _check_records(model, erased)
    _check_manifest(model)
    _check_purge(model)
    _check_later_lineage(model, erased)
    report = audit_chain_verify()
    assert report.ok, f"audit chain: {report.reason} at #{report.first_bad_seq}"


def _check_records(model: UnlearningModel, erased: dict[int, int]) -> None:
    rows = Record.objects.filter(dataset=model.dataset_id, status=Record.Status.ERASED)
    assert set(rows.values_list("pk", flat=True)) == set(erased), (
        "I3: the erased records are exactly the records of the subjects erased"
    )
    for record in rows:
        assert (record.text, record.label) == ("", ""), f"I3: record {record.pk} keeps content"
        assert record.erased_at is not None, f"I3: record {record.pk} has no erasure time"


def _check_manifest(model: UnlearningModel) -> None:
    manifests = list(ServingManifest.objects.filter(model=model).order_by("version"))
    versions = [m.version for m in manifests]
    assert versions == list(range(1, len(versions) + 1)), f"manifest versions {versions}"
    if not manifests:
        return
    latest = manifests[-1]
    for entry in latest.entries:
        shard = Shard.objects.get(model=model, generation=latest.generation, index=entry["shard"])
        order = Sequence.objects.get(shard=shard, index=entry["sequence"]).order
        assert 1 <= entry["depth"] <= len(order), f"I2: depth of {entry}"
        expected = [engine.prefix_text(order[:d]) for d in range(1, entry["depth"] + 1)]
        assert [s["prefix"] for s in entry["stages"]] == expected, f"I2: prefixes of {entry}"
        for claimed in entry["stages"]:
            stage = Stage.objects.select_related("shard").get(pk=claimed["id"])
            name = f"I2: serving stage {stage.pk}"
            assert (stage.shard_id, stage.prefix) == (shard.pk, claimed["prefix"]), name
            assert stage.state == Stage.State.TRAINED, f"{name} is {stage.state}"
            records = lineage(stage)
            assert records.exists(), f"{name} has no lineage"
            dirty = list(records.filter(status=Record.Status.ERASED).values_list("pk", flat=True))
            assert not dirty, f"{name} read erased records {dirty}"
            assert stage.artifact_key, f"{name} has no artifact key"
            assert stage_file(stage).is_file(), f"{name} has no bytes"
            assert claimed["digest"] == stage.tensor_digest, f"{name}: digest differs"
    depths = {e["shard"]: (e["sequence"], e["depth"]) for e in latest.entries}
    assert depths == _depth_rule(model, latest.generation), (
        f"I2: manifest v{latest.version} {depths} breaks the depth rule"
    )
    if latest.generation != model.generation:
        # A newer generation takes over as soon as every one of its shards can serve.
        assert len(_depth_rule(model, model.generation)) < model.num_shards, (
            f"I2: generation {model.generation} can serve, v{latest.version} does not use it"
        )


def _dirty_stages(model: UnlearningModel) -> set[int]:
    """Stages of the model whose lineage holds an erased record."""
    return set(
        Stage.objects.filter(
            shard__model=model, slices__assignments__record__status=Record.Status.ERASED
        ).values_list("pk", flat=True)
    )


def _depth_rule(model: UnlearningModel, generation: int) -> dict[int, tuple[int, int]]:
    """Per shard: (sequence, depth) of the longest clean prefix of a finished sequence."""
    dirty = _dirty_stages(model)
    finished = set(
        TrainingTask.objects.filter(
            sequence__shard__model=model, sequence__shard__generation=generation, status="done"
        ).values_list("sequence_id", flat=True)
    )
    out = {}
    for shard in Shard.objects.filter(model=model, generation=generation).order_by("index"):
        stages = {s.prefix: s for s in shard.stages.all()}
        best: tuple[int, int] | None = None
        for seq in shard.sequences.order_by("index"):
            if seq.pk not in finished:
                continue
            depth = 0
            for d in range(1, len(seq.order) + 1):
                stage = stages.get(engine.prefix_text(seq.order[:d]))
                if stage is None or stage.state != Stage.State.TRAINED or stage.pk in dirty:
                    break
                depth = d
            if depth and (best is None or depth > best[1]):
                best = (seq.index, depth)
        if best is not None:
            out[shard.index] = best
    return out


def _check_purge(model: UnlearningModel) -> None:
    dirty = _dirty_stages(model)
    expected_files = set()
    for stage in Stage.objects.filter(shard__model=model).select_related("shard"):
        path = store_path(model, stage)
        if stage.pk in dirty:
            name = f"I3: stage {stage.pk} reads erased records"
            assert stage.state in GONE, f"{name} and is {stage.state}"
            assert not path.exists(), f"{name} and keeps bytes at {path}"
            if stage.artifact_key:
                assert not stage_file(stage).exists(), f"{name} and keeps bytes"
        if stage.state == Stage.State.TRAINED:
            assert stage_file(stage).is_file(), f"trained stage {stage.pk} has no bytes"
            expected_files.add(stage_file(stage))
    root = Path(settings.ARTIFACT_ROOT) / f"model-{model.pk}"
    leftover = sorted(str(p) for p in set(root.rglob("*.safetensors")) - expected_files)
    assert not leftover, f"I3: bytes left of stages that are not trained: {leftover}"


def _check_later_lineage(model: UnlearningModel, erased: dict[int, int]) -> None:
    """A generation created after an erasure never places the erased record anew."""
    jobs = {j.generation: j for j in TrainingJob.objects.filter(model=model)}
    rows = Record.objects.filter(pk__in=list(erased)).values_list(
        "pk", "assignments__generation", "assignments__slice__shard__index"
    )
    for pk, generation, shard in rows:
        if generation is None or generation <= erased[pk]:
            continue
        job = jobs[generation]
        carried = job.kind == TrainingJob.Kind.RETRAIN and shard not in job.retrained_shards
        assert carried, (
            f"I3: generation {generation}, created after the erasure, placed erased record "
            f"{pk} in shard {shard}, which it trained anew"
        )


def _reads_only_active(original: Any, seen: list[int]) -> Any:
    """Wrap engine.examples: what a stage is trained on must be active at that moment."""

    def examples(records: Any, labels: Any) -> Any:
        records = list(records)
        seen.append(len(records))
        erased = list(
            Record.objects.filter(
                pk__in=[r.pk for r in records], status=Record.Status.ERASED
            ).values_list("pk", flat=True)
        )
        assert not erased, f"I3: training read erased records {erased}"
        return original(records, labels)

    return examples


# --- base models, trained once -----------------------------------------------------------


def _run_job(job: TrainingJob) -> None:
    for task_id in TrainingTask.objects.filter(job=job).order_by("pk").values_list("pk", flat=True):
        training_task_run(task_id=task_id)


def base_model(slices: int, capture: Any) -> UnlearningModel:
    """A dataset of SUBJECTS subjects and a model trained on it (artifacts: settings)."""
    tag = f"L{slices}"
    dataset = dataset_create(actor="integration", name=f"support-{tag}", labels=LABELS)
    rows = [
        _row(f"{tag}-r{s}-{i}", f"{tag}-s{s}", s * 7 + i)
        for s in range(SUBJECTS)
        for i in range(1 + s % 4)
    ]
    _upsert(dataset, rows)
    model = model_create(
        actor="engineer",
        spec=ModelSpec(
            name=f"tiny-{tag}",
            dataset=dataset,
            base_model="tiny-bert",
            shards=SHARDS,
            slices=slices,
            sequences=2,
            sequence_policy="cyclic",
            lora_rank=4,
            lora_alpha=8,
            epochs=1,
            learning_rate=1e-2,
            batch_size=32,
            seed=slices,
        ),
    )
    with capture(execute=False):
        job = model_train(actor="engineer", model=model)
    _run_job(job)
    assert ServingManifest.objects.filter(model=model).exists()
    return model


# --- the state machine ------------------------------------------------------------------


class Environment:
    """What the test gives the machine: fixtures, base models and the pristine artifacts."""

    def __init__(self, *, artifacts: Path, pristine: Path, capture: Any, models: dict) -> None:
        self.artifacts, self.pristine, self.capture = artifacts, pristine, capture
        self.models: dict[int, UnlearningModel] = models
        self.steps = 0
        self.known_bug = 0


class ErasureMachine(RuleBasedStateMachine):
    env: ClassVar[Environment]

    def __init__(self) -> None:
        super().__init__()
        self.savepoint = transaction.savepoint()
        shutil.rmtree(self.env.artifacts, ignore_errors=True)
        shutil.copytree(self.env.pristine, self.env.artifacts)
        predictors.clear()
        self.model: UnlearningModel | None = None
        self.erased: dict[int, int] = {}
        self.kept: dict[int, str] = {}  # stage pk -> tensor digest, kept by a suffix retrain
        self.subjects: list[str] = []
        self.ids = itertools.count(1000)

    def teardown(self) -> None:
        transaction.savepoint_rollback(self.savepoint)
        predictors.clear()

    @initialize(slices=st.sampled_from([2, 3]), threshold=st.integers(1, 2))
    def start(self, slices: int, threshold: int) -> None:
        self.model = self.env.models[slices]
        UnlearningModel.objects.filter(pk=self.model.pk).update(retrain_threshold=threshold)
        self.model.refresh_from_db()
        self.dataset = self.model.dataset
        self.subjects = sorted(
            set(
                Record.objects.filter(dataset=self.dataset).values_list(
                    "subject__external_ref", flat=True
                )
            )
        )

    # --- helpers ---

    def _start_job(self, kind: str, shards: list[int] | None = None) -> TrainingJob | None:
        """Queue a job (its Celery messages captured, not sent); None when there is none.

        ``kind``: "train", "due" (the scheduler's retrain, suffix mode), "shards" (chosen
        shards, suffix mode) or "shards_full" (chosen shards, full re-partition).
        """
        self.model.refresh_from_db()
        before = self._serving_stages()
        with self.env.capture(execute=False) as callbacks:
            try:
                if kind == "train":
                    job = model_train(actor="engineer", model=self.model)
                elif kind == "due":
                    jobs = models_retrain_due(actor="scheduler")
                    assert all(j.model_id == self.model.pk for j in jobs)
                    job = jobs[0] if jobs else None
                else:
                    mode = "full" if kind == "shards_full" else "suffix"
                    job = model_retrain(
                        actor="engineer",
                        model=self.model,
                        shards=shards,
                        reason="property",
                        mode=mode,
                    )
                    assert job is None or mode == "suffix" or job.retrain_mode == "full"
            except ApplicationError as exc:
                refused = exc  # too few records left for the cells: nothing was written
            else:
                refused = None
        if refused is not None:
            assert (refused.code, list(refused.details or {})) == ("invalid", ["dataset"]), refused
            assert not callbacks
            return None
        assert len(callbacks) == (0 if job is None else 1)
        if job is not None and job.retrain_mode == TrainingJob.RetrainMode.SUFFIX:
            self._check_suffix_plan(job, before)
        return job

    def _serving_stages(self) -> dict[tuple[int, str], Stage]:
        """Stages of the serving generation by (shard, prefix), before a job is planned."""
        latest = ServingManifest.objects.filter(model=self.model).order_by("-version").first()
        if latest is None:
            return {}
        return {
            (s.shard.index, s.prefix): s
            for s in Stage.objects.filter(
                shard__model=self.model, shard__generation=latest.generation
            ).select_related("shard")
        }

    def _check_suffix_plan(self, job: TrainingJob, before: dict[tuple[int, str], Stage]) -> None:
        """What a suffix retrain keeps was trained and clean, digests unchanged; the rest of
        its shards starts pending and the job trains exactly that many stages."""
        dirty = _dirty_stages(self.model)
        pending = 0
        for stage in Stage.objects.filter(
            shard__model=self.model,
            shard__generation=job.generation,
            shard__index__in=job.retrained_shards,
        ).select_related("shard"):
            old = before[(stage.shard.index, stage.prefix)]
            if stage.state == Stage.State.PENDING:
                pending += 1
                continue
            name = f"suffix retrain: kept stage {stage.prefix} of shard {stage.shard.index}"
            assert stage.state == Stage.State.TRAINED, f"{name} is {stage.state}"
            assert old.state == Stage.State.TRAINED, f"{name} was {old.state}"
            assert old.pk not in dirty, f"{name} was dirty"
            assert (stage.tensor_digest, stage.lineage_digest) == (
                old.tensor_digest,
                old.lineage_digest,
            ), f"{name}: digests differ"
            assert set(lineage(stage).values_list("pk", flat=True)) == set(
                lineage(old).values_list("pk", flat=True)
            ), f"{name}: lineage differs"
            self.kept[stage.pk] = stage.tensor_digest
        assert pending == job.stages_total > 0, f"suffix retrain plans {pending} stages"

    def _run(self, job: TrainingJob, tasks: list[int] | None = None) -> None:
        """What the workers do with the job's tasks, in this process."""
        if tasks is None:
            tasks = list(
                TrainingTask.objects.filter(job=job).order_by("pk").values_list("pk", flat=True)
            )
        for task_id in tasks:
            try:
                training_task_run(task_id=task_id)
            except ValueError as exc:
                if "no training examples" not in str(exc):
                    raise
                error = str(exc)
            else:
                continue
            # Known gap: model_train and model_retrain count active records, not subjects,
            # so a cell can stay empty ("no training examples" for its stages). A worker
            # gives up after its retries; the invariants must hold all the same. Once the
            # services refuse such a plan, _start_job sees the refusal and this is unused.
            assert self._has_empty_slice(job), error
            self.env.known_bug += 1
            training_task_fail(task_id=task_id, error=error)

    def _has_empty_slice(self, job: TrainingJob) -> bool:
        return any(
            not s.assignments.exists()
            for shard in Shard.objects.filter(model=self.model, generation=job.generation)
            for s in shard.slices.all()
        )

    def _erase(self, subject_ref: str) -> None:
        """File, approve and execute a request; the execution task is captured, not sent."""
        self.model.refresh_from_db()
        doomed = list(
            Record.objects.filter(
                subject__external_ref=subject_ref, status=Record.Status.ACTIVE
            ).values_list("pk", flat=True)
        )
        request, created = erasure.erasure_request_create(
            actor="officer", subject_ref=subject_ref, reason="Art. 17"
        )
        assert created
        with self.env.capture(execute=False) as callbacks:
            erasure.erasure_request_approve(actor="officer", request=request)
        assert len(callbacks) == 1
        assert erasure_execution.erasure_request_execute(request_id=request.pk) == "completed"
        for pk in doomed:
            self.erased[pk] = self.model.generation

    def _subject(self, pick: int | None) -> str:
        if pick is None:
            return f"unknown-{next(self.ids)}"
        return self.subjects[pick % len(self.subjects)]

    # --- operations ---

    @precondition(lambda self: self.model is not None)
    @rule(
        new=st.integers(0, 2),
        known=st.lists(st.integers(0, 10**6), max_size=2),
        resend_erased=st.booleans(),
    )
    def ingest(self, new: int, known: list[int], resend_erased: bool) -> None:
        refs = [f"new-{next(self.ids)}" for _ in range(new)]
        refs += [self._subject(k) for k in known]
        rows = [_row(f"late-{n}", ref, n) for ref in refs for n in [next(self.ids)]]
        tombstone = None
        if resend_erased and self.erased:
            tombstone = Record.objects.select_related("subject").get(pk=min(self.erased))
            rows.append(_row(tombstone.external_id, tombstone.subject.external_ref, 0))
        if not rows:
            return
        result = _upsert(self.dataset, rows)
        assert result.created == len(refs)
        assert len(result.rejected) == (1 if tombstone else 0)  # erased data stays erased
        self.subjects = sorted({*self.subjects, *refs})

    @precondition(lambda self: self.model is not None)
    @rule(pick=st.none() | st.integers(0, 10**6))
    def erase(self, pick: int | None) -> None:
        self._erase(self._subject(pick))

    @precondition(lambda self: self.model is not None)
    @rule(
        kind=st.sampled_from(["train", "due", "shards", "shards_full"]),
        shards=st.lists(st.integers(0, SHARDS - 1), min_size=1, max_size=SHARDS, unique=True),
    )
    def train(self, kind: str, shards: list[int]) -> None:
        """A full new generation, the retrain the scheduler finds due, or chosen shards
        (suffix or full mode)."""
        job = self._start_job(kind, shards)
        if job is not None:
            self._run(job)

    @precondition(lambda self: self.model is not None)
    @rule(
        kind=st.sampled_from(["train", "shards", "shards_full"]),
        shards=st.lists(st.integers(0, SHARDS - 1), min_size=1, max_size=SHARDS, unique=True),
        mid_stage=st.booleans(),
        where=st.integers(0, 10**6),
        pick=st.none() | st.integers(0, 10**6),
    )
    def erase_during_training(
        self, kind: str, shards: list[int], mid_stage: bool, where: int, pick: int | None
    ) -> None:
        """An erasure lands between two tasks of a job, or between two steps of a stage
        (then it erases a subject of that stage's lineage: I5)."""
        job = self._start_job(kind, shards)
        if job is None:
            return
        if not mid_stage:
            tasks = list(
                TrainingTask.objects.filter(job=job).order_by("pk").values_list("pk", flat=True)
            )
            cut = where % (len(tasks) + 1)
            self._run(job, tasks[:cut])
            self._erase(self._subject(pick))
            self._run(job, tasks[cut:])
            return
        pending = list(
            Stage.objects.filter(
                shard__model=self.model, shard__generation=job.generation, state="pending"
            ).order_by("pk")
        )
        target = pending[where % len(pending)]
        victims = sorted(set(lineage(target).values_list("subject__external_ref", flat=True))) or [
            self._subject(pick)
        ]
        victim = victims[(pick or 0) % len(victims)]
        original = training._lease_renewer
        fired: list[int] = []

        def renewer(stage: Stage) -> Any:
            renew = original(stage)

            def step(n: int, loss: float) -> None:
                if stage.pk == target.pk and not fired:
                    fired.append(stage.pk)
                    self._erase(victim)
                renew(n, loss)

            return step

        with mock.patch.object(training, "_lease_renewer", renewer):
            self._run(job)
        if not fired:  # the target never trained (an empty cell, see _run)
            self._erase(victim)
        target.refresh_from_db()
        if lineage(target).exists():
            assert target.state in GONE, f"I5: stage {target.pk} is {target.state}"
            assert target.trained_at is None, f"I5: stage {target.pk} was recorded as trained"

    @precondition(lambda self: self.model is not None)
    @rule()
    def predict(self) -> None:
        latest = ServingManifest.objects.filter(model=self.model).order_by("-version").first()
        try:
            result = model_predict(model=self.model, inputs=["my parcel is late"])
        except ApplicationError as exc:
            refused = exc
        else:
            refused = None
            assert result.manifest_version == latest.version
            assert result.predictions[0].label in LABELS
        if refused is not None:
            assert refused.code == "model_not_servable", refused
            assert not latest.entries

    # --- after every step ---

    @invariant()
    def i2_and_i3_hold(self) -> None:
        self.env.steps += 1
        check_invariants(self.model.pk, self.erased)

    @invariant()
    def kept_stages_keep_their_digests(self) -> None:
        """A stage a suffix retrain kept is never trained again: same digest, or gone."""
        for stage in Stage.objects.filter(pk__in=list(self.kept)):
            if stage.state == Stage.State.TRAINED:
                assert stage.tensor_digest == self.kept[stage.pk], f"kept stage {stage.pk}"
            else:
                assert stage.state in (*GONE, Stage.State.DEACTIVATED), f"kept {stage.pk}"


def _environment(settings, tmp_path, capture, slices) -> Environment:
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.LETHE_SIGNING_KEY_PATH = tmp_path / "keys" / "signing.pem"
    models = {n: base_model(n, capture) for n in slices}
    for model in models.values():
        check_invariants(model.pk, {})
    shutil.copytree(settings.ARTIFACT_ROOT, tmp_path / "pristine")
    return Environment(
        artifacts=settings.ARTIFACT_ROOT,
        pristine=tmp_path / "pristine",
        capture=capture,
        models=models,
    )


@pytest.mark.django_db
def test_i2_and_i3_hold_after_every_step(settings, tmp_path, django_capture_on_commit_callbacks):
    seen: list[int] = []
    with mock.patch.object(engine, "examples", _reads_only_active(engine.examples, seen)):
        env = _environment(settings, tmp_path, django_capture_on_commit_callbacks, (2, 3))
        ErasureMachine.env = env
        run_state_machine_as_test(
            ErasureMachine,
            settings=hypothesis.settings(
                max_examples=8,
                stateful_step_count=6,
                deadline=None,
                database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
            ),
        )
    assert env.steps > 0
    assert seen  # the spy saw every stage trained, the base models' included


# --- the checker can fail ------------------------------------------------------------------


def _plant(plant: str, model: UnlearningModel, erased: list[int], stage: Stage) -> None:
    latest = ServingManifest.objects.filter(model=model).order_by("-version").first()
    if plant == "stage_kept":  # deactivation skipped a stage
        Stage.objects.filter(pk=stage.pk).update(state=Stage.State.TRAINED)
    elif plant == "bytes_kept":  # the purge marked the stage but left its file
        path = store_path(model, stage)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not really gone")
    elif plant == "content_kept":
        Record.objects.filter(pk=erased[0]).update(text="still here")
    elif plant == "manifest_stale":  # the manifest before the erasure stays current
        before = ServingManifest.objects.get(model=model, version=latest.version - 1)
        ServingManifest.objects.filter(pk=latest.pk).update(entries=before.entries)
    elif plant == "shard_dropped":  # a shard that can serve left the manifest
        ServingManifest.objects.filter(pk=latest.pk).update(entries=latest.entries[:-1])
    elif plant == "version_gap":
        ServingManifest.objects.filter(pk=latest.pk).update(version=latest.version + 1)
    else:
        raise AssertionError(plant)


PLANTS = {
    "stage_kept": "I3: stage .* reads erased records and is trained",
    "bytes_kept": "I3: stage .* reads erased records and keeps bytes",
    "content_kept": "I3: record .* keeps content",
    "manifest_stale": "I2: serving stage .* is destroyed",
    "shard_dropped": "I2: manifest v.* breaks the depth rule",
    "version_gap": "manifest versions",
}


@pytest.mark.django_db
def test_the_checker_detects_planted_violations(
    settings, tmp_path, django_capture_on_commit_callbacks
):
    env = _environment(settings, tmp_path, django_capture_on_commit_callbacks, (2,))
    ErasureMachine.env = env
    machine = ErasureMachine()
    machine.start(slices=2, threshold=1)
    model = machine.model
    subject = (
        Record.objects.filter(assignments__model=model)
        .order_by("subject__external_ref")
        .values_list("subject__external_ref", flat=True)
        .first()
    )
    machine._erase(subject)
    erased = list(machine.erased)
    stage = (
        Stage.objects.filter(shard__model=model, slices__assignments__record__in=erased)
        .select_related("shard")
        .order_by("pk")
        .first()
    )
    check_invariants(model.pk, machine.erased)
    for plant, message in PLANTS.items():
        sid = transaction.savepoint()
        _plant(plant, model, erased, stage)
        with pytest.raises(AssertionError, match=message):
            check_invariants(model.pk, machine.erased)
        transaction.savepoint_rollback(sid)
        store_path(model, stage).unlink(missing_ok=True)
        check_invariants(model.pk, machine.erased)
    # A record erased behind the checker's back, or not erased though its subject was.
    with pytest.raises(AssertionError, match="I3: the erased records are exactly"):
        check_invariants(model.pk, {**machine.erased, -1: 1})
    machine.teardown()
