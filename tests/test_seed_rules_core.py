"""Issue 17: the seed pages' rules, one test each, through the functional core (db.apply on
plain state). Each docstring quotes the rule it checks."""
import pytest

from clusterd import domains, events, groups, moves, pause
from clusterd.errors import CODES

from builders import booted, member, ok, run
from builders import refused_before_submit as refused
from test_groups_core import refused as refused_by_apply, report, world as groups_world

N4 = ("node1", "node2", "node3", "node4")
PROG = "/usr/local/bin/crg-exit"


# -- a move to a paused node ----------------------------------------------------------------------
def web_world(live=("node1", "node2", "node3")):
    s = groups_world()
    ok(s, "membership.view", live=list(live), by="node1")
    ok(s, "group.online", group="g-web", handle="h-on", owner="node1")
    for rid in ("r-ip", "r-httpd", "r-cache"):
        report(s, rid, "Online")
    return s


@pytest.mark.parametrize("by_cluster", [False, True], ids=["client", "drain-failback-switchover"])
def test_a_move_to_a_paused_node_is_refused_with_node_paused_0x13ce(by_cluster):
    """MoveClusterGroupEx: "returns a nonzero error code if the move command was rejected
    immediately with no changes to group state. For instance, this would happen if
    hDestinationNode is not Up"; ApiPauseNodeEx: pausing suspends "group ownership" on the node.
    Every mover (drain, failback, switchover) moves through group.move with by_cluster."""
    s = web_world()
    ok(s, "node.pause", node="node2", drain=False, flags=0)
    err = refused(s, "group.move", "ERROR_CLUSTER_NODE_PAUSED", 0x13CE, group="g-web", to="node2", flags=0,
                  properties={}, handle="m1", by_cluster=by_cluster)
    assert err["params"] == ["node2"]
    ok(s, "node.resume", node="node2", failback="none")  # Up again: the same move is accepted
    assert ok(s, "group.move", group="g-web", to="node2", flags=0, properties={}, handle="m1")["code"] == 0x3E5



def stopping_for_a_move(flags=0):
    """web on node1, accepted for a move to node2 and stopping on node1 (the hand-over is next)."""
    s = web_world()
    assert ok(s, "group.move", group="g-web", to="node2", flags=flags, properties={}, handle="m1")["code"] == 0x3E5
    if not flags & moves.IGNORE_RESOURCE_STATUS:
        ok(s, "group.move_answer", group="g-web", handle="m1", ask=0, node="node1", answer="ok", resources=[])
    return s


def test_a_destination_paused_after_the_move_was_accepted_gets_no_hand_over():
    """ApiPauseNodeEx suspends "group ownership" on a paused node, so the group is not handed to a
    destination paused after MoveClusterGroupEx accepted the move. MoveClusterGroupEx: the move
    "could fail, in that the group cannot reach its persistent state on the target node"; the
    cluster then brings the group to its persistent state by its policies. The move fails with
    ERROR_CLUSTER_NODE_PAUSED in its error and the group starts again on its source, as when the
    destination goes down before the hand-over."""
    s = stopping_for_a_move()
    ok(s, "node.pause", node="node2", drain=False, flags=0)
    for rid in ("r-cache", "r-httpd", "r-ip"):
        report(s, rid, "Offline")
    g, op = s["groups"]["g-web"], s["operations"]["m1"]
    assert g["owner"] == "node1" and g.get("move") is None
    assert op["status"] == "failed" and op["error"].startswith("ERROR_CLUSTER_NODE_PAUSED"), op
    assert groups.wanted_resources(s, g) == {"r-ip", "r-httpd", "r-cache"}  # back to its state on the source


def test_a_queued_move_is_not_asked_again_while_its_destination_is_paused():
    """A queued move (CLUSAPI_GROUP_MOVE_QUEUE_ENABLED) waits while its destination is not Up:
    paused as well as down (the group would not be handed to it)."""
    s = web_world()
    ok(s, "group.move", group="g-web", to="node2", flags=moves.QUEUE_ENABLED, properties={}, handle="m1")
    ok(s, "group.move_answer", group="g-web", handle="m1", ask=0, node="node1", answer="not_now", resources=[])
    ok(s, "node.pause", node="node2", drain=False, flags=0)
    ok(s, "group.move_retry", group="g-web", handle="m1", at=2_000_000_000.0)
    m = s["groups"]["g-web"]["move"]
    assert (m["phase"], m["queued_at"]) == ("queued", 2_000_000_000.0)
    ok(s, "node.resume", node="node2", failback="none")
    ok(s, "group.move_retry", group="g-web", handle="m1")
    assert s["groups"]["g-web"]["move"]["phase"] == "asking"


def test_a_move_returning_to_a_source_paused_meanwhile_is_left_to_the_policy():
    """CLUSAPI_GROUP_MOVE_RETURN_TO_SOURCE_NODE_ON_ERROR returns the group to its source after a
    failure on the destination; a source paused since takes no group (ApiPauseNodeEx), so, as
    with a source that is down, the move fails and the failure policy places the group."""
    s = stopping_for_a_move(flags=moves.RETURN_TO_SOURCE_NODE_ON_ERROR)
    for rid in ("r-cache", "r-httpd", "r-ip"):
        report(s, rid, "Offline")
    assert s["groups"]["g-web"]["owner"] == "node2"
    ok(s, "node.pause", node="node1", drain=False, flags=0)
    report(s, "r-ip", "Failed", node="node2")
    for rid in ("r-cache", "r-httpd"):
        report(s, rid, "Offline", node="node2")
    g, op = s["groups"]["g-web"], s["operations"]["m1"]
    assert g["owner"] == "node2" and g.get("move") is None and g["failover_wanted"]
    assert op["status"] == "failed" and "paused" in op["error"], op

def lost_owner(s, owner="node3", gid="g-web"):
    ok(s, "membership.view", live=[n for n in s["view"]["live"] if n != owner], by="node1")
    ok(s, "fence.request", node=owner, agent="watchdog")
    ok(s, "fence.result", node=owner, fenced=True, detail="")


def test_a_failover_to_a_paused_node_is_refused_with_no_change():
    """ApiPauseNodeEx: a paused node has its "group ownership and failover activity" suspended;
    so a paused destination is refused on every path that places a group: move and failover."""
    s = groups_world()
    ok(s, "membership.view", live=["node1", "node2", "node3"], by="node1")
    ok(s, "group.online", group="g-web", handle="h-on", owner="node3")
    lost_owner(s)
    ok(s, "node.pause", node="node2", drain=False, flags=0)
    err = refused_by_apply(s, "group.failover", "ERROR_CLUSTER_NODE_PAUSED", group="g-web", to="node2",
                           reason="node down", **{"from": "node3"})
    assert err["number"] == 0x13CE
    assert ok(s, "group.failover", group="g-web", to="node1", reason="node down", **{"from": "node3"}) == "node1"


def domain_world(live=N4, online=True, program=PROG):
    s = booted(N4, live=live)
    ok(s, "group.create", name="crg", id="crg")
    ok(s, "domain.create", group="crg", model="primary-backup", exit_program=program,
       nodes=[{"node": "node1", "role": "primary"}, {"node": "node2", "role": "backup"},
              {"node": "node3", "role": "backup"}, {"node": "node4", "role": "replicate"}])
    if online:
        ok(s, "group.online", group="crg", handle="on", owner="node1")
    return s


def test_a_domain_failover_to_a_paused_backup_is_refused_with_no_change():
    """ApiPauseNodeEx: pausing suspends group ownership on the node; the coordinator's failover
    request names its destination, which must not be paused when it commits."""
    s = domain_world()
    lost_owner(s, owner="node1", gid="crg")
    ok(s, "node.pause", node="node2", drain=False, flags=0)
    refused(s, "domain.request", "ERROR_CLUSTER_NODE_PAUSED", 0x13CE, kind="failover", group="crg",
            queue=domains.FAILOVER_QUEUE, handle="f1", node="node2", reason="node down", **{"from": "node1"})


def test_a_switchover_whose_active_backups_are_all_paused_is_refused_with_node_paused():
    """MoveClusterGroupEx: a destination that is not Up is refused at once with no change; a
    switchover's destination is the first active backup that is not paused (docs/groups.md: Up is live
    and not paused). With node3 paused too nothing is Up: the refusal says why."""
    s = domain_world()
    ok(s, "node.pause", node="node2", drain=False, flags=0)
    assert domains.switchover_target(s, s["groups"]["crg"]) == "node3"  # a paused first backup is skipped
    ok(s, "node.pause", node="node3", drain=False, flags=0)
    refused(s, "domain.request", "ERROR_CLUSTER_NODE_PAUSED", 0x13CE, kind="switchover", group="crg", queue="q",
            handle="h1")


def test_a_switchover_whose_target_is_paused_before_its_move_fails_and_undoes():
    """A switchover moves its group through group.move (mover.py); a target paused while the
    exit programs ran makes that move refuse at once (0x13CE) with no change, and the request
    undoes (MOVE_FAILED) instead of placing the group on a paused node."""
    s = domain_world()
    assert ok(s, "domain.request", kind="switchover", group="crg", queue="q", handle="h1")["code"] == 0x3E5
    for n in N4:
        ok(s, "domain.exit_result", handle="h1", node=n, phase="exit", ok=True, detail="")
    assert s["domain_requests"]["h1"]["phase"] == "move" and s["domain_requests"]["h1"]["target"] == "node2"
    ok(s, "node.pause", node="node2", drain=False, flags=0)
    refused(s, "group.move", "ERROR_CLUSTER_NODE_PAUSED", group="crg", to="node2", flags=0, properties={},
            handle="m1", by_cluster=True)
    ok(s, "domain.moved", handle="h1", ok=False, detail="ERROR_CLUSTER_NODE_PAUSED")
    assert s["groups"]["crg"]["owner"] == "node1"


def test_a_domain_start_whose_target_was_paused_meanwhile_goes_to_the_next_up_node():
    """Domain.start brings the group online "on the first Up node of the order" (docs/groups.md); Up is
    live and not paused, and a paused node's group ownership is suspended (ApiPauseNodeEx). The
    target is chosen when the request is made; a pause while the exit programs run must not
    place the group on the paused node."""
    s = domain_world(online=False)
    assert ok(s, "domain.request", kind="start", group="crg", queue="q", handle="h1")["code"] == 0x3E5
    assert s["domain_requests"]["h1"]["target"] == "node1"
    ok(s, "node.pause", node="node1", drain=False, flags=0)
    for n in N4:
        ok(s, "domain.exit_result", handle="h1", node=n, phase="exit", ok=True, detail="")
    g = s["groups"]["crg"]
    assert g["persistent_state"] == "online" and g["owner"] == "node2"
    assert events.read(s, "q", "h1")["ok"] is True


def test_a_domain_start_with_no_up_node_left_fails_and_leaves_the_group_offline():
    """As above; with every node of the order paused by then, nothing may own the group: the
    start fails (MOVE_FAILED, after Undo) and the group stays offline and unowned."""
    s = domain_world(online=False)
    ok(s, "domain.request", kind="start", group="crg", queue="q", handle="h1")
    for n in ("node1", "node2", "node3"):
        ok(s, "node.pause", node=n, drain=False, flags=0)
    for n in N4:
        ok(s, "domain.exit_result", handle="h1", node=n, phase="exit", ok=True, detail="")
    r = s["domain_requests"]["h1"]
    assert r["phase"] == "undo" and r["action"] == domains.UNDO
    for n in N4:
        ok(s, "domain.exit_result", handle="h1", node=n, phase="undo", ok=True, detail="")
    g = s["groups"]["crg"]
    assert (g["persistent_state"], g["owner"]) == ("offline", None)
    entry = events.read(s, "q", "h1")
    assert entry["ok"] is False and entry["message_id"] == "MOVE_FAILED"


def test_online_refuses_a_paused_owner_it_would_place_the_group_on():
    """ApiPauseNodeEx: pausing suspends group ownership on the node. The owner a group without
    one gets on online travels in the command (placement skips paused nodes when it is
    chosen); a node paused since is refused with no change."""
    s = groups_world()
    ok(s, "membership.view", live=["node1", "node2", "node3"], by="node1")
    ok(s, "node.pause", node="node2", drain=False, flags=0)
    refused_by_apply(s, "group.online", "ERROR_CLUSTER_NODE_PAUSED", group="g-web", handle="h1", owner="node2")
    refused_by_apply(s, "resource.online", "ERROR_CLUSTER_NODE_PAUSED", resource="r-pg", handle="h2", owner="node2")
    assert ok(s, "group.online", group="g-web", handle="h1", owner="node3")["code"] == 0x3E5



def test_an_offline_group_whose_owner_is_paused_goes_online_on_a_node_that_is_up():
    """ApiPauseNodeEx suspends group ownership on a paused node: it keeps what it runs, but no more
    groups come online there. An offline group owned by a node paused since is brought online (by
    the group or one of its resources) on the node placement chooses; while its paused owner still
    stops it, the online is refused with no change."""
    for op, fields in (("group.online", {"group": "g-web"}), ("resource.online", {"resource": "r-ip"})):
        s = web_world()
        ok(s, "group.offline", group="g-web", handle="off")
        report(s, "r-cache", "Offline")
        ok(s, "node.pause", node="node1", drain=False, flags=0)
        err = refused_by_apply(s, op, "ERROR_CLUSTER_NODE_PAUSED", handle="h2", owner="node2", **fields)
        assert err["params"] == ["node1"]  # r-ip and r-httpd are still stopping there
        for rid in ("r-httpd", "r-ip"):
            report(s, rid, "Offline")
        refused_by_apply(s, op, "ERROR_CLUSTER_NODE_PAUSED", handle="h2", owner="node1", **fields)
        assert ok(s, op, handle="h2", owner="node2", **fields)["code"] == 0x3E5
        g = s["groups"]["g-web"]
        assert (g["owner"], g["persistent_state"]) == ("node2", "online")
    s = web_world()  # an online group keeps running on its owner paused since
    ok(s, "node.pause", node="node1", drain=False, flags=0)
    assert ok(s, "group.online", group="g-web", handle="h3", owner=None)["code"] == 0x3E5
    assert s["groups"]["g-web"]["owner"] == "node1"

# -- a second drain after a failed one --------------------------------------------------------------
def drain_world():
    s = booted(N4, live=N4)
    for i in range(3):
        ok(s, "group.create", name=f"g{i}", id=f"g{i}")
        ok(s, "group.online", group=f"g{i}", handle=f"h{i}", owner="node1")
    ok(s, "node.pause", node="node1", drain=True, flags=0)
    ok(s, "group.move", group="g0", to="node2", flags=0, properties={}, handle="m0")  # empty: handed over at once
    assert ok(s, "node.drain_done", node="node1", status="Failed", moved=["g0"], kept=[],
              detail="2 move(s) failed") == "Failed"
    return s


def test_a_second_drain_of_a_node_that_still_hosts_groups_after_a_failed_drain_is_0x174a():
    """ApiPauseNodeEx: "The server MUST fail this method with ERROR_CLUSTER_NODE_EVACUATION_IN_PROGRESS
    (0x0000174A) if evacuation is already in progress for the designated node. [...] for evacuation
    to not be in progress, the following condition MUST be met: if the dwPauseFlags parameter does
    not include the CLUSAPI_NODE_PAUSE_REMAIN_ON_PAUSED_NODE_ON_MOVE_ERROR flag, the node designated
    by the hNode parameter cannot host any groups." """
    s = drain_world()
    assert pause.pause_view(s, "node1")["drain_status"] == "Failed"
    refused(s, "node.pause", "ERROR_CLUSTER_NODE_EVACUATION_IN_PROGRESS", 0x174A, node="node1", drain=True, flags=0)
    ok(s, "group.move", group="g1", to="node2", flags=0, properties={}, handle="m1")
    refused(s, "node.pause", "ERROR_CLUSTER_NODE_EVACUATION_IN_PROGRESS", 0x174A, node="node1", drain=True, flags=0)
    ok(s, "group.move", group="g2", to="node3", flags=0, properties={}, handle="m2")
    assert pause.owned_groups(s, "node1") == []  # it hosts none now: a new drain may start
    assert ok(s, "node.pause", node="node1", drain=True, flags=0)["code"] == 0x3E5


def test_after_a_failed_drain_the_flag_or_a_resume_lets_a_new_drain_start():
    """The same rule binds only a call without REMAIN_ON_PAUSED_NODE_ON_MOVE_ERROR (0x1); a resume
    ends the evacuation (the drain status is NotInitiated again), and a pause without drain is
    not an evacuation ("The server MUST ignore the value of this parameter entirely if the
    bDrainNode parameter is set to FALSE")."""
    s = drain_world()
    assert ok(s, "node.pause", node="node1", drain=False, flags=0)["code"] == 0
    assert ok(s, "node.pause", node="node1", drain=True, flags=1)["code"] == 0x3E5
    s = drain_world()
    ok(s, "node.resume", node="node1", failback="none")
    assert ok(s, "node.pause", node="node1", drain=True, flags=0)["code"] == 0x3E5


# -- group online / offline and the resources' persistent state ------------------------------------
def test_group_online_brings_every_resource_online_and_offline_takes_every_one_offline():
    """MS-CMRP groups: "Online: Bringing a group online consists of bringing all the resources in a
    group to their online state." "Offline: Bringing a group offline consists of bringing all the
    resources in a group to their offline state." """
    s = web_world()
    for i, rid in enumerate(("r-cache", "r-httpd", "r-ip")):  # taken offline one by one
        ok(s, "resource.offline", resource=rid, handle=f"off{i}")
        report(s, rid, "Offline")
    g = s["groups"]["g-web"]
    assert g["state"] == "Offline" and g["persistent_state"] == "online"
    assert ok(s, "group.online", group="g-web", handle="on2")["code"] == 0x3E5
    assert {s["resources"][r]["persistent_state"] for r in g["resources"]} == {"online"}
    assert groups.wanted_resources(s, g) == {"r-ip", "r-httpd", "r-cache"}
    for rid in ("r-ip", "r-httpd", "r-cache"):
        report(s, rid, "Online")
    assert g["state"] == "Online" and s["operations"]["on2"]["status"] == "succeeded"
    ok(s, "group.offline", group="g-web", handle="off")
    assert {s["resources"][r]["persistent_state"] for r in g["resources"]} == {"offline"}


def test_a_resource_brought_online_brings_what_it_depends_on_online():
    """ApiOnlineResource (MS-CMRP 3.1.4.2.18): "if the specified resource has one or more simple
    dependencies, the server MUST first bring online the resources that this resource depends on".
    After a group offline (every resource offline), bringing httpd online brings ip too, and
    nothing else of the group."""
    s = web_world()
    ok(s, "group.offline", group="g-web", handle="off")
    ok(s, "resource.online", resource="r-httpd", handle="on-httpd")
    rs = s["resources"]
    assert (rs["r-httpd"]["persistent_state"], rs["r-ip"]["persistent_state"], rs["r-cache"]["persistent_state"]) \
        == ("online", "online", "offline")
    assert groups.wanted_resources(s, s["groups"]["g-web"]) == {"r-ip", "r-httpd"}


def test_a_domain_start_and_end_set_every_resource_like_group_online_and_offline():
    """MS-CMRP groups (online brings all the resources online, offline takes all offline): a
    recovery domain's Start and End bring its group online and offline the same way."""
    s = domain_world(online=False, program=None)
    for name in ("a", "b"):
        ok(s, "resource.create", group="crg", name=name, type="dummy", properties={}, id=f"r-{name}")
        ok(s, "resource.offline", resource=f"r-{name}", handle=f"off-{name}")
    ok(s, "domain.request", kind="start", group="crg", queue="q", handle="h1")
    assert {s["resources"][r]["persistent_state"] for r in ("r-a", "r-b")} == {"online"}
    ok(s, "domain.request", kind="end", group="crg", queue="q", handle="h2")
    assert {s["resources"][r]["persistent_state"] for r in ("r-a", "r-b")} == {"offline"}


# -- pending_forget ----------------------------------------------------------------------------------
def test_pending_forget_holds_the_ip_of_a_forgotten_member():
    """The Cluster page: pending_forget is the "Internal field used by Host.destroy to store the IP
    of cluster members marked as permanently dead but not yet removed"."""
    s = booted()
    for i, name in enumerate(("node1", "node2", "node3")):  # distinct IPs, as on real hosts
        s["members"][name]["heartbeat"] = f"10.0.0.{i + 1}:7200"
    node3 = next(ref for ref, ch in s["cluster_hosts"].items() if ch["host"] == "node3")
    ok(s, "cluster_host.forget", self=node3)
    assert s["cluster"]["pending_forget"] == ["10.0.0.3"]
    ok(s, "member.remove", name="node3")
    assert s["cluster"]["pending_forget"] == []


def test_pending_forget_where_members_share_one_ip_keeps_it_once_and_blocks_only_the_forgotten():
    """Where several members share one IP (a local cluster: all on 127.0.0.1), pending_forget
    holds that IP once while any forgotten member waits for its removal; which members are
    forgotten is kept by name, so only they are kept from rejoining."""
    s = booted(("node1", "node2", "node3", "node4"))
    hosts = {ch["host"]: ref for ref, ch in s["cluster_hosts"].items()}
    ok(s, "cluster_host.forget", self=hosts["node3"])
    ok(s, "cluster_host.forget", self=hosts["node4"])
    assert s["cluster"]["pending_forget"] == ["127.0.0.1"]
    ok(s, "cluster_host.destroy", self=hosts["node2"])  # node2 is not forgotten: it may come back
    ok(s, "cluster.pool_resync", self="OpaqueRef:cluster",
       cluster_host_ids={n: [f"OpaqueRef:new-{n}", f"uuid-new-{n}"] for n in s["members"]})
    assert sorted(ch["host"] for ch in s["cluster_hosts"].values()) == ["node1", "node2"]
    err = run(s, "cluster_host.create", cluster="OpaqueRef:cluster", host="OpaqueRef:host-node3",
              pif="OpaqueRef:pif-node3", ids=["OpaqueRef:x", "uuid-x"])
    assert err["error"]["code"] == "INVALID_VALUE"
    ok(s, "member.remove", name="node3")
    assert s["cluster"]["pending_forget"] == ["127.0.0.1"]  # node4 still waits
    ok(s, "member.remove", name="node4")
    assert s["cluster"]["pending_forget"] == []
    assert member("x", 0)["heartbeat"].startswith("127.0.0.1:")  # the builders' members share one IP


# -- the vendors' numbers -------------------------------------------------------------------------------
def test_dependency_tree_too_complex_is_5929():
    """Microsoft's System Error Codes (4000-5999), mingw-w64's winerror.h, golang/sys: ERROR_DEPENDENCY_
    TREE_TOO_COMPLEX is 5929 = 0x1729 (0x13C3 is ERROR_CLUSTER_NO_SECURITY_CONTEXT);
    ERROR_CLUSTER_NODE_PAUSED 5070 = 0x13CE; 0x174A = 5962 (ERROR_CLUSTER_NODE_DRAIN_IN_PROGRESS in
    today's headers, ERROR_CLUSTER_NODE_EVACUATION_IN_PROGRESS in MS-CMRP)."""
    assert CODES["ERROR_DEPENDENCY_TREE_TOO_COMPLEX"][0] == 5929 == 0x1729
    assert CODES["ERROR_CLUSTER_NODE_PAUSED"][0] == 5070 == 0x13CE
    assert CODES["ERROR_CLUSTER_NODE_EVACUATION_IN_PROGRESS"][0] == 5962 == 0x174A


IBM_ACTIONS = {2: "Start", 3: "Restart", 4: "End", 9: "Failover", 10: "Switchover", 11: "Add Node", 12: "Remove Node",
               13: "Change", 15: "Undo", 16: "End Node"}
IBM_STATUSES = {10: "Active", 20: "Inactive", 30: "Indoubt", 40: "Restored", 500: "Add Node Pending",
                520: "Change Pending", 530: "End CRG Pending", 550: "Remove Node Pending", 560: "Start CRG Pending",
                570: "Switchover Pending"}


def test_ibm_action_codes_and_crg_statuses_are_the_headers_numbers_and_names():
    """QCSTCRG3.H enum QcstCrgActionCode: QcstCrgAcStart 2, QcstCrgAcRestart 3, QcstCrgAcEnd 4,
    QcstCrgAcFailover 9, QcstCrgAcSwitchover 10, QcstCrgAcAddNode 11, QcstCrgAcRemoveNode 12,
    QcstCrgAcChange 13, QcstCrgAcUndo 15, QcstCrgEndNode 16. QCST.H enum QcstCrgStatus: Active 10,
    Inactive 20, Indoubt 30, Restored 40, Add Node Pending 500, Change Pending 520, End CRG Pending
    530, Remove Node Pending 550, Start CRG Pending 560, Switchover Pending 570. Each request kind
    runs with its action code and shows its pending status."""
    assert domains.ACTION_NAMES == IBM_ACTIONS and domains.STATUS_NAMES == IBM_STATUSES
    assert domains.KINDS == {
        "add_node": (500, 11), "remove_node": (550, 12), "set_role": (520, 13), "switchover": (570, 10),
        "failover": (570, 9), "start": (560, 2), "end": (530, 4)}
    assert (domains.UNDO, domains.END_NODE) == (15, 16)

def test_ibm_role_numbers_peer_is_minus_4():
    """QCST.H: QcstPrimaryNodeRole 0, QcstReplicateNodeRole -1, QcstPeerNodeRole -4; backups 1..n."""
    s = booted(N4, live=N4)
    ok(s, "group.create", name="p", id="p")
    ok(s, "domain.create", group="p", model="peer", exit_program=PROG,
       nodes=[{"node": "node1", "role": "peer"}, {"node": "node2", "role": "peer"}, {"node": "node3", "role": "replicate"}])
    d = s["groups"]["p"]["domain"]
    assert [domains.role_of(d, n)[1] for n in ("node1", "node2", "node3")] == [-4, -4, -1]
    ok(s, "domain.request", kind="add_node", group="p", queue="q", handle="h1", node="node4", role="peer")
    assert s["domain_requests"]["h1"]["roles"]["node4"] == ["peer", -4]  # the node being added, as a peer
    d = domain_world()["groups"]["crg"]["domain"]
    assert [domains.role_of(d, n)[1] for n in N4] == [0, 1, 2, -1]


def test_ibm_crg_status_names():
    """QCST.H (enum QcstCrgStatus): QcstCrgEndCrgPending 530 "End CRG Pending", QcstCrgStartCrgPending
    560 "Start CRG Pending"."""
    assert domains.STATUS_NAMES[530] == "End CRG Pending" and domains.STATUS_NAMES[560] == "Start CRG Pending"
    s = domain_world(online=False)
    ok(s, "domain.request", kind="start", group="crg", queue="q", handle="h1")
    assert domains.domain_view(s, s["groups"]["crg"])["status_name"] == "Start CRG Pending"


def test_the_node_a_group_fails_over_from_gets_end_node_16_the_others_failover_9():
    """IBM ENDCLUNOD / QCSTCRG3.H: "End Node (16): given to the node being ended; the other nodes get
    Failover". A failover after a resource failure leaves a node that is still active: it takes part,
    with End Node."""
    s = domain_world()
    assert s["groups"]["crg"]["owner"] == "node1"
    ok(s, "domain.request", kind="failover", group="crg", queue=domains.FAILOVER_QUEUE, handle="f1", node="node2",
       reason="resource failed", **{"from": "node1"})
    r = s["domain_requests"]["f1"]
    assert sorted(r["participants"]) == list(N4)
    assert {n: domains.action_for(r, n) for n in N4} == {"node1": 16, "node2": 9, "node3": 9, "node4": 9}
    ok(s, "domain.exit_result", handle="f1", node="node3", phase="exit", ok=False, detail="no")
    for n in ("node1", "node2", "node4"):
        ok(s, "domain.exit_result", handle="f1", node=n, phase="exit", ok=True, detail="")
    r = s["domain_requests"]["f1"]
    assert r["phase"] == "undo" and {domains.action_for(r, n) for n in r["participants"]} == {domains.UNDO}
