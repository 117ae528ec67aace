"""lethe_client stays small: only the standard library, httpx and cryptography.

A data platform or an auditor installs it without Django or torch, so the check is the
same static one tests/test_architecture.py runs on the engine (every import statement,
including those inside functions and under TYPE_CHECKING), here as an allow-list, plus a
fresh interpreter that imports every module and must not load Django or torch.
"""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.client.conftest import CLIENT_SRC
from tests.test_architecture import _imported_names, module_name

PACKAGE = CLIENT_SRC / "lethe_client"
ALLOWED_THIRD_PARTY = frozenset({"httpx", "cryptography"})


def foreign_imports(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, name) for each import outside the standard library, httpx, cryptography and
    lethe_client itself."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    allowed = ALLOWED_THIRD_PARTY | sys.stdlib_module_names | {"lethe_client", "__future__"}
    found = []
    for node in ast.walk(ast.parse(source)):
        names = _imported_names(node, package)
        if names is None:
            found.append((node.lineno, "a module above the package"))
            continue
        found.extend((node.lineno, n) for n in names if n.split(".")[0] not in allowed)
    return found


def test_client_imports_only_stdlib_httpx_and_cryptography():
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) >= 5, f"no client sources under {PACKAGE}"
    violations = [
        f"{path.relative_to(CLIENT_SRC)}:{line}: imports {name}"
        for path in sources
        for line, name in foreign_imports(
            path.read_text(encoding="utf-8"),
            module_name(path, CLIENT_SRC),
            path.name == "__init__.py",
        )
    ]
    assert not violations, "lethe_client must not need the server's stack:\n" + "\n".join(
        violations
    )


@pytest.mark.parametrize(
    "source",
    [
        "import django",
        "from governance.canonical import canonical_bytes",
        "def f():\n    import torch",
        "from rest_framework import serializers",
        "import importlib\nimportlib.import_module('unlearning')",
        "from .. import governance",
    ],
)
def test_checker_catches_planted_import(source):
    assert foreign_imports(source, "lethe_client.planted", False)


def test_fresh_interpreter_loads_no_django_or_torch():
    code = (
        "import sys, lethe_client, lethe_client.client, lethe_client.cli, lethe_client.verify\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'django', 'torch', 'governance', 'unlearning', 'rest_framework', 'celery'})\n"
        "print(','.join(bad))\n"
    )
    env = {"PATH": "/usr/bin:/bin"}
    prelude = f"import sys; sys.path.insert(0, {str(CLIENT_SRC)!r})\n"
    done = subprocess.run(
        [sys.executable, "-I", "-c", prelude + code],
        capture_output=True, text=True, env=env, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"lethe_client loaded {done.stdout.strip()}"
