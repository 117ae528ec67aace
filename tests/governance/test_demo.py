"""manage.py demo: the walkthrough through the real services, on the tiny backbone.

Each run trains (or reuses) the demo model in this process, files and executes an erasure,
and checks its certificate; the assertions recompute what they check from the database
and the sample data rather than trusting the demo's own summary.
"""

from __future__ import annotations

import io
import json
import re
import socket
import stat
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError

from governance.certificates.signing import certificate_verify
from governance.demo import DemoError, credentials_path, demo_lock, reset_targets
from governance.models import (
    ApiToken,
    AuditEvent,
    DeletionCertificate,
    ErasureRequest,
    Record,
    Stage,
    TrainingJob,
    TrainingTask,
    UnlearningModel,
)
from governance.services.accounts import token_hash
from governance.services.erasure import erasure_request_create
from unlearning.demo_config import DemoConfig
from unlearning.sample_data import generate

SUBJECTS = 24  # fewer than --quick's 60: each run trains in seconds
TINY = ("--quick", "--no-serve", "--backbone", "tiny-bert", "--subjects", str(SUBJECTS))


@pytest.fixture
def demo_env(settings, tmp_path):
    import torch

    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.LETHE_SIGNING_KEY_PATH = tmp_path / "keys" / "signing.pem"
    settings.LETHE_BROKER_DIR = tmp_path / "broker"
    # The demo checks stored passwords on every run; the real hasher costs a second each.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # The tiny model's ops are too small to share between threads: one thread is as fast
    # idle and several times faster on a busy machine (the recipe makes the bits equal).
    threads = torch.get_num_threads()
    settings.LETHE_TORCH_THREADS = 1
    torch.set_num_threads(1)
    yield tmp_path / "state"
    torch.set_num_threads(threads)


def run(state, *extra):
    out = io.StringIO()
    call_command("demo", *TINY, "--state-dir", str(state), *extra, stdout=out)
    return out.getvalue()


def section(output, title):
    """The text of one numbered section, up to the next one."""
    match = re.search(rf"\[\d+\] {re.escape(title)} ─+\n(.*?)(?=\n\[\d+\] |\Z)", output, re.S)
    assert match, f"no section {title!r} in:\n{output}"
    return match.group(1)


def expected_subject(erased=()):
    """The sample subject with the most training messages (ties: lowest id), recomputed."""
    sample = generate(num_subjects=SUBJECTS, seed=DemoConfig().seed)
    counts = Counter(r.subject_id for r in sample.train if r.subject_id not in erased)
    return min(counts, key=lambda s: (-counts[s], s))


def shown_messages():
    sample = generate(num_subjects=SUBJECTS, seed=DemoConfig().seed)
    first = {}
    for record in sample.test:
        first.setdefault(record.label, record)
    return list(first.values())


@pytest.mark.django_db
def test_demo_trains_erases_certifies_and_prints_logins(demo_env):
    output = run(demo_env)

    model = UnlearningModel.objects.get(name="demo")
    assert (model.status, model.base_model, model.num_shards, model.num_slices) == (
        "ready",
        "tiny-bert",
        2,
        3,
    )
    job = TrainingJob.objects.get(model=model)
    assert job.status == "succeeded"
    assert job.stages_done == job.stages_total == 12  # 2 shards x (2 sequences x 3 - shared)
    assert "none yet: creating it" in section(output, "Database")
    assert "12/12 stages" in section(output, "S3T model")

    # The erasure: the busiest subject, executed, every record a tombstone.
    subject = expected_subject()
    request = ErasureRequest.objects.get()
    assert (request.subject_ref, request.status, request.channel) == (subject, "completed", "web")
    assert request.filed_by.username == request.approved_by.username == "demo-officer"
    records = Record.objects.filter(subject__external_ref=subject)
    assert records.exists()
    assert set(records.values_list("status", "text")) == {("erased", "")}
    erasure = section(output, "Erasure request")
    assert subject in erasure
    assert "3 → " in erasure  # the impact preview's serving depth before → after
    assert "retraining needed" in erasure

    # The certificate verifies, and the summary names it and its claims.
    certificate = DeletionCertificate.objects.get(request=request)
    assert certificate_verify(certificate.envelope).ok
    summary = section(output, "Deletion certificate")
    assert certificate.certificate_id in summary
    assert f"{records.count()}: " in summary  # records erased
    assert re.search(r"signature\s+verified OK", summary)
    assert re.search(r"I2 check\s+passed", summary)
    assert certificate.key_id in summary
    claims = re.search(r"claims\s+(\d+)/(\d+) hold", summary)
    assert claims
    assert claims.group(1) == claims.group(2)
    listed = certificate.envelope["certificate"]["models"][0]["stages_deactivated"]
    destroyed = Stage.objects.filter(shard__model=model, state="destroyed")
    assert sorted(s["id"] for s in listed) == sorted(destroyed.values_list("pk", flat=True))
    assert destroyed.exists()
    for stage in Stage.objects.filter(shard__model=model).select_related("shard"):
        stored_at = Path(settings.ARTIFACT_ROOT) / stage.artifact_key
        assert stage.artifact_key, (stage.prefix, stage.state)
        assert stored_at.exists() == (stage.state == "trained"), (stage.prefix, stage.state)

    # Predictions before and after, one held-out message per intent, in both tables.
    before = section(output, "Predictions before the erasure")
    after = section(output, "Predictions after the erasure")
    for record in shown_messages():
        head = " ".join(record.text.split())[:30]
        assert head in before
        assert head in after
    assert re.search(r"Held-out accuracy: [\d.]+% on \d+ messages", before)
    assert re.search(r"Held-out accuracy: [\d.]+% before, [\d.]+% after", after)
    scored = re.findall(r"\s[a-z]+ [01]\.\d\d\s+[a-z]+ [01]\.\d\d\s*$", after, re.M)
    assert len(scored) == 6  # a label and its score before and after, per message

    # Accounts: roles, the printed passwords work, the token authenticates.
    stored = json.loads(credentials_path(demo_env).read_text())
    assert stat.S_IMODE(credentials_path(demo_env).stat().st_mode) == 0o600
    logins = section(output, "Sign in")
    for username, role in (
        ("demo-officer", "privacy_officer"),
        ("demo-auditor", "auditor"),
        ("demo-integration", "integration"),
        ("demo-engineer", "ml_engineer"),
    ):
        user = User.objects.get(username=username)
        assert list(user.groups.values_list("name", flat=True)) == [role]
    for username in ("demo-officer", "demo-auditor"):
        assert User.objects.get(username=username).check_password(stored[username])
        assert f"{username} / {stored[username]}" in logins
    token = stored["demo-integration:token"]
    assert ApiToken.objects.filter(
        user__username="demo-integration", key_hash=token_hash(token)
    ).exists()
    assert token in logins
    assert "http://127.0.0.1:8000/" in logins
    assert "Not serving (--no-serve)" in output


@pytest.mark.django_db
def test_second_run_reuses_the_model_and_erases_the_next_subject(demo_env):
    run(demo_env)
    first = ErasureRequest.objects.get()
    trained = dict(Stage.objects.filter(state="trained").values_list("pk", "trained_at"))
    passwords = credentials_path(demo_env).read_text()
    by_hand, _ = erasure_request_create(  # an officer's own request, left for a decision
        actor=User.objects.get(username="demo-officer"), subject_ref="subj-0001", channel="web"
    )

    output = run(demo_env)

    assert "found: reusing it" in section(output, "Database")
    assert "skipped: model is ready, reusing it" in section(output, "S3T model")
    assert TrainingJob.objects.count() == 1  # no retraining
    assert UnlearningModel.objects.count() == 1
    still = dict(
        Stage.objects.filter(pk__in=trained, state="trained").values_list("pk", "trained_at")
    )
    assert still
    assert all(trained[pk] == at for pk, at in still.items())
    by_hand.refresh_from_db()
    assert by_hand.status == "received"  # the demo decides only requests it filed
    second = ErasureRequest.objects.exclude(pk__in=[first.pk, by_hand.pk]).get()
    assert second.status == "completed"
    assert second.subject_ref == expected_subject(erased={first.subject_ref})
    assert second.subject_ref in section(output, "Erasure request")
    certificate = DeletionCertificate.objects.get(request=second)
    assert certificate.certificate_id in section(output, "Deletion certificate")
    assert certificate_verify(certificate.envelope).ok
    assert credentials_path(demo_env).read_text() == passwords  # same logins and token
    assert set(json.loads(passwords)) == {"demo-officer", "demo-auditor", "demo-integration:token"}
    assert User.objects.filter(username__startswith="demo-").count() == 4
    assert ApiToken.objects.filter(user__username="demo-integration").count() == 1


@pytest.mark.django_db
def test_the_queued_copies_of_inline_work_are_no_ops(demo_env):
    """The demo trains and erases in its own process; model_train and the approval also
    queued Celery messages, which the served worker runs later: they must change nothing."""
    from celery_worker.tasks import execute_erasure, train_sequence

    run(demo_env)
    request = ErasureRequest.objects.get()
    events = AuditEvent.objects.count()
    stages = list(Stage.objects.order_by("pk").values_list("pk", "state", "tensor_digest"))

    for task in TrainingTask.objects.all():
        train_sequence(task.pk)
    assert execute_erasure(request.pk) == "completed"

    assert AuditEvent.objects.count() == events
    assert list(Stage.objects.order_by("pk").values_list("pk", "state", "tensor_digest")) == stages
    assert DeletionCertificate.objects.count() == 1
    assert TrainingJob.objects.get().status == "succeeded"


# --- safety ---------------------------------------------------------------------------------


def sqlite(path):
    return {"ENGINE": "django.db.backends.sqlite3", "NAME": path}


def test_reset_deletes_only_sqlite_files_and_paths_under_var(tmp_path):
    var = tmp_path / "var"
    targets = reset_targets(
        database=sqlite(var / "lethe.sqlite3"),
        paths={"ARTIFACT_ROOT": var / "artifacts", "key": var / "keys" / "k.pem"},
        var=var,
    )
    assert set(targets) == {
        var / "lethe.sqlite3",
        var / "lethe.sqlite3-wal",
        var / "lethe.sqlite3-shm",
        var / "lethe.sqlite3-journal",
        var / "artifacts",
        var / "keys" / "k.pem",
    }


@pytest.mark.parametrize(
    ("database", "paths", "message"),
    [
        (
            {"ENGINE": "django.db.backends.postgresql", "NAME": "lethe"},
            {},
            "never drops data",
        ),
        (sqlite("{tmp}/elsewhere.sqlite3"), {}, "the SQLite database"),
        (sqlite("{var}/db.sqlite3"), {"ARTIFACT_ROOT": "{tmp}/artifacts"}, "ARTIFACT_ROOT"),
        (sqlite("{var}/db.sqlite3"), {"LETHE_BROKER_DIR": "{var}"}, "LETHE_BROKER_DIR"),
        (sqlite("{var}/db.sqlite3"), {"key": "{var}/../escape"}, "key"),
        (sqlite("{var}/db.sqlite3"), {"link": "{var}/link/inside"}, "link"),
    ],
)
def test_reset_refuses_anything_outside_var(tmp_path, database, paths, message):
    var = tmp_path / "var"
    var.mkdir()
    (var / "link").symlink_to(tmp_path)  # var/link/inside resolves outside var

    def place(value):
        return str(value).format(tmp=tmp_path, var=var)

    database = {k: place(v) for k, v in database.items()}
    with pytest.raises(DemoError, match=message):
        reset_targets(
            database=database,
            paths={k: type(tmp_path)(place(v)) for k, v in paths.items()},
            var=var,
        )


@pytest.mark.django_db
def test_reset_through_the_command_refuses_a_database_outside_var(settings, demo_env, tmp_path):
    """The test database is not under the (redirected) var/: nothing may be deleted."""
    settings.BASE_DIR = tmp_path
    artifacts = tmp_path / "var" / "artifacts"
    (artifacts / "keep").mkdir(parents=True)
    settings.ARTIFACT_ROOT = artifacts

    with pytest.raises(CommandError, match="--reset"):
        run(demo_env, "--reset")

    assert (artifacts / "keep").is_dir()
    assert not UnlearningModel.objects.exists()


def test_a_second_demo_is_refused_while_one_runs(demo_env):
    with demo_lock(demo_env), pytest.raises(CommandError, match="another demo is running"):
        run(demo_env)


def test_a_taken_port_is_refused_before_any_work(demo_env):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(CommandError, match="is in use"):
            call_command(
                "demo",
                "--quick",
                "--backbone",
                "tiny-bert",
                "--addrport",
                f"127.0.0.1:{port}",
                "--state-dir",
                str(demo_env),
                stdout=io.StringIO(),
            )
    assert not demo_env.exists()  # refused before taking the lock or touching anything


@pytest.mark.django_db
def test_a_rerun_retrains_shards_that_no_longer_serve(demo_env):
    """After enough erasures a shard has no clean prefix; the next run retrains it first."""
    from governance.selectors.manifests import manifest_current
    from governance.services.erasure import erasure_request_approve
    from governance.services.erasure_execution import erasure_request_execute
    from governance.services.retraining import shards_due_for_retraining

    run(demo_env)
    model = UnlearningModel.objects.get(name="demo")
    officer = User.objects.get(username="demo-officer")
    for subject in sorted({r.subject.external_ref for r in Record.objects.filter(status="active")}):
        if shards_due_for_retraining(model):
            break
        request, _ = erasure_request_create(actor=officer, subject_ref=subject, channel="web")
        erasure_request_approve(actor=officer, request=request)
        assert erasure_request_execute(request_id=request.pk) == "completed"
    due = shards_due_for_retraining(model)
    assert due

    output = run(demo_env)

    assert f"shards {due} serve too shallow; retraining them now" in section(output, "S3T model")
    retrain = TrainingJob.objects.get(kind="retrain")
    assert (retrain.status, retrain.retrained_shards) == ("succeeded", due)
    model.refresh_from_db()
    manifest = manifest_current(model)
    assert manifest.generation == model.generation == 2
    assert sorted(e["shard"] for e in manifest.entries) == [0, 1]  # every shard serves again
    assert "Deletion certificate" in output
