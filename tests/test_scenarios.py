"""The leader's decisions, scenario by scenario (in the style of Pacemaker's scheduler regression
tests, cts/scheduler/): each file in tests/scenarios/ is a cluster state, the leader's view and
its clock in, and the commands, fences and tasks decide() must give out.

A scenario file (TOML):

    title, why             what it shows (and which defect, when one)
    nodes                  the members (default node1..node3); all live in the committed view
    now                    the leader's monotonic clock
    [[group]]              name, owner (brought online there), resources (each reported Online
                           there), type, properties, preferred_owners, anti_affinity, failover,
                           restart, domain = {model, exit_program, nodes = [[node, role]...]}
    [[setup]]              committed commands after that, in order ("at" defaults to AT)
    [[corrupt]]            path = "a.b.c", value: a record written behind validation's back
    [view]                 live (default: the committed view), hour, retry_after
    [in_flight]            busy, fencing, since = {key = first seen}
    [expect]               commands, fences, tasks (exactly, in order), errors (the "what" of
                           each skipped record), watch (keys that must be watched)

A handle decide leaves to the shell (None) is written "new". Every expected command must then
be accepted by apply, in order: a decision is never one the cluster database refuses.
"""
import pathlib
import tomllib

import pytest

from clusterd import db, decide

from builders import AT, NAMES, booted

DIR = pathlib.Path(__file__).parent / "scenarios"
FILES = sorted(DIR.glob("*.toml"))


def ok(s, op, **fields):
    result = db.apply(s, {"op": op, "at": fields.pop("at", AT), **fields})
    assert set(result) == {"ok"}, (op, fields, result)
    return result["ok"]


def build_group(s, spec):
    name = spec["name"]
    gid = ok(s, "group.create", name=name, id=f"g-{name}")
    for r in spec.get("resources", [f"{name}-r"]):
        ok(s, "resource.create", group=gid, name=r, type=spec.get("type", "process"), id=f"r-{r}",
           properties=dict(spec.get("properties", {"args": ["sleep", "1000"]})))
        if "restart" in spec:
            ok(s, "resource.set", resource=f"r-{r}", restart=dict(spec["restart"]))
    for field in ("preferred_owners", "anti_affinity", "failover"):
        if field in spec:
            ok(s, "group.set", group=gid, field=field, value=spec[field])
    if "domain" in spec:
        d = spec["domain"]
        ok(s, "domain.create", group=gid, model=d.get("model", "primary-backup"), exit_program=d.get("exit_program"),
           nodes=[{"node": n, "role": role} for n, role in d["nodes"]])
    if spec.get("owner"):
        ok(s, "group.online", group=gid, handle=f"on-{name}", owner=spec["owner"])
        for rid in s["groups"][gid]["resources"]:
            ok(s, "resource.report", resource=rid, node=spec["owner"], state="Online", pid=None, detail="")


def corrupt(s, path, value):
    *parents, last = path.split(".")
    for key in parents:
        s = s[key]
    s[last] = value


def build(sc):
    names = sc.get("nodes", list(NAMES))
    s = booted(names, live=names)
    for spec in sc.get("group", []):
        build_group(s, spec)
    for cmd in sc.get("setup", []):
        cmd = dict(cmd)
        ok(s, cmd.pop("op"), **cmd)
    for c in sc.get("corrupt", []):
        corrupt(s, c["path"], c["value"])
    return s


def shown(items):
    """Decision items as the scenario files write them: None (a new handle) as "new"."""
    return [{k: ("new" if v is None else v) for k, v in item.items()} for item in items]


def run(sc):
    s = build(sc)
    view = {"live": s["view"]["live"], "hour": 12, "retry_after": 0.5, **sc.get("view", {})}
    flight = {"busy": [], "fencing": [], "since": {}, **sc.get("in_flight", {})}
    return s, decide.decide(s, view, sc.get("now", 100.0), flight)


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_scenario(path):
    sc = tomllib.loads(path.read_text())
    assert sc.get("title") and "expect" in sc, f"{path.name}: a title and an [expect] table"
    s, d = run(sc)
    want = sc["expect"]
    assert shown(d.commands) == want.get("commands", []), "commands"
    assert shown(d.fences) == want.get("fences", []), "fences"
    assert shown(d.tasks) == want.get("tasks", []), "tasks"
    assert [what for what, _ in d.errors] == want.get("errors", []), f"errors: {d.errors}"
    assert set(want.get("watch", [])) <= d.watch, "watch"
    for i, cmd in enumerate(d.commands):  # each decision is one the database accepts
        cmd = {k: (f"new-{i}" if k == "handle" and v is None else v) for k, v in cmd.items()}
        ok(s, cmd.pop("op"), at=AT + 10, **cmd)


def test_there_are_forty_scenarios_or_more():
    assert len(FILES) >= 40


def test_decide_is_pure_it_changes_nothing_and_gives_the_same_answer_twice():
    import copy
    for path in FILES:
        sc = tomllib.loads(path.read_text())
        s = build(sc)
        before = copy.deepcopy(s)
        view = {"live": s["view"]["live"], "hour": 12, "retry_after": 0.5, **sc.get("view", {})}
        flight = {"busy": [], "fencing": [], "since": {}, **sc.get("in_flight", {})}
        first = decide.decide(s, view, sc.get("now", 100.0), flight)
        assert s == before, path.name
        assert decide.decide(s, view, sc.get("now", 100.0), flight) == first, path.name
