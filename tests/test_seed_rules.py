"""Issue 17: the seed pages' rules with real daemons (3 nodes on 127.0.0.1). Each docstring
quotes the rule it checks; the pure side is in test_seed_rules_core.py."""
import json
import os
import stat
import sys

import pytest

from clusterd.errors import ClusterError

from conftest import running_cluster, wait_for

CLUSTERCTL = os.path.join(os.path.dirname(sys.executable), "clusterctl")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, xprocess):
    with running_cluster(tmp_path_factory, xprocess, "seeds", n=3) as c:
        yield c


def refusal(fn, *args):
    with pytest.raises(ClusterError) as e:
        fn(*args)
    return e.value


def test_group_move_to_a_paused_node_is_refused_with_no_change(cluster):
    """MoveClusterGroupEx: "MoveClusterGroupEx returns a nonzero error code if the move command was
    rejected immediately with no changes to group state. For instance, this would happen if
    hDestinationNode is not Up at the time of the move request." (docs/groups.md: Up is live and not
    paused; ApiPauseNodeEx suspends group ownership on a paused node.)"""
    with cluster.client("node1") as c:
        c.Group.create("pm")
        c.Resource.create("pm", "pm-r", "dummy", {})
        c.Group.set_preferred_owners("pm", ["node1"])
        c.Group.online("pm")
        wait_for(lambda: c.Group.get_record("pm")["state"] == "Online", what="pm online")
        c.Node.pause("node2", False, 0)
        try:
            before = c.Group.get_record("pm")
            e = refusal(c.Group.move, "pm", "node2", 0, {})
            assert e.code == "ERROR_CLUSTER_NODE_PAUSED" and e.number == 0x13CE, e
            after = c.Group.get_record("pm")
            assert after == before and after["owner"] == "node1" and after["move"] is None
        finally:
            c.Node.resume("node2", "none")
        assert c.Group.move("pm", "node2", 0, {})["code"] == 0x3E5  # Up again: accepted
        wait_for(lambda: (lambda g: g["owner"] == "node2" and g["state"] == "Online")(c.Group.get_record("pm")),
                 timeout=60, what="pm online on node2")


def test_group_online_brings_every_resource_online_and_offline_every_one_offline(cluster):
    """MS-CMRP groups: "Online: Bringing a group online consists of bringing all the resources in a
    group to their online state." "Offline: Bringing a group offline consists of bringing all the
    resources in a group to their offline state." """
    with cluster.client("node2") as c:
        c.Group.create("on")
        for name in ("on-a", "on-b", "on-c"):
            c.Resource.create("on", name, "dummy", {})
        c.Group.online("on")
        wait_for(lambda: c.Group.get_record("on")["state"] == "Online", what="on online")
        for name in ("on-a", "on-b", "on-c"):  # taken offline one by one
            op = c.Resource.offline(name)
            assert c.Operation.wait(op["handle"], 30.0)["status"] == "succeeded"
        assert c.Group.get_record("on")["state"] == "Offline"
        op = c.Group.online("on")
        assert op["code"] == 0x3E5
        assert c.Operation.wait(op["handle"], 30.0)["status"] == "succeeded"
        g = c.Group.get_record("on")
        assert g["state"] == "Online"
        assert [(r["state"], r["persistent_state"]) for r in g["resources"]] == [("Online", "online")] * 3
        op = c.Group.offline("on")
        assert c.Operation.wait(op["handle"], 30.0)["status"] == "succeeded"
        g = c.Group.get_record("on")
        assert [(r["state"], r["persistent_state"]) for r in g["resources"]] == [("Offline", "offline")] * 3


def exit_program_calling_the_domain_api(tmp_path, cluster, log):
    """An exit program that, on node1, calls the recovery-domain API through clusterctl and through
    the Python client, writes what they answered to `log`, and succeeds."""
    creds = cluster.credentials()
    inner = tmp_path / "inner.py"
    inner.write_text(
        "import json, sys\n"
        "from clusterd.client import Client\n"
        "from clusterd.errors import ClusterError\n"
        f"c = Client({cluster.node('node1')['api']!r}, {creds['user']!r}, {creds['password']!r})\n"
        "out = {'request': c.exit_request, 'read': c.Domain.get('other')['group']}\n"
        "try:\n"
        "    c.Domain.set_role('other', 'node2', 'replicate', 0, 'q-inner')\n"
        "    out['client'] = 'accepted'\n"
        "except ClusterError as e:\n"
        "    out['client'] = e.code\n"
        "    out['message'] = e.message\n"
        "print(json.dumps(out))\n")
    prog = tmp_path / "exit.sh"
    prog.write_text(
        "#!/bin/sh\n"
        '[ "$CLUSTERD_NODE" = node1 ] || exit 0\n'
        f"{CLUSTERCTL} domain remove-node other node3 --dir {cluster.dir} --queue q-inner "
        f"> {tmp_path}/ctl.out 2>&1\n"
        f"echo $? > {tmp_path}/ctl.rc\n"
        f"{sys.executable} {inner} > {log}\n")
    prog.chmod(prog.stat().st_mode | stat.S_IXUSR)
    return str(prog)


def test_recovery_domain_apis_called_from_an_exit_program_are_refused(cluster, tmp_path):
    """QcstRemoveNodeFromRcvyDomain: "Restriction: This API cannot be called from a cluster
    resource group exit program." The exit program runs with its request in the environment
    (CLUSTERD_REQUEST); clusterctl and the Python client pass it on, and the daemon refuses the
    call with a clear error and no change. Reads stay allowed."""
    log = tmp_path / "inner.json"
    with cluster.client("node1") as c:
        c.Group.create("other")
        c.Domain.create("other", "primary-backup", ["node1", "node2", "node3"], ["primary", "backup", "replicate"], None)
        c.Group.create("caller")
        prog = exit_program_calling_the_domain_api(tmp_path, cluster, log)
        c.Domain.create("caller", "primary-backup", ["node1", "node2"], ["primary", "backup"], prog)
        before = c.Domain.get("other")
        r = c.Domain.add_node("caller", "node3", "replicate", 0, "q-caller")
        entry = c.Events.wait("q-caller", r["handle"], 90.0)
        assert entry is not None and entry["ok"] is True, entry
        inner = json.loads(log.read_text())
        assert inner["request"] == r["handle"] and inner["read"] == "other"
        assert inner["client"] == "DOMAIN_CALLED_FROM_EXIT_PROGRAM", inner
        assert "exit program" in inner["message"]
        assert (tmp_path / "ctl.rc").read_text().strip() != "0"
        assert "DOMAIN_CALLED_FROM_EXIT_PROGRAM" in (tmp_path / "ctl.out").read_text()
        assert c.Domain.get("other") == before  # neither call changed anything
        assert c.Events.read("q-inner", r["handle"]) is None
        # the same calls from outside an exit program are accepted
        r2 = c.Domain.remove_node("other", "node3", "q-outside")
        assert c.Events.wait("q-outside", r2["handle"], 60.0)["ok"] is True
        assert [e["node"] for e in c.Domain.get("other")["nodes"]] == ["node1", "node2"]


def test_a_resource_failure_failover_gives_the_node_left_end_node_16_and_the_others_failover_9(cluster, tmp_path):
    """IBM (ibm-ms-codes.md, action code 16): "End Node: given to the node being ended by ENDCLUNOD;
    the other nodes get Failover." A group that fails over after a resource failure leaves a node
    that is still active: that node's exit program gets End Node (16), the others Failover (9)."""
    log = tmp_path / "calls.jsonl"
    prog = tmp_path / "fo.sh"
    prog.write_text("#!/bin/sh\n"
                    f'printf \'{{"action": %s, "node": "%s", "name": "%s"}}\\n\' "$1" "$CLUSTERD_NODE" '
                    f'"$CLUSTERD_ACTION_NAME" >> {log}\n')
    prog.chmod(prog.stat().st_mode | stat.S_IXUSR)
    with cluster.client("node1") as c:
        c.Group.create("rf")
        c.Resource.create("rf", "rf-r", "dummy", {"fail_monitor": ["node3"]})
        c.Resource.set_restart_policy("rf-r", {"threshold": 0})
        c.Domain.create("rf", "primary-backup", ["node3", "node1", "node2"], ["primary", "backup", "backup"], str(prog))
        c.Group.online("rf")
        g = wait_for(lambda: (lambda g: g if g["owner"] == "node1" and g["state"] == "Online" else None)(
            c.Group.get_record("rf")), timeout=90, what="rf failed over from node3 to node1")
        assert g["last_failover"]["from"] == "node3" and g["last_failover"]["reason"] == "resource failed"
    seen = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted((x["node"], x["action"], x["name"]) for x in seen) == [
        ("node1", 9, "Failover"), ("node2", 9, "Failover"), ("node3", 16, "End Node")]


@pytest.mark.parametrize("value", [5, ["h"], {"h": 1}, "h" * 129])
def test_a_hostile_exit_request_field_is_refused_and_the_daemon_keeps_serving(cluster, value):
    """Every input from outside is hostile: a frame's exit_request is a string of at most 128
    characters, else FIELD_TYPE_ERROR, nothing runs, and the connection goes on."""
    with cluster.client("node3") as c:
        c.login()
        resp = c.request({"method": "Domain.delete", "args": ["nope"], "session": c.session, "exit_request": value})
        assert resp["error"]["code"] == "FIELD_TYPE_ERROR" and resp["error"]["params"] == ["exit_request"]
        assert c.Node.status()["name"] == "node3"
