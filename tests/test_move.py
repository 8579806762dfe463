"""Group.move (MoveClusterGroupEx) on real daemons: three clusterd processes on 127.0.0.1.

Every test records start/stop lines of its resources in a witness file and checks that no
resource ever ran on two nodes at once. Waits are generous; no timing is asserted.
"""
import json
import os
import subprocess
import sys

import psutil
import pytest

from clusterctl.lab.witness import double_online, read_witness
from clusterd.errors import ClusterError

from conftest import running_cluster, wait_for

SLOTS = 4  # start slots per node here (start_slots), so that 0x8 has pending starts to pass

VM_PROPERTY = {"Virtual Machine": {"format": "CLUSPROP_FORMAT_DWORD", "value": 4}}  # VmResdllContextLiveMigration
LIVE_MIGRATION = 0x2 | 0x4 | 0x8


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, xprocess):
    with running_cluster(tmp_path_factory, xprocess, "move", settings={"start_slots": SLOTS}) as c:
        yield c


@pytest.fixture
def witness(tmp_path):
    path = str(tmp_path / "witness.jsonl")
    yield path
    assert double_online(read_witness(path)) == [], "a resource ran on two nodes at once"


def make_group(c, name, witness, owner="node1", count=1, **props):
    """A group of `count` dummy resources, online on `owner`."""
    c.Group.create(name)
    c.Group.set_preferred_owners(name, [owner])
    for i in range(count):
        c.Resource.create(name, f"{name}-r{i}", "dummy", {"witness": witness, **props})
    op = c.Operation.wait(c.Group.online(name)["handle"], 60)
    assert op["status"] == "succeeded", op
    g = c.Group.get_record(name)
    assert g["owner"] == owner and g["state"] == "Online"
    return g


def moved(c, name, flags=0, to=None, properties=None, timeout=60):
    pending = c.Group.move(name, to, flags, properties or {})
    assert pending["status"] == "ERROR_IO_PENDING" and pending["code"] == 0x3E5
    return c.Operation.wait(pending["handle"], timeout)


def state_file(cluster, node, resource_id):
    path = os.path.join(cluster.dir, node, "data", "resources", resource_id + ".json")
    with open(path) as f:
        return json.load(f)


def refused_unchanged(c, name, code, *args):
    before = c.Group.get_record(name)
    with pytest.raises(ClusterError) as e:
        c.Group.move(name, *args)
    assert e.value.code == code, e.value
    assert c.Group.get_record(name) == before
    return e.value


# -- success ----------------------------------------------------------------------------------
def test_move_to_a_chosen_node_then_to_the_best_node(cluster, witness):
    with cluster.client("node2") as c:
        make_group(c, "m-basic", witness, count=3)
        op = moved(c, "m-basic", to="node3")
        assert op["status"] == "succeeded", op
        g = c.Group.get_record("m-basic")
        assert g["owner"] == "node3" and g["state"] == "Online" and g["failovers"] == 0
        op = moved(c, "m-basic")  # null destination: placement, never the source
        assert op["status"] == "succeeded", op
        g = c.Group.get_record("m-basic")
        assert g["owner"] in ("node1", "node2") and g["state"] == "Online"
    records = read_witness(witness)
    assert [r["event"] for r in records].count("start") == 9


# -- immediate refusals -----------------------------------------------------------------------
def test_immediate_refusals_change_nothing(cluster, witness):
    with cluster.client("node1") as c:
        make_group(c, "m-refused", witness)
        refused_unchanged(c, "m-refused", "ERROR_CLUSTER_NODE_NOT_FOUND", "node9", 0, {})
        refused_unchanged(c, "m-refused", "ERROR_INVALID_PARAMETER", "node2", 0x10, {})  # FAILBACK: reserved
        refused_unchanged(c, "m-refused", "ERROR_INVALID_PARAMETER", "node2", 0x100, {})
        refused_unchanged(c, "m-refused", "ERROR_INVALID_PARAMETER", "node1", 0, {})  # already there
        refused_unchanged(c, "m-refused", "ERROR_INVALID_PARAMETER", "node2", 0, {"Virtual Machine": 4})
        refused_unchanged(c, "m-refused", "ERROR_INVALID_PARAMETER", "node2", 0, {"k": {"a": {"b": 1}}})
        refused_unchanged(c, "m-refused", "FIELD_TYPE_ERROR", "node2", "0x1", {})
        refused_unchanged(c, "m-refused", "FIELD_TYPE_ERROR", 7, 0, {})
        refused_unchanged(c, "m-refused", "FIELD_TYPE_ERROR", "node2", 0, [1])
        with pytest.raises(ClusterError) as e:
            c.Group.move("no-such-group", "node2", 0, {})
        assert e.value.code == "ERROR_GROUP_NOT_FOUND"
        with pytest.raises(ClusterError) as e:
            c.Group.move("Cluster Group", "node2", 0, {})
        assert e.value.code == "CLUSTER_SPECIAL_GROUP"
        assert c.Node.status()["ready"]  # the daemon keeps serving


def test_a_read_only_user_may_not_move_or_cancel(cluster, witness):
    with cluster.client("node1") as c:
        make_group(c, "m-ro", witness)
    with cluster.client("node1", user="reader") as r:
        for call in (lambda: r.Group.move("m-ro", "node2", 0, {}), lambda: r.Group.cancel_move("m-ro")):
            with pytest.raises(ClusterError) as e:
                call()
            assert e.value.code == "RBAC_PERMISSION_DENIED"
        assert r.Group.get_record("m-ro")["owner"] == "node1"


def test_a_locked_resource_refuses_the_move_unless_ignore_resource_status(cluster, witness, tmp_path):
    lock = tmp_path / "lock"
    lock.write_text("")
    with cluster.client("node1") as c:
        make_group(c, "m-locked", witness, lock_file=str(lock))
        wait_for(lambda: c.Group.get_record("m-locked")["locked"], what="the lock reported")
        err = refused_unchanged(c, "m-locked", "ERROR_CLUSTER_RESOURCE_LOCKED_STATUS", "node2", 0, {})
        assert err.number == 0x1748
        op = moved(c, "m-locked", flags=0x1, to="node2")
        assert op["status"] == "succeeded", op
        assert c.Group.get_record("m-locked")["owner"] == "node2"


# -- failure at the destination ---------------------------------------------------------------
def failing_on_node3(c, name, witness):
    make_group(c, name, witness, fail_start=["node3"])
    c.Resource.set_restart_policy(f"{name}-r0", {"threshold": 1, "delay": 0.1})


def test_failure_at_the_destination_without_return_is_left_to_the_failover_policy(cluster, witness):
    with cluster.client("node1") as c:
        failing_on_node3(c, "m-fail", witness)
        c.Group.set_preferred_owners("m-fail", [])
        op = moved(c, "m-fail", to="node3")
        assert op["status"] == "failed" and "policy" in op["error"], op
        g = wait_for(lambda: (lambda g: g["state"] == "Online" and g["owner"] != "node3" and g)(
            c.Group.get_record("m-fail")), timeout=60, what="the failover policy brought it online elsewhere")
        assert g["failovers"] == 1 and g["last_failover"]["reason"] == "resource failed"


def test_failure_at_the_destination_with_return_to_source(cluster, witness):
    with cluster.client("node1") as c:
        failing_on_node3(c, "m-return", witness)
        op = moved(c, "m-return", flags=0x2, to="node3")
        assert op["status"] == "failed" and "back on the source" in op["error"], op
        g = c.Group.get_record("m-return")
        assert g["owner"] == "node1" and g["state"] == "Online" and g["failovers"] == 0


# -- queued -----------------------------------------------------------------------------------
def test_not_now_rejects_without_queue_and_queues_with_it_until_allowed(cluster, witness, tmp_path):
    not_now = tmp_path / "not-now"
    not_now.write_text("")
    with cluster.client("node1") as c:
        make_group(c, "m-queue", witness, not_now_file=str(not_now))
        op = moved(c, "m-queue", to="node2")
        assert op["status"] == "failed" and "not possible now" in op["error"], op
        assert c.Group.get_record("m-queue")["owner"] == "node1"
        pending = c.Group.move("m-queue", "node2", 0x4, {})
        op = c.Operation.wait(pending["handle"], 3)  # asked again and again meanwhile
        assert op["status"] == "pending", op
        g = c.Group.get_record("m-queue")
        assert g["owner"] == "node1" and g["state"] == "Online"
        not_now.unlink()
        op = c.Operation.wait(pending["handle"], 60)
        assert op["status"] == "succeeded", op
        assert c.Group.get_record("m-queue")["owner"] == "node2"


def test_cancel_move_of_a_queued_move(cluster, witness, tmp_path):
    not_now = tmp_path / "not-now"
    not_now.write_text("")
    with cluster.client("node1") as c:
        make_group(c, "m-cancel", witness, not_now_file=str(not_now))
        pending = c.Group.move("m-cancel", "node3", 0x4, {})
        assert c.Operation.wait(pending["handle"], 2)["status"] == "pending"
        m = c.Group.get_record("m-cancel")["move"]
        assert m["to"] == "node3" and m["phase"] in ("asking", "queued") and m["flags"] == 0x4
        c.Group.cancel_move("m-cancel")
        op = c.Operation.wait(pending["handle"], 10)
        assert op["status"] == "cancelled", op
        with pytest.raises(ClusterError) as e:
            c.Group.cancel_move("m-cancel")
        assert e.value.code == "ERROR_INVALID_STATE"
        not_now.unlink()
        g = c.Group.get_record("m-cancel")
        assert g["owner"] == "node1" and g["state"] == "Online" and g["move"] is None


# -- rejected by a resource -------------------------------------------------------------------
def test_rejection_by_a_resource_leaves_the_group_running_on_the_source_uncounted(cluster, witness):
    with cluster.client("node1") as c:
        make_group(c, "m-reject", witness, count=2, reject_move=True)
        before = c.Group.get_record("m-reject")
        op = moved(c, "m-reject", to="node2")
        assert op["status"] == "failed" and "rejected by a resource" in op["error"], op
        g = c.Group.get_record("m-reject")
        assert (g["owner"], g["state"], g["failovers"]) == ("node1", "Online", 0)
        assert [r["restarts"] for r in g["resources"]] == [0, 0]
        assert [r["pid"] for r in g["resources"]] == [r["pid"] for r in before["resources"]]
    assert [r["event"] for r in read_witness(witness)] == ["start", "start"]  # never stopped


# -- high-priority start ----------------------------------------------------------------------
def test_high_priority_start_goes_ahead_of_pending_starts(cluster, witness):
    fillers = [f"m-fill{i}" for i in range(SLOTS + 2)]
    with cluster.client("node1") as c:
        for name in fillers:
            c.Group.create(name)
            c.Group.set_preferred_owners(name, ["node3"])
            c.Resource.create(name, f"{name}-r", "dummy", {"witness": witness, "start_delay": 8})
        make_group(c, "m-prio", witness)  # created last: without 0x8 it would start last
        handles = [c.Group.online(name)["handle"] for name in fillers]
        op = moved(c, "m-prio", flags=0x8, to="node3")
        assert op["status"] == "succeeded", op
        for h in handles:
            assert c.Operation.wait(h, 120)["status"] == "succeeded"
        prio = c.Group.get_record("m-prio")["resources"][0]["id"]
        for name in fillers:
            c.Operation.wait(c.Group.offline(name)["handle"], 60)
    starts = [r for r in read_witness(witness) if r["event"] == "start" and r["node"] == "node3"]
    order = [r["resource"] for r in sorted(starts, key=lambda r: r["t"])]
    # all start slots were busy with fillers; the two fillers still waiting started after it
    assert order.index(prio) < len(order) - 2, order


# -- the property list ------------------------------------------------------------------------
def test_live_migration_recipe_end_to_end_with_the_dummy_agent(cluster, witness, tmp_path):
    not_now = tmp_path / "not-now"
    not_now.write_text("node1")  # "not now" on the source only, for a while
    with cluster.client("node1") as c:
        g = make_group(c, "m-vm", witness, not_now_file=str(not_now))
        for name, to in (("Virtual Machine", "node2"), ("Virtual Machine Configuration", "node3")):
            properties = {name: VM_PROPERTY["Virtual Machine"]}
            pending = c.Group.move("m-vm", to, LIVE_MIGRATION, properties)
            if not_now.exists():
                assert c.Operation.wait(pending["handle"], 2)["status"] == "pending"  # queued meanwhile
                assert c.Group.get_record("m-vm")["state"] == "Online"
                not_now.unlink()
            op = c.Operation.wait(pending["handle"], 60)
            assert op["status"] == "succeeded", op
            assert c.Group.get_record("m-vm")["owner"] == to
            record = state_file(cluster, to, g["resources"][0]["id"])
            assert record["node"] == to and record["move_properties"] == properties


def test_the_process_agent_gets_the_property_list_in_its_environment(cluster, witness, tmp_path):
    out = tmp_path / "env.json"
    code = ("import json, os, sys, time\n"
            "env = {k: v for k, v in os.environ.items() if k.startswith('CLUSTERD_')}\n"
            "tmp = sys.argv[1] + '.tmp'\n"
            "json.dump(env, open(tmp, 'w')); os.rename(tmp, sys.argv[1])\n"
            "time.sleep(600)\n")
    with cluster.client("node1") as c:
        c.Group.create("m-env")
        c.Group.set_preferred_owners("m-env", ["node1"])
        c.Resource.create("m-env", "m-env-p", "process", {"args": [sys.executable, "-c", code, str(out)],
                                                        "witness": witness, "stop_timeout": 3})
        assert c.Operation.wait(c.Group.online("m-env")["handle"], 60)["status"] == "succeeded"
        props = {"mode": "live", "Virtual Machine": VM_PROPERTY["Virtual Machine"]}
        op = moved(c, "m-env", to="node3", flags=0x2, properties=props)
        assert op["status"] == "succeeded", op
        env = wait_for(lambda: (lambda e: e.get("CLUSTERD_NODE") == "node3" and e)(json.loads(out.read_text())),
                       what="the process restarted on node3")
        assert env["CLUSTERD_MOVE_mode"] == "live"
        assert json.loads(env["CLUSTERD_MOVE_Virtual_Machine"]) == VM_PROPERTY["Virtual Machine"]
        c.Operation.wait(c.Group.offline("m-env")["handle"], 60)


# -- the command line -------------------------------------------------------------------------
def test_clusterctl_group_move_wait(cluster, witness):
    with cluster.client("node1") as c:
        make_group(c, "m-cli", witness)
    clusterctl = os.path.join(os.path.dirname(sys.executable), "clusterctl")
    r = subprocess.run([clusterctl, "group", "move", "m-cli", "--to", "node2", "--flags", "RETURN_TO_SOURCE_NODE_ON_ERROR",
                        "--flags", "0x8", "--property", "mode=live", "--wait", "--timeout", "60", "--dir", cluster.dir],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "succeeded" in r.stdout
    r = subprocess.run([clusterctl, "group", "move", "m-cli", "--flags", "FAILBACK", "--dir", cluster.dir],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "unknown move flag" in (r.stdout + r.stderr)
    with cluster.client("node1") as c:
        g = c.Group.get_record("m-cli")
        assert g["owner"] == "node2" and g["state"] == "Online"


# -- last: a node goes down -------------------------------------------------------------------
def test_a_destination_that_is_not_up_is_refused_and_nothing_changes(cluster, witness):
    with cluster.client("node1") as c:
        make_group(c, "m-down", witness)
        c.Group.set_preferred_owners("m-down", [])
    cluster.kill("node3")
    try:
        with cluster.client("node1") as c:
            wait_for(lambda: "node3" not in c.Node.status()["live"], what="node3 seen down")
            err = refused_unchanged(c, "m-down", "ERROR_CLUSTER_NODE_DOWN", "node3", 0, {})
            assert err.number == 0x13BA
            op = moved(c, "m-down")  # null destination: the best node that is Up
            assert op["status"] == "succeeded", op
            assert c.Group.get_record("m-down")["owner"] == "node2"
    finally:
        cluster.start("node3")


# -- the source dies in the middle of a move --------------------------------------------------
def test_the_source_killed_while_it_stops_for_a_move_is_fenced_before_the_group_runs_elsewhere(make_cluster, tmp_path):
    cluster = make_cluster(3)
    witness = str(tmp_path / "witness.jsonl")
    stubborn = ("import signal, time\n"
                "signal.signal(signal.SIGTERM, lambda *a: None)\n"  # a slow stop: SIGKILL after stop_timeout
                "time.sleep(600)\n")
    with cluster.client("node2") as c:
        c.Group.create("m-dies")
        c.Group.set_preferred_owners("m-dies", ["node1"])
        c.Resource.create("m-dies", "m-dies-p", "process", {"args": [sys.executable, "-c", stubborn],
                                                            "witness": witness, "stop_timeout": 20})
        assert c.Operation.wait(c.Group.online("m-dies")["handle"], 60)["status"] == "succeeded"
        pid = c.Group.get_record("m-dies")["resources"][0]["pid"]
        pending = c.Group.move("m-dies", "node3", 0, {})
        wait_for(lambda: c.Group.get_record("m-dies")["resources"][0]["state"] == "OfflinePending",
                 what="the source stopping it")
        assert c.Group.get_record("m-dies")["resources"][0]["pid"] == pid  # a fence still knows what to kill
    cluster.kill("node1")
    with cluster.client("node2") as c:
        op = c.Operation.wait(pending["handle"], 90)
        assert op["status"] == "failed", op  # overtaken by the failover policy
        g = wait_for(lambda: (lambda g: g["state"] == "Online" and g["owner"] != "node1" and g)(
            c.Group.get_record("m-dies")), timeout=90, what="restarted elsewhere after the fence")
        assert g["last_failover"]["reason"] == "node down" and g["move"] is None
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert double_online(read_witness(witness)) == []
