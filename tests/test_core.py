"""The functional core without sockets or processes: db.apply and quorum (membership: test_membership_core.py)."""
import copy

import msgpack
import pytest

from clusterd import cluster, db, quorum
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
    assert c["cluster_stack"] == "corosync" and c["cluster_stack_version"] == cluster.CLUSTER_STACK_VERSION
    assert c["token_timeout"] == 1.0 and c["token_timeout_coefficient"] == 0.65
    assert "cluster_token" not in c and c["pool_auto_join"] is True  # the token is never replicated
    assert c["other_config"] == {} and c["pending_forget"] == []
    assert sorted(ch["host"] for ch in s["cluster_hosts"].values()) == list(NAMES)
    for name, (ref, uuid) in ch_ids(NAMES).items():
        ch = s["cluster_hosts"][ref]
        assert ch["uuid"] == uuid and ch["host"] == name and ch["PIF"] == f"OpaqueRef:pif-{name}"
        assert ch["enabled"] and ch["joined"]
        assert ch["live"] is False and ch["last_update_live"] == AT  # no view committed yet
    assert s["applied"] == {"bootstrap": [AT, {"ok": CREF}]}


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
    assert s["applied"] == {"bootstrap": [AT, {"ok": CREF}]}


def _set(value, rid, at):
    return {"op": "cluster.set_other_config", "self": CREF, "value": value, "rid": rid, "at": at}


def test_a_burst_of_writes_is_deduplicated_whole():
    """25,000 writes within a second (reports at 10,000 groups come in such bursts): a retry
    of the first one still gets its first result and applies nothing."""
    s = booted()
    for i in range(25_000):
        db.apply(s, _set({}, f"r{i}", AT + i / 25_000))
    assert db.apply(s, _set({"retried": "1"}, "r0", AT + 1)) == {"ok": None}
    assert s["cluster"]["other_config"] == {}


@pytest.mark.parametrize("later, kept", [(1.0, True), (db.DEDUP_WINDOW - 0.001, True), (db.DEDUP_WINDOW + 0.001, False)])
def test_a_result_is_kept_for_the_retry_window_of_command_time(later, kept):
    s = booted()
    db.apply(s, _set({}, "first", AT + 10))
    db.apply(s, _set({}, "later", AT + 10 + later))
    assert ("first" in s["applied"]) is kept
    assert "later" in s["applied"]


def test_the_dedup_table_has_a_memory_ceiling_oldest_first(monkeypatch):
    monkeypatch.setattr(db, "DEDUP_MAX", 3)
    s = booted()
    for i in range(5):
        db.apply(s, _set({}, f"r{i}", AT + i))
    assert list(s["applied"]) == ["r2", "r3", "r4"]


def test_precheck_answers_a_retry_with_its_first_result():
    """The precondition would refuse the retry (the cluster is gone): the first result wins."""
    s = booted()
    destroy = {"op": "cluster.pool_force_destroy", "self": CREF, "rid": "destroy", "at": AT + 1}
    assert db.apply(s, dict(destroy)) == {"ok": None}
    assert db.precheck(s, dict(destroy)) == {"ok": None}
    assert code(db.precheck(s, dict(destroy, rid="another"))) == "HANDLE_INVALID"


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
        assert s["applied"].pop("refused-1")[1] == result
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


def test_a_create_that_cannot_be_applied_changes_nothing():
    """A command missing its Cluster_host ids is a submitter's bug; the replica reports the
    exception as INTERNAL_ERROR on every node alike, and the state must still be untouched."""
    s = without_cluster()
    before = copy.deepcopy(s)
    with pytest.raises(KeyError):
        db.apply(s, create_cmd(["node1", "node2"], cluster_host_ids=ch_ids(["node1"])))
    assert s == before
