"""Groups and resources through the functional core: db.apply on plain state, and placement.

No sockets, no processes. Every command is a plain dict; every refusal must leave the state
deep-equal to a copy taken before it.
"""
import copy

import msgpack
import pytest

from clusterd import db, groups, placement  # importing groups registers its handlers
from clusterd.errors import CODES

from builders import AT, NAMES, booted, ok, run
from builders import refused_before_submit


def code(result):
    assert set(result) == {"error"}, result
    err = result["error"]
    assert err["code"] in CODES and err["number"] == CODES[err["code"]][0]
    return err["code"]


def refused(s, op, expected, **fields):
    """The command is refused with `expected` and the state is exactly what it was."""
    before = copy.deepcopy(s)
    result = run(s, op, **fields)
    assert code(result) == expected
    assert s == before
    return result["error"]


def create_group(s, name, gid=None):
    return ok(s, "group.create", name=name, id=gid or f"g-{name}")


def create_resource(s, group, name, rid=None, rtype="process"):
    return ok(s, "resource.create", group=group, name=name, type=rtype,
              properties={"command": "sleep 1000"}, id=rid or f"r-{name}")


def depend(s, resource, on):
    return ok(s, "resource.add_dependency", resource=resource, depends_on=on)


def report(s, resource, state, node="node1", at=AT, restarted=False, locked=False, pid=None):
    return run(s, "resource.report", resource=resource, node=node, state=state, pid=pid,
               locked=locked, detail=f"{state} at {at}", restarted=restarted, at=at)


def group(s, gid):
    return s["groups"][gid]


def res(s, rid):
    return s["resources"][rid]


def world():
    """Three nodes; the core group (owner node1) with one resource; group "web" with
    ip <- httpd (httpd depends on ip) and cache; group "db" with pg; an empty group "spare"."""
    s = booted()
    ok(s, "group.create_core", id="g-core", owner="node1")
    create_resource(s, "g-core", "core-ip")
    create_group(s, "web")
    create_resource(s, "g-web", "ip")
    create_resource(s, "g-web", "httpd")
    create_resource(s, "g-web", "cache")
    depend(s, "r-httpd", "r-ip")
    create_group(s, "db")
    create_resource(s, "g-db", "pg")
    create_group(s, "spare")
    return s


def web_online(s, handle="h-on"):
    """Bring "web" online on node1 and report every resource Online."""
    ok(s, "group.online", group="g-web", handle=handle, owner="node1")
    for rid in ("r-ip", "r-httpd", "r-cache"):
        assert report(s, rid, "Online") == {"ok": None}
    assert group(s, "g-web")["state"] == "Online"


def test_world_is_what_the_other_tests_assume():
    s = world()
    assert sorted(s["groups"]) == ["g-core", "g-db", "g-spare", "g-web"]
    assert group(s, "g-web")["resources"] == ["r-ip", "r-httpd", "r-cache"]
    assert res(s, "r-httpd")["dependencies"] == ["r-ip"]
    assert group(s, "g-core")["special"] and not group(s, "g-web")["special"]
    assert all(g["state_sequence"] == 0 for gid, g in s["groups"].items() if gid != "g-core")
    # the core group was created Online; its first resource, still Offline, made it Offline
    core = group(s, "g-core")
    assert (core["persistent_state"], core["owner"], core["state"], core["state_sequence"]) == \
        ("online", "node1", "Offline", 1)
    assert s["operations"] == {}
    # the whole database is plain data: it round-trips through msgpack as the log does
    assert msgpack.unpackb(msgpack.packb(s), raw=False, strict_map_key=False) == s


# -- names ------------------------------------------------------------------------------------
INVALID_NAMES = [
    ("empty", ""), ("space", " "), ("spaces", "   "), ("tab", "\t"), ("cr", "\r"), ("lf", "\n"),
    ("crlf", "\r\n"), ("mixed-blanks", " \t\r\n \t"), ("nul", "\0"), ("nul-inside", "a\0b"),
    ("nul-at-end", "web\0"), ("nul-at-start", "\0web"), ("blanks-and-nul", " \0 "),
]
VALID_NAMES = [
    ("ascii", "webx"), ("padded", "  web  "), ("tab-led", "\tweb"), ("inner-space", "my web"),
    ("accents", "Ünïcødé grüppe"), ("cjk", "数据库组"), ("emoji", "🙂 group"), ("rtl", "مجموعة"),
    ("nbsp", "\u00a0"),  # only 0x20, 0x09, 0x0d, 0x0a and NUL are blank for the rule
    ("vertical-tab", "\x0b"), ("form-feed", "\x0c"), ("long", "g" * 10_000),
]


@pytest.mark.parametrize("name", [n for _, n in INVALID_NAMES], ids=[i for i, _ in INVALID_NAMES])
def test_invalid_names_are_refused_everywhere(name):
    s = world()
    refused_before_submit(s, "group.create", "ERROR_INVALID_NAME", name=name, id="g-new")
    refused_before_submit(s, "group.rename", "ERROR_INVALID_NAME", group="g-web", name=name)
    refused_before_submit(s, "resource.create", "ERROR_INVALID_NAME", group="g-web", name=name, type="process",
            properties={}, id="r-new")
    assert not groups.valid_name(name)


@pytest.mark.parametrize("name", [n for _, n in VALID_NAMES], ids=[i for i, _ in VALID_NAMES])
def test_valid_names_are_accepted_and_kept_exactly(name):
    s = world()
    assert ok(s, "group.create", name=name, id="g-new") == "g-new"
    assert group(s, "g-new")["name"] == name
    assert groups.find_group(s, name) is group(s, "g-new")
    assert ok(s, "resource.create", group="g-new", name=name, type="process", properties={}, id="r-new") == "r-new"
    assert res(s, "r-new")["name"] == name and res(s, "r-new")["group"] == "g-new"
    assert ok(s, "group.rename", group="g-web", name=name + " 2") is None
    assert group(s, "g-web")["name"] == name + " 2"


CREATE_CLASHES = [
    # (new name, new id, why)
    ("web", "g-x", "same name"),
    ("WEB", "g-x", "name in another case"),
    ("Web", "g-x", "name in mixed case"),
    ("g-db", "g-x", "name equal to another group's id"),
    ("G-DB", "g-x", "name equal to another group's id in another case"),
    ("cluster group", "g-x", "the core group's name in another case"),
    ("fresh", "g-web", "id already used"),
]


@pytest.mark.parametrize("name,gid", [c[:2] for c in CREATE_CLASHES], ids=[c[2] for c in CREATE_CLASHES])
def test_group_create_refuses_a_taken_name_or_id(name, gid):
    s = world()
    err = refused(s, "group.create", "ERROR_OBJECT_ALREADY_EXISTS", name=name, id=gid)
    assert err["params"] == [name]


def test_group_create_defaults():
    s = world()
    assert ok(s, "group.create", name="new", id="g-new") == "g-new"
    g = group(s, "g-new")
    assert g == {
        "id": "g-new", "name": "new", "persistent_state": "offline", "owner": None, "state": "Offline",
        "state_sequence": 0, "preferred_owners": [], "flags": 0, "group_type": groups.GROUP_TYPE_UNKNOWN,
        "anti_affinity": [], "special": False, "resources": [], "failures": [], "pending": [],
        "failover": {"threshold": 2, "period_hours": 6, "failback": "prevent", "failback_window": [0, 0]},
    }
    assert groups.GROUP_TYPE_UNKNOWN == 0x270F
    ok(s, "group.create", name="typed", id="g-typed", group_type=100)
    assert group(s, "g-typed")["group_type"] == 100


@pytest.mark.parametrize("n,threshold", [(1, 0), (2, 1), (3, 2), (5, 4)])
def test_default_failover_threshold_is_members_minus_one_period_six_hours(n, threshold):
    s = booted([f"node{i}" for i in range(1, n + 1)])
    create_group(s, "web")
    fo = group(s, "g-web")["failover"]
    assert fo["threshold"] == threshold and fo["period_hours"] == 6


RENAME_CLASHES = [
    ("db", "another group's name"),
    ("DB", "another group's name in another case"),
    ("g-db", "another group's id"),
    ("G-Db", "another group's id in another case"),
    ("Cluster Group", "the core group's name"),
    ("g-core", "the core group's id"),
]


@pytest.mark.parametrize("name", [c[0] for c in RENAME_CLASHES], ids=[c[1] for c in RENAME_CLASHES])
def test_group_rename_refuses_a_taken_name(name):
    s = world()
    err = refused(s, "group.rename", "ERROR_ALREADY_EXISTS", group="g-web", name=name)
    assert err["params"] == [name]


@pytest.mark.parametrize("new", ["WEB", "Web", "web", "g-web", "G-WEB", "frontend", "Ünïcødé"])
def test_group_rename_to_its_own_name_in_another_case_or_a_free_name(new):
    s = world()
    assert ok(s, "group.rename", group="web", name=new) is None
    g = group(s, "g-web")
    assert g["name"] == new and g["id"] == "g-web"  # the id never changes
    assert groups.find_group(s, new) is g
    assert groups.find_group(s, "g-web") is g
    assert g["resources"] == ["r-ip", "r-httpd", "r-cache"]
    assert all(res(s, r)["group"] == "g-web" for r in g["resources"])


def test_rename_frees_the_old_name_and_keeps_the_id():
    s = world()
    ok(s, "group.rename", group="g-web", name="frontend")
    assert groups.find_group(s, "web") is None
    refused(s, "group.set", "ERROR_GROUP_NOT_FOUND", group="web", field="flags", value=1)
    assert create_group(s, "web", "g-web2") == "g-web2"  # the old name is free again
    assert group(s, "g-web")["name"] == "frontend"
    refused(s, "group.rename", "ERROR_ALREADY_EXISTS", group="g-web2", name="FRONTEND")


@pytest.mark.parametrize("key", ["g-web", "G-WEB", "web", "WeB"])
def test_groups_are_found_by_id_or_name_case_insensitively(key):
    s = world()
    ok(s, "group.set", group=key, field="flags", value=7)
    assert group(s, "g-web")["flags"] == 7


@pytest.mark.parametrize("key", ["r-ip", "R-IP", "ip", "IP"])
def test_resources_are_found_by_id_or_name_case_insensitively(key):
    s = world()
    ok(s, "resource.set", resource=key, monitor_interval=2)
    assert res(s, "r-ip")["monitor_interval"] == 2.0


@pytest.mark.parametrize("name,rid", [("ip", "r-x"), ("IP", "r-x"), ("pg", "r-x"), ("R-PG", "r-x"), ("fresh", "r-ip")],
                         ids=["same-name", "name-case", "name-in-other-group", "name-is-an-id", "id-taken"])
def test_resource_create_refuses_a_taken_name_or_id(name, rid):
    s = world()
    refused_before_submit(s, "resource.create", "ERROR_OBJECT_ALREADY_EXISTS", group="g-web", name=name,
                          type="process", properties={}, id=rid)


def test_group_create_refuses_an_id_that_differs_only_in_case():
    s = world()
    refused(s, "group.create", "ERROR_OBJECT_ALREADY_EXISTS", name="fresh", id="G-WEB")


def test_group_create_refuses_an_id_equal_to_another_groups_name():
    s = world()
    refused(s, "group.create", "ERROR_OBJECT_ALREADY_EXISTS", name="fresh", id="web")


# -- the core group ---------------------------------------------------------------------------
def test_core_group_is_special_online_and_owned():
    s = booted()
    assert ok(s, "group.create_core", id="g-core", owner="node2") == "g-core"
    g = group(s, "g-core")
    assert g["special"] and g["name"] == groups.CORE_GROUP == "Cluster Group"
    assert g["persistent_state"] == "online" and g["owner"] == "node2" and g["state"] == "Online"
    assert g["group_type"] == 1 and g["state_sequence"] == 0


@pytest.mark.parametrize("gid", ["g-core", "g-core-2"])
def test_only_one_core_group(gid):
    s = world()
    err = refused(s, "group.create_core", "ERROR_OBJECT_ALREADY_EXISTS", id=gid, owner="node2")
    assert err["params"] == [groups.CORE_GROUP]


CORE_REFUSALS = [
    ("group.online", {"handle": "h", "owner": "node2"}, "CLUSTER_SPECIAL_GROUP"),
    ("group.online", {"handle": "h"}, "CLUSTER_SPECIAL_GROUP"),
    ("group.offline", {"handle": "h"}, "CLUSTER_SPECIAL_GROUP"),
    ("group.set", {"field": "preferred_owners", "value": ["node2"]}, "CLUSTER_SPECIAL_GROUP"),
    ("group.set", {"field": "preferred_owners", "value": []}, "CLUSTER_SPECIAL_GROUP"),
    ("group.delete", {"force": False}, "ERROR_CORE_RESOURCE"),
    ("group.delete", {"force": True}, "ERROR_CORE_RESOURCE"),
]


@pytest.mark.parametrize("op,fields,expected", CORE_REFUSALS,
                         ids=[f"{op}-{i}" for i, (op, _, _) in enumerate(CORE_REFUSALS)])
@pytest.mark.parametrize("key", ["g-core", "Cluster Group", "CLUSTER GROUP"])
def test_core_group_refusals(op, fields, expected, key):
    s = world()
    refused(s, op, expected, group=key, **fields)


@pytest.mark.parametrize("value", [["node2"], []])
def test_the_core_groups_node_list_is_refused_before_submit(value):
    refused_before_submit(world(), "group.set", "CLUSTER_SPECIAL_GROUP", group="g-core", field="preferred_owners",
                          value=value)


def test_core_group_resources_cannot_be_commanded_either():
    s = world()
    refused(s, "resource.online", "CLUSTER_SPECIAL_GROUP", resource="r-core-ip", handle="h", owner="node1")
    refused(s, "resource.offline", "CLUSTER_SPECIAL_GROUP", resource="r-core-ip", handle="h")


def test_core_group_other_settings_can_change():
    s = world()
    ok(s, "group.set", group="g-core", field="flags", value=1)
    ok(s, "group.set", group="g-core", field="failover", value={"threshold": 5})
    assert group(s, "g-core")["flags"] == 1 and group(s, "g-core")["failover"]["threshold"] == 5


def test_core_group_create_refuses_an_existing_id():
    s = booted()
    create_group(s, "web")
    create_resource(s, "g-web", "ip")
    refused(s, "group.create_core", "ERROR_OBJECT_ALREADY_EXISTS", id="g-web", owner="node1")


def test_core_group_create_refuses_when_its_name_is_taken():
    s = booted()
    create_group(s, "cluster group", "g-user")
    refused(s, "group.create_core", "ERROR_OBJECT_ALREADY_EXISTS", id="g-core", owner="node1")


# -- delete -----------------------------------------------------------------------------------
def test_delete_an_empty_group():
    s = world()
    assert ok(s, "group.delete", group="SPARE", force=False) is None
    assert "g-spare" not in s["groups"]
    refused(s, "group.delete", "ERROR_GROUP_NOT_FOUND", group="g-spare", force=False)


@pytest.mark.parametrize("fields", [{}, {"force": False}, {"force": None}, {"force": 0}])
def test_delete_a_group_with_resources_needs_force(fields):
    s = world()
    err = refused(s, "group.delete", "ERROR_DIR_NOT_EMPTY", group="g-web", **fields)
    assert err["params"] == ["web"]


def test_delete_with_force_deletes_its_resources_and_nothing_else():
    s = world()
    assert ok(s, "group.delete", group="web", force=True) is None
    assert "g-web" not in s["groups"]
    assert sorted(s["resources"]) == ["r-core-ip", "r-pg"]
    assert group(s, "g-db")["resources"] == ["r-pg"]
    # the names are free again
    create_group(s, "web", "g-web-2")
    create_resource(s, "g-web-2", "ip", "r-ip-2")


def test_delete_settles_the_groups_pending_operations():
    s = world()
    ok(s, "group.online", group="g-web", handle="h-on", owner="node1")
    assert s["operations"]["h-on"]["status"] == "pending"
    ok(s, "group.delete", group="g-web", force=True)
    # resource.delete settles a pending resource operation as "failed"; a group delete should too
    assert s["operations"]["h-on"]["status"] != "pending"


# -- unknown objects --------------------------------------------------------------------------
UNKNOWN = [
    ("group.delete", {"group": "nope", "force": True}, "ERROR_GROUP_NOT_FOUND"),
    ("group.rename", {"group": "nope", "name": "x"}, "ERROR_GROUP_NOT_FOUND"),
    ("group.online", {"group": "nope", "handle": "h", "owner": "node1"}, "ERROR_GROUP_NOT_FOUND"),
    ("group.offline", {"group": "nope", "handle": "h"}, "ERROR_GROUP_NOT_FOUND"),
    ("group.set", {"group": "nope", "field": "flags", "value": 1}, "ERROR_GROUP_NOT_FOUND"),
    ("resource.create", {"group": "nope", "name": "x", "type": "process", "properties": {}, "id": "r-x"},
     "ERROR_GROUP_NOT_FOUND"),
    ("resource.delete", {"resource": "nope"}, "ERROR_RESOURCE_NOT_FOUND"),
    ("resource.set", {"resource": "nope", "properties": {}}, "ERROR_RESOURCE_NOT_FOUND"),
    ("resource.add_dependency", {"resource": "nope", "depends_on": "r-ip"}, "ERROR_RESOURCE_NOT_FOUND"),
    ("resource.remove_dependency", {"resource": "nope", "depends_on": "r-ip"}, "ERROR_RESOURCE_NOT_FOUND"),
    ("resource.move_to_group", {"resource": "nope", "to": "g-db"}, "ERROR_RESOURCE_NOT_FOUND"),
    ("resource.online", {"resource": "nope", "handle": "h", "owner": "node1"}, "ERROR_RESOURCE_NOT_FOUND"),
    ("resource.offline", {"resource": "nope", "handle": "h"}, "ERROR_RESOURCE_NOT_FOUND"),
    ("resource.report", {"resource": "nope", "node": "node1", "state": "Online", "pid": 1, "locked": False,
                         "detail": "", "restarted": False}, "ERROR_RESOURCE_NOT_FOUND"),
]


@pytest.mark.parametrize("op,fields,expected", UNKNOWN, ids=[u[0] for u in UNKNOWN])
def test_unknown_group_or_resource(op, fields, expected):
    s = world()
    err = refused(s, op, expected, **fields)
    assert err["params"] == ["nope"]
    # the precondition says so before submitting: Node.write uses it to spare a log entry
    assert db.precheck(s, {"op": op, "at": AT, **fields}) == {"error": err}


def test_unknown_second_object():
    s = world()
    refused(s, "resource.add_dependency", "ERROR_RESOURCE_NOT_FOUND", resource="r-httpd", depends_on="nope")
    refused(s, "resource.move_to_group", "ERROR_GROUP_NOT_FOUND", resource="r-cache", to="nope")


# -- dependencies -----------------------------------------------------------------------------
def chain_world(n, name="c"):
    """A group "chain" with resources c0..c{n-1}, each c{i} depending on c{i-1}."""
    s = booted()
    create_group(s, "chain")
    for i in range(n):
        create_resource(s, "g-chain", f"{name}{i}")
        if i:
            depend(s, f"r-{name}{i}", f"r-{name}{i - 1}")
    return s


DEPENDENCY_REFUSALS = [
    ("self", [], "r-ip", "r-ip", "ERROR_INVALID_PARAMETER"),
    ("self-by-name", [], "ip", "IP", "ERROR_INVALID_PARAMETER"),
    ("cross-group", [], "r-httpd", "r-pg", "ERROR_INVALID_PARAMETER"),
    ("cross-group-core", [], "r-core-ip", "r-ip", "ERROR_INVALID_PARAMETER"),
    ("duplicate", [], "r-httpd", "r-ip", "ERROR_DEPENDENCY_ALREADY_EXISTS"),
    ("duplicate-by-name", [], "HTTPD", "ip", "ERROR_DEPENDENCY_ALREADY_EXISTS"),
    ("direct-cycle", [], "r-ip", "r-httpd", "ERROR_CIRCULAR_DEPENDENCY"),
    ("longer-cycle", [("r-cache", "r-httpd")], "r-ip", "r-cache", "ERROR_CIRCULAR_DEPENDENCY"),
]


@pytest.mark.parametrize("before,resource,on,expected", [d[1:] for d in DEPENDENCY_REFUSALS],
                         ids=[d[0] for d in DEPENDENCY_REFUSALS])
def test_add_dependency_refusals(before, resource, on, expected):
    s = world()
    for a, b in before:
        depend(s, a, b)
    refused(s, "resource.add_dependency", expected, resource=resource, depends_on=on)


def test_long_cycle_is_refused():
    s = chain_world(30)
    refused(s, "resource.add_dependency", "ERROR_CIRCULAR_DEPENDENCY", resource="r-c0", depends_on="r-c29")
    refused(s, "resource.add_dependency", "ERROR_CIRCULAR_DEPENDENCY", resource="r-c10", depends_on="r-c20")
    depend(s, "r-c29", "r-c0")  # the other direction is only a shortcut, not a cycle
    assert res(s, "r-c29")["dependencies"] == ["r-c28", "r-c0"]


def test_a_diamond_is_not_a_cycle():
    s = world()
    depend(s, "r-cache", "r-ip")
    depend(s, "r-httpd", "r-cache")
    assert res(s, "r-httpd")["dependencies"] == ["r-ip", "r-cache"]
    refused(s, "resource.add_dependency", "ERROR_CIRCULAR_DEPENDENCY", resource="r-ip", depends_on="r-httpd")


def test_dependency_depth_is_limited_to_100():
    assert groups.MAX_DEPENDENCY_DEPTH == 100
    s = chain_world(100)  # c99 -> c98 -> ... -> c0: a tree 100 deep is the limit
    create_resource(s, "g-chain", "top")
    err = refused(s, "resource.add_dependency", "ERROR_DEPENDENCY_TREE_TOO_COMPLEX", resource="r-top",
                  depends_on="r-c99")
    assert err["params"] == ["top"]
    depend(s, "r-top", "r-c98")  # 100 deep again: allowed


def test_dependency_depth_counts_the_dependents_too():
    s = chain_world(100)  # c99's tree is 100 deep
    create_resource(s, "g-chain", "bottom")
    # c0 -> bottom makes c99 -> ... -> c0 -> bottom: 101 deep
    refused(s, "resource.add_dependency", "ERROR_DEPENDENCY_TREE_TOO_COMPLEX", resource="r-c0",
            depends_on="r-bottom")


def test_depth_check_is_linear_on_a_lattice_of_diamonds(monkeypatch):
    layers = 14  # each resource of layer i depends on both resources of layer i + 1
    s = booted()
    create_group(s, "lattice")
    for i in reversed(range(layers)):
        for x in "ab":
            create_resource(s, "g-lattice", f"l{i}{x}")
            if i + 1 < layers:
                depend(s, f"r-l{i}{x}", f"r-l{i + 1}a")
                depend(s, f"r-l{i}{x}", f"r-l{i + 1}b")
    create_resource(s, "g-lattice", "top")
    calls = []
    original = groups._longest

    def counting(start, edges):
        def counted(rid):
            calls.append(rid)
            return edges(rid)
        return original(start, counted)
    monkeypatch.setattr(groups, "_longest", counting)
    depend(s, "r-top", "r-l0a")
    # 29 resources, 54 edges: a memoized walk expands each resource at most once per direction;
    # an unmemoized one would expand 2**15 - 1 paths
    assert len(calls) <= 2 * len(s["resources"])


def test_remove_dependency():
    s = world()
    refused(s, "resource.remove_dependency", "ERROR_DEPENDENCY_NOT_FOUND", resource="r-ip", depends_on="r-httpd")
    refused(s, "resource.remove_dependency", "ERROR_DEPENDENCY_NOT_FOUND", resource="r-cache", depends_on="r-ip")
    refused(s, "resource.remove_dependency", "ERROR_DEPENDENCY_NOT_FOUND", resource="r-httpd", depends_on="nope")
    assert ok(s, "resource.remove_dependency", resource="HTTPD", depends_on="IP") is None
    assert res(s, "r-httpd")["dependencies"] == []
    refused(s, "resource.remove_dependency", "ERROR_DEPENDENCY_NOT_FOUND", resource="r-httpd", depends_on="r-ip")
    depend(s, "r-ip", "r-httpd")  # no cycle any more


# -- topo_order and wanted_resources -----------------------------------------------------------
TOPO_CASES = [
    # (resources in creation order, dependencies (a depends on b), expected order)
    ("none", "abc", [], "abc"),
    ("chain", "abc", [("a", "b"), ("b", "c")], "cba"),
    ("reverse-chain", "abc", [("c", "b"), ("b", "a")], "abc"),
    ("fan-in", "abcd", [("a", "d"), ("b", "d"), ("c", "d")], "dabc"),
    ("fan-out", "abcd", [("a", "b"), ("a", "c"), ("a", "d")], "bcda"),
    ("diamond", "abcd", [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")], "dbca"),
    ("two-chains", "abcd", [("a", "c"), ("b", "d")], "cadb"),
]


@pytest.mark.parametrize("names,deps,expected", [t[1:] for t in TOPO_CASES], ids=[t[0] for t in TOPO_CASES])
def test_topo_order_puts_dependencies_first(names, deps, expected):
    s = booted()
    create_group(s, "t")
    for n in names:
        create_resource(s, "g-t", n)
    for a, b in deps:
        depend(s, f"r-{a}", f"r-{b}")
    order = groups.topo_order(s, group(s, "g-t"))
    assert order == [f"r-{n}" for n in expected]
    assert sorted(order) == sorted(group(s, "g-t")["resources"])
    for a, b in deps:  # every resource after what it depends on
        assert order.index(f"r-{b}") < order.index(f"r-{a}")


def test_topo_order_of_an_empty_group():
    s = world()
    assert groups.topo_order(s, group(s, "g-spare")) == []


def _wanted(s, gid="g-web"):
    return sorted(r[2:] for r in groups.wanted_resources(s, group(s, gid)))


def test_wanted_resources_none_while_the_group_is_offline():
    s = world()
    assert _wanted(s) == []
    assert _wanted(s, "g-spare") == []


def test_wanted_resources_all_once_the_group_is_online():
    s = world()
    ok(s, "group.online", group="g-web", handle="h1", owner="node2")
    assert _wanted(s) == ["cache", "httpd", "ip"]
    ok(s, "group.offline", group="g-web", handle="h2")
    assert _wanted(s) == []


def test_wanted_resources_a_resource_commanded_offline_takes_its_dependents():
    s = world()
    ok(s, "group.online", group="g-web", handle="h1", owner="node1")
    ok(s, "resource.offline", resource="r-ip", handle="h2")
    assert _wanted(s) == ["cache"]  # httpd depends on ip
    ok(s, "resource.online", resource="r-ip", handle="h3")
    assert _wanted(s) == ["cache", "httpd", "ip"]
    ok(s, "resource.offline", resource="r-httpd", handle="h4")
    assert _wanted(s) == ["cache", "ip"]  # what httpd depends on is still wanted


def test_wanted_resources_excludes_failed_and_their_dependents():
    s = world()
    depend(s, "r-cache", "r-httpd")  # cache -> httpd -> ip
    ok(s, "group.online", group="g-web", handle="h1", owner="node1")
    report(s, "r-httpd", "Failed")
    assert _wanted(s) == ["ip"]
    report(s, "r-ip", "Failed")
    assert _wanted(s) == []


# -- compute_state and state_sequence ---------------------------------------------------------
COMPUTE_CASES = [
    # (persistent, owner, resource states, expected)
    ("online", "node1", [], "Online"),
    ("online", None, [], "Offline"),
    ("offline", "node1", [], "Offline"),
    ("offline", None, [], "Offline"),
    ("online", "node1", ["Online"], "Online"),
    ("online", "node1", ["Online", "Online", "Online"], "Online"),
    ("offline", "node1", ["Online", "Online"], "Online"),  # computed from resources, not from the command
    ("online", "node1", ["Offline", "Offline"], "Offline"),
    ("online", "node1", ["Online", "Offline"], "PartialOnline"),
    ("online", "node1", ["Offline", "Online", "Offline"], "PartialOnline"),
    ("online", "node1", ["Online", "OnlinePending"], "Pending"),
    ("online", "node1", ["Offline", "OfflinePending"], "Pending"),
    ("online", "node1", ["OnlinePending", "OfflinePending"], "Pending"),
    ("online", "node1", ["Online", "Offline", "OnlinePending"], "Pending"),
    ("online", "node1", ["Failed"], "Failed"),
    ("online", "node1", ["Online", "Failed"], "Failed"),
    ("online", "node1", ["OnlinePending", "Failed"], "Failed"),  # Failed wins over Pending
    ("offline", "node1", ["Offline", "Failed", "OfflinePending"], "Failed"),
]


@pytest.mark.parametrize("persistent,owner,states,expected", COMPUTE_CASES)
def test_compute_state(persistent, owner, states, expected):
    s = booted()
    create_group(s, "t")
    for i, st in enumerate(states):
        create_resource(s, "g-t", f"r{i}")
        res(s, f"r-r{i}")["state"] = st
    g = group(s, "g-t")
    g["persistent_state"], g["owner"] = persistent, owner
    assert groups.compute_state(s, g) == expected


SEQUENCE = [
    # (resource, reported state, group state after, state_sequence after); owner node1, web online
    ("r-ip", "OnlinePending", "Pending", 1),
    ("r-httpd", "OnlinePending", "Pending", 1),
    ("r-ip", "Online", "Pending", 1),
    ("r-httpd", "Online", "PartialOnline", 2),
    ("r-cache", "Online", "Online", 3),
    ("r-cache", "Online", "Online", 3),  # the same state again (a new pid, say): no transition
    ("r-cache", "Failed", "Failed", 4),
    ("r-httpd", "Failed", "Failed", 4),
    ("r-cache", "Offline", "Failed", 4),
    ("r-httpd", "Offline", "PartialOnline", 5),
    ("r-ip", "OfflinePending", "Pending", 6),
    ("r-ip", "Offline", "Offline", 7),
    ("r-ip", "Offline", "Offline", 7),
]


def test_state_sequence_counts_each_transition_once():
    s = world()
    ok(s, "group.online", group="g-web", handle="h1", owner="node1")
    g = group(s, "g-web")
    assert (g["state"], g["state_sequence"]) == ("Offline", 0)
    for i, (rid, st, expected_state, expected_seq) in enumerate(SEQUENCE):
        assert report(s, rid, st, pid=1000 + i) == {"ok": None}
        assert (g["state"], g["state_sequence"]) == (expected_state, expected_seq), (i, rid, st)
        # a stale report from another node in between changes nothing
        refused(s, "resource.report", "ERROR_HOST_NODE_NOT_GROUP_OWNER", resource=rid, node="node2",
                state="Failed", pid=1, locked=False, detail="", restarted=False)


def test_state_sequence_of_an_empty_group_follows_its_commands():
    s = world()
    g = group(s, "g-spare")
    ok(s, "group.online", group="g-spare", handle="h1", owner="node3")
    assert (g["state"], g["state_sequence"], g["owner"]) == ("Online", 1, "node3")
    ok(s, "group.online", group="g-spare", handle="h2")  # already online: no transition
    assert g["state_sequence"] == 1
    ok(s, "group.offline", group="g-spare", handle="h3")
    assert (g["state"], g["state_sequence"]) == ("Offline", 2)
    ok(s, "group.offline", group="g-spare", handle="h4")
    assert g["state_sequence"] == 2


def test_state_sequence_moves_when_resources_come_and_go():
    s = world()
    g = group(s, "g-spare")
    ok(s, "group.online", group="g-spare", handle="h1", owner="node1")
    assert (g["state"], g["state_sequence"]) == ("Online", 1)
    create_resource(s, "g-spare", "x")  # an Offline resource: the group is Offline now
    assert (g["state"], g["state_sequence"]) == ("Offline", 2)
    report(s, "r-x", "Online", node="node1")
    assert (g["state"], g["state_sequence"]) == ("Online", 3)
    report(s, "r-x", "Offline", node="node1")
    ok(s, "resource.delete", resource="r-x")  # empty and online again
    assert (g["state"], g["state_sequence"]) == ("Online", 5)


def test_state_sequence_unchanged_by_commands_that_change_no_state():
    s = world()
    web_online(s)
    seqs = {gid: g["state_sequence"] for gid, g in s["groups"].items()}
    ok(s, "group.rename", group="g-web", name="frontend")
    ok(s, "group.set", group="g-web", field="preferred_owners", value=["node2", "node1"])
    ok(s, "group.set", group="g-web", field="flags", value=3)
    ok(s, "group.set", group="g-web", field="anti_affinity", value=["sql"])
    ok(s, "group.set", group="g-web", field="failover", value={"threshold": 1})
    ok(s, "resource.set", resource="r-ip", properties={"x": "1"}, restart={"threshold": 9}, monitor_interval=3)
    depend(s, "r-cache", "r-ip")
    ok(s, "resource.remove_dependency", resource="r-cache", depends_on="r-ip")
    ok(s, "group.online", group="g-web", handle="h-again")
    report(s, "r-ip", "Online", pid=4242)
    refused(s, "resource.report", "ERROR_HOST_NODE_NOT_GROUP_OWNER", resource="r-ip", node="node3",
            state="Offline", pid=None, locked=False, detail="", restarted=False)
    assert {gid: g["state_sequence"] for gid, g in s["groups"].items()} == seqs
    assert s["operations"]["h-again"]["status"] == "succeeded"


# -- reports ----------------------------------------------------------------------------------
@pytest.mark.parametrize("node", ["node2", "node3", "ghost", "", None])
def test_a_report_from_a_node_that_is_not_the_owner_changes_nothing(node):
    s = world()
    web_online(s)
    err = refused(s, "resource.report", "ERROR_HOST_NODE_NOT_GROUP_OWNER", resource="r-ip", node=node,
                  state="Failed", pid=7, locked=True, detail="stale", restarted=True)
    assert err["params"] == [str(node), "node1"]


def test_a_report_for_a_group_without_owner_is_refused():
    s = world()
    err = refused(s, "resource.report", "ERROR_HOST_NODE_NOT_GROUP_OWNER", resource="r-pg", node="node1",
                  state="Online", pid=7, locked=False, detail="", restarted=False)
    assert err["params"] == ["node1", ""]


@pytest.mark.parametrize("state", ["online", "Running", "", "Pending", None])
def test_a_report_with_an_unknown_state_is_refused(state):
    s = world()
    web_online(s)
    refused(s, "resource.report", "ERROR_INVALID_PARAMETER", resource="r-ip", node="node1", state=state,
            pid=7, locked=False, detail="", restarted=False)


def test_a_report_records_pid_locked_and_detail():
    s = world()
    web_online(s)
    assert report(s, "r-ip", "Online", pid=99, locked=True) == {"ok": None}
    r = res(s, "r-ip")
    assert (r["pid"], r["locked"], r["detail"]) == (99, True, f"Online at {AT}")


RESTART_HISTORY = [
    # (period, reports as (offset from AT, restarted), history after each as offsets)
    (900.0, [(0, True), (100, True), (899, True), (900, True), (1000, True), (2000, True)],
     [[0], [0, 100], [0, 100, 899], [100, 899, 900], [899, 900, 1000], [2000]]),
    (900.0, [(0, True), (10, False), (20, True), (5000, False)],
     [[0], [0], [0, 20], [0, 20]]),  # a report that is not a restart keeps the history as it is
    (60.0, [(0, True), (30, True), (59, True), (60, True), (120, True)],
     [[0], [0, 30], [0, 30, 59], [30, 59, 60], [120]]),
]


@pytest.mark.parametrize("period,reports,history", RESTART_HISTORY)
def test_restart_history_is_kept_within_the_period(period, reports, history):
    s = world()
    web_online(s)
    ok(s, "resource.set", resource="r-cache", restart={"period": period})
    for (offset, restarted), expected in zip(reports, history):
        assert report(s, "r-cache", "Online", at=AT + offset, restarted=restarted) == {"ok": None}
        assert res(s, "r-cache")["restarts"] == [AT + e for e in expected]


# -- operations -------------------------------------------------------------------------------
def test_online_returns_io_pending_with_the_handle():
    s = world()
    result = run(s, "group.online", group="g-web", handle="h-42", owner="node2")
    assert result == {"ok": {"status": "ERROR_IO_PENDING", "code": 0x3E5, "handle": "h-42"}}
    assert CODES["ERROR_IO_PENDING"][0] == 0x3E5
    assert s["operations"]["h-42"] == {"group": "g-web", "resource": None, "target": "online",
                                       "status": "pending", "error": None}
    g = group(s, "g-web")
    assert g["persistent_state"] == "online" and g["owner"] == "node2"
    result = run(s, "group.offline", group="g-web", handle="h-43")
    assert result == {"ok": {"status": "ERROR_IO_PENDING", "code": 0x3E5, "handle": "h-43"}}


def test_online_succeeds_when_the_group_reaches_online():
    s = world()
    ok(s, "group.online", group="g-web", handle="h1", owner="node1")
    for rid, st in [("r-ip", "OnlinePending"), ("r-ip", "Online"), ("r-cache", "Online"), ("r-httpd", "OnlinePending")]:
        report(s, rid, st)
        assert s["operations"]["h1"]["status"] == "pending"
    report(s, "r-httpd", "Online")
    assert s["operations"]["h1"] == {"group": "g-web", "resource": None, "target": "online",
                                     "status": "succeeded", "error": None}
    report(s, "r-httpd", "Failed")  # a settled operation stays settled
    assert s["operations"]["h1"]["status"] == "succeeded"


def test_online_fails_when_the_group_fails():
    s = world()
    ok(s, "group.online", group="g-web", handle="h1", owner="node1")
    report(s, "r-ip", "Online")
    report(s, "r-httpd", "Failed")
    assert s["operations"]["h1"]["status"] == "failed" and s["operations"]["h1"]["error"]
    report(s, "r-httpd", "Online")
    report(s, "r-cache", "Online")
    assert s["operations"]["h1"]["status"] == "failed"


def test_a_later_offline_cancels_a_pending_online():
    s = world()
    ok(s, "group.online", group="g-web", handle="h1", owner="node1")
    report(s, "r-ip", "OnlinePending")
    ok(s, "group.offline", group="g-web", handle="h2")
    ops = s["operations"]
    assert ops["h1"]["status"] == "cancelled" and ops["h1"]["error"]
    assert ops["h2"]["status"] == "pending"
    report(s, "r-ip", "Offline")
    assert ops["h2"]["status"] == "succeeded" and ops["h1"]["status"] == "cancelled"


def test_a_later_online_cancels_a_pending_offline():
    s = world()
    web_online(s)
    ok(s, "group.offline", group="g-web", handle="h2")
    report(s, "r-ip", "OfflinePending")
    ok(s, "group.online", group="g-web", handle="h3")
    assert s["operations"]["h2"]["status"] == "cancelled"
    report(s, "r-ip", "Online")
    assert s["operations"]["h3"]["status"] == "succeeded"


def test_operations_of_other_groups_are_left_alone():
    s = world()
    ok(s, "group.online", group="g-web", handle="h-web", owner="node1")
    ok(s, "group.online", group="g-db", handle="h-db", owner="node2")
    report(s, "r-pg", "Failed", node="node2")
    assert s["operations"]["h-db"]["status"] == "failed"
    assert s["operations"]["h-web"]["status"] == "pending"


@pytest.mark.parametrize("fields", [{}, {"owner": None}, {"owner": ""}, {"owner": "ghost"}])
def test_online_without_an_owner_is_refused(fields):
    s = world()
    err = refused(s, "group.online", "ERROR_CLUSTER_NODE_DOWN", group="g-web", handle="h1", **fields)
    assert err["number"] == 0x13BA
    refused(s, "resource.online", "ERROR_CLUSTER_NODE_DOWN", resource="r-cache", handle="h2", **fields)


def test_online_keeps_an_existing_owner():
    s = world()
    ok(s, "group.online", group="g-web", handle="h1", owner="node2")
    ok(s, "group.offline", group="g-web", handle="h2")
    ok(s, "group.online", group="g-web", handle="h3", owner="node3")
    assert group(s, "g-web")["owner"] == "node2"
    ok(s, "group.online", group="g-web", handle="h4")  # no owner needed: it has one


def test_online_clears_a_failure():
    s = world()
    ok(s, "group.online", group="g-web", handle="h1", owner="node1")
    report(s, "r-ip", "Online")
    report(s, "r-cache", "Failed", restarted=True)
    g = group(s, "g-web")
    assert g["state"] == "Failed" and res(s, "r-cache")["restarts"] == [AT]
    seq = g["state_sequence"]
    ok(s, "group.online", group="g-web", handle="h2")
    assert res(s, "r-cache")["state"] == "Offline" and res(s, "r-cache")["restarts"] == []
    assert res(s, "r-ip")["state"] == "Online"
    assert g["state"] == "PartialOnline" and g["state_sequence"] == seq + 1
    assert s["operations"]["h2"]["status"] == "pending"


def test_offline_of_a_group_with_a_locked_resource_is_refused():
    s = world()
    web_online(s)
    report(s, "r-httpd", "Online", locked=True)
    err = refused(s, "group.offline", "ERROR_CLUSTER_RESOURCE_LOCKED_STATUS", group="g-web", handle="h2")
    assert err["number"] == 0x1748 and err["params"] == ["web"]
    refused(s, "resource.offline", "ERROR_CLUSTER_RESOURCE_LOCKED_STATUS", resource="r-httpd", handle="h3")
    ok(s, "resource.offline", resource="r-cache", handle="h4")  # an unlocked one may go
    report(s, "r-httpd", "Online", locked=False)
    ok(s, "group.offline", group="g-web", handle="h5")


def test_resource_operations():
    s = world()
    result = run(s, "resource.online", resource="r-pg", handle="h1", owner="node3")
    assert result == {"ok": {"status": "ERROR_IO_PENDING", "code": 0x3E5, "handle": "h1"}}
    g = group(s, "g-db")  # bringing a resource online brings its group online
    assert g["persistent_state"] == "online" and g["owner"] == "node3"
    assert s["operations"]["h1"] == {"group": "g-db", "resource": "r-pg", "target": "online",
                                     "status": "pending", "error": None}
    report(s, "r-pg", "Online", node="node3")
    assert s["operations"]["h1"]["status"] == "succeeded"
    ok(s, "resource.offline", resource="r-pg", handle="h2")
    ok(s, "resource.online", resource="r-pg", handle="h3")
    ops = s["operations"]
    assert ops["h2"]["status"] == "cancelled" and ops["h3"]["status"] == "succeeded"  # it never stopped
    ok(s, "resource.offline", resource="r-pg", handle="h4")
    report(s, "r-pg", "Failed", node="node3")
    assert ops["h4"]["status"] == "failed"


def test_a_pending_resource_operation_fails_when_the_resource_is_deleted():
    s = world()
    ok(s, "resource.online", resource="r-pg", handle="h1", owner="node1")
    ok(s, "resource.delete", resource="r-pg")
    assert s["operations"]["h1"]["status"] == "failed" and s["operations"]["h1"]["error"]


def test_refused_resource_online_changes_nothing():
    s = world()
    ok(s, "resource.offline", resource="r-pg", handle="h1")  # its group is offline and has no owner
    assert res(s, "r-pg")["persistent_state"] == "offline"
    refused(s, "resource.online", "ERROR_CLUSTER_NODE_DOWN", resource="r-pg", handle="h2")


# -- resource delete, set, move ---------------------------------------------------------------
@pytest.mark.parametrize("state", ["Online", "OnlinePending", "OfflinePending"])
def test_resource_delete_while_not_offline_is_refused(state):
    s = world()
    web_online(s)
    report(s, "r-cache", state)
    err = refused_before_submit(s, "resource.delete", "ERROR_RESOURCE_ONLINE", resource="r-cache")
    assert err["params"] == ["cache"]


def test_resource_delete_of_a_failed_or_offline_resource():
    s = world()
    web_online(s)
    report(s, "r-cache", "Failed")
    assert ok(s, "resource.delete", resource="CACHE") is None
    assert "r-cache" not in s["resources"] and group(s, "g-web")["resources"] == ["r-ip", "r-httpd"]
    assert group(s, "g-web")["state"] == "Online"
    assert ok(s, "resource.delete", resource="r-pg") is None
    assert group(s, "g-db")["resources"] == []


def test_resource_delete_with_a_dependent_is_refused():
    s = world()
    err = refused_before_submit(s, "resource.delete", "ERROR_DEPENDENT_RESOURCE_EXISTS", resource="r-ip")
    assert err["params"] == ["httpd"]
    ok(s, "resource.delete", resource="r-httpd")  # the dependent first, with its dependency list
    ok(s, "resource.delete", resource="r-ip")
    assert sorted(s["resources"]) == ["r-cache", "r-core-ip", "r-pg"]


def test_resource_set():
    s = world()
    props = {"command": "sleep 5"}
    ok(s, "resource.set", resource="r-ip", properties=props, restart={"threshold": 1, "action": "restart"},
       monitor_interval=5)
    props["command"] = "changed"  # the database keeps its own copy
    r = res(s, "r-ip")
    assert r["properties"] == {"command": "sleep 5"} and r["monitor_interval"] == 5.0
    assert r["restart"] == {"threshold": 1, "period": 900.0, "delay": 0.5, "action": "restart"}
    ok(s, "resource.set", resource="r-ip")  # nothing to set: nothing changes
    assert res(s, "r-ip") == r


@pytest.mark.parametrize("restart", [{"action": "reboot"}, {"threshold": -1}, {"period": 0}, {"period": -5},
                                     {"delay": -0.1}])
def test_resource_set_refuses_a_bad_restart_policy(restart):
    s = world()
    refused_before_submit(s, "resource.set", "ERROR_INVALID_PARAMETER", resource="r-ip", restart=restart)


def test_resource_set_refused_for_its_restart_policy_keeps_its_properties():
    s = world()
    refused(s, "resource.set", "ERROR_INVALID_PARAMETER", resource="r-ip", properties={"command": "new"},
            restart={"action": "reboot"})


@pytest.mark.parametrize("resource", ["r-ip", "r-httpd"], ids=["has-a-dependent", "has-a-dependency"])
def test_move_to_group_with_dependencies_is_refused(resource):
    s = world()
    refused(s, "resource.move_to_group", "ERROR_DEPENDENCY_NOT_ALLOWED", resource=resource, to="g-db")


def test_move_to_group_of_a_running_resource_is_refused():
    s = world()
    web_online(s)
    refused(s, "resource.move_to_group", "ERROR_RESOURCE_ONLINE", resource="r-cache", to="g-db")


def test_move_to_group():
    s = world()
    web_online(s)
    report(s, "r-cache", "Offline")
    seq = group(s, "g-web")["state_sequence"]
    assert group(s, "g-web")["state"] == "PartialOnline"
    assert ok(s, "resource.move_to_group", resource="cache", to="SPARE") is None
    assert res(s, "r-cache")["group"] == "g-spare"
    assert group(s, "g-web")["resources"] == ["r-ip", "r-httpd"]
    assert group(s, "g-spare")["resources"] == ["r-cache"]
    # both groups are recomputed: web is Online without cache, spare has an Offline resource
    assert group(s, "g-web")["state"] == "Online" and group(s, "g-web")["state_sequence"] == seq + 1
    assert group(s, "g-spare")["state"] == "Offline" and group(s, "g-spare")["state_sequence"] == 0
    # once moved, it may depend on resources of its new group only
    create_resource(s, "g-spare", "disk")
    depend(s, "r-cache", "r-disk")
    refused(s, "resource.add_dependency", "ERROR_INVALID_PARAMETER", resource="r-cache", depends_on="r-ip")


# -- group.set --------------------------------------------------------------------------------
def test_group_set_preferred_owners():
    s = world()
    value = ["node3", "node1"]
    ok(s, "group.set", group="g-web", field="preferred_owners", value=value)
    value.append("node2")
    assert group(s, "g-web")["preferred_owners"] == ["node3", "node1"]
    ok(s, "group.set", group="g-web", field="preferred_owners", value=[])
    assert group(s, "g-web")["preferred_owners"] == []


@pytest.mark.parametrize("value", [["ghost"], ["node1", "ghost"], ["node1", "node1"], ["node2", "node3", "node2"],
                                   ["NODE1"]],
                         ids=["unknown", "one-unknown", "duplicate", "duplicate-later", "case-of-a-node"])
def test_group_set_preferred_owners_refused(value):
    s = world()
    refused_before_submit(s, "group.set", "ERROR_INVALID_PARAMETER", group="g-web", field="preferred_owners",
                          value=value)


def test_group_set_failover_merges():
    s = world()
    ok(s, "group.set", group="g-web", field="failover", value={"threshold": 0})
    ok(s, "group.set", group="g-web", field="failover", value={"failback": "window", "failback_window": [22, 6]})
    assert group(s, "g-web")["failover"] == {"threshold": 0, "period_hours": 6, "failback": "window",
                                             "failback_window": [22, 6]}


@pytest.mark.parametrize("value", [{"threshold": -1}, {"period_hours": 0}, {"period_hours": -1},
                                   {"failback": "sometimes"}, {"failback_window": [0, 24]},
                                   {"failback_window": [-1, 3]}])
def test_group_set_failover_refused(value):
    s = world()
    refused_before_submit(s, "group.set", "ERROR_INVALID_PARAMETER", group="g-web", field="failover", value=value)


def test_group_set_flags_and_anti_affinity_and_an_unknown_field():
    s = world()
    ok(s, "group.set", group="g-web", field="flags", value=1)
    ok(s, "group.set", group="g-web", field="anti_affinity", value=["sql", "web"])
    assert group(s, "g-web")["flags"] == 1 and group(s, "g-web")["anti_affinity"] == ["sql", "web"]
    for field in ("name", "id", "owner", "special", "state", "bogus"):
        err = refused_before_submit(s, "group.set", "ERROR_INVALID_PARAMETER", group="g-web", field=field, value="x")
        assert err["params"] == [field]


# -- every refusal leaves the state exactly as it was -------------------------------------------
def _web_online(s):
    web_online(s)


def _web_locked(s):
    web_online(s)
    report(s, "r-ip", "Online", locked=True)


REFUSALS = [
    # (name, prepare(state) or None, command, code)
    ("create-invalid", None, {"op": "group.create", "name": " \t", "id": "g-x"}, "ERROR_INVALID_NAME"),
    ("create-taken", None, {"op": "group.create", "name": "Web", "id": "g-x"}, "ERROR_OBJECT_ALREADY_EXISTS"),
    ("create-core-again", None, {"op": "group.create_core", "id": "g-x", "owner": "node2"},
     "ERROR_OBJECT_ALREADY_EXISTS"),
    ("rename-taken", None, {"op": "group.rename", "group": "g-web", "name": "g-db"}, "ERROR_ALREADY_EXISTS"),
    ("rename-nul", None, {"op": "group.rename", "group": "g-web", "name": "a\0"}, "ERROR_INVALID_NAME"),
    ("delete-core", None, {"op": "group.delete", "group": "g-core", "force": True}, "ERROR_CORE_RESOURCE"),
    ("delete-not-empty", None, {"op": "group.delete", "group": "g-web"}, "ERROR_DIR_NOT_EMPTY"),
    ("delete-unknown", None, {"op": "group.delete", "group": "x"}, "ERROR_GROUP_NOT_FOUND"),
    ("online-core", None, {"op": "group.online", "group": "g-core", "handle": "h"}, "CLUSTER_SPECIAL_GROUP"),
    ("offline-core", None, {"op": "group.offline", "group": "g-core", "handle": "h"}, "CLUSTER_SPECIAL_GROUP"),
    ("online-no-owner", None, {"op": "group.online", "group": "g-web", "handle": "h"}, "ERROR_CLUSTER_NODE_DOWN"),
    ("offline-locked", _web_locked, {"op": "group.offline", "group": "g-web", "handle": "h"},
     "ERROR_CLUSTER_RESOURCE_LOCKED_STATUS"),
    ("owners-core", None, {"op": "group.set", "group": "g-core", "field": "preferred_owners", "value": []},
     "CLUSTER_SPECIAL_GROUP"),
    ("owners-dup", None, {"op": "group.set", "group": "g-web", "field": "preferred_owners",
                          "value": ["node1", "node1"]}, "ERROR_INVALID_PARAMETER"),
    ("failover-bad", None, {"op": "group.set", "group": "g-web", "field": "failover", "value": {"threshold": -2}},
     "ERROR_INVALID_PARAMETER"),
    ("resource-create-taken", None, {"op": "resource.create", "group": "g-db", "name": "IP", "type": "process",
                                     "properties": {}, "id": "r-x"}, "ERROR_OBJECT_ALREADY_EXISTS"),
    ("resource-delete-online", _web_online, {"op": "resource.delete", "resource": "r-cache"},
     "ERROR_RESOURCE_ONLINE"),
    ("resource-delete-dependent", None, {"op": "resource.delete", "resource": "r-ip"},
     "ERROR_DEPENDENT_RESOURCE_EXISTS"),
    ("dep-self", None, {"op": "resource.add_dependency", "resource": "r-ip", "depends_on": "r-ip"},
     "ERROR_INVALID_PARAMETER"),
    ("dep-cross", None, {"op": "resource.add_dependency", "resource": "r-ip", "depends_on": "r-pg"},
     "ERROR_INVALID_PARAMETER"),
    ("dep-dup", None, {"op": "resource.add_dependency", "resource": "r-httpd", "depends_on": "r-ip"},
     "ERROR_DEPENDENCY_ALREADY_EXISTS"),
    ("dep-cycle", None, {"op": "resource.add_dependency", "resource": "r-ip", "depends_on": "r-httpd"},
     "ERROR_CIRCULAR_DEPENDENCY"),
    ("dep-remove-missing", None, {"op": "resource.remove_dependency", "resource": "r-ip", "depends_on": "r-cache"},
     "ERROR_DEPENDENCY_NOT_FOUND"),
    ("move-linked", None, {"op": "resource.move_to_group", "resource": "r-ip", "to": "g-db"},
     "ERROR_DEPENDENCY_NOT_ALLOWED"),
    ("report-not-owner", _web_online, {"op": "resource.report", "resource": "r-ip", "node": "node2",
                                       "state": "Offline", "pid": None, "locked": False, "detail": "",
                                       "restarted": True}, "ERROR_HOST_NODE_NOT_GROUP_OWNER"),
    ("restart-bad", None, {"op": "resource.set", "resource": "r-ip", "restart": {"delay": -1}},
     "ERROR_INVALID_PARAMETER"),
]


@pytest.mark.parametrize("prepare,cmd,expected", [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
@pytest.mark.parametrize("with_rid", [False, True], ids=["no-rid", "rid"])
def test_every_refusal_leaves_the_state_unchanged(prepare, cmd, expected, with_rid):
    s = world()
    if prepare:
        prepare(s)
    before = copy.deepcopy(s)
    cmd = dict(copy.deepcopy(cmd), at=AT + 5)
    if with_rid:
        cmd["rid"] = "refused-1"
    result = db.apply(s, cmd)
    assert code(result) == expected
    if with_rid:  # the refusal is remembered so that a retry gets the same answer; nothing else moves
        assert db.apply(s, copy.deepcopy(cmd)) == result
        assert s["applied"].pop("refused-1")[1] == result
    assert s == before


def test_a_retried_online_applies_once():
    s = world()
    cmd = {"op": "group.online", "group": "g-web", "handle": "h1", "owner": "node1", "at": AT, "rid": "w1"}
    first = db.apply(s, dict(cmd))
    after = copy.deepcopy(s)
    assert db.apply(s, dict(cmd, handle="h2", owner="node3")) == first
    assert s == after and "h2" not in s["operations"]


def test_group_commands_are_deterministic():
    def script(s):
        out = [run(s, "group.create", name="a", id="g-a"), run(s, "resource.create", group="a", name="x",
               type="process", properties={}, id="r-x"),
               run(s, "group.online", group="a", handle="h", owner="node2"),
               report(s, "r-x", "Online", node="node2"), run(s, "group.rename", group="a", name="b"),
               run(s, "group.delete", group="b")]
        return out
    a, b = world(), world()
    assert script(a) == script(b) and a == b


# -- placement: scenario table (Pacemaker scheduler-regression style) ----------------------------
# Each scenario is a recorded cluster: members, the other groups (owner, persistent state,
# anti-affinity classes), the live view, the group to place and its settings, what is excluded,
# and the node the policy must pick.
def _placement_state(members, others, core_owner=None):
    s = {"members": {m: {"name": m} for m in members}, "groups": {}}
    if core_owner:
        core = groups.new_group("g-core", groups.CORE_GROUP, s["members"], special=True)
        core["owner"], core["persistent_state"] = core_owner, "online"
        s["groups"]["g-core"] = core
    for i, (owner, persistent, classes) in enumerate(others):
        g = groups.new_group(f"g-{i}", f"other-{i}", s["members"])
        g["owner"], g["persistent_state"], g["anti_affinity"] = owner, persistent, list(classes)
        s["groups"][g["id"]] = g
    return s


N3 = ["node1", "node2", "node3"]
N4 = ["node1", "node2", "node3", "node4"]
ON, OFF = "online", "offline"

PLACEMENT = [
    # (name, members, others [(owner, persistent, classes)], live, preferred, classes, own owner, exclude, expected)
    ("pref-first", N3, [], N3, ["node3", "node1"], [], None, [], "node3"),
    ("pref-first-down", N3, [], ["node1", "node2"], ["node3", "node2", "node1"], [], None, [], "node2"),
    ("pref-in-order-not-by-name", N3, [], N3, ["node2", "node1"], [], None, [], "node2"),
    ("pref-beats-load", N3, [("node3", ON, []), ("node3", ON, [])], N3, ["node3"], [], None, [], "node3"),
    ("pref-beats-anti-affinity", N3, [("node2", ON, ["sql"])], N3, ["node2"], ["sql"], None, [], "node2"),
    ("pref-all-down-least-loaded", N3, [("node1", ON, [])], ["node1", "node2"], ["node3"], [], None, [], "node2"),
    ("pref-excluded-next", N3, [], N3, ["node1", "node3"], [], None, ["node1"], "node3"),
    ("pref-all-excluded", N3, [("node2", ON, [])], N3, ["node1"], [], None, ["node1"], "node3"),
    ("empty-cluster-name-order", N3, [], N3, [], [], None, [], "node1"),
    ("least-loaded", N3, [("node1", ON, []), ("node1", ON, []), ("node2", ON, [])], N3, [], [], None, [], "node3"),
    ("least-loaded-2", N3, [("node1", ON, []), ("node2", ON, []), ("node2", ON, []), ("node3", ON, []),
                            ("node3", ON, [])], N3, [], [], None, [], "node1"),
    ("tie-by-name", N3, [("node1", ON, [])], N3, [], [], None, [], "node2"),
    ("tie-by-name-not-order", ["node3", "node1", "node2"], [], ["node3", "node2", "node1"], [], [], None, [],
     "node1"),
    ("offline-groups-not-counted", N3, [("node1", OFF, []), ("node1", OFF, []), ("node2", ON, [])], N3, [], [],
     None, [], "node1"),
    ("ownerless-not-counted", N3, [(None, ON, []), ("node2", ON, []), ("node3", ON, [])], N3, [], [], None, [],
     "node1"),
    ("self-not-counted", N3, [("node1", ON, [])], N3, [], [], "node2", [], "node2"),
    ("core-counts", N3, [("node2", ON, [])], N3, [], [], None, [], "node3"),  # core group online on node1
    ("down-node-load-irrelevant", N3, [("node2", ON, [])], ["node2", "node3"], [], [], None, [], "node3"),
    ("anti-affinity", N3, [("node1", ON, ["sql"])], N3, [], ["sql"], None, [], "node2"),
    ("anti-affinity-beats-load", N3, [("node1", ON, ["sql"]), ("node2", ON, ["sql"]), ("node3", ON, []),
                                      ("node3", ON, [])], N3, [], ["sql"], None, [], "node3"),
    ("anti-affinity-then-load", N4, [("node1", ON, ["sql"]), ("node2", ON, []), ("node2", ON, [])], N4, [],
     ["sql"], None, [], "node3"),
    ("anti-affinity-any-class", N3, [("node1", ON, ["web"]), ("node2", ON, ["sql"])], N3, [], ["sql", "web"], None,
     [], "node3"),
    ("anti-affinity-other-class", N3, [("node1", ON, ["web"])], N3, [], ["sql"], None, [], "node2"),
    ("anti-affinity-impossible", N3, [("node1", ON, ["sql"]), ("node2", ON, ["sql"]), ("node3", ON, ["sql"]),
                                      ("node1", ON, [])], N3, [], ["sql"], None, [], "node2"),
    ("anti-affinity-one-node", N3, [("node1", ON, ["sql"])], ["node1"], [], ["sql"], None, [], "node1"),
    ("anti-affinity-offline-group", N3, [("node1", OFF, ["sql"]), ("node2", ON, [])], N3, [], ["sql"], None, [],
     "node1"),
    ("anti-affinity-down-node", N3, [("node3", ON, ["sql"]), ("node1", ON, [])], ["node1", "node2"], [], ["sql"],
     None, [], "node2"),
    ("anti-affinity-excluded-clean-node", N3, [("node1", ON, ["sql"]), ("node2", ON, ["sql"])], N3, [], ["sql"],
     None, ["node3"], "node1"),
    ("no-class-no-clash", N3, [("node1", ON, [])], N3, [], [], None, [], "node2"),
    ("exclude-least-loaded", N3, [("node1", ON, [])], N3, [], [], None, ["node2"], "node3"),
    ("exclude-all-live", N3, [], ["node1", "node2"], [], [], None, ["node1", "node2"], None),
    ("exclude-not-live", N3, [], ["node2"], [], [], None, ["node1"], "node2"),
    ("no-live-node", N3, [], [], ["node1"], [], None, [], None),
    ("live-non-member-ignored", N3, [], ["ghost", "node3"], [], [], None, [], "node3"),
    ("only-non-members-live", N3, [], ["ghost"], [], [], None, [], None),
]


@pytest.mark.parametrize("members,others,live,preferred,classes,own_owner,exclude,expected",
                         [p[1:] for p in PLACEMENT], ids=[p[0] for p in PLACEMENT])
def test_place_group(members, others, live, preferred, classes, own_owner, exclude, expected, request):
    core_owner = "node1" if request.node.callspec.id.endswith("core-counts") else None
    s = _placement_state(members, others, core_owner=core_owner)
    g = groups.new_group("g-me", "me", s["members"])
    g["preferred_owners"], g["anti_affinity"] = list(preferred), list(classes)
    if own_owner:
        g["owner"], g["persistent_state"] = own_owner, ON
    s["groups"]["g-me"] = g
    before = copy.deepcopy(s)
    assert placement.place_group(s, list(live), g, exclude=tuple(exclude)) == expected
    assert s == before  # placement decides; it changes nothing


def test_place_group_on_a_real_database():
    """The policy reads the same state apply builds."""
    s = world()
    web_online(s)  # web online on node1, core group online on node1
    ok(s, "group.online", group="g-db", handle="h-db", owner="node2")
    assert placement.place_group(s, list(NAMES), group(s, "g-spare")) == "node3"
    ok(s, "group.set", group="g-spare", field="preferred_owners", value=["node1"])
    assert placement.place_group(s, list(NAMES), group(s, "g-spare")) == "node1"
    assert placement.place_group(s, ["node2", "node3"], group(s, "g-spare"), exclude=("node3",)) == "node2"
