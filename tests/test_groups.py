"""Groups and resources that really run: real daemons, real resource processes."""
import json
import signal
import sys
import uuid

import psutil
import pytest

from clusterctl.lab.launcher import free_ports
from clusterd.errors import ClusterError

from conftest import answers, gone, running_cluster, wait_for


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, xprocess):
    with running_cluster(tmp_path_factory, xprocess, "groups") as c:
        yield c


def api(cluster, node="node1"):
    return cluster.client(node)


def online(c, group, timeout=60):
    op = c.Operation.wait(c.Group.online(group)["handle"], timeout)
    assert op["status"] == "succeeded", op
    return c.Group.get_record(group)


def offline(c, group, timeout=60):
    op = c.Operation.wait(c.Group.offline(group)["handle"], timeout)
    assert op["status"] == "succeeded", op


def test_a_process_resource_runs_as_a_child_of_its_owner_and_stops(cluster):
    (port,) = free_ports(1, 0)
    with api(cluster) as c:
        c.Group.create("web")
        c.Resource.create("web", "http", "process", {
            "args": [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
            "check_tcp": f"127.0.0.1:{port}"})
        g = online(c, "web")
        assert g["state"] == "Online" and g["owner"] in cluster.names()
        pid = g["resources"][0]["pid"]
        assert answers(port)
        assert psutil.Process(pid).ppid() == cluster.pid(g["owner"])  # a child of the owner's daemon
        offline(c, "web")
        assert not answers(port)
        wait_for(lambda: gone(pid), what="the resource process is gone")
        assert c.Group.get_record("web")["resources"][0]["state"] == "Offline"


def test_dependencies_order_start_and_stop(cluster, tmp_path):
    witness = str(tmp_path / "witness.jsonl")
    with api(cluster, "node2") as c:
        c.Group.create("ordered")
        for name in ("db", "app"):
            c.Resource.create("ordered", name, "dummy", {"witness": witness, "start_delay": 0.2, "stop_delay": 0.2})
        c.Resource.add_dependency("app", "db")
        online(c, "ordered")
        offline(c, "ordered")
    with open(witness) as f:
        events = [json.loads(line) for line in f]
    names = {}
    with api(cluster) as c:
        for r in c.Group.get_record("ordered")["resources"]:
            names[r["id"]] = r["name"]
    order = [(e["event"], names[e["resource"]]) for e in events]
    assert order == [("start", "db"), ("start", "app"), ("stop", "app"), ("stop", "db")]


def test_a_cycle_or_a_cross_group_dependency_is_rejected_and_changes_nothing(cluster):
    with api(cluster) as c:
        c.Group.create("g1")
        c.Group.create("g2")
        for g, name in (("g1", "a"), ("g1", "b"), ("g1", "c"), ("g2", "x")):
            c.Resource.create(g, name, "dummy", {})
        c.Resource.add_dependency("b", "a")
        c.Resource.add_dependency("c", "b")
        before = c.Group.get_all_records()
        for resource, depends_on, code in (("a", "c", "ERROR_CIRCULAR_DEPENDENCY"),
                                           ("a", "b", "ERROR_CIRCULAR_DEPENDENCY"),
                                           ("a", "a", "ERROR_INVALID_PARAMETER"),
                                           ("a", "x", "ERROR_INVALID_PARAMETER"),
                                           ("b", "a", "ERROR_DEPENDENCY_ALREADY_EXISTS")):
            with pytest.raises(ClusterError) as err:
                c.Resource.add_dependency(resource, depends_on)
            assert err.value.code == code, (resource, depends_on)
        assert c.Group.get_all_records() == before


def test_a_dying_process_is_restarted_up_to_its_threshold_then_the_group_fails(cluster):
    with api(cluster) as c:
        c.Group.create("flaky")
        c.Resource.create("flaky", "dies", "process", {"args": [sys.executable, "-c", "import time; time.sleep(1)"]})
        c.Resource.set_restart_policy("dies", {"threshold": 2, "period": 300.0, "delay": 0.2,
                                               "action": "restart", "monitor_interval": 0.3})
        handle = c.Group.online("flaky")["handle"]
        seen = []

        def record():
            r = c.Group.get_record("flaky")
            step = (r["resources"][0]["restarts"], r["resources"][0]["state"])
            if not seen or seen[-1] != step:
                seen.append(step)
            return r["state"] == "Failed" and r
        g = wait_for(record, timeout=60, interval=0.05, what="the group ends Failed")
        assert g["resources"][0]["restarts"] == 2
        assert [n for n, _ in seen] == sorted(n for n, _ in seen)  # restarts only grow
        assert {n for n, _ in seen} >= {0, 1, 2}  # each restart was a visible, committed step
        # the online command itself succeeded (the group reached Online) before the failures
        assert c.Operation.wait(handle, 1)["status"] == "succeeded"
    with api(cluster, "node3") as c:  # committed: every node reads the same
        wait_for(lambda: c.Group.get_record("flaky")["state"] == "Failed")


@pytest.mark.parametrize("name", ["", " ", " \t\r\n", "a\0b"])
def test_a_group_name_that_breaks_the_rules_is_refused(cluster, name):
    with api(cluster) as c:
        before = c.Group.get_all_records()
        with pytest.raises(ClusterError) as err:
            c.Group.create(name)
        assert err.value.code == "ERROR_INVALID_NAME"
        assert c.Group.get_all_records() == before


def test_names_are_unique_case_insensitively_and_renames_keep_the_id(cluster):
    with api(cluster) as c:
        gid = c.Group.create("Payroll")
        before = c.Group.get_all_records()
        for name in ("payroll", "PAYROLL", gid, gid.upper()):
            with pytest.raises(ClusterError) as err:
                c.Group.create(name)
            assert err.value.code == "ERROR_OBJECT_ALREADY_EXISTS"
        c.Group.create("Ledger")
        with pytest.raises(ClusterError) as err:
            c.Group.rename("ledger", "PAYROLL")
        assert err.value.code == "ERROR_ALREADY_EXISTS"
        c.Group.rename("payroll", "Payroll-2026")
        assert c.Group.get_record(gid)["name"] == "Payroll-2026"
        assert c.Group.get_record("payroll-2026")["id"] == gid
        assert len(c.Group.get_all_records()) == len(before) + 1


def test_the_core_group_cannot_be_commanded(cluster):
    with api(cluster) as c:
        before = c.Group.get_record("Cluster Group")
        assert before["special"] and before["state"] == "Online"
        for call, code in ((lambda: c.Group.online("Cluster Group"), "CLUSTER_SPECIAL_GROUP"),
                           (lambda: c.Group.offline("cluster group"), "CLUSTER_SPECIAL_GROUP"),
                           (lambda: c.Group.set_preferred_owners("Cluster Group", ["node1"]), "CLUSTER_SPECIAL_GROUP"),
                           (lambda: c.Group.delete("Cluster Group", True), "ERROR_CORE_RESOURCE")):
            with pytest.raises(ClusterError) as err:
                call()
            assert err.value.code == code
        assert c.Group.get_record("Cluster Group") == before


def test_invalid_operations_are_refused_with_their_codes(cluster):
    with api(cluster) as c:
        c.Group.create("full")
        c.Resource.create("full", "r1", "dummy", {})
        before = c.Group.get_all_records()
        for call, code in ((lambda: c.Group.delete("full", False), "ERROR_DIR_NOT_EMPTY"),
                           (lambda: c.Group.online("no-such-group"), "ERROR_GROUP_NOT_FOUND"),
                           (lambda: c.Resource.delete("no-such-resource"), "ERROR_RESOURCE_NOT_FOUND"),
                           (lambda: c.Resource.create("full", "r2", "no-such-agent", {}), "AGENT_PROPERTIES_INVALID"),
                           (lambda: c.Resource.create("full", "r2", "process", {"check_tcp": "10.0.0.1:80",
                                                                               "args": ["true"]}),
                            "AGENT_PROPERTIES_INVALID"),
                           (lambda: c.Group.set_preferred_owners("full", ["node9"]), "ERROR_INVALID_PARAMETER"),
                           (lambda: c.Group.set_failover_policy("full", {"failback": "sometimes"}),
                            "ERROR_INVALID_PARAMETER"),
                           (lambda: c.Operation.wait("no-such-handle", 0.1), "OPERATION_NOT_FOUND")):
            with pytest.raises(ClusterError) as err:
                call()
            assert err.value.code == code
        assert c.Group.get_all_records() == before


def test_a_restarted_owner_adopts_its_resource_process_no_duplicate(tmp_path_factory, xprocess):
    """A daemon killed and restarted within its token adopts the process it started: no fence,
    no second copy. The token is long (8 s) so that the restart, slow on a loaded machine, comes
    back within it; with the 1 s default a slow restart is rightly fenced first."""
    with running_cluster(tmp_path_factory, xprocess, "adopt", token_timeout=8.0) as cluster:
        _restarted_owner_adopts(cluster)


def _restarted_owner_adopts(cluster):
    marker = f"clusterd-test-{uuid.uuid4()}"
    with api(cluster) as c:
        c.Group.create("sticky")
        c.Group.set_preferred_owners("sticky", ["node3"])
        c.Resource.create("sticky", "sleeper", "process",
                          {"args": [sys.executable, "-c", "import sys, time; time.sleep(600)", marker]})
        g = online(c, "sticky")
    assert g["owner"] == "node3"
    pid = g["resources"][0]["pid"]

    def copies():
        return [p.pid for p in psutil.process_iter(["cmdline"]) if marker in (p.info["cmdline"] or [])]
    assert copies() == [pid]
    cluster.kill("node3")
    assert copies() == [pid]  # the resource outlives a crash of its daemon
    cluster.start("node3")
    wait_for(lambda: cluster.node_status("node3")["ready"], what="node3 replayed its journal")
    with api(cluster) as c:
        wait_for(lambda: c.Group.get_record("sticky")["state"] == "Online")
    for _ in range(20):  # over several executor ticks: still exactly the one adopted process
        assert copies() == [pid]
    with api(cluster) as c:
        offline(c, "sticky")
    wait_for(lambda: copies() == [], what="the process is stopped")


def test_a_daemon_stopped_cleanly_stops_its_resources(make_cluster):
    cluster = make_cluster(3)
    marker = f"clusterd-test-{uuid.uuid4()}"
    with api(cluster) as c:
        c.Group.create("clean")
        c.Group.set_preferred_owners("clean", ["node2"])
        c.Resource.create("clean", "sleeper", "process",
                          {"args": [sys.executable, "-c", "import time; time.sleep(600)", marker]})
        pid = online(c, "clean")["resources"][0]["pid"]
    cluster.kill("node2", signal.SIGTERM)
    wait_for(lambda: gone(pid), what="SIGTERM of the daemon stops its resource")


def test_a_resource_past_its_restarts_fails_its_group_over_then_ends_failed(cluster):
    """Action restart_failover: restarts on the owner, then the group moves; past the failover
    threshold (default: members - 1 = 2 in 6 hours) it stays Failed."""
    with api(cluster) as c:
        c.Group.create("roaming")
        c.Resource.create("roaming", "keeps-dying", "process",
                          {"args": [sys.executable, "-c", "import time; time.sleep(0.5)"]})
        c.Resource.set_restart_policy("keeps-dying", {"threshold": 1, "period": 300.0, "delay": 0.1,
                                                      "action": "restart_failover", "monitor_interval": 0.2})
        c.Group.online("roaming")
        owners = []

        def watch():
            g = c.Group.get_record("roaming")
            if g["owner"] and (not owners or owners[-1] != g["owner"]):
                owners.append(g["owner"])
            return g["state"] == "Failed" and g["failovers"] == 2 and g
        g = wait_for(watch, timeout=90, interval=0.05, what="two failovers, then Failed")
        assert g["last_failover"]["reason"] == "resource failed"
        assert len(owners) == 3 and len(set(owners)) >= 2  # it ran on more than one node
