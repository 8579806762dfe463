"""The tables the daemon runs on do not depend on what else was imported: a tool that imports
clusterd.db alone applies every command exactly as the daemon, which imports everything, does,
and one that imports clusterd.rpc alone knows every API method."""
import json
import subprocess
import sys
import types

import pytest

from clusterd.declare import Declarations

SHOW = """
import json, sys
import {module}
from clusterd import {tables}
print(json.dumps({{{body}}}))
"""
HANDLERS = """
    "handlers": sorted([op, fn.__module__, fn.__qualname__, getattr(needs, "__qualname__", None)]
                       for op, (needs, fn) in db.HANDLERS.items()),
    "report_hooks": [[f.__module__, f.__qualname__] for f in groups.REPORT_HOOKS],
"""
METHODS = """
    "methods": sorted([name, m.fn.__module__, m.fn.__qualname__, m.role, m.params, m.session]
                      for name, m in rpc.METHODS.items()),
"""


def tables(module, tables, body):
    """The tables as a fresh interpreter that imported only `module` (and `tables`) holds them."""
    code = SHOW.format(module=module, tables=tables, body=body)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def test_importing_db_alone_gives_the_daemons_handler_table_and_report_hooks():
    alone, daemon = (tables(m, "db, groups", HANDLERS) for m in ("clusterd.db", "clusterd.daemon"))
    assert alone == daemon
    ops = {h[0] for h in daemon["handlers"]}
    assert {"member.bootstrap", "group.create", "group.move", "node.pause", "domain.request", "fence.request"} <= ops
    assert daemon["report_hooks"]  # moves advances a move on each resource report


def test_importing_rpc_alone_gives_the_daemons_method_table():
    alone, daemon = (tables(m, "rpc", METHODS) for m in ("clusterd.rpc", "clusterd.daemon"))
    assert alone == daemon
    names = {m[0] for m in daemon["methods"]}
    assert {"Cluster.get_all", "Group.move", "Node.pause", "Domain.switchover", "session.login_with_password"} <= names


def test_a_table_holds_only_the_named_modules_and_refuses_a_key_declared_twice():
    d = Declarations("thing")
    a, b, c = (types.ModuleType(n) for n in ("a", "b", "c"))
    d.declare("a", "x", 1)
    d.declare("b", "y", 2)
    d.declare("c", "x", 3)
    assert d.table(a, b) == {"x": 1, "y": 2} and d.table(b) == {"y": 2}
    with pytest.raises(ValueError, match="declared by a and c"):
        d.table(a, c)
    with pytest.raises(ValueError, match="declares the thing 'y' twice"):
        d.declare("b", "y", 4)
