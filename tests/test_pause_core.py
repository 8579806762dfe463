"""Pause, drain and resume (ApiPauseNodeEx) through the functional core, and placement with
paused nodes and recovery domains. No sockets, no processes."""
import pytest

from clusterd import domains, pause, placement

from builders import booted, ok
from builders import refused_before_submit as refused

N4 = ("node1", "node2", "node3", "node4")


def world(live=N4):
    s = booted(N4, live=live)
    for i in range(6):
        ok(s, "group.create", name=f"g{i}", id=f"g{i}")
        ok(s, "group.online", group=f"g{i}", handle=f"h{i}", owner="node1" if i < 4 else "node2")
    return s


def test_pause_without_drain_keeps_groups_and_succeeds():
    s = world()
    assert ok(s, "node.pause", node="node1", drain=False, flags=0) == {"status": "ERROR_SUCCESS", "code": 0}
    rec = pause.pause_view(s, "node1")
    assert rec["paused"] and rec["state"] == "Paused" and rec["drain_status"] == "NotInitiated" and rec["groups"] == 4


@pytest.mark.parametrize("flags", [0, 1, 7, -1, 2**40, "x", None, True])
def test_flags_are_ignored_entirely_without_drain(flags):
    s = world()
    assert ok(s, "node.pause", node="node1", drain=False, flags=flags)["code"] == 0


@pytest.mark.parametrize("flags", [0, 1])
def test_drain_returns_io_pending_and_is_in_progress(flags):
    s = world()
    assert ok(s, "node.pause", node="node1", drain=True, flags=flags) == {"status": "ERROR_IO_PENDING", "code": 0x3E5}
    rec = pause.pause_view(s, "node1")
    assert rec["drain_status"] == "InProgress" and rec["total"] == 4 and rec["flags"] == flags


@pytest.mark.parametrize("node", ["nodeX", "", None, 7, ["node1"], "NODE1"])
def test_unknown_node_is_invalid_handle_6(node):
    s = world()
    refused(s, "node.pause", "ERROR_INVALID_HANDLE", 6, node=node, drain=True, flags=0)
    refused(s, "node.resume", "ERROR_INVALID_HANDLE", 6, node=node, failback="none")


@pytest.mark.parametrize("flags", [2, 3, -1, 0x80000000, "1", None, True, 1.0])
def test_drain_flags_other_than_0_or_1_are_rejected(flags):
    refused(world(), "node.pause", "ERROR_INVALID_PARAMETER", node="node1", drain=True, flags=flags)


@pytest.mark.parametrize("drain", ["yes", 1, None])
def test_drain_must_be_a_bool(drain):
    refused(world(), "node.pause", "ERROR_INVALID_PARAMETER", node="node1", drain=drain, flags=0)


def test_second_drain_during_the_first_is_evacuation_in_progress_0x174a():
    s = world()
    ok(s, "node.pause", node="node1", drain=True, flags=0)
    refused(s, "node.pause", "ERROR_CLUSTER_NODE_EVACUATION_IN_PROGRESS", 0x174A, node="node1", drain=True, flags=0)
    refused(s, "node.pause", "ERROR_CLUSTER_NODE_EVACUATION_IN_PROGRESS", 0x174A, node="node1", drain=True, flags=1)


def test_no_other_node_up_is_node_down_0x13ba():
    s = world(live=("node1",))
    refused(s, "node.pause", "ERROR_CLUSTER_NODE_DOWN", 0x13BA, node="node1", drain=True, flags=0)


def test_other_nodes_paused_do_not_count_as_up():
    s = world(live=("node1", "node2"))
    ok(s, "node.pause", node="node2", drain=False, flags=0)
    refused(s, "node.pause", "ERROR_CLUSTER_NODE_DOWN", 0x13BA, node="node1", drain=True, flags=0)


def test_pause_without_drain_needs_no_other_node_up():
    s = world(live=("node1",))
    assert ok(s, "node.pause", node="node1", drain=False, flags=0)["code"] == 0


@pytest.mark.parametrize("failback", ["sometimes", "", None, 1])
def test_resume_refuses_an_unknown_failback(failback):
    refused(world(), "node.resume", "ERROR_INVALID_PARAMETER", node="node1", failback=failback)


def _move(s, gid, to):
    """Group.move's command; a group that runs nothing is handed over at once."""
    assert ok(s, "group.move", group=gid, to=to, flags=0, properties={}, handle=f"move-{gid}")["code"] == 0x3E5
    assert s["groups"][gid]["owner"] == to


def _moved_all(s, node, to):
    for gid in pause.owned_groups(s, node):
        _move(s, gid, to)


def test_drain_done_completed_only_when_the_node_hosts_no_group():
    s = world()
    ok(s, "node.pause", node="node1", drain=True, flags=0)
    assert ok(s, "node.drain_done", node="node1", status="Completed", moved=[], kept=[]) == "Failed"
    s = world()
    ok(s, "node.pause", node="node1", drain=True, flags=0)
    _moved_all(s, "node1", "node3")
    assert ok(s, "node.drain_done", node="node1", status="Completed", moved=["g0"], kept=[]) == "Completed"
    assert pause.pause_view(s, "node1")["drain_status"] == "Completed"
    # a new drain may start once the first ended
    assert ok(s, "node.pause", node="node1", drain=True, flags=0)["code"] == 0x3E5


def test_with_the_flag_kept_groups_may_stay_and_the_drain_completes():
    s = world()
    ok(s, "node.pause", node="node1", drain=True, flags=1)
    for gid in ("g0", "g1", "g2"):
        _move(s, gid, "node3")
    assert ok(s, "node.drain_done", node="node1", status="Completed", moved=["g0", "g1", "g2"], kept=["g3"]) == "Completed"
    assert pause.pause_view(s, "node1")["kept"] == 1


def test_drain_done_without_a_drain_is_refused():
    s = world()
    refused(s, "node.drain_done", "ERROR_INVALID_PARAMETER", node="node1", status="Completed", moved=[], kept=[])


@pytest.mark.parametrize("failback,back", [("none", []), ("immediate", ["g0", "g1"]), ("policy", ["g1"])])
def test_resume_failback(failback, back):
    s = world()
    ok(s, "group.set", group="g1", field="failover", value={"failback": "immediate"})
    ok(s, "node.pause", node="node1", drain=True, flags=0)
    _moved_all(s, "node1", "node3")
    ok(s, "node.drain_done", node="node1", status="Completed", moved=["g0", "g1"], kept=[])
    assert ok(s, "node.resume", node="node1", failback=failback) == {"failback": len(back)}
    rec = pause.node_record(s, "node1")
    assert not rec["paused"] and rec["drain"] == "NotInitiated" and rec["failback"] == back


# -- placement ----------------------------------------------------------------------------------
@pytest.mark.parametrize("paused,preferred,expected", [
    ([], [], "node3"),  # least loaded (node1 4, node2 2, node3 0, node4 0; ties by name)
    (["node3"], [], "node4"),
    (["node3", "node4"], [], "node2"),
    ([], ["node2", "node3"], "node2"),
    (["node2"], ["node2", "node3"], "node3"),  # a paused preferred owner is skipped
    (["node2", "node3", "node4"], ["node2"], None),  # node1 excluded: nobody
])
def test_placement_never_chooses_a_paused_node(paused, preferred, expected):
    s = world()
    ok(s, "group.create", name="new", id="new")
    if preferred:
        ok(s, "group.set", group="new", field="preferred_owners", value=preferred)
    for n in paused:
        ok(s, "node.pause", node=n, drain=False, flags=0)
    assert placement.place_group(s, list(N4), s["groups"]["new"], exclude=["node1"]) == expected


@pytest.mark.parametrize("live,paused,expected", [
    (N4, [], "node3"),  # the primary
    (("node1", "node2", "node4"), [], "node4"),  # the primary is down: first backup
    (N4, ["node3"], "node4"),  # a paused primary is skipped
    (N4, ["node3", "node4"], "node2"),  # second backup
    (("node1",), [], None),  # no domain node: None (node1 is only a replicate)
])
def test_placement_follows_the_recovery_domain_order(live, paused, expected):
    s = world()
    ok(s, "group.create", name="crg", id="crg")
    ok(s, "domain.create", group="crg", model="primary-backup", exit_program=None,
       nodes=[{"node": "node1", "role": "replicate"}, {"node": "node4", "role": "backup"},
              {"node": "node3", "role": "primary"}, {"node": "node2", "role": "backup"}])
    for n in paused:
        ok(s, "node.pause", node=n, drain=False, flags=0)
    assert placement.place_group(s, list(live), s["groups"]["crg"]) == expected
    # a drain's "move it anyway" ignores the domain's limits
    if expected is None:
        assert placement.place_group(s, ["node1", "node2"], s["groups"]["crg"], exclude=["node1"], policy=False) == "node2"


def test_a_second_drain_while_paused_keeps_what_the_first_moved_for_failback():
    s = world()
    ok(s, "node.pause", node="node1", drain=True, flags=0)
    _moved_all(s, "node1", "node3")
    ok(s, "node.drain_done", node="node1", status="Completed", moved=["g0", "g1"], kept=[])
    ok(s, "node.pause", node="node1", drain=True, flags=0)
    ok(s, "node.drain_done", node="node1", status="Completed", moved=[], kept=[])
    assert ok(s, "node.resume", node="node1", failback="immediate") == {"failback": 2}


