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

LABELS: tuple[str, ...] = ("billing", "technical", "account", "shipping", "returns", "feedback")
FIELDS: tuple[str, ...] = ("external_id", "subject_id", "text", "label")

Split = Literal["train", "test"]

# Most people write one or two tickets, a few write many (index i = i + 1 messages).
_MESSAGE_WEIGHTS = (20, 18, 15, 13, 11, 9, 8, 6)

# "[section]" headers, then "key: value | value". Train text draws on [shared] + [train],
# test text on [shared] + [test]: the held-out phrasings, which never occur in train text.
_TEMPLATE_TEXT = """
[train]
billing: I was charged twice for order {order}, {amount} each time. Please refund the duplicate.
billing: My card ending {last4} was billed {amount} on {date} but I never placed that order.
billing: Why does my invoice for the {plan} plan show {amount} instead of the price I signed up for?
billing: Can you send me a copy of the invoice for order {order}? I need it for my expenses.
billing: The payment for the {product} failed at checkout but the money left my account anyway.
billing: I cancelled my {plan} subscription on {date} and was still charged {amount} this month.
billing: There is a charge of {amount} on my statement that I do not recognise.
billing: Please update the billing address on account {customer} to {city} before the next invoice.
billing: The discount code was not applied to order {order} and I paid {amount} too much.
billing: How do I switch my {plan} plan from monthly billing to yearly billing?
technical: The app crashes every time I open it on my {device} after the latest update.
technical: I keep getting error {error} when I try to log in from {browser}.
technical: My {product} will not pair with my {device}, the light just keeps blinking.
technical: The website shows error {error} at checkout and the page never finishes loading.
technical: Since {date} the {product} disconnects from the wifi every few minutes.
technical: Notifications stopped working on my {device} even though they are enabled in settings.
technical: The firmware update for my {product} failed halfway with error {error}.
technical: Sync between my {device} and the web dashboard has been broken for {days} days.
technical: The search page is extremely slow in {browser} and sometimes freezes completely.
technical: My {product} battery drains in two hours after the update, is this a known bug?
account: I forgot my password and the reset email never arrives at {email}.
account: Please change the email on my account from {email} to my new work address.
account: My account {customer} is locked after too many login attempts, can you unlock it?
account: I want to delete my account and all my personal data, my email is {email}.
account: How do I turn on two factor authentication for my account {customer}?
account: Someone else logged into my account from {city}, I think it was hacked.
account: I cannot update my phone number in the account settings, the save button does nothing.
account: Please merge my two accounts, both are registered under the name {name}.
account: The verification code for my account never reaches my phone.
account: I would like to change the username on account {customer} to my real name {name}.
shipping: My order {order} was supposed to arrive on {date} but it still has not shown up.
shipping: The tracking for order {order} has not updated in {days} days, where is my package?
shipping: {carrier} says my package was delivered but there is nothing at my door in {city}.
shipping: Can I change the delivery address for order {order} to my office in {city}?
shipping: How long does shipping to {city} usually take with {carrier}?
shipping: My package with the {product} is stuck at the {carrier} depot since {date}.
shipping: Is express delivery available for order {order}? I need the {product} by {date}.
shipping: The courier left my package with a neighbour without asking, order {order}.
shipping: Only part of order {order} arrived, the {product} is missing from the box.
shipping: I paid for express shipping but order {order} came by standard post after {days} days.
returns: I would like to return the {product} from order {order}, it does not fit.
returns: The {product} arrived damaged, can I get a replacement or a refund?
returns: How do I print a return label for order {order}?
returns: I sent the {product} back on {date} but I have not received my refund yet.
returns: Can I exchange the {product} for a different size or colour?
returns: The {product} I received is not what I ordered, I want to send it back.
returns: Is it too late to return order {order}? I bought it {days} days ago.
returns: I returned the {product} with {carrier} and the refund of {amount} is still missing.
returns: The {product} stopped working after one week, I want to return it under warranty.
returns: Please arrange a pickup for the return of order {order} from my address in {city}.
feedback: Just wanted to say the agent who helped me with order {order} was fantastic.
feedback: The new app design on my {device} is confusing, I liked the old layout better.
feedback: Please add a dark mode to the website, it would make reading at night easier.
feedback: I love the {product}, best purchase I have made this year.
feedback: Your delivery times have gotten much better, thanks to the whole team.
feedback: It would be great if the {product} came in more colours.
feedback: The checkout process has too many steps, please make it simpler.
feedback: I have been a customer since {date} and the quality has really dropped lately.
feedback: Suggestion: add a wishlist so I can save products for later.
feedback: The {product} is good value but the instructions could be much clearer.
[test]
billing: Bank statement lists {amount} from you twice after one purchase; reverse one debit please.
billing: Your receipt for {order} totals {amount}, yet the site listed it cheaper. Credit the gap?
billing: My bank flagged a transaction of {amount} on {date}; I did not authorise it.
billing: Requesting a VAT receipt for my {plan} membership, paid with the card ending {last4}.
technical: Whenever I launch your software on the {device}, it freezes and then shows code {error}.
technical: Installing the newest version in {browser} gives a blank white screen.
technical: Bluetooth keeps dropping between the {product} and my {device}; rebooting does not help.
technical: The display on the {product} flickers and goes black after a few seconds of use.
account: Signing in fails because the site says no user exists for {email}, though I registered.
account: Kindly close my profile {customer} for good and confirm once it is removed.
account: A sign-in alert came from {city} at night; that was not me, please secure my profile.
account: My member profile still shows my old surname, it should read {name} now.
shipping: Parcel {order} has been sitting in transit with {carrier} for {days} days now.
shipping: Nobody rang the bell, yet {carrier} marked my parcel as handed over on {date}.
shipping: Could the courier bring {order} to a pickup point in {city} instead of my home?
shipping: Still waiting on the {product}; the estimated arrival passed {days} days ago.
returns: Sending the {product} back: which address should the box go to, and who pays postage?
returns: Wrong item in {order}; I got something else entirely and would like to swap it.
returns: The {product} came with a cracked case, I want my money back once you collect it.
returns: The drop-off receipt for the {product} I posted back is attached; when is the credit due?
feedback: Compliments to your staff in {city}, they went above and beyond for me today.
feedback: Honestly the {product} exceeded my expectations; I will recommend you to friends.
feedback: An idea for the next release: allow exporting my purchase history as a spreadsheet.
feedback: Disappointed with how the {device} version looks now, the previous one felt cleaner.
"""

_VOCAB_TEXT = """
[shared]
first: Anna | Ben | Carla | David | Elif | Farid | Grace | Hugo | Ines | Jonas | Keiko | Liam
first: Maya | Noah | Olga | Pedro | Quinn | Rosa | Sven | Tara | Umar | Vera | Wen | Yusuf | Zoe
last: Novak | Smith | Okafor | Garcia | Kowalski | Nguyen | Schmidt | Rossi | Haddad | Larsen
last: Patel | Brown | Moreau | Tanaka | Silva | Jensen | Murphy | Cohen | Dubois | Ivanova
domain: example.com | example.org | example.net | mail.example | inbox.test
plan: Basic | Plus | Premium | Family | Business
browser: Chrome | Firefox | Safari | Edge
opener: Hi, | Hello, | Hi team, | Hello support, | Hey, | Good morning,
closer: Thanks. | Thank you! | Regards, {name} | Thanks, {first} | Customer number {customer}.
[train]
city: Lisbon | Leeds | Austin | Lyon | Krakow | Osaka | Denver | Porto | Hamburg | Dublin
product: wireless earbuds | smart watch | air fryer | robot vacuum | coffee grinder | desk lamp
product: yoga mat | running shoes | winter jacket | laptop stand | baby monitor | blender
device: iPhone 13 | Pixel 7 | Galaxy S22 | iPad | MacBook | Windows laptop
carrier: DHL | UPS | FedEx | Royal Mail
error: 503 | E42 | 0x80070005 | AUTH-401 | TIMEOUT-7
opener: Dear customer service, | Quick question: | Urgent: | Hi, this is {first}.
closer: Please help. | Cheers, {first} | Best, {name} ({email})
[test]
city: Valencia | Ottawa | Gdansk | Tallinn | Nairobi
product: electric kettle | hiking backpack | standing fan | sewing machine | e-reader
device: OnePlus tablet | Chromebook | Xperia phone
carrier: GLS | Hermes | PostNL
error: ZX-918 | 0xC004F074
opener: Greetings, | Good afternoon, | To whom it may concern,
closer: Much appreciated, {first} | Kind regards, {name} | Sent from my phone
"""

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
    for (section, key), values in _parse(_VOCAB_TEXT).items():
        if section in ("shared", split):
            vocab[key] = vocab.get(key, ()) + values
    return vocab


# Templates per (split, label); tests check the test ones never match train text.
_PHRASINGS = _parse(_TEMPLATE_TEXT)
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
