"""Step 4, the S3T model ``demo``: create it, train it in this process, or reuse it.

``model_train`` partitions the records and queues one task per (shard, sequence); the demo
then runs those tasks itself with ``training_task_run``, as a worker would, so the queued
copies the background worker picks up later find their tasks done and do nothing. A
reused model whose shards serve too shallow after past erasures is retrained first.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib.auth.models import User

from governance import engine
from governance.demo.accounts import DemoAccount
from governance.demo.console import Console, bar, clock, loss
from governance.demo.progress import ProgressBar
from governance.models import Dataset, TrainingJob, UnlearningModel
from governance.selectors.demo import (
    model_named,
    stages_in_training,
    training_job_latest,
    training_tasks_unfinished,
    user_get,
)
from governance.selectors.manifests import manifest_current
from governance.services.demo import DemoError
from governance.services.retraining import model_retrain, shards_due_for_retraining
from governance.services.training import ModelSpec, model_create, model_train
from governance.services.training_tasks import StageBusy, stage_leases_release, training_task_run
from unlearning.demo_config import DemoConfig

MODEL_NAME = "demo"


def model_ensure(
    console: Console, *, config: DemoConfig, dataset: Dataset, accounts: dict[str, DemoAccount]
) -> tuple[UnlearningModel, bool]:
    """The demo model, trained; and whether this run trained (or retrained) anything."""
    engineer = user_get(accounts["engineer"].username)
    model = model_named(MODEL_NAME)
    if model is not None and model.dataset_id != dataset.pk:
        raise DemoError(f"a model named {MODEL_NAME!r} exists on another dataset; run with --reset")
    if model is None:
        model = model_create(actor=engineer, spec=_spec(config, dataset))
    _describe_plan(console, model)
    if model.status == UnlearningModel.Status.READY:
        trained = _reuse(console, model, config=config, engineer=engineer)
    else:
        _resume_or_train(console, model, engineer=engineer)
        trained = True
    model.refresh_from_db()
    _describe_serving(console, model)
    return model, trained


def _spec(config: DemoConfig, dataset: Dataset) -> ModelSpec:
    return ModelSpec(
        name=MODEL_NAME,
        dataset=dataset,
        base_model=config.backbone,
        shards=config.shards,
        slices=config.slices,
        sequences=config.budget,
        sequence_policy=UnlearningModel.Policy.CYCLIC,
        epochs=config.epochs,
        learning_rate=config.learning_rate,
        seed=config.seed,
    )


def _reuse(console: Console, model: UnlearningModel, *, config: DemoConfig, engineer: User) -> bool:
    """Keep a ready model; retrain the shards past erasures left serving too shallow."""
    _note_config(console, model, config)
    console.fields([("training", "skipped: model is ready, reusing it")])
    due = shards_due_for_retraining(model)
    if not due:
        return False
    retrain = model_retrain(
        actor=engineer, model=model, reason="demo: serving depth below threshold"
    )
    if retrain is None:
        return False
    console.fields([("retraining", f"shards {due} serve too shallow; retraining them now")])
    _train(console, model, retrain)
    return True


def _resume_or_train(console: Console, model: UnlearningModel, *, engineer: User) -> None:
    job = training_job_latest(model)
    Status = TrainingJob.Status
    if job is not None and job.status in (Status.QUEUED, Status.RUNNING):
        console.fields([("training", "resuming the unfinished training job")])
    else:
        if job is not None and job.status == Status.FAILED:
            console.fields([("training", "the last training failed; again")])
        job = model_train(actor=engineer, model=model)
    _train(console, model, job)


def _describe_plan(console: Console, model: UnlearningModel) -> None:
    orders = engine.sequence_plan(model, 0)
    console.fields(
        [
            ("model", f"{model.name} (id {model.pk}) on {model.base_model}, {model.status}"),
            (
                "S3T plan",
                f"{model.num_shards} shards × {model.num_slices} slices, "
                f"{model.budget} cyclic sequences per shard: "
                f"{', '.join('-'.join(map(str, o)) for o in orders)}",
            ),
            (
                "recipe",
                f"LoRA r={model.lora_rank} α={model.lora_alpha} on query/value, "
                f"{_epochs_text(model)}, lr {model.learning_rate:g}, "
                f"seed {model.seed}",
            ),
        ]
    )


def _epochs_text(model: UnlearningModel) -> str:
    from unlearning.recipe import TrainSettings  # torch-free

    settings = TrainSettings(epochs=model.epochs, stage_epochs=model.stage_epochs)
    per_stage = [settings.epochs_at(i, model.num_slices) for i in range(1, model.num_slices + 1)]
    if model.stage_epochs == UnlearningModel.StageEpochs.FIXED:
        return f"{model.epochs} epochs per stage"
    return f"epochs per stage scaled to its data: {', '.join(map(str, per_stage))}"


def _note_config(console: Console, model: UnlearningModel, config: DemoConfig) -> None:
    wanted = (
        config.backbone,
        config.shards,
        config.slices,
        config.budget,
        config.epochs,
        config.stage_epochs,
    )
    have = (
        model.base_model,
        model.num_shards,
        model.num_slices,
        model.budget,
        model.epochs,
        model.stage_epochs,
    )
    if wanted != have or config.learning_rate != model.learning_rate:
        note = (
            "this run asked for other settings; the existing model is kept "
            "(run with --reset to train anew with them)"
        )
        console.fields([("note", note)])


def _train(console: Console, model: UnlearningModel, job: TrainingJob) -> None:
    """Run the job's unfinished tasks here, with a live bar on a terminal, a line otherwise."""
    tasks = training_tasks_unfinished(job)
    job.refresh_from_db()
    console.fields(
        [
            (
                "training",
                f"job {job.pk}: {job.stages_total} stages in {len(tasks)} tasks, "
                "run in this process (the queued copies become no-ops)",
            )
        ]
    )
    started = time.monotonic()
    live = ProgressBar(console, job, started) if console.isatty() else None
    if live is not None:
        live.start()
    try:
        for number, task_id in enumerate(tasks, 1):
            _run_task(console, model, task_id)
            if live is None:
                job.refresh_from_db()
                console.write(
                    f"  {bar(job.stages_done, job.stages_total)} task {number}/{len(tasks)}"
                    f"  {clock(time.monotonic() - started)}  loss {loss(job.current_loss)}"
                )
    finally:
        if live is not None:
            live.stop()
    _check_trained(console, job, started)


def _check_trained(console: Console, job: TrainingJob, started: float) -> None:
    job.refresh_from_db()
    if job.status != TrainingJob.Status.SUCCEEDED:
        raise DemoError(f"training job {job.pk} ended {job.status}: {job.error or '?'}")
    elapsed = clock(time.monotonic() - started)
    console.fields(
        [("trained", f"{job.stages_done} stages in {elapsed}, final loss {loss(job.current_loss)}")]
    )


def _run_task(console: Console, model: UnlearningModel, task_id: int) -> None:
    """``training_task_run`` as a worker would; a stage leased elsewhere is waited for.

    If this process stops mid-stage (Ctrl-C, an error), the lease it took lapses at once,
    so the next run resumes there instead of waiting out the lease.
    """
    waiting = False
    while True:
        leased_elsewhere = stages_in_training(model)
        try:
            training_task_run(task_id=task_id)
            return
        except StageBusy:
            if not waiting:
                console.write(
                    "\n  waiting: another process holds a stage's lease (a worker of "
                    "`manage.py serve`, or a killed run whose lease lapses in "
                    f"{settings.LETHE_STAGE_LEASE_SECONDS} s)"
                )
                waiting = True
            time.sleep(2)
        except BaseException:
            stage_leases_release(model=model, keep=leased_elsewhere)
            raise


def _describe_serving(console: Console, model: UnlearningModel) -> None:
    manifest = manifest_current(model)
    depths = {e["shard"]: e for e in manifest.entries}
    console.fields(
        [
            (
                "serving",
                f"manifest v{manifest.version} (generation {manifest.generation})\n"
                + "\n".join(
                    f"shard {i}: sequence {depths[i]['sequence']} at depth "
                    f"{depths[i]['depth']} of {model.num_slices}"
                    if i in depths
                    else f"shard {i}: not serving (no clean prefix)"
                    for i in range(model.num_shards)
                ),
            )
        ]
    )
