"""The engine stays Django-free: unlearning/ never imports the web, queue or governance layers.

DESIGN §3 and STYLE §3.4. The check is static (ast), so it also sees imports hidden under
`if TYPE_CHECKING:` or inside functions, which an import-time check would miss.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ENGINE = REPO / "unlearning"

FORBIDDEN = frozenset(
    {
        "django",
        "rest_framework",
        "drf_spectacular",
        "django_celery_beat",
        "celery",
        "kombu",
        "governance",
        "celery_worker",
    }
)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported_names(node: ast.AST, package: list[str]) -> list[str] | None:
    """Absolute names an import statement may load; None when it climbs above the root."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level == 0:
            base = node.module or ""
        else:
            if node.level - 1 > len(package):
                return None
            base_parts = package[: len(package) - (node.level - 1)]
            base = ".".join([*base_parts, *([node.module] if node.module else [])])
        # `from x import y` may load the module x.y, so y counts as part of the name.
        return [".".join(filter(None, [base, alias.name])) for alias in node.names]
    if (
        isinstance(node, ast.Call)
        and _is_dynamic_import(node.func)
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        return [node.args[0].value]
    return []


def _is_dynamic_import(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id in ("__import__", "import_module")
    return isinstance(func, ast.Attribute) and func.attr == "import_module"


def forbidden_imports(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, imported name) for every import of a forbidden top-level package."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(source)):
        names = _imported_names(node, package)
        if names is None:
            found.append((node.lineno, "a module above the top-level package"))
            continue
        found.extend((node.lineno, name) for name in names if name.split(".")[0] in FORBIDDEN)
    return sorted(found)


def engine_violations(repo: Path) -> list[str]:
    """`path:line: imports name` for every forbidden import under repo/unlearning."""
    return [
        f"{path.relative_to(repo)}:{line}: imports {name}"
        for path in sorted((repo / "unlearning").rglob("*.py"))
        for line, name in forbidden_imports(
            path.read_text(encoding="utf-8"), module_name(path, repo), path.name == "__init__.py"
        )
    ]


def test_engine_imports_no_web_queue_or_governance_code():
    assert list(ENGINE.rglob("*.py")), f"no engine sources found under {ENGINE}"
    violations = engine_violations(REPO)
    assert not violations, "unlearning/ must stay Django-free:\n" + "\n".join(violations)


def test_scan_reports_file_and_line_of_planted_import(tmp_path):
    (tmp_path / "unlearning" / "sub").mkdir(parents=True)
    (tmp_path / "unlearning" / "__init__.py").write_text("")
    (tmp_path / "unlearning" / "sub" / "__init__.py").write_text("from ... import governance\n")
    (tmp_path / "unlearning" / "sub" / "bad.py").write_text("import torch\nimport celery\n")

    assert engine_violations(tmp_path) == [
        "unlearning/sub/__init__.py:1: imports governance",
        "unlearning/sub/bad.py:2: imports celery",
    ]


@pytest.mark.parametrize(
    "source",
    [
        "import django",
        "import os, django.db.models as m",
        "from rest_framework import serializers",
        "from celery import shared_task",
        "import celery_worker.tasks",
        "from governance.models import ErasureRequest",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from django.db import models",
        "def f():\n    from governance import services",
        "from ... import governance",
        "from ...governance.services import erasure_request_execute",
        "from ...django import conf",
        "from .... import anything",
        "import importlib\nimportlib.import_module('django.conf')",
        "__import__('celery')",
    ],
)
def test_checker_catches_planted_import(source):
    assert forbidden_imports(source, "unlearning.sub.planted")


@pytest.mark.parametrize(
    "source",
    [
        "import torch",
        "import djangoish",
        "from . import partition",
        "from .governance_map import translate",
        "from .. import training",
        "from .. import governance",  # unlearning.governance: engine code, not the app
        "from unlearning.celery_free import x",
        "from __future__ import annotations",
    ],
)
def test_checker_allows_engine_imports(source):
    assert forbidden_imports(source, "unlearning.sub.planted") == []


def test_checker_reports_file_line():
    source = "import torch\n\nfrom django.db import models\n"
    assert forbidden_imports(source, "unlearning.planted") == [(3, "django.db.models")]


def test_relative_import_resolves_from_a_package_init():
    # In unlearning/sub/__init__.py, `from .. import governance` means unlearning.governance.
    assert forbidden_imports("from .. import governance", "unlearning.sub", is_package=True) == []
    assert forbidden_imports("from ... import governance", "unlearning.sub", is_package=True)


def test_web_and_worker_modules_do_not_load_torch_at_import():
    # A forked worker hangs if its parent ran torch threads, and importing torch costs
    # seconds per web process: governance and the tasks load the engine lazily.
    import subprocess
    import sys

    code = (
        "import os, sys; os.environ['DJANGO_SETTINGS_MODULE'] = 'governance.settings'\n"
        "import django; django.setup()\n"
        "import governance.urls, governance.api.urls, governance.admin, celery_worker.tasks\n"
        "print('torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "False"


# --- layout: small modules, and the environment read in one place -------------------------

SIZE_LIMITS = {"governance": 500, "celery_worker": 500, "unlearning": 320}


def oversized_modules(repo: Path) -> list[str]:
    """`path: N lines (limit L)` for every module over its package's limit (not migrations)."""
    found = []
    for package, limit in SIZE_LIMITS.items():
        for path in sorted((repo / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > limit:
                found.append(f"{path.relative_to(repo)}: {lines} lines (limit {limit})")
    return found


def test_no_module_outgrows_its_limit():
    oversized = oversized_modules(REPO)
    assert not oversized, "split these modules by what they do:\n" + "\n".join(oversized)


def test_size_check_names_an_oversized_module(tmp_path):
    (tmp_path / "governance" / "migrations").mkdir(parents=True)
    (tmp_path / "governance" / "big.py").write_text("x = 1\n" * 501)
    (tmp_path / "governance" / "migrations" / "0001_big.py").write_text("x = 1\n" * 900)
    (tmp_path / "governance" / "fine.py").write_text("x = 1\n" * 500)
    assert oversized_modules(tmp_path) == ["governance/big.py: 501 lines (limit 500)"]


# Settings is the one module that reads the environment. Elsewhere a module may only give a
# variable a default for the libraries that read it (os.environ.setdefault: the standard
# DJANGO_SETTINGS_MODULE bootstrap, or HF_HUB_OFFLINE for transformers): that reads nothing.
ENV_HOME = Path("governance/setting_env.py")


def environment_reads(source: str) -> list[int]:
    """Lines that read os.environ or os.getenv (``os.environ.setdefault`` only writes a default)."""
    tree = ast.parse(source)
    names = ("environ", "getenv", "environb")
    defaults = {
        id(n.func.value) for n in ast.walk(tree) if isinstance(n, ast.Call) and _is_default(n)
    }
    lines = {
        node.lineno
        for node in ast.walk(tree)
        if (
            isinstance(node, ast.Attribute)
            and node.attr in names
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
            and id(node) not in defaults
        )
        or (
            isinstance(node, ast.ImportFrom)
            and node.module == "os"
            and any(alias.name in names for alias in node.names)
        )
    }
    return sorted(lines)


def _is_default(call: ast.Call) -> bool:
    """``os.environ.setdefault(NAME, value)`` with a literal name."""
    func = call.func
    return (
        isinstance(func, ast.Attribute)
        and func.attr == "setdefault"
        and isinstance(func.value, ast.Attribute)
        and func.value.attr == "environ"
        and bool(call.args)
        and isinstance(call.args[0], ast.Constant)
    )


def test_only_settings_reads_the_environment():
    offenders = [
        f"{path.relative_to(REPO)}:{line}"
        for package in ("governance", "celery_worker")
        for path in sorted((REPO / package).rglob("*.py"))
        if path.relative_to(REPO) != ENV_HOME
        for line in environment_reads(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, f"read the environment in {ENV_HOME}:\n" + "\n".join(offenders)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import os\nx = os.environ.get('X')", [2]),
        ("import os\nx = os.getenv('X')", [2]),
        ("import os\nx = os.environ['X']", [2]),
        ("from os import environ", [1]),
        ("import os\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'governance.settings')", []),
        ("import os\nos.environ.setdefault('HF_HUB_OFFLINE', '1')", []),
        ("import os\nx = os.environ.setdefault('X', '1') or os.environ.get('Y')", [2]),
        ("import os\nif 'X' in os.environ: pass", [2]),
        ("from django.conf import settings\nx = settings.LETHE_X", []),
    ],
)
def test_environment_check_finds_reads(source, expected):
    assert environment_reads(source) == expected
