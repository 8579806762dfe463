"""The verdicts and numbers of a run, from what it recorded (pure)."""
from . import checkers, history, linear

CONVERGE_BOUND = 60.0  # seconds after the heal for every node to report one state


def evaluate(records, witness, final, names, bound, timing):
    """Every checker over a run's history, witness and final state; op counts, faults, failover times."""
    ops = history.operations(records)
    t0 = timing["t0"]
    verdicts = {
        "no_double_online": checkers.no_double_online(witness),
        "nothing_lost": checkers.nothing_lost(ops, final) if final.get("node") else
        {"valid": False, "detail": final.get("error", "no final state")},
        "convergence": checkers.convergence([r for r in records if r["type"] == "converge"], names,
                                            timing["healed"], CONVERGE_BOUND),
        "cas_linearizable": linear.check(ops),
        "quorum_truth": checkers.quorum_truth(records, names, bound),
    }
    counts = {}
    for o in ops:
        counts.setdefault(o["op"], {"ok": 0, "fail": 0, "unknown": 0})[o["type"]] += 1
    fault_list = checkers.faults(records)
    return {
        "valid": all(v["valid"] for v in verdicts.values()),
        "verdicts": verdicts,
        "op_counts": counts,
        "faults": [{"id": f["id"], "fault": f["fault"], "start": round(f["start"] - t0, 2),
                    "stop": round(f["stop"] - t0, 2) if f["stop"] != float("inf") else None,
                    **{k: f.get(k) for k in ("target", "sides", "cuts", "victims", "percent", "skipped")
                       if f.get(k) is not None}} for f in fault_list],
        "failover_times": checkers.failover_times(witness, fault_list),
        "notes": [r["what"] for r in records if r["type"] == "note" and "move" in r.get("what", "")],
    }
