"""Synthetic instruction data: support requests and the one canned reply each intent gets.

Eight intents, each asked in varied words (an opener, one of several phrasings, a
closer), some as a single prompt and some as a two-turn conversation with a greeting
first. Every intent has one short reply, so a model that has learned the task answers
every phrasing of an intent with exactly that reply: exact match is a fair score, and a
tiny random decoder can learn it in seconds. Deterministic for a seed; the words are all
in the BERT vocabulary the tiny models share, so nothing splits into odd word pieces.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from unlearning.data import Example, Prompt

INTENTS: dict[str, tuple[tuple[str, ...], str]] = {
    "password": (
        ("i forgot my password", "how do i reset my password", "my password does not work"),
        "open settings and choose reset password",
    ),
    "refund": (
        ("i want my money back", "how do i get a refund", "please refund my order"),
        "refunds take five working days",
    ),
    "delivery": (
        ("where is my parcel", "my order has not arrived", "when will my package come"),
        "track your parcel on the orders page",
    ),
    "cancel": (
        ("cancel my subscription", "i want to stop my plan", "how do i end my account"),
        "choose cancel plan under billing",
    ),
    "invoice": (
        ("i need an invoice", "send me a receipt", "where can i find my bill"),
        "invoices are under billing history",
    ),
    "address": (
        ("change my address", "i moved to a new house", "update my shipping address"),
        "edit your address in your profile",
    ),
    "hours": (
        ("when are you open", "what are your opening hours", "are you open on sunday"),
        "we are open every day from nine",
    ),
    "human": (
        ("i want to talk to a person", "can i speak to an agent", "connect me to support staff"),
        "an agent will call you soon",
    ),
}
_OPENERS = ("", "hi", "hello", "hey there", "good morning", "excuse me")
_CLOSERS = ("", "please", "thanks", "thank you", "today", "quickly")
_GREETINGS = ("hello", "hi there", "good evening")
_ACKS = ("hello how can i help", "hi what do you need")


@dataclass(frozen=True)
class Instruction:
    """One synthetic request: its intent, the prompt (str or turns) and the reply."""

    key: str
    intent: str
    prompt: Prompt
    reply: str

    def example(self) -> Example:
        return Example(self.key, 0, self.prompt, self.reply)


def instructions(n: int, seed: int, prefix: str = "ins") -> list[Instruction]:
    """``n`` requests cycling through the intents; every fourth one is a conversation."""
    rng = random.Random(seed)  # noqa: S311  seeded synthetic text, not secrets
    names = sorted(INTENTS)
    out = []
    for i in range(n):
        intent = names[i % len(names)]
        phrasings, reply = INTENTS[intent]
        words = [rng.choice(_OPENERS), rng.choice(phrasings), rng.choice(_CLOSERS)]
        request = " ".join(w for w in words if w)
        prompt: Prompt = request
        if i % 4 == 3:
            prompt = (
                ("user", rng.choice(_GREETINGS)),
                ("assistant", rng.choice(_ACKS)),
                ("user", request),
            )
        out.append(Instruction(f"{prefix}{seed}-{i:04d}", intent, prompt, reply))
    return out


def instruction_examples(n: int, seed: int, prefix: str = "ins") -> list[Example]:
    """The requests of ``instructions`` as generation examples (prompt, target reply)."""
    return [item.example() for item in instructions(n, seed, prefix)]
