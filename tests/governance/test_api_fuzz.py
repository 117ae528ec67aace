"""Schemathesis over the whole published schema, in process (the WSGI app, no server):
every operation, as each role and anonymously, must answer without a server error and as
its OpenAPI document says (status, content type, body schema).

Bounded so the file runs in about a minute on SQLite: ``MAX_EXAMPLES`` generated cases per
operation, each sent once per identity, and once more with its path naming objects that
exist (``seeded``), so bodies reach the services rather than stopping at a 404. Hypothesis
is derandomized: CI sends the same cases every run. A failure prints the case as a
reproducible ``curl``; fix it where the rule lives (a serializer in ``governance.api``, the
error mapping in ``governance.errors``, the schema in ``api.common.LetheAutoSchema``), not
here.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from governance.models import ApiToken, WebhookSubscription
from governance.services import erasure, webhooks
from governance.wsgi import application
from tests.factories import UnlearningModelFactory
from tests.governance.api_helpers import API, create_dataset

MAX_EXAMPLES = 15
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
IDENTITIES = ("officer", "auditor", "integration", "engineer", None)
# The health check answers a documented 503 while no worker heartbeats (none runs here):
# an honest answer for an orchestrator, not a server error.
HEALTH_CHECKS = [check for check in CHECKS if check is not not_a_server_error]

schema = schemathesis.openapi.from_wsgi(f"{API}/schema/?format=json", application)


@pytest.fixture
def tokens(db, request):
    """A token for each role, by persona fixture name. The throttle counts start at zero,
    so the flood is not answered 429 because of other tests (429 is documented anyway)."""
    cache.clear()
    return {name: request.getfixturevalue(name).key for name in IDENTITIES if name}


@pytest.fixture
def seeded(tokens, integration, sample, django_capture_on_commit_callbacks):
    """Path parameters that name real objects: a dataset with records, a model on it, an
    erasure request for one of its subjects, a token and the user holding it."""
    dataset_id = create_dataset(integration.client, sample, records=sample.train[:6])
    subject = sample.train[0].subject_id
    with django_capture_on_commit_callbacks(execute=False):
        req, _ = erasure.erasure_request_create(actor=integration.user, subject_ref=subject)
        hook = WebhookSubscription.objects.create(
            owner=integration.user,
            url="https://hooks.example/in",
            event_types=["*"],
            secret=webhooks.secret_new(),
        )
        test_event = webhooks.webhook_test_send(actor=integration.user, subscription=hook)
    return {
        "webhook_id": hook.pk,
        "delivery_id": test_event.deliveries.get().pk,
        "dataset_id": dataset_id,
        "model_id": UnlearningModelFactory(dataset_id=dataset_id).pk,
        "request_id": req.pk,
        "token_id": ApiToken.objects.filter(user=integration.user).get().pk,
        "subject_id": subject,
        "username": integration.user.username,
    }


@pytest.fixture
def in_process(tokens, seeded):
    """The WSGI handler closes the database connection after each request; the test's
    transaction (and SQLite's in-memory database) must outlive them, as under Django's
    test client, which disconnects the same receivers but connects them again after each
    request: so this comes after the fixtures that use it."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield tokens, seeded
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_every_operation_answers_as_documented(case, in_process):
    tokens, seeded = in_process
    checks = HEALTH_CHECKS if case.operation.path.endswith("/health/") else CHECKS
    rounds = [dict(case.path_parameters)]
    if case.path_parameters:
        rounds.append({name: seeded[name] for name in case.path_parameters})
    for path_parameters in rounds:
        case.path_parameters = path_parameters
        for identity in IDENTITIES:
            headers = {"Authorization": f"Token {tokens[identity]}"} if identity else {}
            case.call_and_validate(headers=headers, checks=checks)
