"""Recovery domains through the functional core: each rule of QcstRemoveNodeFromRcvyDomain as
its own test, the exit-program phases, Undo and Indoubt, switchover, the results queue."""
import copy

import pytest

from clusterd import db, domains, events, placement

from builders import booted, ok, run
from builders import refused_before_submit as refused

N4 = ("node1", "node2", "node3", "node4")
PROG = "/usr/local/bin/crg-exit"


def world(live=N4, model="primary-backup", nodes=None, program=PROG, online=False):
    s = booted(N4, live=live)
    ok(s, "group.create", name="crg", id="crg")
    nodes = nodes or [("node1", "primary"), ("node2", "backup"), ("node3", "backup"), ("node4", "replicate")]
    ok(s, "domain.create", group="crg", model=model, exit_program=program,
       nodes=[{"node": n, "role": r} for n, r in nodes])
    if online:
        ok(s, "group.online", group="crg", handle="on", owner=nodes[0][0])
    return s


def request(s, kind, handle="h1", queue="q", **fields):
    return run(s, "domain.request", kind=kind, group="crg", queue=queue, handle=handle, **fields)


def req(s, handle="h1"):
    return s["domain_requests"][handle]


def answer(s, handle, node, good=True, phase=None):
    return ok(s, "domain.exit_result", handle=handle, node=node, phase=phase or req(s, handle)["phase"], ok=good,
              detail="" if good else f"{node} said no")


def status(s):
    return domains.crg_status(s["groups"]["crg"])


def nodes_of(s):
    return [(e["node"], e["role"]) for e in s["groups"]["crg"]["domain"]["nodes"]]


# -- the domain itself ----------------------------------------------------------------------------
def test_a_new_domain_is_inactive_20_and_active_10_once_online():
    s = world()
    assert status(s) == domains.INACTIVE == 20
    ok(s, "group.online", group="crg", handle="on", owner="node1")
    assert status(s) == domains.ACTIVE == 10


@pytest.mark.parametrize("model,nodes,exit_program", [
    ("nonsense", [("node1", "primary")], None),
    ("primary-backup", [("node1", "backup")], None),  # no primary
    ("primary-backup", [("node1", "primary"), ("node2", "primary")], None),
    ("primary-backup", [("node1", "peer")], None),
    ("peer", [("node1", "primary")], None),
    ("peer", [("node1", "replicate")], None),  # no peer
    ("primary-backup", [("node1", "primary"), ("node1", "backup")], None),  # twice
    ("primary-backup", [("nodeX", "primary")], None),
    ("primary-backup", [], None),
    ("primary-backup", [("node1", "primary")], "relative/path"),
    ("primary-backup", [("node1", "primary")], "/x" * 3000),
    ("primary-backup", [("node1", "primary")], 7),
])
def test_bad_domains_are_refused(model, nodes, exit_program):
    s = booted(N4, live=N4)
    ok(s, "group.create", name="crg", id="crg")
    before = copy.deepcopy(s)
    result = run(s, "domain.create", group="crg", model=model, exit_program=exit_program,
                 nodes=[{"node": n, "role": r} for n, r in nodes])
    assert "error" in result and s == before


def test_no_domain_on_the_core_group_or_an_unknown_group():
    s = world()
    ok(s, "group.create_core", id="core", owner="node1")
    refused(s, "domain.create", "CLUSTER_SPECIAL_GROUP", group="core", model="peer", exit_program=None,
            nodes=[{"node": "node1", "role": "peer"}])
    refused(s, "domain.create", "ERROR_GROUP_NOT_FOUND", group="nope", model="peer", exit_program=None,
            nodes=[{"node": "node1", "role": "peer"}])


# -- remove node: each rule of the seed page ------------------------------------------------------
def test_remove_sets_remove_node_pending_550_and_calls_remove_node_12_on_all_active_nodes():
    s = world(live=("node1", "node2", "node4"))  # node3 is not active
    r = request(s, "remove_node", node="node2")["ok"]
    assert r == {"status": "ERROR_IO_PENDING", "code": 0x3E5, "handle": "h1"}
    assert status(s) == domains.REMOVE_NODE_PENDING == 550
    assert req(s)["action"] == domains.REMOVE_NODE == 12
    assert req(s)["participants"] == ["node1", "node2", "node4"]


def test_remove_restores_the_status_on_success_and_posts_to_the_queue():
    s = world()
    request(s, "remove_node", node="node3")
    for n in ("node1", "node2", "node3", "node4"):
        assert events.read(s, "q", "h1") is None
        answer(s, "h1", n)
    assert status(s) == domains.INACTIVE
    assert nodes_of(s) == [("node1", "primary"), ("node2", "backup"), ("node4", "replicate")]
    assert events.read(s, "q", "h1")["ok"] is True


def test_remove_with_an_exit_program_that_fails_calls_undo_and_restores_the_status():
    s = world()
    request(s, "remove_node", node="node3")
    for n, good in (("node1", True), ("node2", False), ("node3", True), ("node4", True)):
        answer(s, "h1", n, good)
    assert req(s)["phase"] == "undo" and req(s)["action"] == domains.UNDO
    for n in ("node1", "node2", "node3", "node4"):
        answer(s, "h1", n)
    assert status(s) == domains.INACTIVE and ("node3", "backup") in nodes_of(s)  # unchanged
    entry = events.read(s, "q", "h1")
    assert entry["ok"] is False and entry["message_id"] == "EXIT_PROGRAM_FAILED" and "node2 said no" in entry["data"]


def test_remove_whose_undo_fails_too_is_indoubt_30():
    s = world()
    request(s, "remove_node", node="node3")
    for n in ("node1", "node2", "node3", "node4"):
        answer(s, "h1", n, good=n != "node4")
    for n in ("node1", "node2", "node3", "node4"):
        answer(s, "h1", n, good=n != "node4")
    assert status(s) == domains.INDOUBT == 30
    assert events.read(s, "q", "h1")["status"] == 30


def test_the_removed_node_need_not_be_active():
    s = world(live=("node1", "node2"))
    request(s, "remove_node", node="node3")
    for n in ("node1", "node2"):
        answer(s, "h1", n)
    assert "node3" not in [n for n, _ in nodes_of(s)]


def test_primary_backup_primary_cannot_be_removed_without_a_backup():
    s = world(nodes=[("node1", "primary"), ("node4", "replicate")])
    refused(s, "domain.request", "DOMAIN_RULE", kind="remove_node", group="crg", queue="q", handle="h1", node="node1")


def test_primary_backup_primary_cannot_be_removed_while_active_10():
    s = world(online=True)
    refused(s, "domain.request", "DOMAIN_RULE", kind="remove_node", group="crg", queue="q", handle="h1", node="node1")


def test_removing_the_inactive_primary_makes_the_first_backup_primary_and_owner():
    s = world()
    ok(s, "group.online", group="crg", handle="on", owner="node1")
    ok(s, "group.offline", group="crg", handle="off")
    request(s, "remove_node", node="node1")
    for n in N4:
        answer(s, "h1", n)
    assert nodes_of(s)[0] == ("node2", "primary") and s["groups"]["crg"]["owner"] == "node2"


def test_peer_last_peer_of_an_active_group_cannot_be_removed():
    s = world(model="peer", nodes=[("node1", "peer"), ("node2", "replicate")], online=True)
    refused(s, "domain.request", "DOMAIN_RULE", kind="remove_node", group="crg", queue="q", handle="h1", node="node1")


def test_peer_last_peer_of_an_inactive_group_can_be_removed():
    s = world(model="peer", nodes=[("node1", "peer"), ("node2", "replicate")], program=None)
    assert request(s, "remove_node", node="node1")["ok"]["code"] == 0x3E5
    assert nodes_of(s) == [("node2", "replicate")] and events.read(s, "q", "h1")["ok"]


def test_at_least_one_active_node_must_remain():
    s = world(live=("node2",))
    refused(s, "domain.request", "DOMAIN_RULE", kind="remove_node", group="crg", queue="q", handle="h1", node="node2")


@pytest.mark.parametrize("node", ["nodeX", 3, None])
def test_remove_an_unknown_node_is_invalid_handle(node):
    refused(world(), "domain.request", "ERROR_INVALID_HANDLE", kind="remove_node", group="crg", queue="q",
            handle="h1", node=node)


def test_remove_a_member_outside_the_domain_is_invalid_handle():
    s = world(nodes=[("node1", "primary"), ("node2", "backup")])
    refused(s, "domain.request", "ERROR_INVALID_HANDLE", kind="remove_node", group="crg", queue="q", handle="h1", node="node3")


def test_one_request_at_a_time():
    s = world()
    request(s, "remove_node", node="node3")
    refused(s, "domain.request", "DOMAIN_REQUEST_IN_PROGRESS", kind="remove_node", group="crg", queue="q",
            handle="h2", node="node4")


@pytest.mark.parametrize("queue", ["", " q", "a" * 65, None, 5, "q\n"])
def test_bad_queue_names_are_refused(queue):
    refused(world(), "domain.request", "ERROR_INVALID_PARAMETER", kind="remove_node", group="crg", queue=queue,
            handle="h1", node="node3")


def test_without_an_exit_program_the_request_completes_at_once():
    s = world(program=None)
    request(s, "remove_node", node="node4")
    assert events.read(s, "q", "h1")["ok"] and status(s) == domains.INACTIVE


def test_an_exit_result_nobody_asked_for_is_refused():
    s = world()
    request(s, "remove_node", node="node3")
    refused(s, "domain.exit_result", "ERROR_INVALID_PARAMETER", handle="h1", node="node1", phase="undo", ok=True)
    answer(s, "h1", "node1")
    refused(s, "domain.exit_result", "ERROR_INVALID_PARAMETER", handle="h1", node="node1", phase="exit", ok=True)
    refused(s, "domain.exit_result", "OPERATION_NOT_FOUND", handle="nope", node="node1", phase="exit", ok=True)


# -- add node, change role --------------------------------------------------------------------------
def test_add_node_as_backup_at_a_position():
    s = world(nodes=[("node1", "primary"), ("node2", "backup"), ("node3", "backup")], program=None)
    request(s, "add_node", node="node4", role="backup", position=1)
    assert nodes_of(s) == [("node1", "primary"), ("node4", "backup"), ("node2", "backup"), ("node3", "backup")]


def test_add_node_calls_add_node_11_on_the_active_nodes_and_the_new_one():
    s = world(nodes=[("node1", "primary"), ("node2", "backup")])
    request(s, "add_node", node="node3", role="replicate")
    assert req(s)["action"] == domains.ADD_NODE == 11 and req(s)["participants"] == ["node1", "node2", "node3"]
    assert status(s) == domains.ADD_NODE_PENDING


@pytest.mark.parametrize("node,role,position,expected", [
    ("node2", "backup", None, "ERROR_INVALID_PARAMETER"),  # already in the domain
    ("node4", "primary", None, "ERROR_INVALID_PARAMETER"),
    ("node4", "peer", None, "ERROR_INVALID_PARAMETER"),  # not in primary-backup
    ("node4", "backup", 9, "ERROR_INVALID_PARAMETER"),
    ("node4", "backup", "1", "ERROR_INVALID_PARAMETER"),
    ("nodeX", "backup", None, "ERROR_INVALID_HANDLE"),
])
def test_add_node_refusals(node, role, position, expected):
    s = world(nodes=[("node1", "primary"), ("node2", "backup")])
    refused(s, "domain.request", expected, kind="add_node", group="crg", queue="q", handle="h1", node=node,
            role=role, position=position)


def test_set_role_moves_a_backup_to_replicate_and_back_first():
    s = world(program=None)
    request(s, "set_role", node="node2", role="replicate")
    assert nodes_of(s) == [("node1", "primary"), ("node3", "backup"), ("node4", "replicate"), ("node2", "replicate")]
    request(s, "set_role", handle="h2", node="node4", role="backup", position=1)
    assert nodes_of(s)[:3] == [("node1", "primary"), ("node4", "backup"), ("node3", "backup")]


def test_set_role_cannot_change_the_primary():
    refused(world(), "domain.request", "DOMAIN_RULE", kind="set_role", group="crg", queue="q", handle="h1",
            node="node1", role="backup")


# -- switchover -------------------------------------------------------------------------------------
def test_switchover_goes_to_the_first_active_backup_and_rotates_roles():
    s = world(live=("node1", "node3", "node4"), online=True)  # node2, the first backup, is down
    request(s, "switchover")
    r = req(s)
    assert r["target"] == "node3" and r["action"] == domains.SWITCHOVER and status(s) == domains.SWITCHOVER_PENDING
    for n in ("node1", "node3", "node4"):
        answer(s, "h1", n)
    assert req(s)["phase"] == "move"  # the leader moves the group now
    ok(s, "group.move", group="crg", to="node3", flags=0, properties={}, handle="m1")  # nothing runs: at once
    assert s["groups"]["crg"]["owner"] == "node3"
    ok(s, "domain.moved", handle="h1", ok=True)
    assert nodes_of(s) == [("node3", "primary"), ("node2", "backup"), ("node1", "backup"), ("node4", "replicate")]
    assert status(s) == domains.ACTIVE and events.read(s, "q", "h1")["ok"]


def test_switchover_needs_an_active_group_and_an_active_backup():
    refused(world(), "domain.request", "DOMAIN_RULE", kind="switchover", group="crg", queue="q", handle="h1")
    s = world(live=("node1", "node4"), online=True)
    refused(s, "domain.request", "ERROR_CLUSTER_NODE_DOWN", kind="switchover", group="crg", queue="q", handle="h1")


def test_a_failed_switchover_move_undoes():
    s = world(online=True)
    request(s, "switchover")
    for n in N4:
        answer(s, "h1", n)
    ok(s, "domain.moved", handle="h1", ok=False, detail="source did not stop")
    assert req(s)["phase"] == "undo"
    for n in N4:
        answer(s, "h1", n)
    assert status(s) == domains.ACTIVE and nodes_of(s)[0] == ("node1", "primary")
    assert events.read(s, "q", "h1")["message_id"] == "MOVE_FAILED"


def test_failover_to_a_backup_rotates_the_roles():
    s = world(online=True)
    ok(s, "membership.view", live=["node2", "node3", "node4"], by="node2")
    ok(s, "fence.request", node="node1", agent="watchdog")
    ok(s, "fence.result", node="node1", fenced=True, detail="")
    to = placement.place_group(s, s["view"]["live"], s["groups"]["crg"], exclude=["node1"])
    assert to == "node2"
    ok(s, "group.failover", group="crg", to=to, reason="node down", **{"from": "node1"})
    assert nodes_of(s)[:3] == [("node2", "primary"), ("node3", "backup"), ("node1", "backup")]


def test_queue_is_bounded():
    s = db.initial_state()
    for i in range(events.QUEUES_KEEP + 5):
        events.post(s, "q", f"k{i}", {"ok": True})
    assert events.read(s, "q", "k0") is None and events.read(s, "q", f"k{events.QUEUES_KEEP + 4}")["ok"]


def test_failover_with_an_exit_program_runs_it_first_with_action_failover_9():
    s = world(online=True)
    ok(s, "membership.view", live=["node2", "node3", "node4"], by="node2")
    ok(s, "fence.request", node="node1", agent="watchdog")
    ok(s, "fence.result", node="node1", fenced=True, detail="")
    assert domains.failover_domain(s, "crg") == "exit"
    request(s, "failover", handle="f1", queue=domains.FAILOVER_QUEUE, node="node2", reason="node down",
            **{"from": "node1"})
    r = req(s, "f1")
    assert r["action"] == domains.FAILOVER == 9 and r["participants"] == ["node2", "node3", "node4"]
    assert status(s) == domains.SWITCHOVER_PENDING and domains.failover_domain(s, "crg") == "busy"
    for n in ("node2", "node3", "node4"):
        answer(s, "f1", n)
    assert req(s, "f1")["phase"] == "move"
    ok(s, "group.failover", group="crg", to="node2", reason="node down", **{"from": "node1"})
    ok(s, "domain.moved", handle="f1", ok=True)
    assert s["groups"]["crg"]["owner"] == "node2" and nodes_of(s)[0] == ("node2", "primary")
    assert status(s) == domains.ACTIVE and events.read(s, domains.FAILOVER_QUEUE, "f1")["ok"]


def test_start_calls_start_2_then_brings_the_group_online_on_the_first_up_node_of_the_order():
    s = world(live=("node2", "node3", "node4"))  # the primary is down
    request(s, "start")
    r = req(s)
    assert r["action"] == domains.START == 2 and r["target"] == "node2" and status(s) == domains.START_CRG_PENDING
    assert s["groups"]["crg"]["persistent_state"] == "offline"  # not before the exit programs succeed
    for n in ("node2", "node3", "node4"):
        answer(s, "h1", n)
    g = s["groups"]["crg"]
    assert g["persistent_state"] == "online" and g["owner"] == "node2" and status(s) == domains.ACTIVE


def test_end_calls_end_4_then_takes_the_group_offline():
    s = world(online=True, program=None)
    refused(s, "domain.request", "DOMAIN_RULE", kind="start", group="crg", queue="q", handle="h0")
    request(s, "end")
    assert s["groups"]["crg"]["persistent_state"] == "offline" and status(s) == domains.INACTIVE
    assert req(s)["action"] == domains.END == 4


def test_a_start_whose_exit_program_fails_leaves_the_group_offline():
    s = world()
    request(s, "start")
    for n in N4:
        answer(s, "h1", n, good=n != "node3")
    for n in N4:
        answer(s, "h1", n)
    assert s["groups"]["crg"]["persistent_state"] == "offline" and status(s) == domains.INACTIVE
    assert events.read(s, "q", "h1")["ok"] is False
