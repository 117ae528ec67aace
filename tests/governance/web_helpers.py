"""Shared pieces of the web UI tests (test_views_*.py): a logged-in browser per persona,
an HTML element finder keyed on the pages' data-testid attributes, and a trained model."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import pytest
from django.test import Client

from governance.models import SliceAssignment
from tests.governance.api_helpers import API, create_dataset, run_training_inline, tiny_model

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}  # fmt: skip


@dataclass
class Element:
    tag: str
    attrs: dict[str, str | None]
    parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join("".join(self.parts).split())

    def __getitem__(self, name: str) -> str | None:
        return self.attrs[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.stack: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, dict(attrs))
        self.elements.append(element)
        if tag not in VOID:
            self.stack.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(Element(tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        for element in self.stack:
            element.parts.append(data)


def parse(page: Any) -> list[Element]:
    html = page.content.decode() if hasattr(page, "content") else str(page)
    parser = _Parser()
    parser.feed(html)
    return parser.elements


def find_all(page: Any, tag: str | None = None, **attrs: str) -> list[Element]:
    """Elements with every attribute given (``data_testid`` means ``data-testid``)."""
    wanted = {name.replace("_", "-"): value for name, value in attrs.items()}
    return [
        e
        for e in parse(page)
        if (tag is None or e.tag == tag) and all(e.get(k) == v for k, v in wanted.items())
    ]


def find(page: Any, tag: str | None = None, **attrs: str) -> Element:
    found = find_all(page, tag, **attrs)
    assert len(found) == 1, f"{len(found)} elements match {tag} {attrs}"
    return found[0]


def ids_on(page: Any) -> set[str]:
    return {e["data-testid"] for e in parse(page) if e.get("data-testid")}


def browser(persona: Any) -> Client:
    """A Django test client with the persona's user logged in (session, CSRF enforced)."""
    client = Client(enforce_csrf_checks=False)
    client.force_login(persona.user)
    return client


def messages_text(page: Any) -> str:
    found = find_all(page, data_testid="messages")
    return found[0].text if found else ""


@pytest.fixture
def artifacts(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.LETHE_SIGNING_KEY_PATH = tmp_path / "keys" / "signing.pem"
    return settings.ARTIFACT_ROOT


@pytest.fixture
def trained(engineer, integration, sample, artifacts, django_capture_on_commit_callbacks):
    """A tiny model (2 shards x 2 slices, 2 cyclic sequences) trained inline."""
    dataset_id = create_dataset(integration.client, sample)
    model = engineer.client.post(f"{API}/models/", tiny_model(dataset_id), format="json").json()
    with django_capture_on_commit_callbacks(execute=False):
        job = engineer.client.post(f"{API}/models/{model['id']}/train/").json()["job"]
    run_training_inline(job)
    return {"model": model["id"], "dataset": dataset_id}


def busiest_subject(model_id: int) -> str:
    counts: dict[str, int] = {}
    for ref in SliceAssignment.objects.filter(model=model_id).values_list(
        "record__subject__external_ref", flat=True
    ):
        counts[ref] = counts.get(ref, 0) + 1
    return max(sorted(counts), key=lambda r: counts[r])
