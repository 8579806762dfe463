"""The chaos checkers, pure: each passes a valid history and catches a planted violation."""
import json
import os

from clusterctl.lab.chaos import checkers, history, linear
from clusterctl.lab.chaos.scenarios import SCENARIOS
from clusterctl.lab.chaos.schedule import generate

INF = float("inf")
NODES = ["node1", "node2", "node3"]


def op(id_, kind, args, invoke, complete, type_="ok", result=None):
    return {"id": id_, "process": 0, "node": "node1", "op": kind, "args": args, "invoke": invoke,
            "complete": complete if type_ == "ok" else (complete if type_ == "fail" else None),
            "type": type_, "result": result}


def cas(id_, key, expected, new, invoke, complete, swapped=None, value=None, type_="ok"):
    return op(id_, "cas", {"key": key, "expected": expected, "new": new}, invoke, complete, type_,
              {"swapped": swapped, "value": value} if type_ == "ok" else None)


def read(id_, key, value, invoke, complete):
    return op(id_, "read", {"keys": [key]}, invoke, complete, "ok", {key: value})


# -- history pairing --------------------------------------------------------------------------
def test_history_pairs_invocations_and_completions(tmp_path):
    h = history.History(str(tmp_path / "h.jsonl"))
    h.add("invoke", id=1, process=0, node="node1", op="write", args={"key": "k", "value": "v"}, t=1.0)
    h.add("invoke", id=2, process=1, node="node2", op="read", args={"keys": ["k"]}, t=1.5)
    h.add("ok", id=1, process=0, node="node1", op="write", result="", t=2.0)
    h.close()
    ops = {o["id"]: o for o in history.operations(history.read(h.path))}
    assert ops[1]["type"] == "ok" and ops[1]["complete"] == 2.0
    assert ops[2]["type"] == "unknown" and ops[2]["complete"] is None  # never completed


# -- CAS linearizability ----------------------------------------------------------------------
def test_a_sequential_cas_history_is_linearizable():
    ops = [cas(1, "r", None, "a", 0, 1, True, None), read(2, "r", "a", 2, 3),
           cas(3, "r", "a", "b", 4, 5, True, "a"), cas(4, "r", "a", "c", 6, 7, False, "b"), read(5, "r", "b", 8, 9)]
    assert linear.check(ops)["valid"] is True


def test_concurrent_ops_may_be_ordered_either_way():
    # two overlapping CAS from None: one wins, and the read after both sees the winner
    ops = [cas(1, "r", None, "a", 0, 5, False, "b"), cas(2, "r", None, "b", 1, 4, True, None), read(3, "r", "b", 6, 7)]
    assert linear.check(ops)["valid"] is True


def test_planted_stale_read_is_caught():
    ops = [cas(1, "r", None, "a", 0, 1, True, None), cas(2, "r", "a", "b", 2, 3, True, "a"),
           read(3, "r", "a", 4, 5)]  # reads the overwritten value after the overwrite finished
    v = linear.check(ops)
    assert v["valid"] is False and "no order" in v["keys"]["r"]["detail"]


def test_planted_double_swap_is_caught():
    # both CAS(None -> x) claim to have swapped: impossible on one register
    ops = [cas(1, "r", None, "a", 0, 5, True, None), cas(2, "r", None, "b", 1, 4, True, None)]
    assert linear.check(ops)["valid"] is False


def test_an_unknown_cas_may_have_happened_or_not():
    took = [cas(1, "r", None, "a", 0, None, type_="unknown"), read(2, "r", "a", 5, 6)]
    skipped = [cas(1, "r", None, "a", 0, None, type_="unknown"), read(2, "r", None, 5, 6)]
    assert linear.check(took)["valid"] is True and linear.check(skipped)["valid"] is True
    # but a failed one certainly did not
    failed = [cas(1, "r", None, "a", 0, 1, type_="fail"), read(2, "r", "a", 5, 6)]
    assert linear.check(failed)["valid"] is False


def test_an_unknown_cas_cannot_take_effect_before_it_began():
    ops = [read(1, "r", "a", 0, 1), cas(2, "r", None, "a", 2, None, type_="unknown")]
    assert linear.check(ops)["valid"] is False


def test_keys_are_checked_separately_and_size_is_bounded():
    ops = [cas(1, "x", None, "a", 0, 1, True, None), read(2, "y", None, 0, 1)]
    assert set(linear.check(ops)["keys"]) == {"x", "y"}
    many = [read(i, "r", None, i, i + 0.5) for i in range(linear.MAX_OPS + 1)]
    v = linear.check(many)
    assert v["valid"] is False and v["keys"]["r"]["valid"] is None  # undecided counts as a failure


def test_memoization_keeps_a_wide_concurrent_history_fast():
    # 12 overlapping failed CAS around one swap: 2^12 orders, few distinct states
    ops = [cas(i, "r", "zz", f"v{i}", 0, 10, False, None if i < 6 else "w") for i in range(12)]
    ops.append(cas(99, "r", None, "w", 0, 10, True, None))
    v = linear.check(ops)
    assert v["valid"] is True and v["keys"]["r"]["explored"] < 20000


# -- nothing acknowledged lost ----------------------------------------------------------------
def write(id_, key, value, invoke, complete, type_="ok"):
    return op(id_, "write", {"key": key, "value": value}, invoke, complete, type_)


def test_every_acknowledged_write_in_the_final_state_passes():
    ops = [write(1, "a", "1", 0, 1), write(2, "b", "2", 0, 1, "fail"),
           op(3, "offline", {"group": "g0"}, 2, 3), cas(4, "r", None, "x", 0, 1, True, None),
           cas(5, "r", "x", "y", 2, None, type_="unknown")]
    final = {"other_config": {"a": "1", "r": "y"}, "groups": {"g0": "Offline"}}
    assert checkers.nothing_lost(ops, final)["valid"] is True


def test_planted_lost_write_is_caught():
    ops = [write(1, "a", "1", 0, 1), op(2, "offline", {"group": "g0"}, 2, 3)]
    v = checkers.nothing_lost(ops, {"other_config": {}, "groups": {"g0": "Online"}})
    assert v["valid"] is False and v["count"] == 2


def test_a_later_overwrite_explains_a_missing_value_but_an_earlier_one_does_not():
    first, second = cas(1, "r", None, "x", 0, 1, True, None), cas(2, "r", "x", "y", 2, 3, True, "x")
    assert checkers.nothing_lost([first, second], {"other_config": {"r": "y"}})["valid"] is True
    # the final value is the older write's: the acknowledged later one was lost
    assert checkers.nothing_lost([first, second], {"other_config": {"r": "x"}})["valid"] is False
    # an unknown write concurrent with or after it may have overwritten it
    maybe = cas(3, "r", "y", "z", 2.5, None, type_="unknown")
    assert checkers.nothing_lost([first, second, maybe], {"other_config": {"r": "z"}})["valid"] is True


# -- convergence ------------------------------------------------------------------------------
def sample(round_, node, t, h="h1", index=10, commit=10, reachable=True):
    return {"round": round_, "node": node, "t": t, "reachable": reachable, "state_hash": h,
            "state_index": index, "commit_index": commit}


def test_convergence_finds_the_round_where_all_agree():
    samples = [sample(1, "node1", 1, "h0", 9, 9), sample(1, "node2", 1), sample(1, "node3", 1, reachable=False),
               sample(2, "node1", 3), sample(2, "node2", 3), sample(2, "node3", 3)]
    v = checkers.convergence(samples, NODES, healed_at=0, bound=10)
    assert v["valid"] is True and v["seconds"] == 3


def test_planted_divergence_is_caught():
    samples = [sample(r, n, r, h="bad" if n == "node3" else "h1") for r in range(1, 5) for n in NODES]
    assert checkers.convergence(samples, NODES, healed_at=0, bound=10)["valid"] is False
    late = [sample(1, n, 30) for n in NODES]  # agreed, but past the bound
    assert checkers.convergence(late, NODES, healed_at=0, bound=10)["valid"] is False


# -- quorum truth -----------------------------------------------------------------------------
def partition_records(minority_says):
    """node3 cut off from 10 to 30; node3's samples say minority_says after 5 s."""
    cuts = [["node1", "node3"], ["node3", "node1"], ["node2", "node3"], ["node3", "node2"]]
    recs = [{"type": "nemesis", "phase": "start", "id": 1, "fault": "partition-halves", "t": 10.0,
             "params": {"cuts": cuts}},
            {"type": "nemesis", "phase": "stop", "id": 1, "fault": "partition-halves", "t": 30.0}]
    for t in range(8, 34):
        for n in NODES:
            q = True if n != "node3" or t < 11 else minority_says(t)
            recs.append({"type": "sample", "t": float(t), "node": n, "reachable": True, "is_quorate": q})
    return recs


def test_a_minority_that_loses_quorum_in_time_passes():
    v = checkers.quorum_truth(partition_records(lambda t: t < 13), NODES, bound=5)
    assert v["valid"] is True and v["minority_nodes"][0]["lost_quorum_after"] == 3.0


def test_planted_quorate_minority_is_caught():
    v = checkers.quorum_truth(partition_records(lambda t: t > 20), NODES, bound=5)
    assert v["valid"] is False and v["violations"][0]["node"] == "node3"


def test_an_answer_that_may_come_from_after_the_heal_does_not_count():
    recs = partition_records(lambda t: False)
    recs.append({"type": "sample", "t": 29.5, "done": 30.4, "node": "node3", "reachable": True, "is_quorate": True})
    assert checkers.quorum_truth(recs, NODES, bound=5)["valid"] is True
    recs.append({"type": "sample", "t": 29.0, "done": 29.9, "node": "node3", "reachable": True, "is_quorate": True})
    assert checkers.quorum_truth(recs, NODES, bound=5)["valid"] is False


def test_a_bridge_leaves_everyone_a_majority_and_one_way_deafness_a_minority():
    bridge = [["node1", "node3"], ["node3", "node1"]]  # node2 hears both
    assert all(len(checkers.heard(n, NODES, bridge)) >= 2 for n in NODES)
    deaf = [["node1", "node3"], ["node2", "node3"]]  # node3 hears nobody, is still heard
    assert checkers.heard("node3", NODES, deaf) == {"node3"}
    assert checkers.heard("node1", NODES, deaf) == set(NODES)


# -- no double online, from the resources' own witness lines ------------------------------------
def life(node, pid, start, last, group="g0", resource="g0-a", exit=True, period=0.1):
    """The lines a testres process writes: start, alive every period, exit (or none: killed)."""
    lines = [{"event": "start", "group": group, "resource": resource, "node": node, "pid": pid, "t": start}]
    t = start + period
    while t < last - 1e-9:
        lines.append(dict(lines[0], event="alive", t=round(t, 3)))
        t += period
    lines.append(dict(lines[0], event="exit" if exit else "alive", t=last))
    return lines


def test_a_clean_hand_over_passes():
    witness = life("node1", 10, 1.0, 5.0) + life("node2", 20, 5.2, 9.0) + \
        life("node1", 11, 1.0, 5.0, resource="g0-b") + life("node2", 21, 5.3, 9.0, resource="g0-b")
    verdict = checkers.no_double_online(witness)
    assert verdict["valid"] is True and verdict["starts"] == 4 and verdict["count"] == 0


def test_an_overlap_names_the_group_nodes_and_interval():
    witness = life("node1", 10, 1.0, 5.0) + life("node2", 20, 4.0, 9.0)
    verdict = checkers.no_double_online(witness)
    assert verdict["valid"] is False and verdict["count"] == 1
    v, = verdict["violations"]
    assert (v["group"], v["nodes"], v["interval"], v["kind"]) == ("g0", ["node1", "node2"], [4.0, 5.0], "two nodes")


def test_a_sibling_that_outlives_the_hand_over_is_a_double_run_of_its_group():
    # g0-a moved cleanly, but g0-b ignored SIGTERM on node1 while g0-a started on node2
    witness = life("node1", 10, 1.0, 5.0) + life("node1", 11, 1.0, 8.0, resource="g0-b") + \
        life("node2", 20, 5.5, 12.0)
    v, = checkers.no_double_online(witness)["violations"]
    assert v["resources"] == ["g0-b", "g0-a"] and v["interval"] == [5.5, 8.0]


def test_a_process_killed_without_an_exit_line_ran_until_its_last_line():
    killed = life("node1", 10, 1.0, 5.0, exit=False)  # SIGKILLed: no exit line
    assert checkers.no_double_online(killed + life("node2", 20, 5.1, 9.0))["valid"] is True
    caught = checkers.no_double_online(killed + life("node2", 20, 4.5, 9.0))
    assert caught["valid"] is False and caught["died_without_exit"] == 1
    assert caught["violations"][0]["interval"] == [4.5, 5.0]


def test_other_groups_and_a_restart_on_the_same_node_are_not_double_runs():
    witness = life("node1", 10, 1.0, 5.0) + life("node2", 30, 1.0, 9.0, group="g1", resource="g1-a") + \
        life("node1", 11, 5.6, 9.0)  # restarted in place after it exited
    assert checkers.no_double_online(witness)["valid"] is True
    twice = life("node1", 10, 1.0, 5.0) + life("node1", 12, 3.0, 9.0)  # a second copy, same node
    assert checkers.no_double_online(twice)["violations"][0]["kind"] == "twice on one node"


def test_a_reused_pid_starts_a_new_lifetime():
    witness = life("node1", 10, 1.0, 2.0, exit=False) + life("node1", 10, 6.0, 7.0)
    lives = checkers.lifetimes(witness + life("node2", 20, 3.0, 5.0))
    assert [(x["node"], x["start"], x["last"]) for x in lives] == [
        ("node1", 1.0, 2.0), ("node2", 3.0, 5.0), ("node1", 6.0, 7.0)]
    assert checkers.no_double_online(witness + life("node2", 20, 3.0, 5.0))["valid"] is True


def test_failover_times_measure_from_the_fault_to_the_start_elsewhere():
    witness = life("node1", 1, 1.0, 12.0, exit=False) + life("node2", 2, 14.5, 16.0)
    fault = {"id": 1, "fault": "kill", "start": 10.0, "stop": 20.0, "victims": ["node1"]}
    assert checkers.failover_times(witness, [fault]) == [
        {"fault": 1, "kind": "kill", "group": "g0", "resource": "g0-a", "from": "node1", "to": "node2", "seconds": 4.5}]


# -- schedules --------------------------------------------------------------------------------
def test_the_same_seed_gives_the_same_schedule_and_another_seed_another():
    mixed = SCENARIOS["mixed"]
    assert generate(mixed, 7, 300) == generate(mixed, 7, 300)
    assert generate(mixed, 7, 300) != generate(mixed, 8, 300)
    steps = generate(mixed, 7, 300)
    assert all(s["at"] + s["hold"] < 300 for s in steps)
    assert all(a["at"] + a["hold"] < b["at"] for a, b in zip(steps, steps[1:]))  # one fault at a time


def test_the_smoke_schedule_is_one_kill_one_partition_one_isolated_leader():
    steps = generate(SCENARIOS["smoke"], 1, SCENARIOS["smoke"].duration)
    assert [s["fault"] for s in steps] == ["kill", "partition-halves", "isolate-leader"]


# -- the nemesis's cuts (no cluster needed to compute them) -----------------------------------
class FakeCluster:
    def meta(self):
        return {"nodes": [{"name": f"node{i}"} for i in range(1, 6)]}

    def testbed(self):
        return None

    def pid(self, name):
        return 1  # every daemon up: the nemesis starts none


class Recorded(list):
    def add(self, kind, **fields):
        self.append(dict(fields, type=kind))


def cuts(fault, params, leader=None):
    from clusterctl.lab.chaos.nemesis import Nemesis
    n = Nemesis(FakeCluster(), history=None)
    if leader:
        n.latest = {x: {"reachable": True, "leader": leader} for x in n.names}
    p = dict(params)
    got = {(n.names[a], n.names[b]) for a, b in n._cuts({"fault": fault, "params": params}, p)}
    return got, p


def test_a_bridge_node_is_heard_by_both_halves_which_do_not_hear_each_other():
    got, _ = cuts("bridge", {"bridge": 2, "left": [0, 1], "right": [3, 4]})
    assert ("node1", "node4") in got and ("node4", "node1") in got
    assert not [c for c in got if "node3" in c]
    assert all(len(checkers.heard(x, [f"node{i}" for i in range(1, 6)], got)) == 3
               for x in ("node1", "node2", "node4", "node5"))


def test_isolating_the_leader_cuts_it_both_ways_and_one_way_cuts_one_way():
    got, p = cuts("isolate-leader", {}, leader="node4")
    assert p["sides"] == [["node4"], ["node1", "node2", "node3", "node5"]] and len(got) == 8
    deaf, _ = cuts("one-way", {"node": 0, "direction": "deaf"})
    assert deaf == {(f"node{i}", "node1") for i in range(2, 6)}
    mute, _ = cuts("one-way", {"node": 0, "direction": "mute"})
    assert mute == {("node1", f"node{i}") for i in range(2, 6)}


def resource_nemesis(tmp_path, owner="node2"):
    import time

    from clusterctl.lab.chaos.nemesis import Nemesis
    witness = tmp_path / "w.jsonl"
    now = time.monotonic()
    witness.write_text("".join(json.dumps(x) + "\n" for x in life(owner, 7, now - 3, now, exit=False)))
    n = Nemesis(FakeCluster(), Recorded(), str(witness), str(tmp_path / "control"))
    os.makedirs(tmp_path / "control")
    n.resources = {"g0": "id0"}
    return n


def control(tmp_path):
    return json.loads((tmp_path / "control" / "g0.json").read_text())


def test_a_stop_fault_fails_the_owners_g_a_and_makes_g_b_stop_badly_until_the_heal(tmp_path):
    n = resource_nemesis(tmp_path)
    rec = n.start({"fault": "stop-hangs", "params": {"group": "g0"}})
    assert rec["params"]["target"] == "node2" and rec["params"]["victims"] == ["node2"]
    assert control(tmp_path) == [{"fault": "exit", "code": 1, "node": "node2", "resource": "g0-a"},
                                 {"fault": "hang_term", "resource": "g0-b"}]
    n.stop(rec)
    assert control(tmp_path) == []
    assert [r["phase"] for r in n.history if r["type"] == "nemesis"] == ["start", "stop"]


def test_resource_fail_names_the_resource_and_how_and_slow_start_spares_nothing_after_it(tmp_path):
    n = resource_nemesis(tmp_path, owner="node3")
    n.start({"fault": "resource-fail", "params": {"group": "g0", "how": "close_port", "resource": "b"}})
    assert control(tmp_path) == [{"fault": "close_port", "code": 1, "node": "node3", "resource": "g0-b"}]
    n.start({"fault": "slow-start", "params": {"group": "g0", "seconds": 4.0}})
    once, slow = control(tmp_path)
    assert once["fault"] == "exit" and once["node"] == "node3" and slow["after"] == once["before"]
    assert slow == {"fault": "slow_start", "seconds": 4.0, "after": slow["after"]}


def test_a_group_that_runs_nowhere_is_skipped_not_guessed(tmp_path):
    n = resource_nemesis(tmp_path)
    (tmp_path / "w.jsonl").write_text("")
    rec = n.start({"fault": "stop-ignores-term", "params": {"group": "g0", "seconds": 2.0}})
    assert rec["params"]["skipped"] and not os.path.exists(tmp_path / "control" / "g0.json")


def test_mixed_draws_every_fault_kind_and_a_long_pause_lasts_several_fence_delays():
    from clusterctl.lab.chaos.schedule import fence_delay
    mixed = SCENARIOS["mixed"]
    steps = [s for seed in range(1, 30) for s in generate(mixed, seed, 600)]
    assert {s["fault"] for s in steps} == set(mixed.faults)
    pauses = [s["hold"] for s in steps if s["fault"] == "long-pause"]
    assert pauses and all(2 * fence_delay(3) <= h <= 3 * fence_delay(3) for h in pauses)
    assert not [s for seed in range(1, 30) for s in generate(mixed, seed, 40) if s["fault"] == "long-pause"]


# -- the client's part in telling ok / fail / unknown apart -----------------------------------
def test_a_refused_retry_after_write_unknown_is_still_unknown():
    import pytest

    from clusterd.client import _settled
    from clusterd.errors import ClusterError
    refused = {"error": {"code": "CLUSTER_NOT_QUORATE", "number": 0, "message": "", "params": []}}
    with pytest.raises(ClusterError) as e:
        _settled(refused, uncertain=True)
    assert e.value.code == "CLUSTER_WRITE_UNKNOWN"
    with pytest.raises(ClusterError) as e:
        _settled(refused, uncertain=False)
    assert e.value.code == "CLUSTER_NOT_QUORATE"
    assert _settled({"ok": 5}, uncertain=True) == 5


# -- the report --------------------------------------------------------------------------------
def test_the_report_escapes_what_it_shows_and_draws_every_row(tmp_path):
    import xml.etree.ElementTree as ET

    from clusterctl.lab.chaos import report
    evil = "<script>alert(1)</script>"
    results = {"scenario": evil, "seed": 1, "nodes": 3, "duration": 30, "wall_seconds": 40, "valid": False,
               "verdicts": {"quorum_truth": {"valid": False, "violations": [{"node": evil}]}},
               "op_counts": {"cas": {"ok": 1, "fail": 0, "unknown": 0}},
               "faults": [{"id": 1, "fault": "kill", "start": 2.0, "stop": 5.0, "target": evil}],
               "failover_times": [], "resource_names": {"r1": evil}, "notes": [evil]}
    records = [{"type": "note", "what": "start", "t": 100.0}] + [
        {"type": "sample", "t": 100.0 + t, "node": n, "pid": 1, "reachable": True, "is_quorate": t < 3,
         "leader": "node1"} for t in range(10) for n in ("node1", "node2", "node3")]
    witness = [{"event": "start", "resource": "r1", "node": "node2", "t": 101.0, "pid": 5}]
    report.write(str(tmp_path), results, records, witness)
    page, svg = (tmp_path / "index.html").read_text(), (tmp_path / "timeline.svg").read_text()
    assert evil not in page and evil not in svg and "&lt;script&gt;" in page
    root = ET.fromstring(svg)  # well-formed
    labels = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert {"node1", "node2", "node3", evil} <= set(labels)
    assert "FAIL" in page and (tmp_path / "results.json").exists()
