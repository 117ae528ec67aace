"""Webhooks end to end against a real HTTP receiver on loopback: every event type arrives
signed (checked with the Standard Webhooks reference ``Webhook.verify``), retries give one
success, a hanging receiver times out and is retried, private addresses are refused at
creation and at delivery, and the permissions follow the role matrix.

Deliveries run in this process through the Celery task itself (``apply``: eager, the
same code a worker runs); retries are driven by the test, never by sleeping.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.db import transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from celery_worker import tasks
from celery_worker.celery import app
from governance.models import (
    ErasureRequest,
    TrainingJob,
    UnlearningModel,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
)
from governance.services import erasure, erasure_execution
from governance.services.confirmations import (
    erasure_confirmations_remind,
    erasure_requests_overdue_notify,
)
from governance.services.retraining import model_retrain
from governance.services.webhook_delivery import backoff, webhook_deliveries_due
from governance.services.webhook_http import address_refused
from governance.services.webhooks import EVENT_TYPES, webhook_event_emit
from tests.governance import web_helpers, webhook_receiver
from tests.governance.api_helpers import (
    API,
    PERSONAS,
    create_dataset,
    error_of,
    run_training_inline,
    tiny_model,
)
from tests.governance.webhook_receiver import HANG

URL = f"{API}/webhooks/"
artifacts = web_helpers.artifacts
receiver = webhook_receiver.receiver


def subscribe(persona, url, event_types=("*",), **extra):
    response = persona.client.post(
        URL, {"url": url, "event_types": list(event_types), **extra}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()


def deliver_all():
    """Run every delivery that is due through the task, as a worker would."""
    results = []
    for pk in (
        WebhookDelivery.objects.filter(status__in=WebhookDelivery.RETRYABLE)
        .order_by("pk")
        .values_list("pk", flat=True)
    ):
        results.append(tasks.deliver_webhook.apply(args=(pk,)).get())
    return results


def make_due(delivery_id):
    """Move a failed delivery's next attempt into the past (instead of waiting for it)."""
    past = timezone.now() - timedelta(seconds=1)
    WebhookDelivery.objects.filter(pk=delivery_id).update(next_attempt_at=past)


def verified(receiver, secret):
    """Every received body verified with the reference implementation; their envelopes."""
    hook = Webhook(secret)
    return [hook.verify(r.body, r.headers) for r in receiver.received]


def test_create_answers_the_secret_once_and_never_again(integration, receiver):
    body = subscribe(integration, receiver.url, ["erasure_request.completed"], description="dwh")

    assert body["secret"].startswith("whsec_")
    assert set(body) == {
        "id",
        "url",
        "event_types",
        "description",
        "active",
        "requires_confirmation",
        "owner",
        "created_at",
        "disabled_reason",
        "secret",
    }
    assert body["owner"] == "ingrid-bot"
    shown = integration.client.get(f"{URL}{body['id']}/").json()
    listed = integration.client.get(URL).json()
    assert "secret" not in shown
    assert listed["count"] == 1
    assert "secret" not in listed["results"][0]
    assert body["secret"] not in str(integration.client.get(f"{API}/audit/events/").content)


def test_every_event_type_is_delivered_with_a_verifiable_signature(
    integration, engineer, officer, sample, artifacts, receiver, settings
):
    hook = subscribe(integration, receiver.url, ["*"], requires_confirmation=True)
    # Model events: trained, serving_changed, retrained.
    dataset_id = create_dataset(integration.client, sample)
    model = engineer.client.post(f"{API}/models/", tiny_model(dataset_id), format="json")
    model_id = model.json()["id"]
    job = engineer.client.post(f"{API}/models/{model_id}/train/").json()["job"]
    run_training_inline(job)
    retrain = model_retrain(
        actor="test", model=UnlearningModel.objects.get(pk=model_id), shards=[0], reason="test"
    )
    run_training_inline(retrain.pk)
    assert TrainingJob.objects.get(pk=retrain.pk).status == "succeeded"
    # Erasure events: received, approved, completed (records found), rejected, failed.
    subject = sample.train[0].subject_id
    filed = integration.client.post(
        f"{API}/erasure-requests/", {"subject_id": subject}, format="json"
    ).json()
    officer.client.post(f"{API}/erasure-requests/{filed['id']}/approve/", {}, format="json")
    erasure_execution.erasure_request_execute(request_id=filed["id"])
    other, _ = erasure.erasure_request_create(actor=officer.user, subject_ref="nobody")
    erasure.erasure_request_reject(actor=officer.user, request=other, reason="identity")
    third, _ = erasure.erasure_request_create(actor=officer.user, subject_ref="someone")
    erasure.erasure_request_approve(actor=officer.user, request=third)
    erasure.erasure_request_fail(request_id=third.pk, error="boom")
    # Overdue (the one overdue rule), the confirmation reminder, and a test event.
    late, _ = erasure.erasure_request_create(
        actor=officer.user, subject_ref="late", received_at=timezone.now() - timedelta(days=40)
    )
    assert erasure_requests_overdue_notify() == [late.pk]
    assert erasure_requests_overdue_notify() == []  # once per request
    settings.LETHE_CONFIRMATION_REMINDER_S = 0
    assert len(erasure_confirmations_remind()) == 1
    assert integration.client.post(f"{URL}{hook['id']}/test/").status_code == 202

    assert all(status == "succeeded" for status in deliver_all())

    envelopes = verified(receiver, hook["secret"])
    assert {e["type"] for e in envelopes} == set(EVENT_TYPES)
    for envelope, got in zip(envelopes, receiver.received, strict=True):
        assert set(envelope) == {"type", "timestamp", "data"}
        event = WebhookEvent.objects.get(event_id=got.headers["webhook-id"])
        assert event.type == envelope["type"]
    completed = next(e for e in envelopes if e["type"] == "erasure_request.completed")["data"]
    expected_ids = sorted(r.external_id for r in sample.train if r.subject_id == subject)
    assert completed["records_erased"][0]["dataset_id"] == dataset_id
    assert completed["records_erased"][0]["external_ids"] == expected_ids
    certificate = ErasureRequest.objects.get(pk=filed["id"]).certificate
    assert completed["certificate"]["id"] == certificate.certificate_id
    assert completed["certificate"]["url"] == f"{API}/erasure-requests/{filed['id']}/certificate/"
    assert [m["model_id"] for m in completed["models_affected"]] == [model_id]
    serving = [e["data"] for e in envelopes if e["type"] == "model.serving_changed"]
    assert [s["manifest_version"] for s in serving] == sorted(
        s["manifest_version"] for s in serving
    )
    # A wrong secret fails the reference verification: the check can fail.
    with pytest.raises(WebhookVerificationError):
        verified(receiver, "whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=")


def test_a_receiver_failing_twice_gets_exactly_one_successful_delivery(integration, receiver):
    hook = subscribe(integration, receiver.url, ["webhook.test"])
    receiver.script = [500, 500, 200]
    integration.client.post(f"{URL}{hook['id']}/test/")
    delivery = WebhookDelivery.objects.get()

    assert tasks.deliver_webhook.apply(args=(delivery.pk,)).get() == "failed"
    # Not due yet: a second worker (or a duplicate message) does nothing.
    assert tasks.deliver_webhook.apply(args=(delivery.pk,)).get() is None
    make_due(delivery.pk)
    with transaction.atomic():
        assert webhook_deliveries_due() == [delivery.pk]  # the beat sweeper queues the retry
    assert tasks.deliver_webhook.apply(args=(delivery.pk,)).get() == "failed"
    make_due(delivery.pk)
    assert tasks.deliver_webhook.apply(args=(delivery.pk,)).get() == "succeeded"
    make_due(delivery.pk)
    assert tasks.deliver_webhook.apply(args=(delivery.pk,)).get() is None

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("succeeded", 3, 200)
    assert delivery.delivered_at is not None
    assert delivery.last_error == ""
    assert len(receiver.received) == 3
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1
    log = integration.client.get(f"{URL}{hook['id']}/deliveries/").json()
    assert [(d["status"], d["attempts"], d["response_code"]) for d in log] == [
        ("succeeded", 3, 200)
    ]
    assert set(log[0]) == {
        "id",
        "event_id",
        "event_type",
        "status",
        "attempts",
        "response_code",
        "latency_ms",
        "last_error",
        "next_attempt_at",
        "created_at",
        "delivered_at",
    }


def test_a_hanging_receiver_times_out_and_is_retried(integration, receiver):
    hook = subscribe(integration, receiver.url, ["webhook.test"])
    receiver.script = [HANG]
    integration.client.post(f"{URL}{hook['id']}/test/")
    delivery = WebhookDelivery.objects.get()

    assert tasks.deliver_webhook.apply(args=(delivery.pk,)).get() == "failed"
    delivery.refresh_from_db()
    assert delivery.last_error == "timed out"
    assert delivery.response_code is None
    assert delivery.next_attempt_at > timezone.now()
    make_due(delivery.pk)
    assert tasks.deliver_webhook.apply(args=(delivery.pk,)).get() == "succeeded"
    assert len(receiver.received) == 2


def test_redeliver_sends_a_delivered_event_again_on_the_same_row(integration, receiver):
    hook = subscribe(integration, receiver.url, ["webhook.test"])
    integration.client.post(f"{URL}{hook['id']}/test/")
    deliver_all()
    delivery = WebhookDelivery.objects.get()

    response = integration.client.post(f"{URL}{hook['id']}/deliveries/{delivery.pk}/redeliver/")

    assert response.status_code == 202
    assert deliver_all() == ["succeeded"]
    assert WebhookDelivery.objects.count() == 1
    assert WebhookDelivery.objects.get().attempts == 2
    assert len(receiver.received) == 2


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/hook",
        "https://localhost/hook",
        "http://example.com/hook",  # http only to allowed hosts
        "ftp://example.com/hook",
        "https://user:pw@example.com/hook",
    ],
)
def test_a_private_or_plain_url_is_refused_at_creation(integration, url):
    response = integration.client.post(URL, {"url": url, "event_types": ["*"]}, format="json")

    error_of(response, 400, "invalid_url", names="url")
    assert not WebhookSubscription.objects.exists()


def test_a_private_address_is_refused_again_at_delivery(integration, receiver, settings):
    hook = subscribe(integration, receiver.url, ["webhook.test"])
    integration.client.post(f"{URL}{hook['id']}/test/")
    # The host is no longer allowed (as if its name now resolved somewhere private).
    settings.LETHE_WEBHOOK_ALLOWED_HOSTS = []

    assert deliver_all() == ["failed"]
    delivery = WebhookDelivery.objects.get()
    assert delivery.last_error.startswith("url: ")
    assert receiver.received == []


def test_addresses_refused_include_metadata_mapped_and_reserved():
    for address in ("169.254.169.254", "::ffff:127.0.0.1", "fd00::1", "0.0.0.0", "224.0.0.1",
                    "100.64.0.1", "100.100.100.200", "240.0.0.1"):  # fmt: skip
        assert address_refused(address), address
    assert not address_refused("93.184.216.34")


def test_redirects_are_not_followed(integration, receiver):
    hook = subscribe(integration, receiver.url, ["webhook.test"])
    receiver.script = [302]
    integration.client.post(f"{URL}{hook['id']}/test/")

    assert deliver_all() == ["failed"]
    assert "redirect not followed" in WebhookDelivery.objects.get().last_error


def test_rotation_signs_with_both_secrets_during_the_grace(integration, receiver):
    hook = subscribe(integration, receiver.url, ["webhook.test"])
    rotated = integration.client.post(f"{URL}{hook['id']}/rotate-secret/").json()
    integration.client.post(f"{URL}{hook['id']}/test/")
    deliver_all()

    assert rotated["secret"] != hook["secret"]
    assert verified(receiver, rotated["secret"])[0]["type"] == "webhook.test"
    assert verified(receiver, hook["secret"])[0]["type"] == "webhook.test"
    assert rotated["previous_secret_valid_until"]


def test_a_subscription_failing_too_long_is_disabled_and_says_why(integration, receiver, settings):
    settings.LETHE_WEBHOOK_DISABLE_AFTER_S = 0
    hook = subscribe(integration, receiver.url, ["webhook.test"])
    receiver.script = [500]
    integration.client.post(f"{URL}{hook['id']}/test/")

    assert deliver_all() == ["failed"]
    shown = integration.client.get(f"{URL}{hook['id']}/").json()
    assert shown["active"] is False
    assert "HTTP 500" in shown["disabled_reason"]
    # Its pending retry gives up instead of sending to a disabled subscription.
    make_due(WebhookDelivery.objects.get().pk)
    assert deliver_all() == ["gave_up"]
    assert len(receiver.received) == 1
    # Re-activating clears the reason.
    again = integration.client.patch(f"{URL}{hook['id']}/", {"active": True}, format="json")
    assert (again.json()["active"], again.json()["disabled_reason"]) == (True, "")


def test_deliveries_give_up_a_day_after_the_event(integration, receiver):
    hook = subscribe(integration, receiver.url, ["webhook.test"])
    receiver.script = [500]
    integration.client.post(f"{URL}{hook['id']}/test/")
    WebhookEvent.objects.update(created_at=timezone.now() - timedelta(hours=25))

    assert deliver_all() == ["gave_up"]


def test_backoff_doubles_with_jitter_and_is_capped():
    assert backoff(1, rand=lambda: 1.0) == timedelta(seconds=10)
    assert backoff(3, rand=lambda: 1.0) == timedelta(seconds=40)
    assert backoff(3, rand=lambda: 0.0) == timedelta(seconds=20)
    assert backoff(40, rand=lambda: 1.0) == timedelta(hours=1)


def test_one_delivery_per_event_and_subscription(integration, receiver):
    hook = subscribe(integration, receiver.url)
    subscription = WebhookSubscription.objects.get(pk=hook["id"])
    with transaction.atomic():
        event = webhook_event_emit(type="webhook.test", data={}, subscriptions=[subscription])
    from django.db import IntegrityError

    with pytest.raises(IntegrityError), transaction.atomic():
        WebhookDelivery.objects.create(
            event=event, subscription=subscription, created_at=timezone.now()
        )


def test_events_are_emitted_in_the_state_change_and_sent_on_commit(
    officer, integration, receiver, django_capture_on_commit_callbacks
):
    subscribe(integration, receiver.url, ["erasure_request.received"])
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        request, _ = erasure.erasure_request_create(actor=officer.user, subject_ref="s-1")

    delivery = WebhookDelivery.objects.get()
    assert delivery.event.payload["data"]["request_id"] == request.pk
    assert len(callbacks) == 1  # the delivery task, queued only once the change committed

    # A change that rolls back leaves no event.
    def rolled_back():
        with transaction.atomic():
            erasure.erasure_request_create(actor=officer.user, subject_ref="s-2")
            raise RuntimeError

    with pytest.raises(RuntimeError):
        rolled_back()
    assert not ErasureRequest.objects.filter(subject_ref="s-2").exists()
    assert WebhookEvent.objects.count() == 1


def test_the_delivery_task_has_its_own_queue_and_the_worker_consumes_it():
    from governance.management.commands import worker

    assert app.amqp.router.route({}, "lethe.deliver_webhook")["queue"].name == "webhooks"
    assert app.amqp.router.route({}, "lethe.sweep_webhooks")["queue"].name == "control"
    assert "webhooks" in {q.name for q in app.conf.task_queues}
    assert "--queues=control,webhooks,default" in Path(worker.__file__).read_text()
    assert "sweep-webhooks" in app.conf.beat_schedule


# --- permissions -------------------------------------------------------------------------

# Who may do what (governance.permissions.MATRIX), written out so a change must fail here.
MAY_CREATE = {"officer": True, "auditor": False, "integration": True, "engineer": False}
MAY_LIST = {"officer": True, "auditor": True, "integration": True, "engineer": False}


@pytest.mark.parametrize("persona", PERSONAS)
def test_permissions_follow_the_matrix(request, persona, receiver):
    caller = request.getfixturevalue(persona)
    created = caller.client.post(URL, {"url": receiver.url, "event_types": ["*"]}, format="json")
    listed = caller.client.get(URL)

    assert created.status_code == (201 if MAY_CREATE[persona] else 403)
    assert listed.status_code == (200 if MAY_LIST[persona] else 403)


def test_owners_manage_their_own_and_auditors_read_all(officer, integration, auditor, receiver):
    theirs = subscribe(integration, receiver.url)
    mine = subscribe(officer, receiver.url)
    path = f"{URL}{theirs['id']}/"

    assert [s["id"] for s in auditor.client.get(URL).json()["results"]] == [
        theirs["id"],
        mine["id"],
    ]
    assert [s["id"] for s in officer.client.get(URL).json()["results"]] == [mine["id"]]
    assert officer.client.get(path).status_code == 404
    assert officer.client.patch(path, {"active": False}, format="json").status_code == 404
    assert officer.client.delete(path).status_code == 404
    assert auditor.client.get(path).status_code == 200
    assert auditor.client.get(f"{path}deliveries/").status_code == 200
    assert auditor.client.patch(path, {"active": False}, format="json").status_code == 403
    assert auditor.client.post(f"{path}rotate-secret/").status_code == 403
    assert integration.client.delete(path).status_code == 204
    assert integration.client.get(path).status_code == 404


def test_patch_checks_the_url_and_event_types(integration, receiver):
    hook = subscribe(integration, receiver.url)
    path = f"{URL}{hook['id']}/"

    error_of(
        integration.client.patch(path, {"url": "https://10.0.0.1/"}, format="json"),
        400,
        "invalid_url",
        names="url",
    )
    error_of(
        integration.client.patch(path, {"event_types": ["nope"]}, format="json"),
        400,
        "invalid",
        names="event_types",
    )
    ok = integration.client.patch(path, {"event_types": ["model.trained"]}, format="json")
    assert ok.json()["event_types"] == ["model.trained"]


# --- the web page ------------------------------------------------------------------------


def test_the_page_creates_a_subscription_showing_its_secret_once(officer, client, receiver):
    client.force_login(officer.user)
    form = {"url": receiver.url, "event_types": ["*"], "description": "warehouse"}

    created = client.post("/webhooks/new/", form)

    assert created.status_code == 200
    subscription = WebhookSubscription.objects.get()
    assert subscription.secret in created.content.decode()
    listed = client.get("/webhooks/")
    assert subscription.secret not in listed.content.decode()
    assert receiver.url in listed.content.decode()
    rotated = client.post(f"/webhooks/{subscription.pk}/rotate/")
    subscription.refresh_from_db()
    assert subscription.secret in rotated.content.decode()
    client.post(f"/webhooks/{subscription.pk}/test/")
    deliver_all()
    detail = client.get(f"/webhooks/{subscription.pk}/")
    rows = web_helpers.find_all(detail, "tr", **{"data-testid": "delivery-row"})
    assert [r["data-status"] for r in rows] == ["succeeded"]
    assert client.post("/webhooks/new/", {**form, "url": "https://10.0.0.1/"}).status_code == 200
    assert WebhookSubscription.objects.count() == 1


@pytest.mark.parametrize(
    ("persona", "status"),
    [("officer", 200), ("auditor", 200), ("integration", 403), ("engineer", 403)],
)
def test_the_page_follows_the_matrix(request, client, persona, status):
    client.force_login(request.getfixturevalue(persona).user)

    assert client.get("/webhooks/").status_code == status
    if persona == "auditor":
        assert client.post("/webhooks/new/", {"url": "https://x.example/"}).status_code == 403
