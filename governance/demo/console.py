"""What the demo prints: numbered sections, aligned key/value lines, tables, and the
small formatters the steps share; and the library noise it keeps off the screen."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from typing import Any, TextIO

from django.core.management.base import OutputWrapper


class Console:
    """Sections, aligned key/value lines and tables on the command's stdout."""

    def __init__(self, out: TextIO | Any) -> None:
        self.out = out
        self.step = 0

    def write(self, text: str = "", ending: str = "\n") -> None:
        if isinstance(self.out, OutputWrapper):
            self.out.write(text, ending=ending)
        else:
            self.out.write(text + ending)
        self.out.flush()

    def section(self, title: str) -> None:
        self.step += 1
        heading = f"[{self.step}] {title} "
        self.write()
        self.write(heading + "─" * max(4, 88 - len(heading)))

    def fields(self, pairs: Sequence[tuple[str, object]], indent: int = 2) -> None:
        width = max(15, *(len(k) for k, _ in pairs))
        for key, value in pairs:
            lines = str(value).split("\n")
            self.write(f"{' ' * indent}{key:<{width}}  {lines[0]}")
            for more in lines[1:]:
                self.write(f"{' ' * (indent + width + 2)}{more}")

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        cells = [[str(c) for c in row] for row in rows]
        widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
        self.write("  " + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
        self.write("  " + "  ".join("─" * w for w in widths))
        for row in cells:
            self.write("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))

    def isatty(self) -> bool:
        isatty = getattr(self.out, "isatty", None)
        return bool(isatty and isatty())


def clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


def short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def bar(done: int, total: int, width: int = 28) -> str:
    filled = width * done // total if total else width
    return f"[{'█' * filled}{'·' * (width - filled)}] {done:>3}/{total} stages"


def loss(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def quiet_libraries() -> None:
    """No log noise from the ML libraries; the demo prints what matters itself."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Read once, when transformers configures its logger on first import.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    for name in ("transformers", "peft", "accelerate", "torch", "sentence_transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for module in ("transformers", "peft", "accelerate", "torch"):
        warnings.filterwarnings("ignore", module=module)  # a prefix: submodules too
