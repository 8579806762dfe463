"""Builders of cluster-database states and commands for the pure tests, and the helpers that
apply commands to them."""
import copy

from clusterd import db
from clusterd.errors import CODES

NAMES = ("node1", "node2", "node3")
AT = 1_700_000_000.0


# -- builders ---------------------------------------------------------------------------------
def member(name, i):
    return {"name": name, "raft": f"127.0.0.1:{7100 + i}", "heartbeat": f"127.0.0.1:{7200 + i}",
            "api": f"127.0.0.1:{7300 + i}", "votes": 1,
            "host_ref": f"OpaqueRef:host-{name}", "host_uuid": f"uuid-host-{name}",
            "pif_ref": f"OpaqueRef:pif-{name}", "pif_uuid": f"uuid-pif-{name}"}


def ch_ids(names, tag="a"):
    return {n: [f"OpaqueRef:ch-{tag}-{n}", f"uuid-ch-{tag}-{n}"] for n in names}


def bootstrap_cmd(names=NAMES, **over):
    cmd = {
        "op": "member.bootstrap", "rid": "bootstrap", "at": AT,
        "members": [member(n, i) for i, n in enumerate(names)],
        "network": {"ref": "OpaqueRef:net", "uuid": "uuid-net"},
        "ref": "OpaqueRef:cluster", "uuid": "uuid-cluster",
        "cluster_stack": "corosync", "pool_auto_join": True,
        "token_timeout": 1.0, "token_timeout_coefficient": 0.65,
        "cluster_config": {"token_timeout": "1.0", "token_timeout_coefficient": "0.65"},
        "cluster_host_ids": ch_ids(names),
    }
    cmd.update(over)
    return cmd


def create_cmd(hosts, stack="corosync", ref="OpaqueRef:cluster2", tag="b", **over):
    cmd = {"op": "cluster.create", "at": AT + 10, "hosts": list(hosts), "ref": ref, "uuid": "uuid-cluster2",
           "cluster_stack": stack, "pool_auto_join": False, "token_timeout": 2.0,
           "token_timeout_coefficient": 1.0, "cluster_config": {},
           "cluster_host_ids": ch_ids(hosts, tag)}
    cmd.update(over)
    return cmd


def booted(names=NAMES, live=None):
    s = db.initial_state()
    assert db.apply(s, bootstrap_cmd(names)) == {"ok": "OpaqueRef:cluster"}
    if live is not None:
        assert db.apply(s, {"op": "membership.view", "live": list(live), "at": AT + 1, "by": names[0]}) == {"ok": None}
    return s


# -- applying commands --------------------------------------------------------------------------
def run(s, op, **fields):
    """Apply one command and return its result."""
    return db.apply(s, {"op": op, "at": fields.pop("at", AT), **fields})


def ok(s, op, **fields):
    result = run(s, op, **fields)
    assert set(result) == {"ok"}, result
    return result["ok"]


def refused_before_submit(s, op, expected, number=None, **fields):
    """Refused with `expected` (and its number) by the precheck, so before anything is
    submitted, and by apply too; the state is exactly what it was."""
    before = copy.deepcopy(s)
    cmd = {"op": op, "at": AT, **fields}
    pre = db.precheck(s, cmd)
    assert pre is not None and pre["error"]["code"] == expected, pre
    result = db.apply(s, cmd)
    assert result["error"]["code"] == expected, result
    assert result["error"]["number"] == CODES[expected][0]
    if number is not None:
        assert result["error"]["number"] == number
    assert s == before
    return result["error"]
