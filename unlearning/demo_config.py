"""The demo's sizes, shared by the engine demo and the product demo (``manage.py demo``).

Kept apart from ``unlearning.demo`` so that reading it imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo run, the engine demo's and the product demo's (governance.demo)."""

    backbone: str = "minilm"
    subjects: int = 300
    shards: int = 2
    slices: int = 3
    budget: int = 3
    epochs: int = 2
    learning_rate: float = 2e-3
    seed: int = 7

    @classmethod
    def quick(cls) -> DemoConfig:
        """A fifth of the data and two sequences per shard: under a minute on 2 cores.

        With so few steps per stage the default learning rate leaves MiniLM near chance
        (28% held-out accuracy); 1e-2 reaches about 50% at no extra cost.
        """
        return cls(subjects=60, budget=2, learning_rate=1e-2)
