"""Personas (one per role, after healthchecks' alice/bob/charlie) and sample data."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from rest_framework.test import APIClient

from governance.permissions import Role
from governance.services.accounts import user_create_with_role
from unlearning.sample_data import generate


@dataclass
class Persona:
    user: object
    client: APIClient
    key: str


def _persona(username: str, role: Role) -> Persona:
    user, key = user_create_with_role(username=username, role=role)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return Persona(user, client, key)


@pytest.fixture
def officer(db) -> Persona:
    return _persona("olivia", Role.PRIVACY_OFFICER)


@pytest.fixture
def auditor(db) -> Persona:
    return _persona("arthur", Role.AUDITOR)


@pytest.fixture
def integration(db) -> Persona:
    return _persona("ingrid-bot", Role.INTEGRATION)


@pytest.fixture
def engineer(db) -> Persona:
    return _persona("emil", Role.ML_ENGINEER)


@pytest.fixture(scope="session")
def sample():
    """A small sample dataset: 40 subjects, their support messages, six intents."""
    return generate(num_subjects=40, seed=11)


def sample_rows(records):
    return [
        {"external_id": r.external_id, "subject_id": r.subject_id, "text": r.text,
         "label": r.label}
        for r in records
    ]  # fmt: skip
