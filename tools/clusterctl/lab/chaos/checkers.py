"""Checkers over a run's history, witness and final state: pure functions, each returning
{"valid": bool, ...details}. CAS linearizability is in linear.py.

The witness is written by the resources themselves (testres.py): a "start" line, an "alive"
line every 100 ms, an "exit" line when a process ends on its own terms (none when it is
killed). A process certainly ran from its start line to its last line, whatever else is true,
so two such lifetimes that overlap are a double run that no agent or daemon bug can explain
away."""
INF = float("inf")


def lifetimes(witness_records):
    """Each process the witness saw: {group, resource, node, pid, start, last, ended}, where
    [start, last] is when it certainly ran (ended: it wrote its exit line). A start line for a
    pid already open on that node (the pid reused) begins a new lifetime."""
    open_, out = {}, []
    for r in sorted(witness_records, key=lambda r: r["t"]):
        key = (r.get("node"), r.get("pid"))
        if r.get("event") == "start":
            if key in open_:
                out.append(open_.pop(key))
            open_[key] = {"group": r.get("group", r.get("resource")), "resource": r.get("resource"),
                          "node": r.get("node"), "pid": r.get("pid"), "start": r["t"], "last": r["t"],
                          "ended": False}
        elif key in open_:
            life = open_[key]
            life["last"] = r["t"]
            if r.get("event") == "exit":
                life["ended"] = True
                out.append(open_.pop(key))
    return sorted(out + list(open_.values()), key=lambda x: x["start"])


def overlaps(lives):
    """Pairs of lifetimes of one group that ran at once on two nodes, or of one resource that ran
    twice at once on one node: [{group, nodes, resources, pids, interval, seconds}]."""
    by_group = {}
    for life in lives:
        by_group.setdefault(life["group"], []).append(life)
    found = []
    for group, group_lives in sorted(by_group.items(), key=lambda kv: str(kv[0])):
        for i, a in enumerate(group_lives):
            for b in group_lives[i + 1:]:
                if b["start"] >= a["last"]:
                    break  # (sorted by start: this one and every later one began after a's end)
                same_node = a["node"] == b["node"]
                if same_node and a["resource"] != b["resource"]:
                    continue  # a group's resources together on one node: as it should be
                begin, end = max(a["start"], b["start"]), min(a["last"], b["last"])
                if end <= begin:
                    continue
                found.append({"group": group, "nodes": [a["node"], b["node"]],
                              "resources": [a["resource"], b["resource"]], "pids": [a["pid"], b["pid"]],
                              "interval": [round(begin, 3), round(end, 3)], "seconds": round(end - begin, 3),
                              "kind": "twice on one node" if same_node else "two nodes"})
    return found


def no_double_online(witness_records):
    """No group ever certainly ran on two nodes at once (and no resource twice on one node)."""
    lives = lifetimes(witness_records)
    found = overlaps(lives)
    return {"valid": not found, "violations": found[:20], "count": len(found),
            "starts": len(lives), "died_without_exit": sum(1 for x in lives if not x["ended"])}


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
    by_resource = {}
    for life in lifetimes(witness_records):
        by_resource.setdefault(life["resource"], []).append(life)
    out = []
    for f in fault_list:
        victims = set(f.get("victims") or [])
        for resource, lives in sorted(by_resource.items(), key=lambda kv: str(kv[0])):
            here = [x for x in lives if x["node"] in victims and x["start"] <= f["start"] <= x["last"]]
            if not here:
                continue
            nxt = min((x for x in lives if x["node"] not in victims and x["start"] > f["start"]),
                      key=lambda x: x["start"], default=None)
            out.append({"fault": f["id"], "kind": f["fault"], "group": here[0]["group"], "resource": resource,
                        "from": here[0]["node"],
                        "to": nxt["node"] if nxt else None,
                        "seconds": round(nxt["start"] - f["start"], 2) if nxt else None})
    return out
