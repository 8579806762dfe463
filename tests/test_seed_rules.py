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


def online_on(c, name, node):
    return wait_for(lambda: (lambda g: g if (g["owner"], g["state"]) == (node, "Online") else None)(
        c.Group.get_record(name)), timeout=60, what=f"{name} online on {node}")


def group_on(c, name, properties, owners):
    """A group with one dummy resource, online on owners[0] (its first preferred owner)."""
    c.Group.create(name)
    c.Resource.create(name, f"{name}-r", "dummy", properties)
    c.Group.set_preferred_owners(name, owners)
    c.Group.online(name)
    return online_on(c, name, owners[0])


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


def test_an_offline_group_whose_owner_is_paused_is_brought_online_on_a_node_that_is_up(cluster):
    """ApiPauseNodeEx suspends "group ownership" on a paused node: it keeps what it runs, but no more
    groups come online there. An offline group owned by a node paused since goes online, when
    commanded, on the node placement chooses (its next preferred owner that is Up)."""
    with cluster.client("node2") as c:
        group_on(c, "po", {}, ["node1", "node3"])
        assert c.Operation.wait(c.Group.offline("po")["handle"], 30.0)["status"] == "succeeded"
        c.Node.pause("node1", False, 0)
        try:
            op = c.Group.online("po")
            assert c.Operation.wait(op["handle"], 30.0)["status"] == "succeeded"
            online_on(c, "po", "node3")
        finally:
            c.Node.resume("node1", "none")

def test_a_switchover_skips_a_paused_backup_and_is_refused_when_every_backup_is_paused(cluster):
    """MoveClusterGroupEx refuses a destination that is not Up "immediately with no changes to group
    state"; ApiPauseNodeEx suspends group ownership on a paused node. A switchover's destination
    is the first active backup that is Up: a paused first backup is skipped, and with every
    backup paused Domain.switchover answers ERROR_CLUSTER_NODE_PAUSED and nothing changes."""
    with cluster.client("node1") as c:
        c.Group.create("sp")
        c.Resource.create("sp", "sp-r", "dummy", {})
        c.Domain.create("sp", "primary-backup", ["node1", "node2", "node3"], ["primary", "backup", "backup"], None)
        c.Group.online("sp")
        online_on(c, "sp", "node1")
        c.Node.pause("node2", False, 0)
        c.Node.pause("node3", False, 0)
        try:
            before = (c.Group.get_record("sp"), c.Domain.get("sp"))
            e = refusal(c.Domain.switchover, "sp", "q-sp")
            assert e.code == "ERROR_CLUSTER_NODE_PAUSED" and e.number == 0x13CE, e
            assert (c.Group.get_record("sp"), c.Domain.get("sp")) == before
            c.Node.resume("node3", "none")
            r = c.Domain.switchover("sp", "q-sp")
            assert c.Events.wait("q-sp", r["handle"], 60.0)["ok"] is True
            online_on(c, "sp", "node3")  # the first backup that is Up
        finally:
            c.Node.resume("node2", "none")
            c.Node.resume("node3", "none")


def test_a_destination_paused_after_the_move_was_accepted_gets_no_hand_over(cluster):
    """ApiPauseNodeEx suspends "group ownership" on a paused node; MoveClusterGroupEx: after
    ERROR_IO_PENDING the move "could fail, in that the group cannot reach its persistent state on
    the target node", and the cluster brings the group to its persistent state by its policies.
    A destination paused while the source stops the group gets no hand-over: the move fails with
    ERROR_CLUSTER_NODE_PAUSED in its error and the group is Online again on its source."""
    with cluster.client("node1") as c:
        group_on(c, "pl", {"stop_delay": 3}, ["node1"])
        op = c.Group.move("pl", "node2", 0, {})
        assert op["code"] == 0x3E5
        c.Node.pause("node2", False, 0)  # the source is still stopping (stop_delay 3 s)
        try:
            end = c.Operation.wait(op["handle"], 60.0)
            assert end["status"] == "failed" and end["error"].startswith("ERROR_CLUSTER_NODE_PAUSED"), end
            online_on(c, "pl", "node1")
        finally:
            c.Node.resume("node2", "none")


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
    """IBM's ENDCLUNOD: the node being ended gets the exit program action End Node (16, QCSTCRG3.H),
    the other nodes get Failover (9). A group that fails over after a resource failure leaves a node
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


def drained(c, node):
    return wait_for(lambda: (lambda r: r if r["drain_status"] != "InProgress" else None)(
        c.Node.get_pause_record(node)), timeout=90, what=f"the drain of {node} ended")


def groups_that_refuse_a_move(c, prefix, node):
    """Two groups online on `node`: one whose resource is locked there, one whose resource rejects
    the move there (dummy agent properties `locked` and `reject_move`, true on `node` only)."""
    for kind in ("locked", "reject_move"):
        group_on(c, f"{prefix}-{kind}", {kind: [node]}, [node])
    wait_for(lambda: c.Group.get_record(f"{prefix}-locked")["locked"], what="the lock reported")
    return [f"{prefix}-locked", f"{prefix}-reject_move"]


def test_a_drain_without_0x1_moves_a_locked_group_and_one_that_rejects_the_move_anyway(cluster):
    """ApiPauseNodeEx: "If a preference, limitation, or other policy would prevent the server from
    moving the group such that a call to ApiMoveGroup or ApiMoveGroupEx would fail, then unless the
    CLUSAPI_NODE_PAUSE_REMAIN_ON_PAUSED_NODE_ON_MOVE_ERROR flag is set in the dwPauseFlags parameter,
    the server MUST move the group to a different node anyway". A plain move of either group fails
    (locked: ERROR_CLUSTER_RESOURCE_LOCKED_STATUS; rejected by its resource); a flags-0 drain moves
    both, as a move with CLUSAPI_GROUP_MOVE_IGNORE_RESOURCE_STATUS would."""
    with cluster.client("node1") as c:
        names = groups_that_refuse_a_move(c, "dl", "node3")
        e = refusal(c.Group.move, names[0], "node1", 0, {})
        assert e.code == "ERROR_CLUSTER_RESOURCE_LOCKED_STATUS"
        op = c.Group.move(names[1], "node1", 0, {})
        assert c.Operation.wait(op["handle"], 30.0)["status"] == "failed"  # the resource rejected it
        assert c.Group.get_record(names[1])["owner"] == "node3"
        try:
            assert c.Node.pause("node3", True, 0)["code"] == 0x3E5
            rec = drained(c, "node3")
            assert rec["drain_status"] == "Completed" and rec["groups"] == 0, rec
            wait_for(lambda: all(g["owner"] in ("node1", "node2") and g["state"] == "Online"
                                 for g in map(c.Group.get_record, names)), timeout=60, what="both online elsewhere")
        finally:
            c.Node.resume("node3", "none")


def test_a_drain_whose_destination_is_paused_before_the_hand_over_moves_the_group_elsewhere(cluster):
    """ApiPauseNodeEx: without CLUSAPI_NODE_PAUSE_REMAIN_ON_PAUSED_NODE_ON_MOVE_ERROR "the server MUST
    move the group to a different node anyway". A drain's move whose destination is paused while
    the group stops gets no hand-over (a paused node takes no group); the drain places the group
    again, on a node that is Up, and completes."""
    with cluster.client("node1") as c:
        group_on(c, "dp", {"stop_delay": 3}, ["node3", "node1", "node2"])
        try:
            assert c.Node.pause("node3", True, 0)["code"] == 0x3E5
            wait_for(lambda: (c.Group.get_record("dp").get("move") or {}).get("to") == "node1",
                     what="the drain's move of dp to node1")
            c.Node.pause("node1", False, 0)  # dp is still stopping on node3 (stop_delay 3 s)
            rec = drained(c, "node3")
            assert rec["drain_status"] == "Completed" and rec["groups"] == 0, rec
            online_on(c, "dp", "node2")  # the node that is still Up
        finally:
            c.Node.resume("node1", "none")
            c.Node.resume("node3", "none")


def test_a_drain_with_0x1_leaves_a_locked_group_and_one_that_rejects_the_move_where_they_are(cluster):
    """ApiPauseNodeEx: dwPauseFlags "can be set to CLUSAPI_NODE_PAUSE_REMAIN_ON_PAUSED_NODE_ON_MOVE_ERROR
    (0x00000001), indicating that the server MUST allow a group to remain on the node designated by
    the hNode parameter if policies prohibit moving the group to any other nodes". With 0x1 both
    groups stay, still Online, and the drain completes with them kept."""
    with cluster.client("node1") as c:
        names = groups_that_refuse_a_move(c, "dk", "node2")
        try:
            assert c.Node.pause("node2", True, 1)["code"] == 0x3E5
            rec = drained(c, "node2")
            assert rec["drain_status"] == "Completed" and rec["kept"] == 2, rec
            assert [(g["owner"], g["state"]) for g in map(c.Group.get_record, names)] == [("node2", "Online")] * 2
        finally:
            c.Node.resume("node2", "none")


def test_a_second_drain_after_a_failed_one_is_0x174a_while_the_node_still_hosts_a_group(cluster):
    """ApiPauseNodeEx: "The server MUST fail this method with ERROR_CLUSTER_NODE_EVACUATION_IN_PROGRESS
    (0x0000174A) if evacuation is already in progress for the designated node. [...] for evacuation
    to not be in progress, the following condition MUST be met: if the dwPauseFlags parameter does
    not include the CLUSAPI_NODE_PAUSE_REMAIN_ON_PAUSED_NODE_ON_MOVE_ERROR flag, the node designated
    by the hNode parameter cannot host any groups." A drain fails here because every other node is
    paused while the group stops; with them Up again, a flags-0 drain is refused while the node
    still hosts the group, and one with 0x1 starts."""
    with cluster.client("node1") as c:
        group_on(c, "d2", {"stop_delay": 3}, ["node3"])
        try:
            assert c.Node.pause("node3", True, 0)["code"] == 0x3E5
            for n in ("node1", "node2"):
                c.Node.pause(n, False, 0)
            rec = drained(c, "node3")
            assert rec["drain_status"] == "Failed" and c.Group.get_record("d2")["owner"] == "node3", rec
            for n in ("node1", "node2"):
                c.Node.resume(n, "none")
            e = refusal(c.Node.pause, "node3", True, 0)
            assert e.code == "ERROR_CLUSTER_NODE_EVACUATION_IN_PROGRESS" and e.number == 0x174A, e
            assert c.Node.get_pause_record("node3")["drain_status"] == "Failed"  # refused: no change
            assert c.Node.pause("node3", True, 1)["code"] == 0x3E5
            assert drained(c, "node3")["drain_status"] == "Completed"
            assert c.Group.get_record("d2")["owner"] in ("node1", "node2")
        finally:
            for n in ("node1", "node2", "node3"):
                c.Node.resume(n, "none")
