"""Failover through the functional core: fence records and group.failover on plain state.

A group leaves a lost node only after a committed fence of that node (docs/architecture.md, invariant 4),
and a fence speaks only for the absence it was made for.
"""
import pytest

from clusterd import failover, placement

from builders import AT, booted
from test_groups_core import code, create_group, create_resource, ok, refused, report, run


def online_group(s, name="web", owner="node3"):
    create_group(s, name)
    create_resource(s, name, f"{name}-r")
    ok(s, "group.online", group=name, handle=f"h-{name}", owner=owner)
    report(s, f"r-{name}-r", "Online", node=owner)
    return f"g-{name}"


def lost_node3():
    s = booted(live=["node1", "node2", "node3"])
    gid = online_group(s)
    ok(s, "membership.view", live=["node1", "node2"], by="node1")
    return s, gid


def fence(s, node="node3", fenced=True):
    ok(s, "fence.request", node=node, agent="watchdog")
    ok(s, "fence.result", node=node, fenced=fenced, detail="test")


def test_a_down_nodes_online_groups_are_lost():
    s, gid = lost_node3()
    assert failover.lost_groups(s) == {"node3": [gid]}


def test_no_failover_before_the_fence():
    s, gid = lost_node3()
    refused(s, "group.failover", "INVALID_VALUE", group=gid, to="node1", reason="node down", **{"from": "node3"})
    ok(s, "fence.request", node="node3", agent="watchdog")
    refused(s, "group.failover", "INVALID_VALUE", group=gid, to="node1", reason="node down", **{"from": "node3"})
    ok(s, "fence.result", node="node3", fenced=False, detail="the PDU did not answer")
    refused(s, "group.failover", "INVALID_VALUE", group=gid, to="node1", reason="node down", **{"from": "node3"})


def test_failover_after_the_fence_moves_the_group_with_its_reason():
    s, gid = lost_node3()
    fence(s)
    assert ok(s, "group.failover", group=gid, to="node1", reason="node down", **{"from": "node3"}) == "node1"
    g = s["groups"][gid]
    assert g["owner"] == "node1" and g["last_failover"]["reason"] == "node down"
    assert s["resources"]["r-web-r"]["state"] == "Offline"  # the new owner starts it
    assert failover.lost_groups(s) == {}


def test_a_live_node_is_never_fenced_nor_failed_over_from():
    s = booted(live=["node1", "node2", "node3"])
    gid = online_group(s)
    refused(s, "fence.request", "INVALID_VALUE", node="node3", agent="process")
    refused(s, "group.failover", "INVALID_VALUE", group=gid, to="node1", reason="node down", **{"from": "node3"})
    refused(s, "fence.request", "HANDLE_INVALID", node="node9", agent="process")
    refused(s, "fence.result", "INVALID_VALUE", node="node3", fenced=True, detail="")


def test_a_fence_does_not_outlive_the_absence_it_was_made_for():
    """node3 was fenced by the watchdog and came back without a restart: when it is lost again,
    a new fence is needed before its groups move (a stale record must not let them move)."""
    s, gid = lost_node3()
    fence(s)
    ok(s, "membership.view", live=["node1", "node2", "node3"], by="node1")
    assert "node3" not in s["fence"]
    ok(s, "membership.view", live=["node1", "node2"], by="node1")
    refused(s, "group.failover", "INVALID_VALUE", group=gid, to="node1", reason="node down", **{"from": "node3"})


def test_a_new_incarnation_clears_the_fence_record():
    s, _ = lost_node3()
    fence(s)
    ok(s, "member.hello", name="node3", pid=4242, create_time=AT)
    assert "node3" not in s["fence"] and s["members"]["node3"]["process"]["pid"] == 4242


def test_failover_past_the_threshold_leaves_the_group_failed_where_it_was():
    s, gid = lost_node3()
    ok(s, "group.set", group=gid, field="failover", value={"threshold": 0})
    fence(s)
    assert ok(s, "group.failover", group=gid, to="node1", reason="node down", **{"from": "node3"}) == "node3"
    assert s["groups"][gid]["state"] == "Failed"


def test_a_resource_failure_moves_only_a_group_that_asked():
    s = booted(live=["node1", "node2", "node3"])
    gid = online_group(s)
    result = run(s, "group.failover", group=gid, to="node1", reason="resource failed", **{"from": "node3"})
    assert code(result) == "INVALID_VALUE"
    assert failover.failed_groups(s) == []


# -- failback -----------------------------------------------------------------------------------
def failed_over(failback="immediate", window=(0, 0)):
    """web prefers node3, then node1; node3 was lost and fenced, web failed over to node1, and
    node3 is live again."""
    s = booted(live=["node1", "node2", "node3"])
    gid = online_group(s)
    ok(s, "group.set", group=gid, field="preferred_owners", value=["node3", "node1"])
    ok(s, "group.set", group=gid, field="failover", value={"failback": failback, "failback_window": list(window)})
    ok(s, "membership.view", live=["node1", "node2"], by="node1")
    fence(s)
    ok(s, "group.failover", group=gid, to="node1", reason="node down", **{"from": "node3"})
    report(s, "r-web-r", "Online", node="node1")
    ok(s, "membership.view", live=["node1", "node2", "node3"], by="node1")
    return s, gid


LIVE = ["node1", "node2", "node3"]


def test_failback_immediate_goes_back_to_the_preferred_owner_once_it_is_back():
    s, gid = failed_over()
    assert placement.failback_moves(s, LIVE, hour=12) == [(gid, "node1", "node3")]
    assert placement.failback_moves(s, ["node1", "node2"], hour=12) == []  # node3 not live yet


@pytest.mark.parametrize("failback, window, hour, back", [
    ("prevent", (0, 0), 12, False),
    ("window", (1, 5), 3, True), ("window", (1, 5), 5, False), ("window", (1, 5), 0, False),
    ("window", (22, 2), 23, True), ("window", (22, 2), 1, True), ("window", (22, 2), 12, False),
    ("window", (4, 4), 4, False),  # an empty window never opens
])
def test_failback_follows_the_policy_and_its_window(failback, window, hour, back):
    s, gid = failed_over(failback, window)
    assert placement.failback_moves(s, LIVE, hour) == ([(gid, "node1", "node3")] if back else [])


def test_no_failback_to_a_paused_node_nor_during_a_move_nor_after_a_manual_move():
    s, gid = failed_over()
    ok(s, "node.pause", node="node3", drain=False, flags=0)
    assert placement.failback_moves(s, LIVE, 12) == []
    s, gid = failed_over()
    ok(s, "group.move", group=gid, to="node2", flags=0, properties={}, handle="m1")  # a client moved it on
    assert placement.failback_moves(s, LIVE, 12) == []
    s, gid = failed_over()
    s["groups"][gid]["state"] = "Pending"  # not settled where it is
    assert placement.failback_moves(s, LIVE, 12) == []


def test_a_fence_acts_only_on_the_incarnation_it_was_requested_for():
    """The fence record names the daemon it is for; a restarted daemon's hello ends the record,
    so a fence still running (e.g. resumed by a new leader) finds nothing of it to kill."""
    from clusterd import fencing
    s = booted(live=["node1", "node2", "node3"])
    online_group(s)
    ok(s, "member.hello", name="node3", pid=100, create_time=AT, data_dir="/var/lib/clusterd/node3")
    ok(s, "membership.view", live=["node1", "node2"], by="node1")
    ok(s, "fence.request", node="node3", agent="process")
    assert s["fence"]["node3"]["process"]["pid"] == 100
    assert [p["pid"] for p in fencing._process_targets(s, "node3")] == [100]
    ok(s, "member.hello", name="node3", pid=200, create_time=AT + 5, data_dir="/var/lib/clusterd/node3")
    assert fencing._process_targets(s, "node3") == []


def test_a_removed_owner_is_fenced_before_its_groups_fail_over():
    """member.remove of an owner: its group that runs nowhere loses its owner at once; for the
    one that may run there its fence is requested, a failed fence may be requested again, and
    once it is fenced the group fails over as a lost node's."""
    s = booted(live=["node1", "node2", "node3"])
    gid = online_group(s)
    quiet = online_group(s, "idle")
    ok(s, "group.offline", group="idle", handle="h-idle-off")
    report(s, "r-idle-r", "Offline", node="node3")
    ok(s, "member.hello", name="node3", pid=4242, create_time=1.5, data_dir="/var/lib/clusterd")
    ok(s, "member.remove", name="node3", agent="process")
    assert s["groups"][quiet]["owner"] is None and s["groups"][gid]["owner"] == "node3"
    f = s["fence"]["node3"]
    assert f["status"] == "requested" and f["process"]["pid"] == 4242 and not f["live"]
    refused(s, "group.failover", "INVALID_VALUE", group=gid, to="node1", reason="node down", **{"from": "node3"})
    ok(s, "fence.result", node="node3", fenced=False, detail="still alive")
    ok(s, "fence.request", node="node3", agent="process")  # again, though no longer a member
    assert s["fence"]["node3"]["process"]["pid"] == 4242 and s["fence"]["node3"]["attempts"] == 2
    ok(s, "fence.result", node="node3", fenced=True, detail="killed")
    assert ok(s, "group.failover", group=gid, to="node1", reason="node down", **{"from": "node3"}) == "node1"
    refused(s, "fence.request", "HANDLE_INVALID", node="node9", agent="process")


def test_removing_a_node_that_owns_nothing_requests_no_fence():
    s = booted(live=["node1", "node2", "node3"])
    online_group(s, owner="node1")
    ok(s, "member.remove", name="node3", agent="process")
    assert "node3" not in s["fence"]
