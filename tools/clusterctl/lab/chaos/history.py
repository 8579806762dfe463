"""The history of a run: one JSON object a line, each with `t` = time.monotonic().

Record types:
  invoke / ok / fail / unknown   a client operation and its completion (same `id`); `unknown`
                                 means it may or may not have taken effect (timeout, lost
                                 connection, CLUSTER_WRITE_UNKNOWN)
  nemesis                        a fault: phase start (after it is in place) or stop (healed)
  sample                         one node's own view (Node.status), `t` when it was asked
  note                           anything else worth keeping (e.g. "move unsupported")
"""
import json
import time


class History:
    def __init__(self, path):
        self.path = path
        self._f = open(path, "a", encoding="utf-8")
        self.records = []

    def add(self, type_, **fields):
        rec = {"t": fields.pop("t", None) or time.monotonic(), "type": type_, **fields}
        self.records.append(rec)
        self._f.write(json.dumps(rec, sort_keys=True, default=str) + "\n")
        self._f.flush()
        return rec

    def close(self):
        self._f.close()


def read(path):
    """The records of a history file; a torn last line is skipped."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def operations(records):
    """Client operations paired: [{id, process, node, op, args, invoke, complete, type, result}],
    complete None for an op still open at the end (it counts as unknown)."""
    ops = {}
    for r in records:
        if r["type"] == "invoke":
            ops[r["id"]] = {"id": r["id"], "process": r.get("process"), "node": r.get("node"), "op": r["op"],
                            "args": r.get("args") or {}, "invoke": r["t"], "complete": None,
                            "type": "unknown", "result": None}
        elif r["type"] in ("ok", "fail", "unknown") and r.get("id") in ops:
            o = ops[r["id"]]
            o.update(complete=r["t"] if r["type"] != "unknown" else None, type=r["type"], result=r.get("result"))
    return list(ops.values())
