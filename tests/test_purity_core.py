"""The functional core is pure by test: its modules import no clock, randomness, process,
thread or network module, at any depth of their source, and import nothing of the project but
one another. Only this lets every replica apply the same log to the same state, and lets the
core's tests run as plain tables."""
import ast

import pytest

from test_imports_core import import_graph, project_modules

CORE = ["clusterd." + m for m in (
    "db", "schema", "cluster", "commands", "declare", "errors", "groups", "moves", "pause", "domains", "failover", "events",
    "placement", "policy", "quorum", "lease", "timing", "plan", "decide")]
IMPURE = {"time", "os", "asyncio", "random", "uuid", "socket", "threading", "subprocess"}


def imported_names(path):
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            yield node.module


@pytest.mark.parametrize("module", CORE)
def test_a_core_module_imports_nothing_impure(module):
    path = project_modules()[module][0]
    assert {n.split(".")[0] for n in imported_names(path)} & IMPURE == set()


def test_the_core_imports_only_the_core():
    graph = import_graph()
    assert {m: [d for d in graph[m] if d not in CORE] for m in CORE} == {m: [] for m in CORE}


def test_the_check_sees_an_impure_import(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text("def f():\n    import time\n    from os import path\n    return time, path\n")
    assert {n.split(".")[0] for n in imported_names(str(planted))} & IMPURE == {"time", "os"}
