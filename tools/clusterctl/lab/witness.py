"""Checkers: pure functions over what a run recorded."""
import json


def read_witness(path):
    """The witness file's records (one JSON object a line); a torn last line is skipped."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
    except FileNotFoundError:
        pass
    return out


def running_intervals(records):
    """Per resource: [(node, pid, start, stop)], stop None while it may still run."""
    open_, out = {}, {}
    for r in sorted(records, key=lambda r: r["t"]):
        key = (r["resource"], r["node"], r.get("pid"))
        if r["event"] == "start":
            open_.setdefault(key, r["t"])
        elif r["event"] == "stop":
            started = open_.pop(key, None)
            if started is None:  # a stop line without its pid: closes that node's open interval
                key = next((k for k in open_ if k[:2] == key[:2]), None)
                started = open_.pop(key, None) if key else None
            if started is not None:
                out.setdefault(key[0], []).append((key[1], key[2], started, r["t"]))
    for (resource, node, pid), started in open_.items():
        out.setdefault(resource, []).append((node, pid, started, None))
    return out


def double_online(records):
    """Every pair of intervals in which one resource ran in two places at once: [] when none."""
    found = []
    for resource, intervals in running_intervals(records).items():
        intervals.sort(key=lambda x: x[2])
        for i, (n1, p1, s1, e1) in enumerate(intervals):
            for n2, p2, s2, e2 in intervals[i + 1:]:
                if e1 is None or s2 < e1:
                    found.append({"resource": resource, "first": (n1, p1, s1, e1), "second": (n2, p2, s2, e2)})
    return found
