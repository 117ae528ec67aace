"""Shared set-up for the benchmarks.

Not a benchmark itself (``make bench`` runs only ``bench/bench_*.py``). It owns the parts
every script needs: a throw-away database, Django configured for it, API personas, the
deterministic record generator, percentiles, the machine block of the results file, and
the governance lifecycle run in process (ingest, train, restore a model as trained).

Django settings are read from the environment when ``django_setup`` runs, so every
variable is set here first. ``DEBUG`` is forced off: with it on, Django formats and keeps
every SQL statement it runs, which would be measured too.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from governance.setting_database import PREPARE_THRESHOLD

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"
# The scripts drop and recreate the database they are given: only names with this prefix.
SAFE_PREFIX = "lethe_bench"
DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/lethe_bench"


def postgres_url() -> str:
    """``DATABASE_URL`` (or the local default), refusing anything not meant to be dropped."""
    url = os.environ.get("DATABASE_URL", "").strip() or DEFAULT_POSTGRES
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if parts.scheme not in ("postgres", "postgresql"):
        sys.exit(f"DATABASE_URL must name PostgreSQL for this benchmark, got {parts.scheme!r}")
    if not name.startswith(SAFE_PREFIX):
        sys.exit(
            f"refusing to drop database {name!r}: benchmark databases must be named "
            f"{SAFE_PREFIX}* (the script drops and recreates it)"
        )
    return url


def recreate_postgres(url: str) -> None:
    """Drop and create the database named in ``url`` (connecting to ``postgres`` to do it)."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit((parts.scheme, parts.netloc, "/postgres", "", ""))
    with psycopg.connect(admin.replace("postgres://", "postgresql://", 1), autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{name}"')


def django_setup(database_url: str, **env: str) -> None:
    """Point Django at ``database_url``, configure it, and migrate."""
    os.environ["DATABASE_URL"] = database_url
    os.environ["DEBUG"] = "false"
    os.environ.setdefault("SECRET_KEY", "bench-only-not-a-secret")
    # Django's test client calls itself "testserver".
    os.environ["ALLOWED_HOSTS"] = "testserver"
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "governance.settings"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def database_options() -> dict[str, Any]:
    """The database connection OPTIONS in force, for a results file's settings."""
    from django.db import connection

    return dict(connection.settings_dict["OPTIONS"])


@contextlib.contextmanager
def prepared_statements(on: bool) -> Iterator[dict[str, Any]]:
    """Reconnect with statement preparation on (``DATABASE_PREPARE_THRESHOLD``, psycopg's
    threshold unless one is configured) or off (the default: client-side binding);
    restored on exit. Yields the database OPTIONS in force, for the results."""
    from django.db import connection

    saved = dict(connection.settings_dict["OPTIONS"])
    binding = ("server_side_binding", "prepare_threshold")
    options = {k: v for k, v in saved.items() if k not in binding}
    if on:
        options.update(
            server_side_binding=True,
            prepare_threshold=saved.get("prepare_threshold", PREPARE_THRESHOLD),
        )
    connection.close()
    connection.settings_dict["OPTIONS"] = options
    try:
        yield database_options()
    finally:
        connection.close()
        connection.settings_dict["OPTIONS"] = saved


def api_client(username: str, role: str) -> Any:
    """An in-process DRF client authenticated with a new persona's API token.

    Django's test client keeps the database connection across requests (it disconnects
    ``close_old_connections``), as a server with persistent connections would.
    """
    from rest_framework.test import APIClient

    from governance.services.accounts import user_create_with_role

    _, key = user_create_with_role(username=username, role=role)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@dataclass(frozen=True)
class Row:
    external_id: str
    subject_id: str
    text: str
    label: str

    def as_dict(self) -> dict[str, str]:
        return {
            "external_id": self.external_id,
            "subject_id": self.subject_id,
            "text": self.text,
            "label": self.label,
        }


def generate_rows(count: int, seed: int = 0, offset: int = 0) -> Iterator[Row]:
    """``count`` records: the sample tickets repeated, with ids suffixed by the cycle.

    One cycle is ``generate(num_subjects=1000)`` (about 3,700 messages, 1-8 per subject),
    so there are about count/3.7 subjects and a subject's records lie within one cycle.
    ``offset`` starts at that row, so consecutive calls continue one stream.
    """
    from unlearning.sample_data import generate

    base = generate(num_subjects=1000, seed=seed).train
    for i in range(offset, offset + count):
        cycle, r = divmod(i, len(base))
        record = base[r]
        yield Row(
            f"{record.external_id}-c{cycle:04d}",
            f"{record.subject_id}-c{cycle:04d}",
            record.text,
            record.label,
        )


def copy_rows(table: str, columns: list[str], rows: Any) -> None:
    """Bulk-load rows with PostgreSQL COPY and move the id sequence past them."""
    from django.db import connection

    connection.ensure_connection()
    with connection.connection.cursor() as cursor:
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
            f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
        )


def chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def stats_ms(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    return {
        "p50_ms": round(statistics.median(ordered), 3),
        "p95_ms": round(ordered[round(0.95 * (len(ordered) - 1))], 3),
        "mean_ms": round(statistics.fmean(ordered), 3),
        "n": len(ordered),
    }


def timed_ms(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return (time.perf_counter() - start) * 1000, value


def ratio(numerator: float, denominator: float, digits: int = 2) -> float | None:
    return round(numerator / denominator, digits) if denominator else None


def machine_info(*, postgres: bool) -> dict[str, Any]:
    """CPU, the engine's runtime recipe and, where used, the PostgreSQL server version."""
    from unlearning.recipe import runtime_recipe

    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or "unknown",
        # Which CPU: machines of one kind differ (timings moved 1.5-2x between two of them).
        "cpu_model": _cpu_model(),
        **runtime_recipe(),
    }
    if postgres:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT version()")
            info["postgres"] = cursor.fetchone()[0]
            cursor.execute("SHOW shared_buffers")
            info["postgres_shared_buffers"] = cursor.fetchone()[0]
    return info


def _cpu_model() -> str:
    """``model name`` from /proc/cpuinfo ("unknown" where there is none)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "unknown"
    names = (line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    return next(names, "unknown")


def _script_path() -> str:
    script = Path(sys.argv[0]).resolve()
    return script.relative_to(REPO).as_posix() if script.is_relative_to(REPO) else str(script)


def write_results(name: str, results: dict[str, Any]) -> Path:
    """Write ``bench/results/NAME.json``, stamped with when and how it was produced."""
    import datetime

    stamped = {
        "generated_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", _script_path(), *sys.argv[1:]]),
        **results,
    }
    path = RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stamped, indent=2, default=str) + "\n")
    return path


def print_table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    """A compact fixed-width table."""
    cells = [header, *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    for n, row in enumerate(cells):
        padded = [row[0].ljust(widths[0])] + [
            v.rjust(w) for v, w in zip(row[1:], widths[1:], strict=True)
        ]
        print("  ".join(padded))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


# --- the governance lifecycle, in process (bench_erasure, bench_capacity) ------------------

# Task ids and erasure request ids the services queued, captured instead of a broker.
CAPTURED: dict[str, list[int]] = {"erasure": [], "tasks": []}
INGEST_BATCH = 5000


def capture_enqueues() -> None:
    """Replace the services' on-commit enqueues with appends to ``CAPTURED`` (no broker).

    The services look ``_enqueue`` up in their module when the transaction commits, so
    replacing the module attribute reaches them.
    """
    from governance.services import erasure, training

    erasure.erasure_request_enqueue = lambda request_id: CAPTURED["erasure"].append(request_id)  # type: ignore[assignment]
    training._enqueue = lambda ids: CAPTURED["tasks"].extend(ids)  # type: ignore[assignment]


def ingest(rows: list[dict[str, str]], actor: Any, name: str) -> Any:
    """A new dataset holding ``rows``, through validation and ``records_upsert``."""
    from governance.services.datasets import dataset_create, records_upsert
    from governance.services.record_rows import validate_rows
    from unlearning.sample_data import LABELS

    dataset = dataset_create(actor=actor, name=name, labels=list(LABELS))
    for batch in chunks(rows, INGEST_BATCH):
        valid, errors = validate_rows(batch, labels=list(LABELS), max_rows=INGEST_BATCH)
        if errors:
            sys.exit(f"ingest rejected rows: {errors[:3]}")
        records_upsert(actor=actor, dataset=dataset, rows=valid)
    return dataset


def train(engineer: Any, spec: Any) -> tuple[Any, float]:
    """Create and train a model in this process; returns it and the training seconds.

    ``spec`` is a ``governance.services.training.ModelSpec``; the tasks ``model_train``
    queues are run here by ``training_task_run``, as the training worker would.
    """
    from governance.models import Stage
    from governance.services.training import model_create, model_train
    from governance.services.training_tasks import training_task_run

    model = model_create(actor=engineer, spec=spec)
    start = time.perf_counter()
    CAPTURED["tasks"].clear()
    model_train(actor=engineer, model=model)
    for task_id in list(CAPTURED["tasks"]):
        training_task_run(task_id=task_id)
    elapsed = time.perf_counter() - start
    model.refresh_from_db()
    states = list(Stage.objects.filter(shard__model=model).values_list("state", flat=True))
    if not states or any(state != Stage.State.TRAINED for state in states):
        sys.exit(f"training left stages {sorted(set(states))}")
    return model, elapsed


def stage_folder(store: Any) -> Path:
    """A generation's folder in the file-system artifact store (the benchmarks' default):
    ``ARTIFACT_ROOT/model-N/gen-G``, where ``StageStore`` keeps its objects."""
    from django.conf import settings

    return Path(settings.ARTIFACT_ROOT) / store.prefix


def restore_as_trained(model: Any, texts: dict[str, tuple[str, str]], files: Path) -> None:
    """Put the model back as trained (untimed): records, stages, files, a new manifest.

    ``texts`` maps each external id to its (text, label); ``files`` is a copy of the
    generation's artifact folder taken right after training.
    """
    from django.db import transaction

    from governance import engine
    from governance.models import Record, Stage
    from governance.services.serving import manifest_refresh

    store = engine.artifact_store(model, 1)
    with transaction.atomic():
        for record in Record.objects.filter(dataset=model.dataset_id, status="erased"):
            text, label = texts[record.external_id]
            Record.objects.filter(pk=record.pk).update(
                status="active", erased_at=None, text=text, label=label
            )
        stages = Stage.objects.filter(shard__model=model).exclude(state=Stage.State.TRAINED)
        for stage in stages.select_related("shard"):
            # The snapshot holds each stage under the key its row named after training
            # (one attempt's object); put those bytes back under that same key.
            key = stage.artifact_key or store.object_key(engine.stage_key(stage))
            with (files / key.removeprefix(f"{store.prefix}/")).open("rb") as f:
                store.objects.put(key, f.read())
            Stage.objects.filter(pk=stage.pk).update(
                state=Stage.State.TRAINED, destroyed_at=None, claimed_until=None, artifact_key=key
            )
        manifest_refresh(model=model, reason="bench: restored as trained")


# --- bulk-loaded lineage (bench_erasure, bench_lineage) -------------------------------------


def copy_records(rows: list[Row], dataset: Any, now: Any) -> dict[str, int]:
    """COPY ``rows`` into the subject and record tables (ids from 1); subject ref → pk.

    Record ``i`` (1-based, in ``rows`` order) gets primary key ``i``.
    """
    from governance.models import Record, Subject

    subject_pk: dict[str, int] = {}
    for r in rows:
        subject_pk.setdefault(r.subject_id, len(subject_pk) + 1)
    copy_rows(
        Subject._meta.db_table,
        ["id", "external_ref", "created_at"],
        ((pk, ref, now) for ref, pk in subject_pk.items()),
    )

    def record_rows() -> Iterator[tuple[Any, ...]]:
        for i, r in enumerate(rows, 1):
            subject = subject_pk[r.subject_id]
            yield (i, dataset.pk, subject, r.external_id, r.text, r.label, "active", now, now)

    columns = ["id", "dataset_id", "subject_id", "external_id", "text", "label", "status"]
    # Classification rows: no response, image or its digest (NOT NULL columns, blank here).
    blank = ("", "", "")

    def with_blanks() -> Iterator[tuple[Any, ...]]:
        for row in record_rows():
            yield (*row, *blank)

    copy_rows(
        Record._meta.db_table,
        [*columns, "created_at", "updated_at", "response", "image_key", "image_digest"],
        with_blanks(),
    )
    return subject_pk


@dataclass
class BulkShard:
    """One shard of a bulk-loaded model: its row, plan, sequence rows and stages by prefix."""

    shard: Any
    plan: list[tuple[int, ...]]
    sequences: list[Any]
    stages: dict[tuple[int, ...], Any]


def bulk_lineage(
    model: Any,
    rows: list[Row],
    cells: Any,
    stage_fields: Callable[[int, tuple[int, ...]], dict[str, Any]],
) -> list[BulkShard]:
    """Shards, slices, sequences, ``trained`` stages and their slice links, assignments.

    The model's generation 1 as ``model_train`` would leave it after training, in bulk:
    ``engine.sequence_plan`` per shard, one stage per distinct prefix (``stage_plan``) with
    the extra fields ``stage_fields(shard, prefix)`` gives (digests, artifact path), and
    one assignment per record in ``cells`` (external id → ``Cell``), loaded with COPY.
    Record primary keys are their 1-based positions in ``rows`` (as ``copy_records``).
    Call inside a transaction.
    """
    from governance import engine
    from governance.models import Sequence, Shard, Slice, SliceAssignment, Stage
    from unlearning.training import stage_plan

    shards = Shard.objects.bulk_create(
        [Shard(model=model, generation=1, index=i) for i in range(model.num_shards)]
    )
    slices = {
        (sl.shard.index, sl.index): sl
        for sl in Slice.objects.bulk_create(
            [Slice(shard=sh, index=s) for sh in shards for s in range(model.num_slices)]
        )
    }
    built = []
    for shard in shards:
        plan = engine.sequence_plan(model, shard.index)
        sequences = Sequence.objects.bulk_create(
            [Sequence(shard=shard, index=i, order=list(o)) for i, o in enumerate(plan)]
        )
        prefixes = stage_plan(plan)
        stages = Stage.objects.bulk_create(
            [
                Stage(
                    shard=shard,
                    prefix=engine.prefix_text(p),
                    position=len(p),
                    state=Stage.State.TRAINED,
                    trained_at=model.created_at,
                    lineage_digest="sha256:bench",
                    **stage_fields(shard.index, p),
                )
                for p in prefixes
            ]
        )
        Stage.slices.through.objects.bulk_create(
            [
                Stage.slices.through(stage_id=st.pk, slice_id=slices[(shard.index, s)].pk)
                for st, p in zip(stages, prefixes, strict=True)
                for s in p
            ]
        )
        built.append(BulkShard(shard, plan, sequences, dict(zip(prefixes, stages, strict=True))))
    record_pk = {r.external_id: i for i, r in enumerate(rows, 1)}
    copy_rows(
        SliceAssignment._meta.db_table,
        ["id", "record_id", "slice_id", "model_id", "generation"],
        (
            (n, record_pk[key], slices[(c.shard, c.slice)].pk, model.pk, 1)
            for n, (key, c) in enumerate(cells.items(), 1)
        ),
    )
    return built
