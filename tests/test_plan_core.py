"""plan.plan, pure: tables of (state, view, now, books) -> actions, and hypothesis properties.

The states are built by applying real commands (test_groups_core's world: group "web" with
ip <- httpd and cache, group "db" with pg, the core group with core-ip, all on node1).
"""
import copy

from hypothesis import given, settings, strategies as st

from clusterd import plan
from clusterd.plan import DOWN, LIVE, STARTING, STOP_FAILED, UNKNOWN, UP, Action, Entry

from builders import ok
from test_groups_core import report, web_online, world

NOW = 1000.0
ME = "node1"
WEB = ("r-ip", "r-httpd", "r-cache")


def view(**over):
    v = {"ready": True, "quorate": True, "lease_deadline": NOW + 1.0, "hold_until": 0.0, "policy": "stop",
         "start_slots": 256, "answered": set(), "held": {}}
    v.update(over)
    return v


def web():
    s = world()
    web_online(s)
    return s


def up(*rids, group="g-web", **fields):
    fields.setdefault("next_monitor", NOW + 1)
    return {rid: Entry(group=group, phase=UP, **fields) for rid in rids}


def web_plan(s=None, v=None, books=None, now=NOW):
    return plan.plan(s or web(), ME, v or view(), now, books if books is not None else {}).get("g-web")


def drain(s, v, books, now=NOW, limit=50, only=None):
    """Carry out the plan's stops (each proves its resource gone) until there is nothing left to
    do; return the stops in order, and every other action that was planned meanwhile (only: of
    these keys)."""
    stops, others = [], []
    for _ in range(limit):
        actions = plan.plan(s, ME, v, now, books)
        actions = [a for k, a in actions.items() if only is None or k in only]
        if not actions:
            return stops, others
        for a in actions:
            if a.kind in ("stop", "kill"):
                stops.append(a.target)
                books.pop(a.target)
            else:  # anything else ends the drain: its effect is not simulated
                others.append(a)
        if others:
            return stops, others
    raise AssertionError("the plan does not settle")


# -- the table ------------------------------------------------------------------------------------
def test_a_group_starts_in_dependency_order():
    assert web_plan() == Action("start", "g-web", "r-ip")
    assert web_plan(books=up("r-ip")) == Action("start", "g-web", "r-httpd")
    assert web_plan(books=up("r-ip", "r-httpd")) == Action("start", "g-web", "r-cache")
    assert web_plan(books=up(*WEB)) is None  # all running, reported Online, no monitor due


def test_a_start_in_flight_goes_on_while_the_right_holds():
    books = {"r-ip": Entry(group="g-web", phase=STARTING, busy="start")}
    assert web_plan(books=books) == Action("start", "g-web", "r-ip")


def test_without_quorum_everything_stops_dependents_first_and_nothing_else_happens():
    s = web()
    stops, others = drain(s, view(quorate=False), up(*WEB))
    assert stops.index("r-httpd") < stops.index("r-ip") and sorted(stops) == sorted(WEB)
    assert others == []


def test_past_the_lease_deadline_is_the_same_as_no_quorum():
    assert web_plan(books=up(*WEB), now=NOW + 1.0).kind == "stop"
    assert web_plan(books=up(*WEB), now=NOW + 0.999) is None


def test_a_start_in_flight_when_the_right_is_lost_is_replaced_by_its_stop():
    """The executor cancels what the plan no longer names: the start, then stops its remains."""
    books = {**up("r-ip"), "r-httpd": Entry(group="g-web", phase=STARTING, busy="start")}
    assert web_plan(books=books, v=view(quorate=False)) == Action("stop", "g-web", "r-httpd")


def test_groups_stop_side_by_side():
    s = web()
    ok(s, "group.online", group="g-db", handle="h-db", owner=ME)
    books = {**up(*WEB), **up("r-pg", group="g-db")}
    actions = plan.plan(s, ME, view(lease_deadline=0.0), NOW, books)
    assert {k: a.kind for k, a in actions.items() if k in ("g-web", "g-db")} == {"g-web": "stop", "g-db": "stop"}


def test_freeze_keeps_what_runs_monitors_it_and_starts_nothing():
    books = up("r-ip", next_monitor=NOW)
    assert web_plan(books=books, v=view(quorate=False, policy="freeze")) == Action("monitor", "g-web", "r-ip")
    books["r-ip"].next_monitor = NOW + 5
    assert web_plan(books=books, v=view(quorate=False, policy="freeze")) is None


def test_ignore_starts_without_quorum():
    assert web_plan(v=view(quorate=False, policy="ignore")) == Action("start", "g-web", "r-ip")


def test_a_held_resource_neither_starts_nor_reports_until_its_hold_ends():
    """A refused OnlinePending report holds the start (nothing starts while it is pending)."""
    v = view(held={"r-ip": NOW + 0.5})
    assert web_plan(v=v) is None
    assert web_plan(v=v, now=NOW + 0.5) == Action("start", "g-web", "r-ip")


def test_a_restart_waits_for_its_delay_and_then_for_the_right():
    books = {"r-ip": Entry(group="g-web", phase=DOWN, restart_at=NOW + 2, restarted=True)}
    assert web_plan(books=books) is None
    assert plan.next_wake(view(lease_deadline=NOW + 5), NOW, books) == NOW + 2
    assert web_plan(books=books, now=NOW + 2, v=view(lease_deadline=NOW + 5)) == Action("start", "g-web", "r-ip")
    assert web_plan(books=books, now=NOW + 2, v=view(lease_deadline=NOW + 1)) is None  # no lease: no restart


def test_restarts_exhausted_is_reported_failed():
    books = {"r-ip": Entry(group="g-web", phase=DOWN, restart_at=None)}
    assert web_plan(books=books) == Action("report", "g-web", ("r-ip", "Failed"))


def test_a_failed_stop_is_retried_as_a_kill_and_holds_its_group():
    books = {**up("r-ip", "r-cache"), "r-httpd": Entry(group="g-web", phase=STOP_FAILED, retry_at=NOW + 1)}
    assert web_plan(books=books) is None  # nothing else in the group meanwhile
    assert web_plan(books=books, now=NOW + 1, v=view(lease_deadline=NOW + 5)) == Action("kill", "g-web", "r-httpd")


def test_a_resource_that_failed_its_monitor_is_stopped_with_its_dependents_first():
    books = {**up("r-httpd", "r-cache"), "r-ip": Entry(group="g-web", phase=UNKNOWN)}
    stops, others = drain(web(), view(), books, only={"g-web"})
    assert stops == ["r-httpd", "r-ip"]
    assert [a.kind for a in others][:1] == ["start"]  # then it starts again (its restart is the executor's)


def test_a_resource_no_group_of_ours_holds_is_stopped_as_an_orphan():
    books = up("r-gone", group="g-deleted")
    assert plan.plan(web(), ME, view(), NOW, books)[("orphan", "r-gone")] == Action("stop", ("orphan", "r-gone"), "r-gone")


def test_what_runs_is_reported_online_and_what_stopped_offline():
    s = world()
    ok(s, "group.online", group="g-web", handle="h-on", owner=ME)
    assert report(s, "r-ip", "OnlinePending") == {"ok": None}
    assert web_plan(s, books=up("r-ip")) == Action("report", "g-web", ("r-ip", "Online"))
    web_online(s)
    ok(s, "group.offline", group="g-web", handle="h-off")
    assert web_plan(s, books={}) == Action("report", "g-web", ("r-ip", "Offline"))


def test_a_move_question_is_asked_once_the_group_is_settled_and_not_again():
    s = web()
    g = s["groups"]["g-web"]
    g["move"] = {"phase": "asking", "from": ME, "to": "node2", "handle": "h-move", "asks": 1, "flags": 0,
                 "properties": {}}
    assert web_plan(s, books=up(*WEB)) == Action("ask", "g-web", ("h-move", 1))
    assert web_plan(s, books=up(*WEB), v=view(answered={("h-move", 1)})) is None


def test_a_move_question_is_not_asked_without_the_right_to_run():
    """The executor cancels an ask in flight that the plan no longer names: without the right,
    the plan has the group's stops (stop policy) or only its monitors (freeze), never the ask."""
    s = web()
    s["groups"]["g-web"]["move"] = {"phase": "asking", "from": ME, "to": "node2", "handle": "h-move", "asks": 1,
                                    "flags": 0, "properties": {}}
    assert web_plan(s, books=up(*WEB)).kind == "ask"
    for lost in (view(quorate=False), view(lease_deadline=NOW), view(ready=False)):
        kinds = {a.kind for a in plan.plan(s, ME, lost, NOW, up(*WEB)).values()}
        assert kinds == {"stop"}, (lost, kinds)
        assert not plan.plan(s, ME, dict(lost, policy="freeze"), NOW, up(*WEB)), lost


def test_the_right_at_the_instant_before_a_start_is_the_whole_right():
    """What the executor asks just before an agent start (the plan may be older than that)."""
    s = web()
    assert plan.may_start(s, ME, view(), NOW, "g-web")
    assert plan.may_start(s, ME, view(quorate=False, policy="ignore"), NOW, "g-web")  # ignore: runs regardless
    moved = web()
    moved["groups"]["g-web"]["owner"] = "node2"  # a failover committed meanwhile
    offline = web()
    offline["groups"]["g-web"]["persistent_state"] = "offline"
    for state, v, now in ((moved, view(), NOW), (offline, view(), NOW), (s, view(quorate=False), NOW),
                          (s, view(), NOW + 1.0), (s, view(ready=False), NOW), (None, view(), NOW),
                          (s, view(quorate=False, policy="freeze"), NOW),
                          (s, view(quorate=False, policy="ignore", hold_until=NOW + 1), NOW)):
        assert not plan.may_start(state, ME, v, now, "g-web"), (v, now)
    assert not plan.may_start(s, ME, view(), NOW, "g-gone")


def test_one_groups_unreadable_data_neither_stops_the_plan_nor_keeps_its_resources_running():
    """A group whose data the plan cannot read (here it names a resource the state does not
    have): the other groups are planned as ever, its live resources are stopped as orphans, and
    the group is named in errors; without the right, everything stops all the same."""
    s = web()
    ok(s, "group.online", group="g-db", handle="h-db", owner=ME)
    s["groups"]["g-db"]["resources"].append("r-missing")
    books = {**up(*WEB), **up("r-pg", group="g-db")}
    errors = []
    actions = plan.plan(s, ME, view(), NOW, books, errors)
    assert [gid for gid, _ in errors] == ["g-db"] and isinstance(errors[0][1], KeyError)
    assert actions[("orphan", "r-pg")] == Action("stop", ("orphan", "r-pg"), "r-pg")
    healthy = web()
    ok(healthy, "group.online", group="g-db", handle="h-db", owner=ME)
    assert actions.get("g-web") == plan.plan(healthy, ME, view(), NOW, books).get("g-web")
    stops, others = drain(s, view(quorate=False), books)
    assert set(stops) == {*WEB, "r-pg"} and others == []


def test_start_slots_bound_the_groups_that_start_at_once():
    s = web()
    ok(s, "group.online", group="g-db", handle="h-db", owner=ME)
    actions = plan.plan(s, ME, view(start_slots=1), NOW, {"r-core-ip": Entry(group="g-core", phase=UP, next_monitor=NOW + 9)})
    assert [a.kind for a in actions.values()].count("start") == 1


def test_before_the_state_is_ready_what_was_adopted_is_kept_for_the_hold_then_stopped():
    books = up("r-ip", group=None, next_monitor=NOW)
    hold = view(ready=False, quorate=False, hold_until=NOW + 1)
    for s in (None, web()):  # no state at all, or one not replayed yet (not ready)
        assert plan.plan(s, ME, hold, NOW, books) == {("orphan", "r-ip"): Action("monitor", ("orphan", "r-ip"), "r-ip")}
        assert plan.plan(s, ME, hold, NOW + 1, books) == {("orphan", "r-ip"): Action("stop", ("orphan", "r-ip"), "r-ip")}


# -- properties -----------------------------------------------------------------------------------
RIDS = (*WEB, "r-pg", "r-core-ip")
GROUP_OF = {"r-ip": "g-web", "r-httpd": "g-web", "r-cache": "g-web", "r-pg": "g-db", "r-core-ip": "g-core"}

entries = st.dictionaries(st.sampled_from(RIDS), st.builds(
    lambda phase, mon, retry, restart: Entry(group=None, phase=phase, next_monitor=NOW + mon, retry_at=NOW + retry,
                                             restart_at=None if restart is None else NOW + restart),
    st.sampled_from((STARTING, UP, UNKNOWN, STOP_FAILED, DOWN)), st.floats(-2, 2), st.floats(-2, 2),
    st.none() | st.floats(-2, 2)))
views = st.builds(lambda ready, quorate, lease, hold, policy, held: view(
    ready=ready, quorate=quorate, lease_deadline=NOW + lease, hold_until=NOW + hold, policy=policy,
    held={r: NOW + 1 for r in held}),
    st.booleans(), st.booleans(), st.floats(-3, 3), st.floats(-3, 3), st.sampled_from(("stop", "freeze")),
    st.sets(st.sampled_from(RIDS)))
worlds = st.builds(lambda db_owner, web_on, db_on: (db_owner, web_on, db_on),
                   st.sampled_from(("node1", "node2")), st.booleans(), st.booleans())


def build(w, books):
    db_owner, web_on, db_on = w
    s = world()
    if web_on:
        web_online(s)
    else:
        s["groups"]["g-web"]["owner"] = ME  # owned, but offline
    if db_on:
        ok(s, "group.online", group="g-db", handle="h-db", owner=db_owner)
    for rid, e in books.items():
        e.group = GROUP_OF[rid]
    return s


@settings(max_examples=300, deadline=None)
@given(worlds, views, entries, st.floats(-1, 1))
def test_no_start_is_planned_without_the_whole_right_to_run(w, v, books, dt):
    s = build(w, books)
    now = NOW + dt
    for key, a in plan.plan(s, ME, v, now, books).items():
        if a.kind != "start":
            continue
        g = s["groups"][key]
        assert g["owner"] == ME and g["persistent_state"] == "online"
        assert v["ready"] and v["quorate"] and now < v["lease_deadline"]
        assert plan.may_start(s, ME, v, now, key)  # the executor's check at the instant agrees
        if a.target not in books:  # (a start in flight goes on; this is about new ones)
            assert v["held"].get(a.target, 0) <= now


BREAKS = {  # ways a group's data may be unreadable by the plan
    "missing resource": lambda g, s: g["resources"].append("r-missing"),
    "no dependencies": lambda g, s: s["resources"][g["resources"][0]].pop("dependencies"),
    "malformed move": lambda g, s: g.update(move={"phase": "asking"}),
}


@settings(max_examples=300, deadline=None)
@given(worlds, views, entries, st.dictionaries(st.sampled_from(("g-web", "g-db")), st.sampled_from(sorted(BREAKS))))
def test_when_the_right_is_lost_every_live_resource_is_stopped_dependents_first(w, v, books, broken):
    """Also when some groups' data cannot be read by the plan (their resources are stopped as orphans)."""
    v = dict(v, policy="stop", quorate=False, hold_until=0.0)
    s = build(w, books)
    for gid, how in broken.items():
        BREAKS[how](s["groups"][gid], s)
    before = copy.deepcopy(books)
    live = {rid for rid, e in books.items() if e.phase in LIVE}
    # every group with something live has a stop (or a kill) planned at once, side by side
    first = plan.plan(s, ME, v, NOW + 10, books)
    assert {GROUP_OF[r] for r in live if books[r].phase != STOP_FAILED} <= \
        {a.key if not isinstance(a.key, tuple) else GROUP_OF[a.target] for a in first.values() if a.kind in ("stop", "kill")}
    stops, others = drain(s, v, books, now=NOW + 10)
    assert set(stops) == live and others == []
    deps = {rid: s["resources"][rid].get("dependencies", ()) for rid in RIDS}
    for i, rid in enumerate(stops):  # nothing still live depends on what is stopped
        assert not [d for d in stops[i + 1:] if rid in deps[d]], (stops, before)
