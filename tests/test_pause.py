"""Pause, drain and resume with real daemons (4 nodes on 127.0.0.1)."""
import pytest

from clusterd.errors import ClusterError

from conftest import running_cluster, wait_for


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, xprocess):
    with running_cluster(tmp_path_factory, xprocess, "pause", n=4) as c:
        yield c


def make_groups(c, prefix, n, owner):
    """n groups with one dummy resource each, online on `owner` (preferred owner)."""
    for i in range(n):
        name = f"{prefix}{i:02d}"
        c.Group.create(name)
        c.Resource.create(name, f"{name}-r", "dummy", {})
        c.Group.set_preferred_owners(name, [owner])
        c.Group.online(name)
    wait_for(lambda: all(g["state"] == "Online" and g["owner"] == owner for g in c.Group.get_all_records()
                         if g["name"].startswith(prefix)), timeout=60, what="groups online")


def owned(c, node, prefix):
    return [g for g in c.Group.get_all_records() if g["owner"] == node and g["name"].startswith(prefix)]


def refusal(fn, *args):
    with pytest.raises(ClusterError) as e:
        fn(*args)
    return e.value


def test_drain_of_20_groups_moves_all_and_a_second_drain_is_refused(cluster):
    with cluster.client("node1") as c:
        make_groups(c, "d", 20, "node2")
        seq_before = c.Node.status()["commit_index"]
        r = c.Node.pause("node2", True, 0)
        assert r == {"status": "ERROR_IO_PENDING", "code": 0x3E5}
        e = refusal(c.Node.pause, "node2", True, 0)  # the first drain is still moving 20 groups
        assert e.code == "ERROR_CLUSTER_NODE_EVACUATION_IN_PROGRESS" and e.number == 0x174A
        rec = wait_for(lambda: (lambda r: r if r["drain_status"] != "InProgress" else None)(
            c.Node.get_pause_record("node2")), timeout=90, what="drain ended")
        assert rec["drain_status"] == "Completed" and rec["paused"] and rec["state"] == "Paused", rec
        assert owned(c, "node2", "d") == []
        wait_for(lambda: all(g["state"] == "Online" and g["owner"] != "node2" for g in c.Group.get_all_records()
                             if g["name"].startswith("d")), timeout=60, what="groups Online elsewhere")
        assert seq_before < c.Node.status()["commit_index"]
        # visible in the node's own record too
        with cluster.client("node2") as c2:
            wait_for(lambda: c2.Node.status()["drain_status"] == "Completed", what="node2 sees Completed")
        # a paused node is never chosen: a new group does not land on node2
        c.Group.create("fresh")
        c.Group.set_preferred_owners("fresh", ["node2", "node3"])
        c.Group.online("fresh")
        assert c.Group.get_record("fresh")["owner"] == "node3"
        # resume with failback immediate brings the drained groups back
        # (the core group counts too when node2 happened to own it)
        assert c.Node.resume("node2", "immediate") == {"failback": rec["total"]} and rec["total"] >= 20
        wait_for(lambda: len([g for g in owned(c, "node2", "d") if g["state"] == "Online"]) == 20, timeout=90,
                 what="failback to node2")
        assert c.Node.get_pause_record("node2")["drain_status"] == "NotInitiated"


def test_flag_0x1_keeps_a_group_that_policy_forbids_elsewhere(cluster):
    with cluster.client("node1") as c:
        make_groups(c, "k", 2, "node3")
        # k00 may run only on node3: its recovery domain has no other node that may own it
        c.Domain.create("k00", "primary-backup", ["node3", "node4"], ["primary", "replicate"], None)
        assert c.Node.pause("node3", True, 1)["code"] == 0x3E5
        rec = wait_for(lambda: (lambda r: r if r["drain_status"] != "InProgress" else None)(
            c.Node.get_pause_record("node3")), timeout=60, what="drain ended")
        assert rec["drain_status"] == "Completed" and rec["kept"] == 1, rec
        assert [g["name"] for g in owned(c, "node3", "k")] == ["k00"]
        assert c.Group.get_record("k00")["state"] == "Online"  # still running where it was
        assert c.Group.get_record("k01")["owner"] != "node3"
        c.Node.resume("node3", "none")
        # without the flag the group is moved anyway
        assert c.Node.pause("node3", True, 0)["code"] == 0x3E5
        rec = wait_for(lambda: (lambda r: r if r["drain_status"] != "InProgress" else None)(
            c.Node.get_pause_record("node3")), timeout=60, what="drain ended")
        assert rec["drain_status"] == "Completed" and owned(c, "node3", "k") == []
        c.Node.resume("node3", "none")


def test_no_other_node_up_is_0x13ba_and_nothing_moves(cluster):
    with cluster.client("node1") as c:
        for n in ("node2", "node3", "node4"):
            c.Node.pause(n, False, 0)
        try:
            before = {g["name"]: g["owner"] for g in c.Group.get_all_records()}
            e = refusal(c.Node.pause, "node1", True, 0)
            assert e.code == "ERROR_CLUSTER_NODE_DOWN" and e.number == 0x13BA
            assert c.Node.get_pause_record("node1")["paused"] is False  # refused: nothing changed
            assert {g["name"]: g["owner"] for g in c.Group.get_all_records()} == before
        finally:
            for n in ("node2", "node3", "node4"):
                c.Node.resume(n, "none")


@pytest.mark.parametrize("args,code", [
    (("nodeX", True, 0), "ERROR_INVALID_HANDLE"),
    (("node1", True, 2), "ERROR_INVALID_PARAMETER"),
    (("node1", True, -1), "ERROR_INVALID_PARAMETER"),
    (("node1", "yes", 0), "FIELD_TYPE_ERROR"),
    ((None, True, 0), "FIELD_TYPE_ERROR"),
    (("node1", True, 1.5), "FIELD_TYPE_ERROR"),
    (("n" * 70000, True, 0), "FIELD_TYPE_ERROR"),
])
def test_hostile_pause_input_is_refused_and_the_daemon_keeps_serving(cluster, args, code):
    with cluster.client("node1") as c:
        e = refusal(c.Node.pause, *args)
        assert e.code == code
        if code == "ERROR_INVALID_HANDLE":
            assert e.number == 6
        assert c.Node.get_pause_record("node1")["paused"] is False


def test_read_only_cannot_pause(cluster):
    with cluster.client("node1", user="reader") as c:
        e = refusal(c.Node.pause, "node1", False, 0)
        assert e.code == "RBAC_PERMISSION_DENIED"
