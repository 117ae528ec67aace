"""Seeded, synthetic customer-support tickets for demos, tests and benchmarks.

Every message is written by a data subject and carries the personal data real tickets do
(names, e-mail addresses, customer and order numbers), so erasure requests have something
to erase. The test split is written by separate subjects using held-out phrasings: templates,
openers and keywords that never occur in the training split, so test accuracy measures
generalisation rather than template recall.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from unlearning.sample_phrases import TEMPLATE_TEXT, VOCAB_TEXT

LABELS: tuple[str, ...] = ("billing", "technical", "account", "shipping", "returns", "feedback")
FIELDS: tuple[str, ...] = ("external_id", "subject_id", "text", "label")

Split = Literal["train", "test"]

# Most people write one or two tickets, a few write many (index i = i + 1 messages).
_MESSAGE_WEIGHTS = (20, 18, 15, 13, 11, 9, 8, 6)

_SLOT = re.compile(r"\{(\w+)\}")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August")


def _parse(text: str) -> dict[tuple[str, str], tuple[str, ...]]:
    """Parse "[section]" / "key: a | b" text into {(section, key): values}."""
    parsed: dict[tuple[str, str], tuple[str, ...]] = {}
    section = ""
    for line in filter(None, (raw.strip() for raw in text.splitlines())):
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, values = line.partition(": ")
        parsed[section, key] = parsed.get((section, key), ()) + tuple(
            value.strip() for value in values.split(" | ")
        )
    return parsed


def _vocab(split: Split) -> dict[str, tuple[str, ...]]:
    vocab: dict[str, tuple[str, ...]] = {}
    for (section, key), values in _parse(VOCAB_TEXT).items():
        if section in ("shared", split):
            vocab[key] = vocab.get(key, ()) + values
    return vocab


# Templates per (split, label); tests check the test ones never match train text.
_PHRASINGS = _parse(TEMPLATE_TEXT)
_VOCAB = {"train": _vocab("train"), "test": _vocab("test")}

_DYNAMIC: dict[str, Callable[[random.Random], str]] = {
    "amount": lambda rng: f"{rng.choice('$$€£')}{rng.randint(5, 400)}.{rng.randint(0, 99):02d}",
    "date": lambda rng: f"{rng.choice(_MONTHS)} {rng.randint(1, 28)}",
    "last4": lambda rng: f"{rng.randint(0, 9999):04d}",
    "days": lambda rng: str(rng.randint(2, 21)),
}


@dataclass(frozen=True)
class SampleRecord:
    """One support message, with exactly the fields the ingestion API accepts."""

    external_id: str
    subject_id: str
    text: str
    label: str


@dataclass(frozen=True)
class SampleDataset:
    """A generated corpus: training messages and held-out test messages."""

    labels: tuple[str, ...]
    train: tuple[SampleRecord, ...]
    test: tuple[SampleRecord, ...]

    def records(self, split: Split = "train") -> tuple[SampleRecord, ...]:
        """Return the records of one split."""
        return self.train if split == "train" else self.test

    def subjects(self, split: Split = "train") -> tuple[str, ...]:
        """Return the sorted subject ids that wrote messages in ``split``."""
        return tuple(sorted({record.subject_id for record in self.records(split)}))

    def by_subject(self, split: Split = "train") -> dict[str, tuple[SampleRecord, ...]]:
        """Group the records of ``split`` by subject id (sorted by subject id)."""
        grouped: dict[str, list[SampleRecord]] = {}
        for record in self.records(split):
            grouped.setdefault(record.subject_id, []).append(record)
        return {subject: tuple(grouped[subject]) for subject in sorted(grouped)}


@dataclass(frozen=True)
class _Subject:
    subject_id: str
    slots: dict[str, str]
    orders: tuple[str, ...]


def generate(
    *, num_subjects: int = 300, seed: int = 0, test_fraction: float = 0.2
) -> SampleDataset:
    """Generate a deterministic sample dataset.

    Args:
        num_subjects: Number of data subjects who write the training messages (≥ 1).
        seed: Seed for the private ``random.Random``; equal seeds give equal datasets.
        test_fraction: Share of all subjects that are held out to write the test split,
            in [0, 1). Test subjects are extra: ``round(num_subjects * f / (1 - f))`` of them.

    Returns:
        A ``SampleDataset``; at the defaults 1,000–1,250 train and 250–310 test messages.
    """
    if num_subjects < 1:
        raise ValueError(f"num_subjects must be >= 1, got {num_subjects}")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    rng = random.Random(seed)
    num_test = round(num_subjects * test_fraction / (1.0 - test_fraction))
    train = _write_split(rng, range(num_subjects), "train")
    test = _write_split(rng, range(num_subjects, num_subjects + num_test), "test")
    return SampleDataset(
        labels=LABELS,
        train=_number(train, start=0),
        test=_number(test, start=len(train)),
    )


def _write_split(rng: random.Random, indices: range, split: Split) -> list[tuple[str, str, str]]:
    messages: list[tuple[str, str, str]] = []
    for index in indices:
        subject = _make_subject(rng, index, split)
        count = rng.choices(range(1, len(_MESSAGE_WEIGHTS) + 1), weights=_MESSAGE_WEIGHTS)[0]
        # People tend to write repeatedly about one concern, so half follow a main intent.
        main = rng.choice(LABELS)
        for _ in range(count):
            label = main if rng.random() < 0.5 else rng.choice(LABELS)
            messages.append((subject.subject_id, _compose(rng, subject, label, split), label))
    # Tickets arrive interleaved across subjects, not grouped by author.
    rng.shuffle(messages)
    return messages


def _number(messages: list[tuple[str, str, str]], *, start: int) -> tuple[SampleRecord, ...]:
    return tuple(
        SampleRecord(f"msg-{start + offset:06d}", subject_id, text, label)
        for offset, (subject_id, text, label) in enumerate(messages)
    )


def _make_subject(rng: random.Random, index: int, split: Split) -> _Subject:
    vocab = _VOCAB[split]
    first, last = rng.choice(vocab["first"]), rng.choice(vocab["last"])
    number = rng.randint(1, 99)
    slots = {
        "first": first,
        "name": f"{first} {last}",
        "email": f"{first}.{last}{number}@{rng.choice(vocab['domain'])}".lower(),
        "city": rng.choice(vocab["city"]),
        "customer": f"C-{rng.randint(100000, 999999)}",
    }
    orders = tuple(f"#{rng.randint(1_000_000, 9_999_999)}" for _ in range(rng.randint(1, 3)))
    return _Subject(subject_id=f"subj-{index:04d}", slots=slots, orders=orders)


def _compose(rng: random.Random, subject: _Subject, label: str, split: Split) -> str:
    vocab = _VOCAB[split]
    body = rng.choice(_PHRASINGS[split, label])
    if body.endswith(".") and rng.random() < 0.1:
        body = body[:-1] + "!"
    parts = [body]
    if rng.random() < 0.6:
        opener = rng.choice(vocab["opener"])
        # "Hi team, my order…" reads naturally; "I" and slot values keep their capital.
        if opener.endswith(",") and not body.startswith(("I ", "{")):
            parts[0] = body[0].lower() + body[1:]
        parts.insert(0, opener)
    if rng.random() < 0.6:
        parts.append(rng.choice(vocab["closer"]))
    text = _fill(" ".join(parts), rng, subject, vocab)
    # Some people type in a hurry, all lower case.
    return text.lower() if rng.random() < 0.06 else text


def _fill(
    text: str, rng: random.Random, subject: _Subject, vocab: dict[str, tuple[str, ...]]
) -> str:
    def value(match: re.Match[str]) -> str:
        slot = match.group(1)
        if slot == "order":
            return rng.choice(subject.orders)
        if slot in subject.slots:
            return subject.slots[slot]
        if slot in _DYNAMIC:
            return _DYNAMIC[slot](rng)
        return rng.choice(vocab[slot])

    return _SLOT.sub(value, text)


def to_jsonl(records: Iterable[SampleRecord]) -> str:
    """Serialise records as JSON Lines with the fields in ``FIELDS``.

    Args:
        records: Records to serialise, e.g. ``dataset.train``.

    Returns:
        One JSON object per line, each line ending in a newline.
    """
    return "".join(
        json.dumps({name: getattr(record, name) for name in FIELDS}, ensure_ascii=False) + "\n"
        for record in records
    )


def from_jsonl(text: str) -> tuple[SampleRecord, ...]:
    """Parse JSON Lines written by ``to_jsonl``; blank lines are skipped.

    Args:
        text: JSON Lines text.

    Returns:
        The records, in file order.
    """
    return tuple(_record(json.loads(line)) for line in text.splitlines() if line.strip())


def to_csv(records: Iterable[SampleRecord]) -> str:
    """Serialise records as CSV with a header row of ``FIELDS``.

    Args:
        records: Records to serialise.

    Returns:
        CSV text (RFC 4180 quoting, CRLF line endings).
    """
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS)
    writer.writeheader()
    writer.writerows({name: getattr(record, name) for name in FIELDS} for record in records)
    return buffer.getvalue()


def from_csv(text: str) -> tuple[SampleRecord, ...]:
    """Parse CSV written by ``to_csv``.

    Args:
        text: CSV text with a header row.

    Returns:
        The records, in file order.
    """
    return tuple(_record(row) for row in csv.DictReader(io.StringIO(text, newline="")))


def write_jsonl(records: Iterable[SampleRecord], path: str | Path) -> None:
    """Write ``to_jsonl(records)`` to ``path`` as UTF-8.

    Args:
        records: Records to write.
        path: Destination file.
    """
    Path(path).write_text(to_jsonl(records), encoding="utf-8")


def _record(row: object) -> SampleRecord:
    if not isinstance(row, dict) or set(row) != set(FIELDS):
        raise ValueError(f"record must have exactly the fields {FIELDS}, got {row!r}")
    values = [row[name] for name in FIELDS]
    if not all(isinstance(value, str) for value in values):
        raise ValueError(f"record fields must be strings, got {row!r}")
    return SampleRecord(*values)
