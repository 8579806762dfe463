"""Group moves (MoveClusterGroupEx) through the functional core: db.apply on plain state.

Every flag, every immediate refusal (its code, and a database deep-equal to before), and each
of the page's four outcomes as a sequence of committed commands.
"""
import copy

import pytest

from clusterd import groups, moves

from builders import AT
from test_groups_core import group, ok, refused, report, res, run, web_online, world

WEB = ("r-ip", "r-httpd", "r-cache")
VM = {"Virtual Machine": {"format": "CLUSPROP_FORMAT_DWORD", "value": moves.VM_RESDLL_CONTEXT["VmResdllContextLiveMigration"]}}


def live_world(live=("node1", "node2", "node3")):
    s = world()
    ok(s, "membership.view", live=list(live), by="node1")
    return s


def running_web(s=None):
    s = s or live_world()
    web_online(s)
    return s


def move(s, to="node2", flags=0, properties=None, handle="m1"):
    return ok(s, "group.move", group="g-web", to=to, flags=flags, properties=properties or {}, handle=handle)


def answer(s, what, node="node1", ask=0, handle="m1", resources=()):
    return run(s, "group.move_answer", group="g-web", handle=handle, ask=ask, node=node, answer=what,
               resources=list(resources))


def all_report(s, state, node, rids=WEB):
    for rid in rids:
        assert report(s, rid, state, node=node) == {"ok": None}


def op(s, handle="m1"):
    return s["operations"][handle]


def phase(s):
    m = group(s, "g-web").get("move")
    return m and m["phase"]


# -- immediate refusals -----------------------------------------------------------------------
REFUSALS = [
    ("unknown-group", {"group": "nope"}, "ERROR_GROUP_NOT_FOUND"),
    ("core-group", {"group": "g-core"}, "CLUSTER_SPECIAL_GROUP"),
    ("failback-reserved", {"flags": 0x10}, "ERROR_INVALID_PARAMETER"),
    ("unknown-bit", {"flags": 0x20}, "ERROR_INVALID_PARAMETER"),
    ("high-bit", {"flags": 0x80000000}, "ERROR_INVALID_PARAMETER"),
    ("negative", {"flags": -1}, "ERROR_INVALID_PARAMETER"),
    ("too-big", {"flags": 2**32}, "ERROR_INVALID_PARAMETER"),
    ("bool-flags", {"flags": True}, "ERROR_INVALID_PARAMETER"),
    ("str-flags", {"flags": "1"}, "ERROR_INVALID_PARAMETER"),
    ("unknown-node", {"to": "node9"}, "ERROR_CLUSTER_NODE_NOT_FOUND"),
    ("no-node", {"to": None}, "ERROR_CLUSTER_NODE_DOWN"),
    ("same-node", {"to": "node1"}, "ERROR_INVALID_PARAMETER"),
    ("props-not-map", {"properties": ["x"]}, "ERROR_INVALID_PARAMETER"),
    ("props-empty-name", {"properties": {"": 1}}, "ERROR_INVALID_PARAMETER"),
    ("props-nul-name", {"properties": {"a\0": 1}}, "ERROR_INVALID_PARAMETER"),
    ("props-long-name", {"properties": {"n" * 257: 1}}, "ERROR_INVALID_PARAMETER"),
    ("props-too-many", {"properties": {f"k{i}": i for i in range(65)}}, "ERROR_INVALID_PARAMETER"),
    ("props-huge-text", {"properties": {"k": "x" * 5000}}, "ERROR_INVALID_PARAMETER"),
    ("props-nested", {"properties": {"k": {"a": {"b": 1}}}}, "ERROR_INVALID_PARAMETER"),
    ("props-list", {"properties": {"k": [1, 2]}}, "ERROR_INVALID_PARAMETER"),
    ("props-nan", {"properties": {"k": float("nan")}}, "ERROR_INVALID_PARAMETER"),
    ("props-bad-format", {"properties": {"k": {"format": "CLUSPROP_FORMAT_BOGUS", "value": 1}}}, "ERROR_INVALID_PARAMETER"),
    ("props-dword-range", {"properties": {"k": {"format": "CLUSPROP_FORMAT_DWORD", "value": 2**32}}}, "ERROR_INVALID_PARAMETER"),
    ("props-dword-str", {"properties": {"k": {"format": "CLUSPROP_FORMAT_DWORD", "value": "4"}}}, "ERROR_INVALID_PARAMETER"),
    ("props-extra-key", {"properties": {"k": {"format": "CLUSPROP_FORMAT_DWORD", "value": 1, "x": 1}}}, "ERROR_INVALID_PARAMETER"),
    ("vm-untyped", {"properties": {"Virtual Machine": 4}}, "ERROR_INVALID_PARAMETER"),
    ("vm-out-of-enum", {"properties": {"Virtual Machine": {"format": "CLUSPROP_FORMAT_DWORD", "value": 5}}}, "ERROR_INVALID_PARAMETER"),
    ("vmc-sz", {"properties": {"Virtual Machine Configuration": {"format": "CLUSPROP_FORMAT_SZ", "value": "4"}}}, "ERROR_INVALID_PARAMETER"),
]


@pytest.mark.parametrize("fields, expected", [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_immediate_refusals_change_nothing(fields, expected):
    s = running_web()
    cmd = {"group": "g-web", "to": "node2", "flags": 0, "properties": {}, "handle": "m1", **fields}
    refused(s, "group.move", expected, **cmd)


def test_a_destination_that_is_not_up_is_refused_with_node_down():
    s = running_web(live_world(live=("node1", "node3")))
    err = refused(s, "group.move", "ERROR_CLUSTER_NODE_DOWN", group="g-web", to="node2", flags=0, properties={}, handle="m1")
    assert err["number"] == 0x13BA


def test_a_locked_online_resource_refuses_the_move_without_ignore_resource_status():
    s = running_web()
    assert report(s, "r-cache", "Online", locked=True) == {"ok": None}
    err = refused(s, "group.move", "ERROR_CLUSTER_RESOURCE_LOCKED_STATUS", group="g-web", to="node2", flags=0,
                  properties={}, handle="m1")
    assert err["number"] == 0x1748 and err["params"] == ["cache"]
    # with 0x1 the move goes ahead, nobody is asked: straight to stopping
    assert move(s, flags=moves.IGNORE_RESOURCE_STATUS) == {"status": "ERROR_IO_PENDING", "code": 0x3E5, "handle": "m1"}
    assert phase(s) == "stopping" and groups.wanted_resources(s, group(s, "g-web")) == set()


def test_a_second_move_while_one_is_in_progress_is_refused():
    s = running_web()
    move(s)
    refused(s, "group.move", "ERROR_INVALID_STATE", group="g-web", to="node3", flags=0, properties={}, handle="m2")


@pytest.mark.parametrize("flags", [0, 1, 2, 4, 8, 0xF, 0x2 | 0x4 | 0x8])
def test_every_allowed_flag_combination_is_accepted_and_recorded(flags):
    s = running_web()
    assert move(s, flags=flags)["code"] == 0x3E5
    m = group(s, "g-web")["move"]
    assert (m["from"], m["to"], m["flags"]) == ("node1", "node2", flags)
    assert op(s) == {"group": "g-web", "resource": None, "target": "move", "status": "pending", "error": None}
    assert phase(s) == ("stopping" if flags & 1 else "asking")
    assert group(s, "g-web")["owner"] == "node1"  # nothing handed over yet


# -- outcome 1: success -----------------------------------------------------------------------
def test_success_ask_stop_hand_over_start():
    s = running_web()
    move(s, flags=0x8, properties=VM)
    assert phase(s) == "asking"
    assert moves.question_for(group(s, "g-web"), "node1") == ("m1", 0)
    assert groups.wanted_resources(s, group(s, "g-web")) == set(WEB)  # still runs while asked
    assert answer(s, "ok") == {"ok": None}
    assert phase(s) == "stopping" and groups.wanted_resources(s, group(s, "g-web")) == set()
    all_report(s, "OfflinePending", "node1")
    all_report(s, "Offline", "node1", rids=("r-cache", "r-httpd"))
    assert group(s, "g-web")["owner"] == "node1"  # ip still runs: no hand-over
    assert report(s, "r-ip", "Offline", node="node1") == {"ok": None}
    g = group(s, "g-web")
    assert g["owner"] == "node2" and phase(s) == "starting"
    assert moves.move_properties_for(g, "node2") == VM and moves.move_properties_for(g, "node1") is None
    assert moves.high_priority_on(g, "node2") and not moves.high_priority_on(g, "node1")
    assert groups.wanted_resources(s, g) == set(WEB)
    # a late report from the source is refused and changes nothing
    refused(s, "resource.report", "ERROR_HOST_NODE_NOT_GROUP_OWNER", resource="r-ip", node="node1",
            state="OnlinePending", pid=None, locked=False, detail="", restarted=False)
    all_report(s, "Online", "node2")
    assert op(s)["status"] == "succeeded" and "move" not in group(s, "g-web")
    assert group(s, "g-web")["failures"] == [] and "m1" not in group(s, "g-web")["pending"]


def test_a_group_that_runs_nothing_is_handed_over_at_once():
    s = live_world()
    ok(s, "group.online", group="g-db", handle="h1", owner="node1")
    ok(s, "group.offline", group="g-db", handle="h2")
    ok(s, "group.move", group="g-db", to="node3", flags=0, properties={}, handle="m1")
    assert group(s, "g-db")["owner"] == "node3" and "move" not in group(s, "g-db")
    assert op(s)["status"] == "succeeded"  # its persistent state (offline) is reached there


def test_a_group_without_owner_is_placed_by_the_move():
    s = live_world()
    ok(s, "group.move", group="g-spare", to="node2", flags=0, properties={}, handle="m1")
    assert group(s, "g-spare")["owner"] == "node2" and op(s)["status"] == "succeeded"


# -- outcome 2: failure at the destination ----------------------------------------------------
def handed_over(flags):
    s = running_web()
    move(s, flags=flags)
    if not flags & 1:
        answer(s, "ok")
    all_report(s, "Offline", "node1")
    assert group(s, "g-web")["owner"] == "node2"
    return s


def test_failure_at_the_destination_without_return_leaves_it_to_the_policy():
    s = handed_over(0)
    all_report(s, "Online", "node2", rids=("r-ip",))
    assert report(s, "r-cache", "Failed", node="node2") == {"ok": None}
    g = group(s, "g-web")
    assert op(s)["status"] == "failed" and "policy" in op(s)["error"]
    assert "move" not in g and g["owner"] == "node2" and g.get("failover_wanted")  # the failover policy's turn


def test_failure_at_the_destination_with_return_goes_back_to_the_source():
    s = handed_over(moves.RETURN_TO_SOURCE_NODE_ON_ERROR)
    all_report(s, "Online", "node2", rids=("r-ip",))
    assert report(s, "r-cache", "Failed", node="node2") == {"ok": None}
    g = group(s, "g-web")
    assert phase(s) == "undoing" and not g.get("failover_wanted") and g["owner"] == "node2"
    assert groups.wanted_resources(s, g) == set()  # the destination stops what still runs
    assert report(s, "r-ip", "Offline", node="node2") == {"ok": None}
    g = group(s, "g-web")
    assert g["owner"] == "node1" and phase(s) == "returning" and op(s)["status"] == "pending"
    assert all(res(s, r)["state"] == "Offline" for r in WEB)  # the failure is cleared for the return
    all_report(s, "Online", "node1")
    assert op(s)["status"] == "failed" and "back on the source" in op(s)["error"]
    assert "move" not in group(s, "g-web") and group(s, "g-web")["failures"] == []


def test_failing_on_the_source_after_the_return_leaves_it_to_the_policy():
    s = handed_over(moves.RETURN_TO_SOURCE_NODE_ON_ERROR)
    assert report(s, "r-ip", "Failed", node="node2") == {"ok": None}
    assert group(s, "g-web")["owner"] == "node1"  # nothing else ran there: back at once
    assert report(s, "r-ip", "Failed", node="node1") == {"ok": None}
    assert op(s)["status"] == "failed" and "again on the source" in op(s)["error"]
    assert group(s, "g-web").get("failover_wanted")


def test_the_destination_going_down_before_the_hand_over_keeps_the_group_on_the_source():
    s = running_web()
    move(s)
    answer(s, "ok")
    ok(s, "membership.view", live=["node1", "node3"], by="node1")
    all_report(s, "Offline", "node1")
    g = group(s, "g-web")
    assert g["owner"] == "node1" and "move" not in g and op(s)["status"] == "failed"
    assert groups.wanted_resources(s, g) == set(WEB)  # it starts again where it was


# -- outcome 3: queued ------------------------------------------------------------------------
def test_not_now_without_queue_enabled_is_a_rejection():
    s = running_web()
    move(s)
    before = copy.deepcopy(group(s, "g-web"))
    assert answer(s, "not_now", resources=["cache"]) == {"ok": None}
    g = group(s, "g-web")
    assert op(s)["status"] == "failed" and "QUEUE_ENABLED" in op(s)["error"]
    assert g["owner"] == "node1" and "move" not in g and g["failures"] == before["failures"]


def test_not_now_with_queue_enabled_queues_and_retries_until_ok():
    s = running_web()
    move(s, flags=moves.QUEUE_ENABLED)
    answer(s, "not_now")
    assert phase(s) == "queued" and moves.queued_moves(s) == [("g-web", "m1", AT)]
    assert groups.wanted_resources(s, group(s, "g-web")) == set(WEB)  # keeps running meanwhile
    for ask in (1, 2, 3):
        assert ok(s, "group.move_retry", group="g-web", handle="m1") is None
        assert phase(s) == "asking" and moves.question_for(group(s, "g-web"), "node1") == ("m1", ask)
        refused(s, "group.move_answer", "ERROR_INVALID_STATE", group="g-web", handle="m1", ask=ask - 1,
                node="node1", answer="ok", resources=[])  # an answer to an old question
        answer(s, "not_now" if ask < 3 else "ok", ask=ask)
    assert phase(s) == "stopping" and op(s)["status"] == "pending"


def test_a_queued_move_waits_while_the_destination_is_down():
    s = running_web()
    move(s, flags=moves.QUEUE_ENABLED)
    answer(s, "not_now")
    ok(s, "membership.view", live=["node1", "node3"], by="node1")
    ok(s, "group.move_retry", group="g-web", handle="m1", at=AT + 5)
    assert phase(s) == "queued" and group(s, "g-web")["move"]["queued_at"] == AT + 5


@pytest.mark.parametrize("when", ["asking", "queued", "stopping"])
def test_cancel_move_before_the_hand_over(when):
    s = running_web()
    move(s, flags=moves.QUEUE_ENABLED)
    if when == "queued":
        answer(s, "not_now")
    elif when == "stopping":
        answer(s, "ok")
    assert ok(s, "group.cancel_move", group="g-web") is None
    g = group(s, "g-web")
    assert op(s)["status"] == "cancelled" and "move" not in g and g["owner"] == "node1"
    assert groups.wanted_resources(s, g) == set(WEB)
    refused(s, "group.cancel_move", "ERROR_INVALID_STATE", group="g-web")
    refused(s, "group.move_retry", "ERROR_INVALID_STATE", group="g-web", handle="m1")


def test_cancel_move_after_the_hand_over_is_refused():
    s = handed_over(0)
    refused(s, "group.cancel_move", "ERROR_INVALID_STATE", group="g-web")
    refused(s, "group.cancel_move", "ERROR_GROUP_NOT_FOUND", group="nope")


# -- outcome 4: rejected by a resource ---------------------------------------------------------
def test_rejection_by_a_resource_leaves_everything_on_the_source_uncounted():
    s = running_web()
    before = copy.deepcopy(s)
    move(s)
    assert answer(s, "reject", resources=["httpd"]) == {"ok": None}
    assert op(s)["status"] == "failed" and "httpd" in op(s)["error"]
    g = group(s, "g-web")
    del s["operations"]["m1"]
    assert g == before["groups"]["g-web"]  # owner, state, failures, failover_wanted: as before
    assert s["resources"] == before["resources"]


@pytest.mark.parametrize("bad", [
    {"node": "node2"}, {"ask": 7}, {"handle": "other"}, {"answer": "maybe"},
])
def test_answers_from_elsewhere_or_to_other_questions_change_nothing(bad):
    s = running_web()
    move(s)
    fields = {"group": "g-web", "handle": "m1", "ask": 0, "node": "node1", "answer": "ok", "resources": [], **bad}
    expected = "ERROR_INVALID_PARAMETER" if "answer" in bad else "ERROR_INVALID_STATE"
    refused(s, "group.move_answer", expected, **fields)


# -- the leader's bookkeeping -----------------------------------------------------------------
def test_a_failover_under_a_move_makes_it_stale_and_the_leader_abandons_it():
    s = running_web()
    move(s)
    answer(s, "ok")
    refused(s, "group.move_abandon", "ERROR_INVALID_STATE", group="g-web", handle="m1", reason="x")
    group(s, "g-web")["owner"] = "node3"  # as group.failover does, after fencing node1
    assert moves.stale_moves(s) == [("g-web", "m1")]
    assert not groups.moving_away(group(s, "g-web"))  # the new owner is not held back by the move
    ok(s, "group.move_abandon", group="g-web", handle="m1", reason="owner changed")
    assert op(s)["status"] == "failed" and "move" not in group(s, "g-web")


def test_move_state_round_trips_through_msgpack():
    import msgpack
    s = running_web()
    move(s, flags=0xE, properties=VM)
    assert msgpack.unpackb(msgpack.packb(s), raw=False, strict_map_key=False) == s


def test_the_live_migration_recipe_is_a_valid_request():
    assert moves.flag_problem(0x2 | 0x4 | 0x8) is None
    for name in moves.VM_PROPERTY_NAMES:
        assert moves.property_list_problem({name: VM["Virtual Machine"]}) is None
    assert moves.VM_RESDLL_CONTEXT["VmResdllContextLiveMigration"] == 4


# -- what the executor reads from it ----------------------------------------------------------
def test_the_executor_plan_carries_the_question_the_properties_and_the_priority():
    from clusterd import executor, plan
    view = {"ready": True, "quorate": True, "lease_deadline": 2.0, "hold_until": 0.0, "policy": "stop"}
    s = live_world()
    ok(s, "group.online", group="g-web", handle="h-web", owner="node2")
    ok(s, "group.online", group="g-db", handle="h-db", owner="node1")
    assert report(s, "r-pg", "Online", node="node1") == {"ok": None}
    ok(s, "group.move", group="g-db", to="node2", flags=moves.HIGH_PRIORITY_START, properties=VM, handle="m1")
    up = {"r-pg": plan.Entry("g-db", plan.UP, next_monitor=9.0)}
    source = plan.plan(s, "node1", view, 1.0, up)
    assert source["g-db"] == plan.Action("ask", "g-db", ("m1", 0))
    assert executor._extract(s, source, "node1")["g-db"][0] == VM
    assert run(s, "group.move_answer", group="g-db", handle="m1", ask=0, node="node1", answer="ok",
               resources=[]) == {"ok": None}
    assert report(s, "r-pg", "Offline", node="node1") == {"ok": None}
    dest = plan.plan(s, "node2", view, 1.0, {})
    assert [a.kind for a in dest.values()] == ["start", "start"]
    assert list(dest) == ["g-db", "g-web"]  # the high-priority start first
    assert executor._extract(s, dest, "node2")["g-db"]["move_properties"] == VM
    assert executor._extract(s, dest, "node2")["g-web"]["move_properties"] == {}
