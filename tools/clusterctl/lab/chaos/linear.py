"""Linearizability of compare-and-set registers, checked one key at a time (linearizability is
local, so per-key checking is enough).

The search is Wing & Gong's: pick, among the operations not yet placed, one that may come next
(no unplaced operation finished before it began), apply it to the register, go on; backtrack
when nothing fits. Lowe's memoization makes it practical: a (set of placed operations, register
value) pair is explored once. An operation answered ok must be placed; one whose outcome is
unknown (timeout, lost connection) may be placed anywhere after its start, or never, since it
may or may not have taken effect. A failed one had no effect and is left out.

A register's operations (plain dicts):
  {"kind": "cas", "expected", "new", "invoke", "complete", "result": {"swapped", "value"}}
  {"kind": "read", "invoke", "complete", "result": value}
complete is None for an unknown outcome (then result is ignored). The register starts at
`initial` (None: the key is absent).
"""
MAX_OPS = 200  # per key; the workload keeps well under it
MAX_STATES = 300_000  # explored (placed set, value) pairs before giving up as undecided

INF = float("inf")


def _step(op, value):
    """The register's value after op, or raise ValueError when op cannot happen at this value."""
    if op["kind"] == "read":
        if op["result"] != value:
            raise ValueError
        return value
    if op["complete"] is None:  # unknown outcome: it did whatever the value implies
        return op["new"] if value == op["expected"] else value
    res = op["result"] or {}
    if res.get("value") != value or bool(res.get("swapped")) != (value == op["expected"]):
        raise ValueError
    return op["new"] if res.get("swapped") else value


def check_register(ops, initial=None, max_ops=MAX_OPS, max_states=MAX_STATES):
    """{"valid": True | False | None (undecided), "ops", "explored", "detail"}."""
    ops = [o for o in ops if o["complete"] is not None or o["kind"] == "cas"]
    ops.sort(key=lambda o: o["invoke"])
    n = len(ops)
    if n > max_ops:
        return {"valid": None, "ops": n, "explored": 0,
                "detail": f"{n} operations on one key, over the bound of {max_ops}: not checked"}
    complete = [INF if o["complete"] is None else o["complete"] for o in ops]
    required = sum(1 << i for i, o in enumerate(ops) if o["complete"] is not None)
    seen = set()
    stack = [(0, initial)]
    deepest = (0, 0)  # (number of ok ops placed, mask)
    while stack:
        placed, value = stack.pop()
        if (placed, value) in seen:
            continue
        seen.add((placed, value))
        if placed & required == required:
            return {"valid": True, "ops": n, "explored": len(seen), "detail": ""}
        if len(seen) > max_states:
            return {"valid": None, "ops": n, "explored": len(seen),
                    "detail": f"search passed {max_states} states: undecided"}
        depth = bin(placed & required).count("1")
        if depth > deepest[0]:
            deepest = (depth, placed)
        # the earliest completion among unplaced ops: nothing invoked after it may come first
        horizon = min((complete[i] for i in range(n) if not placed >> i & 1), default=INF)
        for i in range(n):
            if placed >> i & 1 or ops[i]["invoke"] > horizon:
                continue
            try:
                after = _step(ops[i], value)
            except ValueError:
                continue
            stack.append((placed | 1 << i, after))
    stuck = [ops[i] for i in range(n) if required >> i & 1 and not deepest[1] >> i & 1]
    first = min(stuck, key=lambda o: o["invoke"]) if stuck else None
    return {"valid": False, "ops": n, "explored": len(seen),
            "detail": f"no order explains the history: at most {deepest[0]} of "
                      f"{bin(required).count('1')} acknowledged ops fit; first that cannot: {_show(first)}"}


def _show(op):
    if op is None:
        return "-"
    if op["kind"] == "read":
        return f"read -> {op['result']!r} (op {op.get('id')})"
    return f"cas({op['expected']!r} -> {op['new']!r}) -> {op['result']!r} (op {op.get('id')})"


def registers(operations):
    """Per key, the register operations of a history's paired client operations (history.operations)."""
    out = {}
    for o in operations:
        if o["type"] == "fail":
            continue
        done = o["complete"] if o["type"] == "ok" else None
        if o["op"] == "cas":
            a = o["args"]
            out.setdefault(a["key"], []).append(
                {"id": o["id"], "kind": "cas", "expected": a["expected"], "new": a["new"], "invoke": o["invoke"],
                 "complete": done, "result": o["result"] if done is not None else None})
        elif o["op"] == "read" and done is not None:
            for key in o["args"].get("keys", []):
                out.setdefault(key, []).append({"id": o["id"], "kind": "read", "invoke": o["invoke"],
                                                "complete": done, "result": (o["result"] or {}).get(key)})
    return out


def check(operations):
    """Every key's register checked: {"valid": bool, "keys": {key: result}}; an undecided key fails."""
    keys = {k: check_register(ops) for k, ops in registers(operations).items()}
    return {"valid": all(r["valid"] for r in keys.values()), "keys": keys}
