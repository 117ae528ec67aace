"""``manage.py demo``: the whole product on one machine, through the real services.

The walkthrough behind ``make demo``, in order:

1. migrate the database (SQLite in ``var/`` unless ``DATABASE_URL`` says otherwise);
2. create (or reuse) the demo accounts: a privacy officer and an auditor who sign in with
   passwords, an integration account with an API token, and an ML engineer;
3. create the dataset ``demo-support`` and ingest the sample support tickets with
   ``validate_rows`` and ``records_upsert``, as the integration account;
4. create the S3T model ``demo`` and train it: ``model_train`` partitions the records and
   queues one task per (shard, sequence); this process then runs the tasks itself with
   ``training_task_run``, showing a progress bar (the queued copies the background worker
   picks up later find their tasks done and do nothing);
5. predict held-out messages and measure accuracy;
6. file an erasure request for the subject with the most records, show its impact
   preview, approve it and execute it inline with ``erasure_request_execute`` (the copy
   that approval queued for the worker finds the request completed and does nothing);
7. print the certificate and check its signature and claims, then predict again;
8. print the logins. The management command then serves the UI and API with a background
   worker (``manage.py serve``) unless ``--no-serve``.

A second run reuses what the first created (and says so): no retraining, a new erasure for
the next subject. ``--reset`` deletes the demo's files under ``var/`` first; it refuses when
the database is not a SQLite file under ``var/`` (a PostgreSQL database is never dropped).
Passwords and the API token are kept in ``var/demo-credentials.txt`` (mode 0600) so that
they stay the same from run to run.

Torch is imported lazily by the engine, never at import time of this module.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import OutputWrapper
from django.db import connection, connections, transaction
from django.db.models import Count
from django.urls import NoReverseMatch, reverse

from unlearning.demo_config import DemoConfig

DATASET_NAME = "demo-support"
MODEL_NAME = "demo"
ACTOR = "manage.py demo"
KEY_PREFIX = "demo-erasure-"  # idempotency keys of the requests the demo files
REASON = "Data subject asked to be forgotten (GDPR Art. 17); filed by the demo."
SAMPLE_SHOWN = 6  # held-out messages whose predictions are printed, one per intent
PREDICT_BATCH = 64


class DemoError(Exception):
    """A condition the person running the demo has to fix; the message says how."""


@dataclass(frozen=True)
class DemoAccount:
    username: str
    role: str
    password: str | None = None  # people sign in with one; service accounts use tokens
    token: str | None = None


@dataclass
class DemoResult:
    """What a run did, for the caller (the command and the tests)."""

    reused: bool
    trained: bool
    model_id: int
    subject_ref: str | None = None
    request_id: int | None = None
    certificate_id: str | None = None
    signature_ok: bool = False
    accounts: dict[str, DemoAccount] = field(default_factory=dict)
    accuracy_before: float | None = None
    accuracy_after: float | None = None


# --- paths and the lock -------------------------------------------------------------------


def var_dir() -> Path:
    return Path(settings.BASE_DIR) / "var"


def credentials_path(state_dir: Path) -> Path:
    return state_dir / "demo-credentials.txt"


@contextlib.contextmanager
def demo_lock(state_dir: Path) -> Iterator[None]:
    """One demo at a time per state folder: a second one would train and erase beside the
    first and then find the port taken. The lock dies with the process that holds it."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "demo.lock"
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise DemoError(
                f"another demo is running (pid {holder}, lock {path}); stop it first"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def port_free(addrport: str) -> bool:
    """Whether ``host:port`` can be bound now (checked before minutes of training)."""
    host, _, port = addrport.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, int(port)))
        except OSError:
            return False
    return True


# --- --reset ------------------------------------------------------------------------------


def reset_targets(*, database: dict[str, Any], paths: dict[str, Path], var: Path) -> list[Path]:
    """What ``--reset`` deletes: the SQLite files and the named paths, all under ``var``.

    Refuses (DemoError) rather than delete anything else: a database that is not SQLite
    (PostgreSQL is never dropped, and its audit chain is append-only), a SQLite file
    outside ``var``, or any named path outside it. Nothing is deleted here.
    """
    var = var.resolve()
    if "sqlite3" not in str(database.get("ENGINE", "")):
        raise DemoError(
            "--reset deletes only the embedded SQLite database under var/, and DATABASE_URL "
            f"points at {database.get('ENGINE', '?').rsplit('.', 1)[-1]} "
            f"({database.get('NAME', '')}). Lethe never drops data there (the audit trail is "
            "append-only): use a fresh database, or run without --reset to reuse the demo data."
        )
    name = Path(str(database.get("NAME", "")))
    targets = [name, *(name.with_name(name.name + s) for s in ("-wal", "-shm", "-journal"))]
    checked: list[tuple[str, Path]] = [("the SQLite database", p) for p in targets]
    checked += list(paths.items())
    for label, path in checked:
        resolved = path.resolve()
        if resolved == var or not resolved.is_relative_to(var):
            raise DemoError(
                f"--reset deletes only under {var}, and {label} is {path}. Delete it yourself, "
                "or unset the variable that moved it, then run again."
            )
    return [p for _, p in checked]


def _delete(path: Path) -> bool:
    import shutil

    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
        return True
    if path.exists() or path.is_symlink():
        path.unlink()
        return True
    return False


def _broker_folders() -> None:
    """Recreate the file-system broker's folders (settings makes them at import)."""
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        if key in options:
            Path(options[key]).mkdir(parents=True, exist_ok=True)


# --- output -------------------------------------------------------------------------------


class Console:
    """Sections, aligned key/value lines and tables on the command's stdout."""

    def __init__(self, out: TextIO | Any) -> None:
        self.out = out
        self.step = 0

    def write(self, text: str = "", ending: str = "\n") -> None:
        if isinstance(self.out, OutputWrapper):
            self.out.write(text, ending=ending)
        else:
            self.out.write(text + ending)
        self.out.flush()

    def section(self, title: str) -> None:
        self.step += 1
        heading = f"[{self.step}] {title} "
        self.write()
        self.write(heading + "─" * max(4, 88 - len(heading)))

    def fields(self, pairs: Sequence[tuple[str, object]], indent: int = 2) -> None:
        width = max(15, *(len(k) for k, _ in pairs))
        for key, value in pairs:
            lines = str(value).split("\n")
            self.write(f"{' ' * indent}{key:<{width}}  {lines[0]}")
            for more in lines[1:]:
                self.write(f"{' ' * (indent + width + 2)}{more}")

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        cells = [[str(c) for c in row] for row in rows]
        widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
        self.write("  " + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
        self.write("  " + "  ".join("─" * w for w in widths))
        for row in cells:
            self.write("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))

    def isatty(self) -> bool:
        isatty = getattr(self.out, "isatty", None)
        return bool(isatty and isatty())


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _quiet_libraries() -> None:
    """No log noise from the ML libraries; the demo prints what matters itself."""
    import logging

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Read once, when transformers configures its logger on first import.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    for name in ("transformers", "peft", "accelerate", "torch", "sentence_transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for module in ("transformers", "peft", "accelerate", "torch"):
        warnings.filterwarnings("ignore", module=module)  # a prefix: submodules too


# --- the run --------------------------------------------------------------------------------


class Demo:
    """One run of the walkthrough; ``run`` does everything up to serving."""

    def __init__(
        self,
        *,
        config: DemoConfig,
        out: TextIO | Any,
        state_dir: Path,
        base_url: str = "http://127.0.0.1:8000/",
    ) -> None:
        self.config = config
        self.console = Console(out)
        self.state_dir = state_dir
        self.base_url = base_url

    # The steps -------------------------------------------------------------------------

    def run(self, *, reset: bool = False) -> DemoResult:
        from governance.models import UnlearningModel

        _quiet_libraries()
        c = self.console
        started = time.monotonic()
        c.write("Lethe demo: exact machine unlearning (S3T) with lineage, erasure and proof")
        c.section("Database")
        if reset:
            self._reset()
        self._migrate()
        c.section("Accounts")
        accounts = self._accounts()
        c.section("Sample data")
        dataset, sample, data_reused = self._dataset(accounts)
        c.section("S3T model")
        model, trained = self._model(dataset, accounts)
        reused = data_reused and not trained
        result = DemoResult(reused=reused, trained=trained, model_id=model.pk, accounts=accounts)
        test = list(sample.test)
        shown = self._shown(test)
        c.section("Predictions before the erasure")
        before = self._predict(model, [r.text for r in shown])
        result.accuracy_before = self._accuracy(model, test)
        self._print_predictions(shown, before, None)
        c.write(f"  Held-out accuracy: {self._pct(result.accuracy_before)} on {len(test)} messages")
        c.section("Erasure request")
        request = self._erase(model, accounts)
        if request is not None:
            result.subject_ref, result.request_id = request.subject_ref, request.pk
            c.section("Deletion certificate")
            result.certificate_id, result.signature_ok = self._certificate(request)
        c.section("Predictions after the erasure")
        model = UnlearningModel.objects.get(pk=model.pk)
        after = self._predict(model, [r.text for r in shown])
        result.accuracy_after = self._accuracy(model, test)
        self._print_predictions(shown, before, after)
        c.write(
            f"  Held-out accuracy: {self._pct(result.accuracy_before)} before, "
            f"{self._pct(result.accuracy_after)} after (chance {1 / len(sample.labels):.0%})"
        )
        c.section("Sign in")
        self._logins(accounts, model.pk)
        c.write()
        c.write(f"Demo steps done in {_clock(time.monotonic() - started)}.")
        return result

    # 1. database ----------------------------------------------------------------------

    def _describe_database(self) -> str:
        db = connection.settings_dict
        if connection.vendor == "sqlite":
            return f"SQLite {self._rel(Path(str(db['NAME'])))}"
        return f"{connection.vendor} database {db.get('NAME')} on {db.get('HOST') or 'localhost'}"

    def _rel(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(Path(settings.BASE_DIR).resolve()))
        except ValueError:
            return str(path)

    def _reset(self) -> None:
        targets = reset_targets(
            database=dict(connection.settings_dict),
            paths={
                "ARTIFACT_ROOT": Path(settings.ARTIFACT_ROOT),
                "LETHE_BROKER_DIR": Path(settings.LETHE_BROKER_DIR),
                "LETHE_SIGNING_KEY_PATH": Path(settings.LETHE_SIGNING_KEY_PATH),
                "the demo credentials": credentials_path(self.state_dir),
            },
            var=var_dir(),
        )
        from governance.certificates import signing_key_cache_clear
        from governance.services.serving import predictors

        connections.close_all()
        deleted = [self._rel(p) for p in targets if _delete(p)]
        signing_key_cache_clear()
        predictors.clear()
        _broker_folders()
        self.console.fields(
            [("--reset", "deleted " + (", ".join(deleted) if deleted else "nothing (no state)"))]
        )

    def _migrate(self) -> None:
        from governance.models import Dataset

        call_command("migrate", interactive=False, verbosity=0)
        fresh = not Dataset.objects.filter(name=DATASET_NAME).exists()
        self.console.fields(
            [
                ("database", f"{self._describe_database()}: migrated"),
                (
                    "demo data",
                    "none yet: creating it"
                    if fresh
                    else "found: reusing it (run with --reset to start over)",
                ),
                ("artifacts", self._rel(Path(settings.ARTIFACT_ROOT))),
            ]
        )

    # 2. accounts ------------------------------------------------------------------------

    def _accounts(self) -> dict[str, DemoAccount]:
        from governance.permissions import Role

        stored = self._read_credentials()
        plan = {
            "officer": ("demo-officer", Role.PRIVACY_OFFICER, True),
            "auditor": ("demo-auditor", Role.AUDITOR, True),
            "integration": ("demo-integration", Role.INTEGRATION, False),
            "engineer": ("demo-engineer", Role.ML_ENGINEER, False),
        }
        accounts: dict[str, DemoAccount] = {}
        rows = []
        for key, (username, role, person) in plan.items():
            # Every new account gets a token; only the integration account's is shown.
            user, new_token, created = self._user(username, role)
            password = token = None
            if person:
                password, changed = self._password(user, stored.get(username))
                note = "created" if created else ("password set" if changed else "reused")
            elif key == "integration":
                token, note = self._token(user, new_token or stored.get(f"{username}:token"))
                note = "created" if created else note
            else:
                note = "created" if created else "reused"
            accounts[key] = DemoAccount(username, role.value, password, token)
            rows.append((username, role.value, note))
        self._write_credentials(accounts)
        self.console.table(("account", "role", "state"), rows)
        kept = self._rel(credentials_path(self.state_dir))
        self.console.write(
            f"  Passwords and the API token are kept in {kept} (mode 0600); --reset makes new ones."
        )
        return accounts

    def _user(self, username: str, role: Any) -> tuple[User, str | None, bool]:
        from django.contrib.auth.models import Group

        from governance.auth import user_create_with_role

        user = User.objects.filter(username=username).first()
        if user is None:
            user, token = user_create_with_role(username=username, role=role, actor=ACTOR)
            return user, token, True
        if not user.groups.filter(name=role.value).exists():
            raise DemoError(
                f"user {username!r} exists without the {role.value} role; the demo does not "
                "change other people's accounts. Rename it, or run with --reset."
            )
        if not user.is_active:
            raise DemoError(f"user {username!r} is deactivated; reactivate it or use --reset")
        Group.objects.get_or_create(name=role.value)
        return user, None, False

    def _password(self, user: User, stored: str | None) -> tuple[str, bool]:
        from governance.services.audit import audit_event_append

        if stored and user.check_password(stored):
            return stored, False
        password = stored or secrets.token_urlsafe(12)
        with transaction.atomic():
            user.set_password(password)
            user.save(update_fields=["password"])
            audit_event_append(
                actor=ACTOR,
                action="user.password_set",
                obj=user,
                payload={"username": user.username},
            )
        return password, True

    def _token(self, user: User, key: str | None) -> tuple[str, str]:
        from governance.auth import api_token_create, token_hash
        from governance.models import ApiToken

        if key and ApiToken.objects.filter(user=user, key_hash=token_hash(key)).exists():
            return key, "reused"
        return api_token_create(user=user, actor=ACTOR), "new API token"

    def _read_credentials(self) -> dict[str, str]:
        path = credentials_path(self.state_dir)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            self.console.write(f"  {self._rel(path)} is unreadable; making new credentials")
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _write_credentials(self, accounts: dict[str, DemoAccount]) -> None:
        data: dict[str, str] = {}
        for account in accounts.values():
            if account.password:
                data[account.username] = account.password
            if account.token:
                data[f"{account.username}:token"] = account.token
        path = credentials_path(self.state_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
        os.replace(tmp, path)
        path.chmod(0o600)

    # 3. data ----------------------------------------------------------------------------

    def _dataset(self, accounts: dict[str, DemoAccount]) -> tuple[Any, Any, bool]:
        from governance.api.ingest import validate_rows
        from governance.models import Dataset, Record
        from governance.services.datasets import dataset_create, records_upsert
        from unlearning.sample_data import LABELS, generate

        integration = User.objects.get(username=accounts["integration"].username)
        dataset = Dataset.objects.filter(name=DATASET_NAME).first()
        if dataset is None:
            dataset = dataset_create(actor=integration, name=DATASET_NAME, labels=list(LABELS))
        # The sample is a function of its size and seed: rebuild the one ingested before.
        subjects = Record.objects.filter(dataset=dataset).values("subject").distinct().count()
        reused = subjects > 0
        sample = generate(num_subjects=subjects or self.config.subjects, seed=self.config.seed)
        if reused:
            counts = dict(
                Record.objects.filter(dataset=dataset)
                .values_list("status")
                .annotate(n=Count("pk"))
                .values_list("status", "n")
            )
            state = (
                f"reused: {counts.get('active', 0)} active records, "
                f"{counts.get('erased', 0)} erased (tombstones)"
            )
        else:
            rows = [
                {
                    "external_id": r.external_id,
                    "subject_id": r.subject_id,
                    "text": r.text,
                    "label": r.label,
                }
                for r in sample.train
            ]
            valid, errors = validate_rows(
                rows, labels=dataset.labels, max_rows=settings.LETHE_MAX_BATCH_ROWS
            )
            if errors:
                raise DemoError(f"the sample data has invalid rows: {errors[:3]}")
            upsert = records_upsert(actor=integration, dataset=dataset, rows=valid)
            state = f"ingested by {integration.username}: {upsert.created} records created"
        by_label = {label: sum(r.label == label for r in sample.train) for label in sample.labels}
        self.console.fields(
            [
                ("dataset", f"{dataset.name} (id {dataset.pk}), {state}"),
                (
                    "sample",
                    f"{len(sample.train)} support messages from {len(sample.subjects())} data "
                    f"subjects; {len(sample.test)} held-out messages by other subjects",
                ),
                ("intents", ", ".join(f"{k} {v}" for k, v in by_label.items())),
            ]
        )
        return dataset, sample, reused

    # 4. model ---------------------------------------------------------------------------

    def _model(self, dataset: Any, accounts: dict[str, DemoAccount]) -> tuple[Any, bool]:
        from governance.models import TrainingJob, UnlearningModel
        from governance.services.training import (
            ModelSpec,
            model_create,
            model_retrain,
            model_train,
            shards_due_for_retraining,
        )

        engineer = User.objects.get(username=accounts["engineer"].username)
        cfg = self.config
        model = UnlearningModel.objects.filter(name=MODEL_NAME).first()
        if model is not None and model.dataset_id != dataset.pk:
            raise DemoError(
                f"a model named {MODEL_NAME!r} exists on another dataset; run with --reset"
            )
        trained = False
        if model is None:
            model = model_create(
                actor=engineer,
                spec=ModelSpec(
                    name=MODEL_NAME,
                    dataset=dataset,
                    base_model=cfg.backbone,
                    shards=cfg.shards,
                    slices=cfg.slices,
                    sequences=cfg.budget,
                    sequence_policy="cyclic",
                    epochs=cfg.epochs,
                    learning_rate=cfg.learning_rate,
                    seed=cfg.seed,
                ),
            )
        self._describe_plan(model)
        job = TrainingJob.objects.filter(model=model).order_by("-pk").first()
        if model.status == UnlearningModel.Status.READY:
            self._note_config(model)
            self.console.fields([("training", "skipped: model is ready, reusing it")])
            due = shards_due_for_retraining(model)
            if due:
                retrain = model_retrain(
                    actor=engineer,
                    model=model,
                    reason="demo: serving depth below threshold",
                )
                if retrain is not None:
                    self.console.fields(
                        [("retraining", f"shards {due} serve too shallow; retraining them now")]
                    )
                    self._train(model, retrain)
                    trained = True
        else:
            if job is not None and job.status in ("queued", "running"):
                self.console.fields([("training", "resuming the unfinished training job")])
            else:
                if job is not None and job.status == "failed":
                    self.console.fields([("training", "the last training failed; again")])
                job = model_train(actor=engineer, model=model)
            self._train(model, job)
            trained = True
        model.refresh_from_db()
        self._describe_serving(model)
        return model, trained

    def _describe_plan(self, model: Any) -> None:
        from governance import engine

        orders = engine.sequence_plan(model, 0)
        self.console.fields(
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
                    f"{model.epochs} epochs per stage, lr {model.learning_rate:g}, "
                    f"seed {model.seed}",
                ),
            ]
        )

    def _note_config(self, model: Any) -> None:
        cfg = self.config
        wanted = (
            cfg.backbone,
            cfg.shards,
            cfg.slices,
            cfg.budget,
            cfg.epochs,
            cfg.learning_rate,
        )
        have = (
            model.base_model,
            model.num_shards,
            model.num_slices,
            model.budget,
            model.epochs,
            model.learning_rate,
        )
        if wanted != have:
            self.console.fields(
                [
                    (
                        "note",
                        "this run asked for other settings; the existing model is kept "
                        "(run with --reset to train anew with them)",
                    )
                ]
            )

    def _train(self, model: Any, job: Any) -> None:
        from governance.models import TrainingJob, TrainingTask

        tasks = list(
            TrainingTask.objects.filter(job=job)
            .exclude(status="done")
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        job = TrainingJob.objects.get(pk=job.pk)
        c = self.console
        c.fields(
            [
                (
                    "training",
                    f"job {job.pk}: {job.stages_total} stages in {len(tasks)} tasks, "
                    "run in this process (the queued copies become no-ops)",
                )
            ]
        )
        started = time.monotonic()
        live = _ProgressBar(c, job.pk, started) if c.isatty() else None
        if live is not None:
            live.start()
        try:
            for number, task_id in enumerate(tasks, 1):
                self._run_task(model, task_id)
                if live is None:
                    job.refresh_from_db()
                    c.write(
                        f"  {_bar(job.stages_done, job.stages_total)} task {number}/{len(tasks)}"
                        f"  {_clock(time.monotonic() - started)}  loss {_loss(job.current_loss)}"
                    )
        finally:
            if live is not None:
                live.stop()
        job.refresh_from_db()
        if job.status != "succeeded":
            raise DemoError(f"training job {job.pk} ended {job.status}: {job.error or '?'}")
        c.fields(
            [
                (
                    "trained",
                    f"{job.stages_done} stages in {_clock(time.monotonic() - started)}, "
                    f"final loss {_loss(job.current_loss)}",
                )
            ]
        )

    def _run_task(self, model: Any, task_id: int) -> None:
        """``training_task_run`` as a worker would; a stage leased elsewhere is waited for.

        If this process stops mid-stage (Ctrl-C, an error), the lease it took lapses at once,
        so the next run resumes there instead of waiting out the lease.
        """
        from governance.models import Stage
        from governance.services.training import (
            StageBusy,
            stage_leases_release,
            training_task_run,
        )

        training = Stage.objects.filter(shard__model=model, state=Stage.State.TRAINING)
        waiting = False
        while True:
            leased_elsewhere = set(training.values_list("pk", flat=True))
            try:
                training_task_run(task_id=task_id)
                return
            except StageBusy:
                if not waiting:
                    self.console.write(
                        "\n  waiting: another process holds a stage's lease (a worker of "
                        "`manage.py serve`, or a killed run whose lease lapses in "
                        f"{settings.LETHE_STAGE_LEASE_SECONDS} s)"
                    )
                    waiting = True
                time.sleep(2)
            except BaseException:
                stage_leases_release(model=model, keep=leased_elsewhere)
                raise

    def _describe_serving(self, model: Any) -> None:
        from governance.selectors.manifests import manifest_current

        manifest = manifest_current(model)
        depths = {e["shard"]: e for e in manifest.entries}
        self.console.fields(
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

    # 5. predictions ---------------------------------------------------------------------

    @staticmethod
    def _shown(test: Sequence[Any]) -> list[Any]:
        """One held-out message per intent, the first in file order."""
        picked: dict[str, Any] = {}
        for record in test:
            picked.setdefault(record.label, record)
        return list(picked.values())[:SAMPLE_SHOWN]

    def _predict(self, model: Any, texts: list[str]) -> list[Any] | None:
        from governance.errors import ApplicationError
        from governance.services.serving import model_predict

        try:
            return list(model_predict(model=model, inputs=texts).predictions)
        except ApplicationError as exc:
            self.console.write(f"  prediction refused: {exc.message}")
            return None

    def _accuracy(self, model: Any, test: Sequence[Any]) -> float | None:
        hits = 0
        for start in range(0, len(test), PREDICT_BATCH):
            batch = test[start : start + PREDICT_BATCH]
            predictions = self._predict(model, [r.text for r in batch])
            if predictions is None:
                return None
            hits += sum(p.label == r.label for p, r in zip(predictions, batch, strict=True))
        return hits / len(test) if test else None

    @staticmethod
    def _pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1%}"

    def _print_predictions(
        self, shown: Sequence[Any], before: list[Any] | None, after: list[Any] | None
    ) -> None:
        def cell(predictions: list[Any] | None, i: int) -> str:
            if predictions is None:
                return "—"
            p = predictions[i]
            return f"{p.label} {p.scores[p.label]:.2f}"

        headers = ["held-out message", "intent", "before"]
        if after is not None or before is None:
            headers.append("after")
        rows = []
        for i, record in enumerate(shown):
            row = [_short(record.text, 52), record.label, cell(before, i)]
            if len(headers) == 4:
                row.append(cell(after, i))
            rows.append(row)
        self.console.table(headers, rows)

    # 6. erasure -------------------------------------------------------------------------

    def _erase(self, model: Any, accounts: dict[str, DemoAccount]) -> Any:
        from governance.models import ErasureRequest, Record
        from governance.services.erasure import (
            erasure_request_approve,
            erasure_request_create,
            erasure_request_execute,
            erasure_request_retry,
        )

        officer = User.objects.get(username=accounts["officer"].username)
        c = self.console
        Status = ErasureRequest.Status
        # Only requests an earlier demo filed: never decide one a person filed in the UI.
        request = (
            ErasureRequest.objects.filter(
                filed_by=officer,
                idempotency_key__startswith=KEY_PREFIX,
                status__in=[Status.RECEIVED, Status.APPROVED, Status.EXECUTING, Status.FAILED],
            )
            .order_by("pk")
            .first()
        )
        if request is not None:
            c.fields([("resuming", f"request {request.pk} left {request.status} by a past run")])
        else:
            busiest = (
                Record.objects.filter(dataset=model.dataset_id, status=Record.Status.ACTIVE)
                .values("subject__external_ref")
                .annotate(n=Count("pk"))
                .order_by("-n", "subject__external_ref")
                .first()
            )
            if busiest is None:
                c.write("  every subject is erased already; nothing left to erase")
                return None
            subject = busiest["subject__external_ref"]
            request, _ = erasure_request_create(
                actor=officer,
                subject_ref=subject,
                reason=REASON,
                channel=ErasureRequest.Channel.WEB,
                idempotency_key=f"{KEY_PREFIX}{subject}",
            )
            c.fields(
                [
                    ("subject", f"{subject}, the data subject with the most messages left"),
                    (
                        "filed",
                        f"request {request.pk} by {officer.username} (channel web), "
                        f"due {request.due_at:%Y-%m-%d} (one month, GDPR Art. 12(3))",
                    ),
                ]
            )
        self._print_impact(request.impact)
        if request.status == Status.FAILED:
            request = erasure_request_retry(actor=officer, request=request)
        if request.status == Status.RECEIVED:
            request = erasure_request_approve(
                actor=officer, request=request, note="Identity verified; approved in the demo."
            )
            c.fields([("approved", f"by {officer.username}; execution queued for the worker")])
        started = time.monotonic()
        status = erasure_request_execute(request_id=request.pk)
        request.refresh_from_db()
        execution = request.execution
        stages = sum(len(m["stages"]) for m in execution.get("models", []))
        c.fields(
            [
                (
                    "executed",
                    f"{status} in {(time.monotonic() - started) * 1000:.0f} ms, here; the copy "
                    "queued for the worker will find it done and do nothing",
                ),
                (
                    "effect",
                    f"{len(execution.get('records_erased', []))} records wiped to tombstones, "
                    f"{stages} stages deactivated and their bytes destroyed; no gradient step",
                ),
            ]
        )
        if status != Status.COMPLETED:
            raise DemoError(f"erasure request {request.pk} ended {status}: {request.error}")
        return request

    def _print_impact(self, impact: dict[str, Any]) -> None:
        c = self.console
        c.fields(
            [
                (
                    "impact",
                    f"{impact.get('records_found', 0)} records found, "
                    f"{impact.get('records_not_yet_trained', 0)} not yet trained",
                )
            ]
        )
        rows = []
        for model in impact.get("models", []):
            for generation in model.get("generations", []):
                for shard in generation.get("shards", []):
                    rows.append(
                        (
                            f"{model['name']} gen {generation['generation']}",
                            shard["shard"],
                            ", ".join(str(s) for s in shard["slices"]),
                            f"{shard['depth_before']} → {shard['depth_after']}",
                            f"{shard['sequence_before']} → {shard['sequence_after']}",
                            model["stages_to_deactivate"],
                            "yes" if model["retraining_needed"] else "no",
                        )
                    )
        if rows:
            c.table(
                (
                    "model",
                    "shard",
                    "slices",
                    "serving depth",
                    "sequence",
                    "stages off",
                    "retraining needed",
                ),
                rows,
            )
        for model in impact.get("models", []):
            for generation in model.get("generations", []):
                for seq in generation.get("sequences_truncated", []):
                    c.write(
                        f"    shard {seq['shard']} sequence {seq['sequence']} "
                        f"(slices {'-'.join(map(str, seq['order']))}): depth "
                        f"{seq['depth_before']} → {seq['depth_after']}"
                    )

    # 7. certificate ---------------------------------------------------------------------

    def _certificate(self, request: Any) -> tuple[str, bool]:
        from governance.certificates import certificate_verify
        from governance.models import DeletionCertificate
        from governance.services.erasure import certificate_claims_check

        stored = DeletionCertificate.objects.get(request=request)
        envelope = stored.envelope
        body = envelope["certificate"]
        check = certificate_verify(envelope)
        claims = certificate_claims_check(envelope)
        held = sum(1 for claim in claims if claim["ok"])
        broken = "; ".join(f"{c['claim']}: {c['detail']}" for c in claims if not c["ok"])
        erased = body["records_erased"]
        pairs: list[tuple[str, object]] = [
            ("certificate", body["certificate_id"]),
            ("request", f"{body['request_id']} for {body['subject_ref']}: {body['outcome']}"),
            (
                "records erased",
                f"{len(erased)}: {', '.join(erased[:5])}{' …' if len(erased) > 5 else ''}",
            ),
        ]
        for model in body["models"]:
            stages = model["stages_deactivated"]
            before, after = model["manifest_before"] or {}, model["manifest_after"] or {}
            depths = model["serving_depth_after"]
            pairs += [
                (
                    f"model {model['name']}",
                    f"{len(stages)} stages deactivated and destroyed\n"
                    + "\n".join(
                        f"shard {shard}: prefixes "
                        + ", ".join(s["prefix"] for s in stages if s["shard"] == shard)
                        for shard in sorted({s["shard"] for s in stages})
                    ),
                ),
                (
                    "manifest",
                    f"v{before.get('version', '—')} → v{after.get('version', '—')}; serving "
                    "depth after: "
                    + ", ".join(f"shard {k} {v}" for k, v in sorted(depths.items())),
                ),
                ("I2 check", f"{model['i2_check']} (no serving stage read an erased record)"),
            ]
        pairs += [
            ("audit head", f"event #{(body.get('audit_chain_head') or {}).get('seq', '—')}"),
            ("key id", stored.key_id),
            (
                "signature",
                "verified OK (Ed25519 over canonical JSON)"
                if check.ok
                else f"NOT VERIFIED: {check.reason}",
            ),
            (
                "claims",
                f"{held}/{len(claims)} hold, re-checked against lineage and artifacts now"
                + (f"; failed: {broken}" if broken else ""),
            ),
        ]
        self.console.fields(pairs)
        path = f"api/v1/erasure-requests/{request.pk}/certificate/"
        self.console.write(f"  JSON: {self.base_url}{path}   PDF: add ?format=pdf")
        if not check.ok or broken:
            raise DemoError(
                f"certificate {body['certificate_id']} does not hold: {check.reason or broken}"
            )
        return str(body["certificate_id"]), check.ok

    # 8. logins --------------------------------------------------------------------------

    def _logins(self, accounts: dict[str, DemoAccount], model_id: int) -> None:
        officer, auditor = accounts["officer"], accounts["auditor"]
        integration = accounts["integration"]
        url = self.base_url
        pairs: list[tuple[str, object]] = [
            ("web UI and API", f"{url}  (API under /api/v1/, OpenAPI at /api/v1/schema/)")
        ]
        with contextlib.suppress(NoReverseMatch):  # the web UI's sign-in page, if any
            pairs.append(("sign in at", url.rstrip("/") + reverse("login")))
        self.console.fields(
            [
                *pairs,
                ("privacy officer", f"{officer.username} / {officer.password}"),
                ("auditor", f"{auditor.username} / {auditor.password}"),
                ("API token", f"{integration.token}  ({integration.username}, integration role)"),
                (
                    "try",
                    f'curl -H "Authorization: Token {integration.token}" '
                    "-H 'Content-Type: application/json' \\\n"
                    f'  -d \'{{"inputs": ["my parcel never arrived"]}}\' '
                    f"{url}api/v1/models/{model_id}/predict/",
                ),
            ]
        )


# --- progress -----------------------------------------------------------------------------


def _bar(done: int, total: int, width: int = 28) -> str:
    filled = width * done // total if total else width
    return f"[{'█' * filled}{'·' * (width - filled)}] {done:>3}/{total} stages"


def _loss(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


class _ProgressBar:
    """Redraws one line twice a second from the job row: stages, elapsed time, loss.

    Runs in a thread with its own database connection (closed when it stops); the main
    thread trains. Only used on a terminal; elsewhere one line per task is printed.
    """

    def __init__(self, console: Console, job_id: int, started: float) -> None:
        self.console, self.job_id, self.started = console, job_id, started
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="demo-progress", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._draw()  # the final state, from this thread
        self.console.write()

    def _draw(self) -> None:
        from governance.models import TrainingJob

        job = TrainingJob.objects.filter(pk=self.job_id).first()
        if job is not None:
            self.console.write(
                f"\r  {_bar(job.stages_done, job.stages_total)}  "
                f"{_clock(time.monotonic() - self.started)}  loss {_loss(job.current_loss)}   ",
                ending="",
            )

    def _loop(self) -> None:
        try:
            while True:
                self._draw()
                if self._stop.wait(0.5):
                    return
        finally:
            connection.close()


# --- entry point for the command ------------------------------------------------------------


def run_demo(
    *,
    config: DemoConfig,
    out: TextIO | Any,
    state_dir: Path | None = None,
    reset: bool = False,
    base_url: str = "http://127.0.0.1:8000/",
    before_unlock: Callable[[DemoResult], None] | None = None,
) -> DemoResult:
    """Run the walkthrough under the demo lock; ``before_unlock`` (serving) runs inside it."""
    state = state_dir or var_dir()
    with demo_lock(state):
        result = Demo(config=config, out=out, state_dir=state, base_url=base_url).run(reset=reset)
        if before_unlock is not None:
            before_unlock(result)
    return result
