"""What the demo prints, through ``rich``: numbered sections, aligned key/value lines and
tables, the small formatters the steps share, and the library noise kept off the screen.

On a terminal rich styles the headings and draws the live training bar. Anywhere else (a
pipe, a log file, a test capturing the output) it writes plain text: no ANSI codes, and a
width generous enough that no line of the demo is wrapped, so the output reads the same as
what a terminal shows and can be searched line by line.
"""

from __future__ import annotations

import logging.config
import os
import warnings
from collections.abc import Sequence
from typing import Any, TextIO, cast

from django.core.management.base import OutputWrapper
from rich import box
from rich.console import Console as RichConsole
from rich.padding import Padding
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

RULE_WIDTH = 88  # a section heading's rule, whatever the terminal's width
PLAIN_WIDTH = 200  # off a terminal: wider than any line the demo prints

# The ML libraries log at INFO/WARNING on import and on every model load; the demo prints
# what matters itself. Incremental, so the project's LOGGING (handlers, formats) stays.
QUIET_LOGGING: dict[str, Any] = {
    "version": 1,
    "incremental": True,
    "loggers": {
        name: {"level": "ERROR"}
        # (kombu's warning about the file-system broker's URL is silenced in settings.)
        for name in (
            "transformers",
            "peft",
            "accelerate",
            "torch",
            "sentence_transformers",
            # Each checkpoint's log line is its copy outside the database; the demo prints
            # the certificate's audit head itself.
            "governance.services.audit_integrity",
        )
    },
}


class _Sink:
    """The file rich writes to: the command's stdout, newlines exactly as rich sends them
    (Django's OutputWrapper would otherwise end every write with one of its own)."""

    def __init__(self, out: TextIO | Any) -> None:
        self.out = out

    def write(self, text: str) -> int:
        if isinstance(self.out, OutputWrapper):
            self.out.write(text, ending="")
        else:
            self.out.write(text)
        return len(text)

    def flush(self) -> None:
        self.out.flush()

    def isatty(self) -> bool:
        isatty = getattr(self.out, "isatty", None)
        return bool(isatty and isatty())


class Console:
    """Sections, aligned key/value lines and tables on the command's stdout."""

    def __init__(self, out: TextIO | Any) -> None:
        sink = _Sink(out)
        tty = sink.isatty()
        self.step = 0
        # Decided here, not from the environment: FORCE_COLOR or COLUMNS must not put
        # escape codes or wrapped lines into a captured run.
        self.rich = RichConsole(
            file=cast(TextIO, sink),
            force_terminal=tty,
            force_interactive=tty,
            color_system="auto" if tty else None,
            width=None if tty else PLAIN_WIDTH,
            soft_wrap=True,  # a long line (the curl command) stays one line to copy
            markup=False,  # values carry brackets ("[1]", progress bars), never markup
            highlight=False,
            emoji=False,
        )

    def write(self, text: str = "", ending: str = "\n", style: str | None = None) -> None:
        self.rich.print(text, end=ending, style=style)

    def section(self, title: str) -> None:
        self.step += 1
        heading = Text(f"[{self.step}] {title}", style="bold")
        self.write()
        rule = Rule(heading, characters="─", align="left")
        self.rich.print(rule, width=min(RULE_WIDTH, self.rich.width))

    def fields(self, pairs: Sequence[tuple[str, object]], indent: int = 2) -> None:
        """``key  value`` lines, the values aligned; a value's further lines align too."""
        width = max(15, *(len(k) for k, _ in pairs))
        for key, value in pairs:
            lines = str(value).split("\n")
            key_cell = Text(f"{' ' * indent}{key:<{width}}", style="bold")
            self.rich.print(Text.assemble(key_cell, "  ", lines[0]))
            for more in lines[1:]:
                self.write(f"{' ' * (indent + width + 2)}{more}")

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        """Columns two spaces apart under a rule, indented like the fields."""
        table = Table(
            box=box.SIMPLE_HEAD,
            show_edge=False,
            pad_edge=False,
            padding=(0, 1, 0, 0),
            header_style="bold",
        )
        for header in headers:
            table.add_column(header, no_wrap=True)
        for row in rows:
            table.add_row(*(str(cell) for cell in row))
        self.rich.print(Padding(table, (0, 0, 0, 2), expand=False))

    def isatty(self) -> bool:
        return self.rich.is_terminal


def clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


def short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def bar(done: int, total: int, width: int = 28) -> str:
    """The training bar as text, for output that is not a terminal (one line per task)."""
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
    logging.config.dictConfig(QUIET_LOGGING)
    for module in ("transformers", "peft", "accelerate", "torch"):
        warnings.filterwarnings("ignore", module=module)  # a prefix: submodules too
