"""The functional core without sockets or processes: db.apply, quorum, membership.verify."""
import asyncio
import copy
import threading
import time
import types

import msgpack
import pytest

from clusterd import db, membership, quorum
from clusterd.errors import CODES

from builders import AT, NAMES, booted, bootstrap_cmd, ch_ids, create_cmd, member


def without_cluster(names=NAMES):
    s = booted(names)
    assert db.apply(s, {"op": "cluster.pool_force_destroy", "self": "OpaqueRef:cluster"}) == {"ok": None}
    return s


def code(result):
    assert set(result) == {"error"}, result
    return result["error"]["code"]


def host_of(state, name):
    return next(ch for ch in state["cluster_hosts"].values() if ch["host"] == name)


CREF = "OpaqueRef:cluster"


# -- bootstrap and create ---------------------------------------------------------------------
def test_bootstrap_records_members_network_and_cluster():
    s = db.initial_state()
    assert s["cluster"] is None and not s["bootstrapped"]
    assert db.apply(s, bootstrap_cmd()) == {"ok": CREF}
    assert s["bootstrapped"]
    assert sorted(s["members"]) == list(NAMES)
    assert s["network"] == {"ref": "OpaqueRef:net", "uuid": "uuid-net"}
    c = s["cluster"]
    assert c["ref"] == CREF and c["uuid"] == "uuid-cluster" and c["network"] == "OpaqueRef:net"
    assert c["cluster_stack"] == "corosync" and c["cluster_stack_version"] == db.CLUSTER_STACK_VERSION
    assert c["token_timeout"] == 1.0 and c["token_timeout_coefficient"] == 0.65
    assert c["cluster_token"] == "secret-token" and c["pool_auto_join"] is True
    assert c["other_config"] == {} and c["pending_forget"] == []
    assert sorted(ch["host"] for ch in s["cluster_hosts"].values()) == list(NAMES)
    for name, (ref, uuid) in ch_ids(NAMES).items():
        ch = s["cluster_hosts"][ref]
        assert ch["uuid"] == uuid and ch["host"] == name and ch["PIF"] == f"OpaqueRef:pif-{name}"
        assert ch["enabled"] and ch["joined"]
        assert ch["live"] is False and ch["last_update_live"] == AT  # no view committed yet
    assert s["applied"] == {"bootstrap": {"ok": CREF}}


def test_bootstrap_twice_is_refused():
    s = booted()
    before = copy.deepcopy(s)
    assert code(db.apply(s, bootstrap_cmd(rid=None))) == "CLUSTER_ALREADY_EXISTS"
    assert s == before


def test_bootstrap_with_a_bad_stack_changes_nothing():
    s = db.initial_state()
    before = copy.deepcopy(s)
    assert code(db.apply(s, bootstrap_cmd(cluster_stack="pacemaker", rid=None))) == "INVALID_CLUSTER_STACK"
    assert s == before


def test_bootstrap_copies_the_command_data():
    cmd = bootstrap_cmd()
    s = db.initial_state()
    db.apply(s, cmd)
    cmd["members"][0]["api"] = "changed"
    cmd["network"]["ref"] = "changed"
    assert s["members"]["node1"]["api"] == "127.0.0.1:7300"
    assert s["network"]["ref"] == "OpaqueRef:net"


def test_create_after_destroy_makes_one_cluster_host():
    s = without_cluster()
    assert db.apply(s, create_cmd(["node2"])) == {"ok": "OpaqueRef:cluster2"}
    assert s["cluster"]["ref"] == "OpaqueRef:cluster2"
    assert s["cluster"]["token_timeout"] == 2.0 and s["cluster"]["pool_auto_join"] is False
    assert [ch["host"] for ch in s["cluster_hosts"].values()] == ["node2"]


@pytest.mark.parametrize("stack", ["pacemaker", "", "Corosync", "corosync "])
def test_create_with_a_bad_stack(stack):
    s = without_cluster()
    before = copy.deepcopy(s)
    result = db.apply(s, create_cmd(["node1"], stack=stack))
    assert code(result) == "INVALID_CLUSTER_STACK"
    assert result["error"]["params"] == [stack]
    assert s == before


def test_create_when_a_cluster_exists():
    s = booted()
    before = copy.deepcopy(s)
    result = db.apply(s, create_cmd(["node1"]))
    assert code(result) == "CLUSTER_ALREADY_EXISTS" and result["error"]["params"] == [CREF]
    assert s == before


def test_create_on_an_unknown_host():
    s = without_cluster()
    before = copy.deepcopy(s)
    result = db.apply(s, create_cmd(["node1", "ghost"]))
    assert code(result) == "HANDLE_INVALID" and result["error"]["params"] == ["host", "ghost"]
    assert s == before


# -- destroy ------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_hosts", [2, 3])
def test_destroy_needs_exactly_one_host(n_hosts):
    s = booted(NAMES[:n_hosts])
    before = copy.deepcopy(s)
    result = db.apply(s, {"op": "cluster.destroy", "self": CREF})
    assert code(result) == "CLUSTER_DOES_NOT_HAVE_ONE_NODE"
    assert result["error"]["params"] == [str(n_hosts)]
    assert s == before


def test_destroy_with_no_cluster_host():
    s = without_cluster()
    db.apply(s, create_cmd([]))
    assert s["cluster_hosts"] == {}
    before = copy.deepcopy(s)
    assert code(db.apply(s, {"op": "cluster.destroy", "self": "OpaqueRef:cluster2"})) == "CLUSTER_DOES_NOT_HAVE_ONE_NODE"
    assert s == before


def test_destroy_with_one_host():
    s = booted(NAMES[:1])
    assert db.apply(s, {"op": "cluster.destroy", "self": CREF}) == {"ok": None}
    assert s["cluster"] is None and s["cluster_hosts"] == {}
    assert sorted(s["members"]) == ["node1"]  # members stay: only the Cluster goes


def test_pool_destroy_refuses_a_disabled_host():
    s = booted()
    ref = host_of(s, "node2")["ref"]
    s["cluster_hosts"][ref]["enabled"] = False
    before = copy.deepcopy(s)
    result = db.apply(s, {"op": "cluster.pool_destroy", "self": CREF})
    assert code(result) == "CLUSTERING_DISABLED" and result["error"]["params"] == [ref]
    assert s == before


def test_pool_destroy_and_force_destroy():
    s = booted()
    assert db.apply(s, {"op": "cluster.pool_destroy", "self": CREF}) == {"ok": None}
    assert s["cluster"] is None and s["cluster_hosts"] == {}
    s = booted()
    host_of(s, "node3")["enabled"] = False
    assert db.apply(s, {"op": "cluster.pool_force_destroy", "self": CREF}) == {"ok": None}
    assert s["cluster"] is None


def test_pool_resync_creates_missing_hosts_and_enables_all():
    s = booted()
    r2 = host_of(s, "node2")["ref"]
    del s["cluster_hosts"][host_of(s, "node3")["ref"]]
    s["cluster_hosts"][r2]["enabled"] = s["cluster_hosts"][r2]["joined"] = False
    result = db.apply(s, {"op": "cluster.pool_resync", "self": CREF, "at": AT + 5,
                          "cluster_host_ids": ch_ids(NAMES, "r")})
    assert result == {"ok": None}
    assert sorted(ch["host"] for ch in s["cluster_hosts"].values()) == list(NAMES)
    assert "OpaqueRef:ch-r-node3" in s["cluster_hosts"]
    assert "OpaqueRef:ch-r-node1" not in s["cluster_hosts"]  # node1 had one already
    assert all(ch["enabled"] and ch["joined"] for ch in s["cluster_hosts"].values())


# -- wrong handle: every Cluster command ------------------------------------------------------
CLUSTER_OPS = [
    {"op": "cluster.destroy"},
    {"op": "cluster.pool_destroy"},
    {"op": "cluster.pool_force_destroy"},
    {"op": "cluster.pool_resync", "at": AT, "cluster_host_ids": ch_ids(NAMES, "x")},
    {"op": "cluster.set_other_config", "value": {"a": "b"}},
    {"op": "cluster.add_to_other_config", "key": "a", "value": "b"},
    {"op": "cluster.remove_from_other_config", "key": "a"},
    {"op": "cluster.cas_other_config", "key": "a", "expected": None, "new": "b"},
]


@pytest.mark.parametrize("cmd", CLUSTER_OPS, ids=[c["op"] for c in CLUSTER_OPS])
@pytest.mark.parametrize("ref", ["OpaqueRef:other", "", "opaqueref:cluster"], ids=["other-ref", "empty", "case"])
def test_cluster_commands_with_a_wrong_handle(cmd, ref):
    s = booted()
    before = copy.deepcopy(s)
    result = db.apply(s, dict(cmd, self=ref))
    assert code(result) == "HANDLE_INVALID"
    assert result["error"]["params"][0] == "Cluster"
    assert s == before


@pytest.mark.parametrize("cmd", CLUSTER_OPS, ids=[c["op"] for c in CLUSTER_OPS])
def test_cluster_commands_without_a_cluster(cmd):
    s = without_cluster()
    before = copy.deepcopy(s)
    assert code(db.apply(s, dict(cmd, self=CREF))) == "HANDLE_INVALID"
    assert s == before


# -- other_config -----------------------------------------------------------------------------
def test_other_config_set_add_remove():
    s = booted()
    assert db.apply(s, {"op": "cluster.set_other_config", "self": CREF, "value": {"a": "1", "b": "2"}}) == {"ok": None}
    assert s["cluster"]["other_config"] == {"a": "1", "b": "2"}
    assert db.apply(s, {"op": "cluster.add_to_other_config", "self": CREF, "key": "c", "value": "3"}) == {"ok": None}
    assert db.apply(s, {"op": "cluster.remove_from_other_config", "self": CREF, "key": "a"}) == {"ok": None}
    assert db.apply(s, {"op": "cluster.remove_from_other_config", "self": CREF, "key": "absent"}) == {"ok": None}
    assert s["cluster"]["other_config"] == {"b": "2", "c": "3"}
    assert db.apply(s, {"op": "cluster.set_other_config", "self": CREF, "value": {}}) == {"ok": None}
    assert s["cluster"]["other_config"] == {}


def test_set_other_config_copies_the_map():
    s = booted()
    value = {"a": "1"}
    db.apply(s, {"op": "cluster.set_other_config", "self": CREF, "value": value})
    value["a"] = "changed"
    assert s["cluster"]["other_config"] == {"a": "1"}


def test_add_to_other_config_duplicate_key():
    s = booted()
    db.apply(s, {"op": "cluster.add_to_other_config", "self": CREF, "key": "k", "value": "v1"})
    before = copy.deepcopy(s)
    result = db.apply(s, {"op": "cluster.add_to_other_config", "self": CREF, "key": "k", "value": "v2"})
    assert code(result) == "MAP_DUPLICATE_KEY"
    assert result["error"]["params"] == ["Cluster", "other_config", CREF, "k"]
    assert s == before
    assert s["cluster"]["other_config"] == {"k": "v1"}


CAS_CASES = [
    # start,           key, expected, new,  swapped, value-before, after
    ({}, "k", None, "1", True, None, {"k": "1"}),  # absent -> create
    ({}, "k", "0", "1", False, None, {}),  # expected a value, key absent
    ({"k": "0"}, "k", "0", "1", True, "0", {"k": "1"}),  # match -> swap
    ({"k": "0"}, "k", "9", "1", False, "0", {"k": "0"}),  # mismatch
    ({"k": "0"}, "k", None, "1", False, "0", {"k": "0"}),  # expected absent, key present
    ({"k": "0"}, "k", "0", None, True, "0", {}),  # match -> remove
    ({}, "k", None, None, True, None, {}),  # absent -> stays absent
    ({"k": "0", "o": "x"}, "o", "x", "y", True, "x", {"k": "0", "o": "y"}),  # other keys untouched
]


@pytest.mark.parametrize("start,key,expected,new,swapped,value,after", CAS_CASES)
def test_cas_other_config(start, key, expected, new, swapped, value, after):
    s = booted()
    s["cluster"]["other_config"] = dict(start)
    result = db.apply(s, {"op": "cluster.cas_other_config", "self": CREF, "key": key,
                          "expected": expected, "new": new})
    assert result == {"ok": {"swapped": swapped, "value": value}}
    assert s["cluster"]["other_config"] == after


def test_cas_is_a_lock():
    """Two contenders with the same expectation: exactly one wins."""
    s = booted()
    first = db.apply(s, {"op": "cluster.cas_other_config", "self": CREF, "key": "lock",
                         "expected": None, "new": "A"})
    second = db.apply(s, {"op": "cluster.cas_other_config", "self": CREF, "key": "lock",
                          "expected": None, "new": "B"})
    assert first["ok"] == {"swapped": True, "value": None}
    assert second["ok"] == {"swapped": False, "value": "A"}
    assert s["cluster"]["other_config"] == {"lock": "A"}


# -- membership.view --------------------------------------------------------------------------
def view(s, live, at, by="node1"):
    return db.apply(s, {"op": "membership.view", "live": live, "at": at, "by": by})


def test_view_updates_live_and_last_update_live_only_on_change():
    s = booted()
    assert view(s, ["node2", "node1"], AT + 1) == {"ok": None}
    assert s["view"] == {"live": ["node1", "node2"], "at": AT + 1, "by": "node1"}
    assert {ch["host"]: (ch["live"], ch["last_update_live"]) for ch in s["cluster_hosts"].values()} == {
        "node1": (True, AT + 1), "node2": (True, AT + 1), "node3": (False, AT)}
    view(s, ["node1", "node2", "node3"], AT + 2)
    assert {ch["host"]: (ch["live"], ch["last_update_live"]) for ch in s["cluster_hosts"].values()} == {
        "node1": (True, AT + 1), "node2": (True, AT + 1), "node3": (True, AT + 2)}
    view(s, ["node1", "node3"], AT + 3, by="node3")
    assert s["view"] == {"live": ["node1", "node3"], "at": AT + 3, "by": "node3"}
    assert {ch["host"]: (ch["live"], ch["last_update_live"]) for ch in s["cluster_hosts"].values()} == {
        "node1": (True, AT + 1), "node2": (False, AT + 3), "node3": (True, AT + 2)}


def test_same_view_again_changes_no_cluster_host():
    s = booted(live=["node1", "node2", "node3"])
    hosts = copy.deepcopy(s["cluster_hosts"])
    view(s, ["node3", "node2", "node1"], AT + 50)
    assert s["cluster_hosts"] == hosts
    assert s["view"]["at"] == AT + 50


def test_view_ignores_non_members():
    s = booted()
    view(s, ["node1", "intruder"], AT + 1)
    assert s["view"]["live"] == ["node1"]
    assert all(ch["host"] != "intruder" for ch in s["cluster_hosts"].values())


def test_view_before_a_cluster_exists_is_recorded():
    s = without_cluster()
    view(s, ["node1"], AT + 1)
    assert s["view"]["live"] == ["node1"] and s["cluster_hosts"] == {}


def test_new_cluster_host_takes_live_from_the_committed_view():
    s = without_cluster()
    view(s, ["node1"], AT + 1)
    db.apply(s, create_cmd(["node1"]))
    ch = host_of(s, "node1")
    assert ch["live"] is True and ch["last_update_live"] == AT + 10


# -- member.add / member.remove ---------------------------------------------------------------
def add_cmd(name, i, **over):
    m = member(name, i)
    m.update(over)
    return {"op": "member.add", "member": m, "at": AT + 20, "cluster_host_ids": ch_ids([name], "add")}


def test_member_add_with_pool_auto_join_makes_a_cluster_host():
    s = booted()
    assert db.apply(s, add_cmd("node4", 3)) == {"ok": None}
    assert s["members"]["node4"]["api"] == "127.0.0.1:7303"
    ch = host_of(s, "node4")
    assert ch["ref"] == "OpaqueRef:ch-add-node4" and ch["enabled"] and ch["last_update_live"] == AT + 20


def test_member_add_without_pool_auto_join():
    s = booted()
    s["cluster"]["pool_auto_join"] = False
    assert db.apply(s, add_cmd("node4", 3)) == {"ok": None}
    assert "node4" in s["members"]
    assert all(ch["host"] != "node4" for ch in s["cluster_hosts"].values())


def test_member_add_without_a_cluster():
    s = without_cluster()
    assert db.apply(s, add_cmd("node4", 3)) == {"ok": None}
    assert "node4" in s["members"] and s["cluster_hosts"] == {}


@pytest.mark.parametrize("name,i,over", [
    ("node2", 9, {}),  # the name exists
    ("node4", 9, {"raft": "127.0.0.1:7100"}),  # node1's raft address
    ("node4", 9, {"heartbeat": "127.0.0.1:7201"}),  # node2's heartbeat
    ("node4", 9, {"api": "127.0.0.1:7302"}),  # node3's api
    ("node4", 9, {"api": "127.0.0.1:7100"}),  # another member's raft address, as api
], ids=["name", "raft", "heartbeat", "api", "cross-kind"])
def test_member_add_refusals(name, i, over):
    s = booted()
    before = copy.deepcopy(s)
    assert code(db.apply(s, add_cmd(name, i, **over))) == "INVALID_VALUE"
    assert s == before


def test_member_remove():
    s = booted(live=NAMES)
    assert db.apply(s, {"op": "member.remove", "name": "node2"}) == {"ok": None}
    assert sorted(s["members"]) == ["node1", "node3"]
    assert sorted(ch["host"] for ch in s["cluster_hosts"].values()) == ["node1", "node3"]
    assert s["view"]["live"] == ["node1", "node3"]


def test_member_remove_unknown():
    s = booted()
    before = copy.deepcopy(s)
    result = db.apply(s, {"op": "member.remove", "name": "ghost"})
    assert code(result) == "HANDLE_INVALID" and result["error"]["params"] == ["host", "ghost"]
    assert s == before


def test_member_remove_last():
    s = booted(NAMES[:2])
    assert db.apply(s, {"op": "member.remove", "name": "node1"}) == {"ok": None}
    before = copy.deepcopy(s)
    assert code(db.apply(s, {"op": "member.remove", "name": "node2"})) == "CLUSTER_HOST_IS_LAST"
    assert s == before


# -- request ids ----------------------------------------------------------------------------
def test_a_retried_write_applies_once_and_returns_the_first_result():
    s = booted()
    cmd = {"op": "cluster.cas_other_config", "self": CREF, "key": "n", "expected": None, "new": "1", "rid": "r1"}
    first = db.apply(s, cmd)
    assert first == {"ok": {"swapped": True, "value": None}}
    s["cluster"]["other_config"]["n"] = "changed-since"
    snapshot = copy.deepcopy(s)
    again = db.apply(s, dict(cmd))
    assert again == first  # not {"swapped": False, "value": "changed-since"}
    assert s == snapshot


def test_a_retried_refusal_returns_the_same_refusal():
    s = booted()
    db.apply(s, {"op": "cluster.add_to_other_config", "self": CREF, "key": "k", "value": "v"})
    refused = db.apply(s, {"op": "cluster.add_to_other_config", "self": CREF, "key": "k", "value": "w", "rid": "r2"})
    assert code(refused) == "MAP_DUPLICATE_KEY"
    db.apply(s, {"op": "cluster.remove_from_other_config", "self": CREF, "key": "k"})
    # the same request retried after the key went away: still the first answer, still not applied
    again = db.apply(s, {"op": "cluster.add_to_other_config", "self": CREF, "key": "k", "value": "w", "rid": "r2"})
    assert again == refused
    assert s["cluster"]["other_config"] == {}


def test_a_rid_is_remembered_across_different_ops():
    s = booted()
    db.apply(s, {"op": "cluster.add_to_other_config", "self": CREF, "key": "a", "value": "1", "rid": "same"})
    result = db.apply(s, {"op": "cluster.add_to_other_config", "self": CREF, "key": "b", "value": "2", "rid": "same"})
    assert result == {"ok": None}
    assert s["cluster"]["other_config"] == {"a": "1"}


def test_commands_without_rid_are_not_deduplicated():
    s = booted()
    cmd = {"op": "cluster.cas_other_config", "self": CREF, "key": "n", "expected": None, "new": "1"}
    assert db.apply(s, dict(cmd))["ok"]["swapped"] is True
    assert db.apply(s, dict(cmd))["ok"] == {"swapped": False, "value": "1"}
    assert s["applied"] == {"bootstrap": {"ok": CREF}}


def test_dedup_table_is_bounded_oldest_first(monkeypatch):
    monkeypatch.setattr(db, "DEDUP_KEEP", 3)
    s = booted()
    for i in range(5):
        db.apply(s, {"op": "cluster.add_to_other_config", "self": CREF, "key": f"k{i}", "value": "v", "rid": f"r{i}"})
    assert list(s["applied"]) == ["r2", "r3", "r4"]


# -- every refusal leaves the state exactly as it was -------------------------------------------
def _disable_node2(s):
    host_of(s, "node2")["enabled"] = False


def _add_key(s):
    s["cluster"]["other_config"]["k"] = "v"


REFUSALS = [
    # (name, prepare(state) or None, command, code)
    ("bootstrap-again", None, bootstrap_cmd(), "CLUSTER_ALREADY_EXISTS"),
    ("create-exists", None, create_cmd(["node1"]), "CLUSTER_ALREADY_EXISTS"),
    ("destroy-3-hosts", None, {"op": "cluster.destroy", "self": CREF}, "CLUSTER_DOES_NOT_HAVE_ONE_NODE"),
    ("pool-destroy-disabled", _disable_node2, {"op": "cluster.pool_destroy", "self": CREF}, "CLUSTERING_DISABLED"),
    ("add-duplicate", _add_key, {"op": "cluster.add_to_other_config", "self": CREF, "key": "k", "value": "x"},
     "MAP_DUPLICATE_KEY"),
    ("set-wrong-ref", None, {"op": "cluster.set_other_config", "self": "OpaqueRef:nope", "value": {}}, "HANDLE_INVALID"),
    ("cas-wrong-ref", None, {"op": "cluster.cas_other_config", "self": "x", "key": "k", "expected": None, "new": "v"},
     "HANDLE_INVALID"),
    ("member-add-dup", None, add_cmd("node1", 5), "INVALID_VALUE"),
    ("member-add-addr", None, add_cmd("node9", 9, raft="127.0.0.1:7102"), "INVALID_VALUE"),
    ("member-remove-unknown", None, {"op": "member.remove", "name": "nobody"}, "HANDLE_INVALID"),
    ("unknown-op", None, {"op": "cluster.explode", "self": CREF}, "MESSAGE_METHOD_UNKNOWN"),
    ("no-op", None, {"self": CREF}, "MESSAGE_METHOD_UNKNOWN"),
    ("op-not-a-string", None, {"op": ["cluster.destroy"]}, "MESSAGE_METHOD_UNKNOWN"),
]


@pytest.mark.parametrize("prepare,cmd,expected", [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
@pytest.mark.parametrize("with_rid", [False, True], ids=["no-rid", "rid"])
def test_every_refusal_leaves_the_state_unchanged(prepare, cmd, expected, with_rid):
    s = booted(live=["node1", "node2"])
    if prepare:
        prepare(s)
    before = copy.deepcopy(s)
    cmd = copy.deepcopy(cmd)
    cmd.pop("rid", None)
    if with_rid:
        cmd["rid"] = "refused-1"
    result = db.apply(s, cmd)
    assert code(result) == expected
    assert result["error"]["code"] in CODES
    if with_rid and expected != "MESSAGE_METHOD_UNKNOWN":
        # the refusal is remembered so that a retry gets the same answer; nothing else moves
        assert s["applied"].pop("refused-1") == result
    assert s == before


@pytest.mark.parametrize("command", [None, 42, "member.bootstrap", ["op"], b"\x00"])
def test_apply_refuses_a_command_that_is_not_a_map(command):
    s = booted()
    before = copy.deepcopy(s)
    assert code(db.apply(s, command)) == "MESSAGE_METHOD_UNKNOWN"
    assert s == before


def test_results_are_plain_data():
    """Results are committed and sent back through msgpack: they must round-trip."""
    s = db.initial_state()
    results = [db.apply(s, bootstrap_cmd()),
               db.apply(s, {"op": "cluster.destroy", "self": CREF}),
               db.apply(s, {"op": "cluster.cas_other_config", "self": CREF, "key": "k", "expected": None, "new": "v"})]
    for r in results:
        assert msgpack.unpackb(msgpack.packb(r), raw=False) == r
    assert msgpack.unpackb(msgpack.packb(s), raw=False, strict_map_key=False) == s


def test_apply_is_deterministic():
    """Two replicas fed the same commands end in the same state."""
    cmds = [bootstrap_cmd(), {"op": "membership.view", "live": ["node1", "node3"], "at": AT + 1, "by": "node1"},
            {"op": "cluster.add_to_other_config", "self": CREF, "key": "a", "value": "1", "rid": "x"},
            add_cmd("node4", 3), {"op": "member.remove", "name": "node3"},
            {"op": "cluster.add_to_other_config", "self": CREF, "key": "a", "value": "2", "rid": "y"}]
    a, b = db.initial_state(), db.initial_state()
    ra = [db.apply(a, copy.deepcopy(c)) for c in cmds]
    rb = [db.apply(b, copy.deepcopy(c)) for c in cmds]
    assert ra == rb and a == b


# -- quorum -------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,expected", [(1, 1.0), (2, 1.0), (3, 1.65), (4, 2.3), (5, 2.95), (6, 3.6)])
def test_effective_token(n, expected):
    assert quorum.effective_token(1.0, 0.65, n) == pytest.approx(expected)


@pytest.mark.parametrize("n,expected", [(1, 20.0), (2, 20.0), (3, 21.0), (4, 22.0), (5, 23.0), (6, 24.0)])
def test_effective_token_xapi_defaults(n, expected):
    assert quorum.effective_token(20, 1, n) == pytest.approx(expected)


@pytest.mark.parametrize("expected_votes,q", [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (6, 4), (7, 4)])
def test_quorum_votequorum(expected_votes, q):
    assert quorum.quorum(expected_votes, expected_votes) == q
    # fewer votes present never lowers quorum below what expected demands
    for total in range(0, expected_votes + 1):
        assert quorum.quorum(expected_votes, total) == q


@pytest.mark.parametrize("expected_votes,total,q", [(3, 5, 3), (1, 4, 3), (2, 7, 4)])
def test_quorum_follows_total_votes_when_they_exceed_expected(expected_votes, total, q):
    assert quorum.quorum(expected_votes, total) == q


VIEW_CASES = [
    # members,            votes,         live,                         expected, live_hosts, total, quorum, quorate
    (["a"], {}, ["a"], None, 1, 1, 1, True),
    (["a", "b"], {}, ["a", "b"], None, 2, 2, 2, True),
    (["a", "b"], {}, ["a"], None, 1, 1, 2, False),  # two nodes: losing one loses quorum
    (["a", "b", "c"], {}, ["a", "b", "c"], None, 3, 3, 2, True),
    (["a", "b", "c"], {}, ["a", "c"], None, 2, 2, 2, True),
    (["a", "b", "c"], {}, ["b"], None, 1, 1, 2, False),
    (["a", "b", "c", "d"], {}, ["a", "b"], None, 2, 2, 3, False),  # even split: nobody quorate
    (["a", "b", "c", "d", "e"], {}, ["a", "b", "c"], None, 3, 3, 3, True),
    (["a", "b", "c"], {"a": 3}, ["a"], None, 1, 3, 3, True),  # votes weigh
    (["a", "b", "c"], {"a": 3}, ["b", "c"], None, 2, 2, 3, False),
    (["a", "b", "c"], {}, ["a", "x", "y"], None, 1, 1, 2, False),  # non-members do not count
    (["a", "b", "c"], {}, ["a", "b"], 5, 2, 2, 3, False),  # expected_votes given
]


@pytest.mark.parametrize("members,votes,live,expected_votes,live_hosts,total,q,quorate", VIEW_CASES)
def test_view(members, votes, live, expected_votes, live_hosts, total, q, quorate):
    v = quorum.view(members, votes, live, expected_votes)
    assert v == {"live": live, "live_hosts": live_hosts,
                 "expected_votes": expected_votes if expected_votes is not None
                 else sum(votes.get(m, 1) for m in members),
                 "total_votes": total, "quorum": q, "is_quorate": quorate}


def test_live_members():
    heard = {"a": 100.0, "b": 98.5, "c": 97.0, "d": 98.0}
    assert quorum.live_members(heard, 100.0, 2.0, "self") == ["a", "b", "d", "self"]
    assert quorum.live_members(heard, 100.0, 0.5, "a") == ["a"]
    assert quorum.live_members({}, 100.0, 1.0, "me") == ["me"]


# -- membership: heartbeats -----------------------------------------------------------------
KEY = membership.heartbeat_key(b"a-cluster-token-of-some-length")


def packet(msg, key=KEY):
    return membership.sign(key, msgpack.packb(msg))


def test_verify_a_good_packet():
    assert membership.verify(KEY, packet([2, "node2", 123, 7, ["node1"]])) == [2, "node2", 123, 7, ["node1"]]


def test_heartbeat_key_depends_on_the_token():
    assert membership.heartbeat_key(b"one") != membership.heartbeat_key(b"two")
    assert len(KEY) == 32


def _flip_last_bit(p):
    return p[:-1] + bytes([p[-1] ^ 1])


def _flip_payload(p):
    return bytes([p[0] ^ 0x01]) + p[1:]


GOOD = packet([2, "node2", 123, 7, ["node1"]])
BAD_PACKETS = [
    ("bad-mac", _flip_last_bit(GOOD)),
    ("tampered-payload", GOOD[:-33] + bytes([GOOD[-33] ^ 1]) + GOOD[-32:]),
    ("tampered-first-byte", _flip_payload(GOOD)),
    ("other-key", packet([2, "node2", 123, 7, ["node1"]], key=membership.heartbeat_key(b"another-token"))),
    ("empty", b""),
    ("mac-only", GOOD[-32:]),
    ("truncated", GOOD[:-1]),
    ("truncated-payload", GOOD[1:]),
    ("short", GOOD[:10]),
    ("oversized", packet([2, "n" * 1500, 123, 7, []])),
    ("wrong-version-1", packet([1, "node2", 123, 7])),
    ("wrong-version-3", packet([3, "node2", 123, 7, []])),
    ("non-list-map", packet({"v": 1, "sender": "node2"})),
    ("non-list-int", packet(1)),
    ("non-list-str", packet("node2")),
    ("short-list", packet([2, "node2", 123, 7])),
    ("long-list", packet([2, "node2", 123, 7, [], 8])),
    ("sender-not-str", packet([2, 2, 123, 7, []])),
    ("incarnation-not-int", packet([2, "node2", "123", 7, []])),
    ("seq-float", packet([2, "node2", 123, 7.0, []])),
    ("heard-not-list", packet([2, "node2", 123, 7, "node1"])),
    ("heard-not-str", packet([2, "node2", 123, 7, ["node1", 3]])),
    ("heard-too-long", packet([2, "node2", 123, 7, ["n"] * (membership.MAX_HEARD + 1)])),
    ("not-msgpack", membership.sign(KEY, b"\xc1\xc1\xc1")),
    ("msgpack-extra-data", membership.sign(KEY, msgpack.packb([2, "node2", 1, 1, []]) + b"\x00")),
]


@pytest.mark.parametrize("data", [p for _, p in BAD_PACKETS], ids=[n for n, _ in BAD_PACKETS])
def test_verify_rejects(data):
    assert membership.verify(KEY, data) is None


def test_verify_size_limit_is_inclusive():
    """A signed packet of exactly MAX_DATAGRAM bytes is accepted; one byte more is not."""
    name = next("n" * k for k in range(membership.MAX_DATAGRAM)
                if len(packet([2, "n" * k, 123, 7, []])) == membership.MAX_DATAGRAM)
    p = packet([2, name, 123, 7, []])
    assert len(p) == membership.MAX_DATAGRAM
    assert membership.verify(KEY, p) == [2, name, 123, 7, []]
    assert membership.verify(KEY, packet([2, name + "n", 123, 7, []])) is None


class FakeClock:
    """membership's view of time.monotonic, and only membership's."""

    def __init__(self, monkeypatch, t=1000.0):
        self.t = t
        monkeypatch.setattr(membership, "time", types.SimpleNamespace(monotonic=lambda: self.t,
                                                                      time_ns=time.time_ns))


MEMBERS = {n: {"heartbeat": f"127.0.0.1:{7200 + i}", "votes": 1} for i, n in enumerate(NAMES)}
TOKEN = b"a-cluster-token-of-some-length"


def make_membership(members=None, on_change=None):
    current = {"m": dict(members or MEMBERS)}
    m = membership.Membership("node1", TOKEN, 1.0, 0.65, lambda: current["m"], on_change=on_change)
    return m, current


def hb(sender, incarnation, seq, token=TOKEN, heard=("node1",)):
    """A heartbeat from sender; by default it says it hears node1 (the node under test)."""
    return membership.sign(membership.heartbeat_key(token),
                           msgpack.packb([membership.VERSION, sender, incarnation, seq, list(heard)]))


ADDR = ("127.0.0.1", 9)


def test_membership_accepts_newer_and_rejects_replays(monkeypatch):
    clock = FakeClock(monkeypatch)
    m, _ = make_membership()
    m.datagram_received(hb("node2", 5, 1), ADDR)
    assert m.rejected == 0 and m.newest["node2"] == (5, 1) and m.last_heard["node2"] == 1000.0
    assert m.view()["live"] == ["node1", "node2"]

    clock.t = 1010.0  # node2 is long dead: effective token for 3 members is 1.65 s
    assert m.view()["live"] == ["node1"]
    for replay in (hb("node2", 5, 1), hb("node2", 5, 0), hb("node2", 4, 99)):
        m.datagram_received(replay, ADDR)
    assert m.rejected == 3
    assert m.last_heard["node2"] == 1000.0 and m.newest["node2"] == (5, 1)
    assert m.view()["live"] == ["node1"]  # a replay does not make a dead node look alive

    m.datagram_received(hb("node2", 5, 2), ADDR)  # the next beat
    assert m.rejected == 3 and m.last_heard["node2"] == 1010.0
    m.datagram_received(hb("node2", 6, 0), ADDR)  # node2 restarted: new incarnation, seq from 0
    assert m.rejected == 3 and m.newest["node2"] == (6, 0)
    m.datagram_received(hb("node2", 5, 3), ADDR)  # a beat of the old incarnation, late
    assert m.rejected == 4 and m.newest["node2"] == (6, 0)
    assert m.view()["live"] == ["node1", "node2"]


def test_replay_state_is_per_sender(monkeypatch):
    FakeClock(monkeypatch)
    m, _ = make_membership()
    m.datagram_received(hb("node2", 5, 10), ADDR)
    m.datagram_received(hb("node3", 5, 1), ADDR)  # lower seq than node2's, different sender
    assert m.rejected == 0 and m.view()["live"] == list(NAMES)


@pytest.mark.parametrize("data", [
    hb("node1", 5, 1),  # our own name
    hb("stranger", 5, 1),  # not a member
    hb("node2", 5, 1, token=b"some-other-cluster-token"),  # wrong key
    b"\x00" * 40,
    _flip_last_bit(hb("node2", 5, 1)),
    hb("node2", 5, 1) + b"\x00",
], ids=["self", "stranger", "wrong-token", "zeros", "bad-mac", "trailing-byte"])
def test_membership_rejects(monkeypatch, data):
    FakeClock(monkeypatch)
    m, _ = make_membership()
    m.datagram_received(data, ADDR)
    assert m.rejected == 1 and m.last_heard == {} and m.newest == {}
    assert m.view()["live"] == ["node1"]


def test_membership_follows_the_members_callable(monkeypatch):
    clock = FakeClock(monkeypatch)
    m, current = make_membership()
    m.datagram_received(hb("node4", 1, 1), ADDR)
    assert m.rejected == 1
    current["m"] = dict(MEMBERS, node4={"heartbeat": "127.0.0.1:7299", "votes": 1})
    m.datagram_received(hb("node4", 1, 1), ADDR)  # the same packet, now from a member
    assert m.rejected == 1 and "node4" in m.view()["live"]
    current["m"] = dict(MEMBERS)
    clock.t += membership.VIEW_CACHE * 2  # the view is recomputed at most every VIEW_CACHE s
    assert "node4" not in m.view()["live"]  # removed members do not count even if heard
    assert m.view()["expected_votes"] == 3


def test_membership_on_change_reports_live_and_quorum(monkeypatch):
    clock = FakeClock(monkeypatch)
    changes = []
    m, _ = make_membership(on_change=changes.append)
    m._check_change()  # the first view is the baseline, not a change
    assert changes == []
    m.datagram_received(hb("node2", 1, 1), ADDR)
    assert [(c["live"], c["is_quorate"]) for c in changes] == [(["node1", "node2"], True)]
    m.datagram_received(hb("node2", 1, 2), ADDR)  # same view: no report
    assert len(changes) == 1
    clock.t += 1.6  # still within the effective token of 1.65 s
    m._check_change()
    assert len(changes) == 1
    clock.t += 0.1
    m._check_change()
    assert [(c["live"], c["is_quorate"]) for c in changes][-1] == (["node1"], False)


def test_contact_counts_only_both_ways(monkeypatch):
    """A peer that we receive but that says it hears nobody (a one-way cut towards it) is not
    live; once its heartbeat names us, it is. What we send names whoever we receive."""
    clock = FakeClock(monkeypatch)
    m, _ = make_membership()
    m.datagram_received(hb("node2", 1, 1, heard=[]), ADDR)
    m.datagram_received(hb("node3", 1, 1, heard=["node2"]), ADDR)
    assert m.rejected == 0 and m.view()["live"] == ["node1"] and not m.view()["is_quorate"]
    assert m.heard() == ["node2", "node3"]  # so our next heartbeat tells them they are heard
    clock.t += 0.2
    m.datagram_received(hb("node2", 1, 2), ADDR)
    assert m.view()["live"] == ["node1", "node2"] and m.view()["is_quorate"]
    clock.t += 1.0  # node2 keeps sending, but now says it hears nobody: its token runs out here
    m.datagram_received(hb("node2", 1, 3, heard=[]), ADDR)
    clock.t += 0.7
    m.datagram_received(hb("node2", 1, 4, heard=[]), ADDR)
    assert m.view()["live"] == ["node1"]
    assert m.heard() == ["node2"]  # received within the token: still named as heard


def test_membership_effective_token_tracks_member_count():
    m, current = make_membership()
    assert m.effective_token() == pytest.approx(1.65)
    current["m"] = {n: MEMBERS[n] for n in NAMES[:2]}
    assert m.effective_token() == pytest.approx(1.0)


def test_a_create_that_cannot_be_applied_changes_nothing():
    """A command missing its Cluster_host ids is a submitter's bug; the replica reports the
    exception as INTERNAL_ERROR on every node alike, and the state must still be untouched."""
    s = without_cluster()
    before = copy.deepcopy(s)
    with pytest.raises(KeyError):
        db.apply(s, create_cmd(["node1", "node2"], cluster_host_ids=ch_ids(["node1"])))
    assert s == before


def test_heartbeats_go_on_while_the_event_loop_is_busy():
    """The heartbeat thread beats whatever the daemon's event loop does: a loop blocked for
    three tokens does not make its node look dead to a peer."""
    from clusterctl.launcher import free_ports
    a_port, b_port = free_ports(0, 2)
    members = {"a": {"heartbeat": f"127.0.0.1:{a_port}"}, "b": {"heartbeat": f"127.0.0.1:{b_port}"}}
    a = membership.start(f"127.0.0.1:{a_port}", name="a", token=TOKEN, token_timeout=0.4, coefficient=0.0,
                         members=lambda: members)
    b = membership.start(f"127.0.0.1:{b_port}", name="b", token=TOKEN, token_timeout=0.4, coefficient=0.0,
                         members=lambda: members)
    seen = []

    async def main():
        task = asyncio.ensure_future(a.run())
        await asyncio.sleep(0.5)
        time.sleep(1.2)  # the loop is blocked for three tokens
        await asyncio.sleep(0)
        task.cancel()
    watcher = threading.Thread(target=b.serve, daemon=True)
    watcher.start()
    deadline = time.monotonic() + 0.5
    try:
        loop_thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
        loop_thread.start()
        while loop_thread.is_alive():
            if time.monotonic() > deadline:
                seen.append("a" in b.view()["live"])
            time.sleep(0.05)
    finally:
        b.stop()
        a.stop()
        watcher.join(2)
        a.sock.close()
        b.sock.close()
    assert len(seen) > 10 and all(seen), seen
