"""The tables the core runs on do not depend on what else was imported: a tool that imports
clusterd.db alone applies every command exactly as the daemon, which imports everything, does."""
import json
import subprocess
import sys

SHOW = """
import json, sys
import {module}
from clusterd import db, groups
print(json.dumps({{
    "handlers": sorted([op, fn.__module__, fn.__qualname__, getattr(needs, "__qualname__", None)]
                       for op, (needs, fn) in db.HANDLERS.items()),
    "report_hooks": [[f.__module__, f.__qualname__] for f in groups.REPORT_HOOKS],
}}))
"""


def tables(module):
    """The tables as a fresh interpreter that imported only `module` (and db) holds them."""
    out = subprocess.run([sys.executable, "-c", SHOW.format(module=module)], capture_output=True, text=True,
                         timeout=60, check=True)
    return json.loads(out.stdout)


def test_importing_db_alone_gives_the_daemons_handler_table_and_report_hooks():
    alone, daemon = tables("clusterd.db"), tables("clusterd.daemon")
    assert alone == daemon
    ops = {h[0] for h in daemon["handlers"]}
    assert {"member.bootstrap", "group.create", "group.move", "node.pause", "domain.request", "fence.request"} <= ops
    assert daemon["report_hooks"]  # moves advances a move on each resource report
