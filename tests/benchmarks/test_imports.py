"""Every import in the benchmarks resolves, the ones inside functions included: a benchmark runs for
minutes before it reaches them, and a name moved between modules surfaced only then (the alert
latency benchmark imported `stack_context` from where it no longer lived)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from iot_core.settings import PROJECT_ROOT

FILES = sorted((PROJECT_ROOT / "benchmarks").rglob("*.py"))


def _imports(path: Path) -> list[tuple[str, str | None, int]]:
    """(module, name or None, line) of every absolute import in the file, nested ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [(node.module, alias.name, node.lineno) for alias in node.names if alias.name != "*"]
        elif isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names]
    return found


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_every_import_of_the_benchmark_resolves(path):
    missing = []
    for module, name, line in _imports(path):
        if module.split(".")[0] not in {"benchmarks", "iot_core", "ml", "alerts", "dlt_pipelines", "generators",
                                        "dbt_project", "orchestration", "iot_cli", "trips", "warehouse",
                                        "privacy", "dashboard", "api", "exports", "quality"}:
            continue   # third-party: the locked environment's business
        try:
            imported = importlib.import_module(module)
        except ImportError as e:
            missing.append(f"line {line}: {module}: {e}")
            continue
        if name is not None and not hasattr(imported, name):
            try:
                importlib.import_module(f"{module}.{name}")
            except ImportError:
                missing.append(f"line {line}: {module} has no {name}")
    assert not missing, missing
