"""Checkers over a run's history, witness and final state: pure functions, each returning
{"valid": bool, ...details}. CAS linearizability is in linear.py; no double-online is
clusterctl.checkers.double_online, wrapped here."""
from .. import checkers as base

INF = float("inf")


def no_double_online(witness_records):
    found = base.double_online(witness_records)
    return {"valid": not found, "violations": found[:20], "count": len(found),
            "starts": sum(1 for r in witness_records if r.get("event") == "start")}


# -- nothing acknowledged lost ----------------------------------------------------------------
def writes(operations):
    """Each op that wrote, or may have: {cell, value, invoke, complete (INF: unknown), ok, id}."""
    out = []
    for o in operations:
        if o["type"] == "fail":
            continue
        a, ok = o["args"], o["type"] == "ok"
        if o["op"] == "write":
            cell, value = ("other_config", a["key"]), a["value"]
        elif o["op"] == "cas":
            if ok and not (o["result"] or {}).get("swapped"):
                continue  # answered: it did not write
            cell, value = ("other_config", a["key"]), a["new"]
        elif o["op"] in ("online", "offline"):
            cell, value = ("group", a["group"]), "Online" if o["op"] == "online" else "Offline"
        else:
            continue
        out.append({"cell": cell, "value": value, "invoke": o["invoke"], "ok": ok, "id": o["id"],
                    "complete": o["complete"] if ok and o["complete"] is not None else INF})
    return out


def final_value(final, cell):
    kind, key = cell
    table = final.get("other_config" if kind == "other_config" else "groups") or {}
    value = table.get(key)
    return value.capitalize() if kind == "group" and isinstance(value, str) else value


def nothing_lost(operations, final):
    """Every write answered ok is in the final state, unless another write to the same place
    (acknowledged or of unknown outcome) may have come after it. `final` is
    {"other_config": {key: value}, "groups": {name: persistent_state}}."""
    ws = writes(operations)
    by_cell = {}
    for w in ws:
        by_cell.setdefault(w["cell"], []).append(w)
    lost = []
    for cell, cell_writes in by_cell.items():
        have = final_value(final, cell)
        for w in cell_writes:
            if not w["ok"] or have == w["value"]:
                continue
            later = [o for o in cell_writes if o is not w and o["complete"] > w["invoke"]]
            if not later:
                lost.append({"cell": list(cell), "op": w["id"], "wrote": w["value"], "final": have})
    return {"valid": not lost, "lost": lost[:20], "count": len(lost),
            "acknowledged": sum(1 for w in ws if w["ok"])}


# -- convergence ------------------------------------------------------------------------------
def convergence(samples, nodes, healed_at, bound):
    """After the heal (at healed_at), a round of samples where every node answered with the same
    state hash, applied index and commit index, within `bound` seconds."""
    rounds = {}
    for s in samples:
        rounds.setdefault(s["round"], []).append(s)
    for r in sorted(rounds):
        got = {s["node"]: s for s in rounds[r] if s.get("reachable")}
        if set(got) != set(nodes):
            continue
        keys = {(s["state_hash"], s["state_index"], s["commit_index"]) for s in got.values()}
        if len(keys) == 1:
            after = max(s["t"] for s in got.values()) - healed_at
            (h, i, c), = keys
            return {"valid": after <= bound, "seconds": round(after, 2), "bound": bound,
                    "state_hash": h, "state_index": i, "commit_index": c}
    last = [{k: s.get(k) for k in ("node", "reachable", "state_hash", "state_index", "commit_index")}
            for s in rounds[max(rounds)]] if rounds else []
    return {"valid": False, "seconds": None, "bound": bound, "last_round": last,
            "detail": "the nodes never reported one state hash and index together"}


# -- quorum truth -----------------------------------------------------------------------------
def faults(records):
    """Nemesis faults paired: [{id, fault, start, stop (INF if never healed), ...params}]."""
    out = {}
    for r in records:
        if r["type"] != "nemesis":
            continue
        if r["phase"] == "start":
            out[r["id"]] = dict(r.get("params") or {}, id=r["id"], fault=r["fault"], start=r["t"], stop=INF)
        elif r["id"] in out:
            out[r["id"]]["stop"] = r["t"]
    return sorted(out.values(), key=lambda f: f["start"])


def heard(node, nodes, cuts):
    """The nodes `node` hears (itself included) when every (src, dst) in cuts is dropped."""
    cut = {tuple(c) for c in cuts}
    return {n for n in nodes if n == node or (n, node) not in cut}


def quorum_of(n_nodes):
    """votequorum with one vote a node, every configured node expected."""
    return n_nodes // 2 + 1


def quorum_truth(records, nodes, bound):
    """During each cut (a fault with "cuts": directed (src, dst) drops), a node that hears fewer
    than a quorum of nodes never reports is_quorate true once `bound` seconds (effective token +
    tolerance) have passed since the cut was in place, and reports false by then."""
    q = quorum_of(len(nodes))
    samples = [r for r in records if r["type"] == "sample" and r.get("reachable")]
    violations, checked = [], []
    for f in faults(records):
        if not f.get("cuts"):
            continue
        for node in nodes:
            if len(heard(node, nodes, f["cuts"])) >= q:
                continue
            # a sample counts when it was asked after the cut was in place and answered before
            # the heal began (an answer may be computed any time in between)
            mine = [s for s in samples if s["node"] == node and f["start"] <= s["t"]
                    and s.get("done", s["t"]) < f["stop"]]
            late_true = [s for s in mine if s["is_quorate"] and s["t"] > f["start"] + bound]
            for s in late_true[:3]:
                violations.append({"fault": f["id"], "kind": f["fault"], "node": node,
                                   "after": round(s["t"] - f["start"], 2), "reported": "quorate"})
            first_false = next((s for s in mine if s["is_quorate"] is False), None)
            checked.append({"fault": f["id"], "node": node,
                            "lost_quorum_after": round(first_false["t"] - f["start"], 2) if first_false else None,
                            "observed": any(s["t"] > f["start"] + bound for s in mine)})
    return {"valid": not violations, "violations": violations, "minority_nodes": checked, "bound": bound}


# -- failover times (a measurement, not a verdict) -------------------------------------------
def failover_times(witness_records, fault_list):
    """For each fault that took a node away (kill, pause, or a cut that left it in a minority),
    each resource running there at the fault's start: how long until it started elsewhere."""
    intervals = base.running_intervals(witness_records)
    out = []
    for f in fault_list:
        victims = set(f.get("victims") or [])
        for resource, ivs in intervals.items():
            here = [iv for iv in ivs if iv[0] in victims and iv[2] <= f["start"] and (iv[3] is None or iv[3] > f["start"])]
            if not here:
                continue
            nxt = min((iv for iv in ivs if iv[0] not in victims and iv[2] > f["start"]), key=lambda iv: iv[2],
                      default=None)
            out.append({"fault": f["id"], "kind": f["fault"], "resource": resource, "from": here[0][0],
                        "to": nxt[0] if nxt else None,
                        "seconds": round(nxt[2] - f["start"], 2) if nxt else None})
    return out
