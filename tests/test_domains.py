"""Recovery domains with real daemons: exit programs run on every active node, switchover
follows the domain's order, a failing exit program ends Indoubt, results come from the queue."""
import json
import os
import stat

import pytest

from clusterd.errors import ClusterError

from conftest import running_cluster, wait_for


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, xprocess):
    with running_cluster(tmp_path_factory, xprocess, "domains", n=3) as c:
        yield c


def exit_program(tmp_path, name, body=""):
    """A shell exit program that appends one JSON line per call to a log, then runs `body`."""
    log = tmp_path / f"{name}.jsonl"
    path = tmp_path / f"{name}.sh"
    path.write_text("#!/bin/sh\n"
                    f'printf \'{{"action": %s, "role": %s, "group": "%s", "node": "%s", "env_action": "%s"}}\\n\' '
                    f'"$1" "$2" "$3" "$CLUSTERD_NODE" "$CLUSTERD_ACTION_NAME" >> {log}\n' + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path), log


def calls(log):
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def result(c, queue, handle, timeout=60):
    entry = c.Events.wait(queue, handle, float(timeout))
    assert entry is not None, f"no result for {handle}"
    return entry


def test_switchover_follows_the_order_and_calls_the_exit_program_on_each_active_node(cluster, tmp_path):
    prog, log = exit_program(tmp_path, "sw")
    with cluster.client("node1") as c:
        c.Group.create("sw")
        witness = str(tmp_path / "witness.jsonl")
        c.Resource.create("sw", "sw-r", "dummy", {"witness": witness, "stop_delay": 0.3})
        c.Domain.create("sw", "primary-backup", ["node2", "node3", "node1"], ["primary", "backup", "backup"], prog)
        c.Group.online("sw")
        wait_for(lambda: c.Group.get_record("sw")["state"] == "Online", what="online")
        assert c.Group.get_record("sw")["owner"] == "node2"  # the primary
        assert c.Domain.get("sw")["status"] == 10
        r = c.Domain.switchover("sw", "results")
        assert r["code"] == 0x3E5
        entry = result(c, "results", r["handle"])
        assert entry["ok"] is True, entry
        g = c.Group.get_record("sw")
        assert g["owner"] == "node3"  # the first backup
        wait_for(lambda: c.Group.get_record("sw")["state"] == "Online", what="online on node3")
        d = c.Domain.get("sw")
        assert [(e["node"], e["role"]) for e in d["nodes"]] == [("node3", "primary"), ("node1", "backup"),
                                                                ("node2", "backup")]
        assert d["status"] == 10
        seen = calls(log)
        assert sorted(x["node"] for x in seen) == ["node1", "node2", "node3"]
        assert {x["action"] for x in seen} == {10} and {x["env_action"] for x in seen} == {"Switchover"}
        assert {x["node"]: x["role"] for x in seen} == {"node2": 0, "node3": 1, "node1": 2}
        # the next switchover goes on in the order: node3 -> node1
        r = c.Domain.switchover("sw", "results")
        assert result(c, "results", r["handle"])["ok"]
        assert c.Group.get_record("sw")["owner"] == "node1"
        wait_for(lambda: c.Group.get_record("sw")["state"] == "Online", what="online on node1")
    # the source stopped before the destination started, at every switchover
    with open(witness) as f:
        seen = [(e["event"], e["node"]) for e in map(json.loads, f)]
    assert seen == [("start", "node2"), ("stop", "node2"), ("start", "node3"), ("stop", "node3"), ("start", "node1")]


def test_remove_node_whose_exit_program_fails_ends_indoubt_and_the_queue_says_why(cluster, tmp_path):
    prog, log = exit_program(tmp_path, "bad", body='echo "cannot let go" >&2\nexit 3\n')
    with cluster.client("node2") as c:
        c.Group.create("bad")
        c.Domain.create("bad", "primary-backup", ["node1", "node2", "node3"], ["primary", "backup", "backup"], prog)
        r = c.Domain.remove_node("bad", "node3", "q-bad")
        assert r["code"] == 0x3E5
        entry = result(c, "q-bad", r["handle"])
        assert entry["ok"] is False and entry["message_id"] == "EXIT_PROGRAM_FAILED"
        assert "cannot let go" in entry["data"] and entry["status"] == 30
        assert c.Domain.get("bad")["status"] == 30 and c.Domain.get("bad")["status_name"] == "Indoubt"
        actions = [x["action"] for x in calls(log)]
        assert actions.count(12) == 3 and actions.count(15) == 3  # Remove Node, then Undo, on each active node
        assert "node3" in [e["node"] for e in c.Domain.get("bad")["nodes"]]  # not removed
        # read back by its handle, from any node
        with cluster.client("node3") as c3:
            assert c3.Events.read("q-bad", r["handle"])["message_id"] == "EXIT_PROGRAM_FAILED"


def test_remove_node_succeeds_and_the_status_comes_back(cluster, tmp_path):
    prog, log = exit_program(tmp_path, "good")
    with cluster.client("node1") as c:
        c.Group.create("good")
        c.Domain.create("good", "primary-backup", ["node1", "node2", "node3"], ["primary", "backup", "replicate"], prog)
        r = c.Domain.remove_node("good", "node3", "q")
        assert c.Domain.get("good")["status"] in (550, 20)  # Remove Node Pending while it runs
        assert result(c, "q", r["handle"])["ok"]
        d = c.Domain.get("good")
        assert d["status"] == 20 and [e["node"] for e in d["nodes"]] == ["node1", "node2"]
        assert sorted((x["node"], x["action"]) for x in calls(log)) == [("node1", 12), ("node2", 12), ("node3", 12)]
        r = c.Domain.add_node("good", "node3", "backup", 1, "q")
        assert result(c, "q", r["handle"])["ok"]
        assert [e["node"] for e in c.Domain.get("good")["nodes"]] == ["node1", "node3", "node2"]


@pytest.mark.parametrize("method,args,code", [
    ("remove_node", ("nope", "node1", "q"), "ERROR_GROUP_NOT_FOUND"),
    ("remove_node", ("rules", "nodeX", "q"), "ERROR_INVALID_HANDLE"),
    ("remove_node", ("rules", "node1", "q"), "DOMAIN_RULE"),  # the primary while Active
    ("remove_node", ("rules", "node2", ""), "ERROR_INVALID_PARAMETER"),
    ("remove_node", ("rules", "node2", "q" * 100), "ERROR_INVALID_PARAMETER"),
    ("remove_node", ("rules", 5, "q"), "FIELD_TYPE_ERROR"),
    ("add_node", ("rules", "node3", "primary", 0, "q"), "ERROR_INVALID_PARAMETER"),
    ("add_node", ("rules", "node3", "backup", 99, "q"), "ERROR_INVALID_PARAMETER"),
    ("set_role", ("rules", "node1", "backup", 0, "q"), "DOMAIN_RULE"),  # the primary changes by switchover
    ("set_role", ("rules", "node2", "boss", 0, "q"), "ERROR_INVALID_PARAMETER"),
    ("switchover", ("rules", None), "FIELD_TYPE_ERROR"),
])
def test_hostile_domain_requests_are_refused_and_change_nothing(cluster, method, args, code):
    with cluster.client("node1") as c:
        try:
            c.Group.create("rules")
            c.Domain.create("rules", "primary-backup", ["node1", "node2"], ["primary", "backup"], None)
            c.Group.online("rules")
            wait_for(lambda: c.Domain.get("rules")["status"] == 10, what="active")
        except ClusterError:
            pass
        before = c.Domain.get("rules")
        with pytest.raises(ClusterError) as e:
            getattr(c.Domain, method)(*args)
        assert e.value.code == code
        assert c.Domain.get("rules") == before
        assert c.Events.read("q", "no-such-handle") is None


@pytest.mark.parametrize("args,code", [
    (("nope", "primary-backup", ["node1"], ["primary"], None), "ERROR_GROUP_NOT_FOUND"),
    (("hostile", "primary-backup", ["node1", "node2"], ["primary"], None), "ERROR_INVALID_PARAMETER"),
    (("hostile", "primary-backup", ["node1"], ["captain"], None), "ERROR_INVALID_PARAMETER"),
    (("hostile", "peer", ["nodeX"], ["peer"], None), "ERROR_INVALID_HANDLE"),
    (("hostile", "primary-backup", ["node1"], ["primary"], "not/absolute"), "ERROR_INVALID_PARAMETER"),
    (("hostile", "primary-backup", ["node1"], ["primary"], "/" + "x" * 5000), "ERROR_INVALID_PARAMETER"),
    (("hostile", "primary-backup", ["node1"] * 2000, ["primary"] * 2000, None), "FIELD_TYPE_ERROR"),
    (("hostile", "primary-backup", "node1", ["primary"], None), "FIELD_TYPE_ERROR"),
    (("hostile", 7, ["node1"], ["primary"], None), "FIELD_TYPE_ERROR"),
])
def test_hostile_domain_create_is_refused(cluster, args, code):
    with cluster.client("node1") as c:
        if not any(g["name"] == "hostile" for g in c.Group.get_all_records()):
            c.Group.create("hostile")
        with pytest.raises(ClusterError) as e:
            c.Domain.create(*args)
        assert e.value.code == code
        with pytest.raises(ClusterError) as e:
            c.Domain.get("hostile")
        assert e.value.code == "DOMAIN_NOT_FOUND"


@pytest.mark.parametrize("queue,key,code", [("", "k", "ERROR_INVALID_PARAMETER"), ("q" * 65, "k", "ERROR_INVALID_PARAMETER"),
                                            (5, "k", "FIELD_TYPE_ERROR"), ("q", None, "FIELD_TYPE_ERROR"),
                                            ("q", "k" * 70000, "FIELD_TYPE_ERROR")])
def test_hostile_events_reads_are_refused(cluster, queue, key, code):
    with cluster.client("node1", user="reader") as c:
        with pytest.raises(ClusterError) as e:
            c.Events.read(queue, key)
        assert e.value.code == code
        assert c.Events.read("nobody-wrote-here", "k") is None


def test_read_only_cannot_send_domain_requests(cluster):
    with cluster.client("node1", user="reader") as c:
        with pytest.raises(ClusterError) as e:
            c.Domain.switchover("sw", "q")
        assert e.value.code == "RBAC_PERMISSION_DENIED"


def test_failover_follows_the_domain_order_after_calling_failover_9_on_the_active_nodes(make_cluster, tmp_path):
    cluster = make_cluster(3)
    prog, log = exit_program(tmp_path, "fo")
    leader = cluster.status()["cluster"]["leader"]
    primary, first, second = [n for n in cluster.names() if n != leader] + [leader]
    with cluster.client(leader) as c:
        c.Group.create("fo")
        c.Resource.create("fo", "fo-r", "dummy", {})
        # the order puts the leader last: failover must skip it for the first backup
        c.Domain.create("fo", "primary-backup", [primary, first, second], ["primary", "backup", "backup"], prog)
        c.Group.online("fo")
        wait_for(lambda: c.Group.get_record("fo")["state"] == "Online", what="online")
        assert c.Group.get_record("fo")["owner"] == primary
        cluster.kill(primary)
        g = wait_for(lambda: (lambda g: g if g["owner"] == first and g["state"] == "Online" else None)(
            c.Group.get_record("fo")), timeout=60, what="failed over to the first backup")
        assert g["last_failover"]["from"] == primary
        d = c.Domain.get("fo")
        assert [(e["node"], e["role"]) for e in d["nodes"]] == [(first, "primary"), (second, "backup"),
                                                                (primary, "backup")]
        assert d["status"] == 10
    seen = calls(log)
    assert sorted(x["node"] for x in seen if x["action"] == 9) == sorted([first, second])


def test_start_and_end_call_the_exit_program_then_change_the_group(cluster, tmp_path):
    prog, log = exit_program(tmp_path, "se")
    with cluster.client("node3") as c:
        c.Group.create("se")
        c.Resource.create("se", "se-r", "dummy", {})
        c.Domain.create("se", "primary-backup", ["node3", "node1"], ["primary", "backup"], prog)
        r = c.Domain.start("se", "q-se")
        assert result(c, "q-se", r["handle"])["ok"]
        wait_for(lambda: c.Group.get_record("se")["state"] == "Online", what="online")
        assert c.Group.get_record("se")["owner"] == "node3" and c.Domain.get("se")["status"] == 10
        r = c.Domain.end("se", "q-se")
        assert result(c, "q-se", r["handle"])["ok"]
        wait_for(lambda: c.Group.get_record("se")["state"] == "Offline", what="offline")
        assert c.Domain.get("se")["status"] == 20
    assert sorted((x["node"], x["action"]) for x in calls(log)) == [("node1", 2), ("node1", 4), ("node3", 2), ("node3", 4)]
