"""A group leaves a live owner only by hand-over (the leader's pure decision):
real daemons, real resource processes that write their own records.

Before: a resource that failed past its restart policy made the leader commit group.failover,
which set every resource Offline and the new owner at once; the new owner started the group's
other resources while the old owner was still stopping them, so a sibling that takes a few
seconds to honour SIGTERM ran on two nodes at once for about as long.
"""
import json
import sys

from conftest import gone, wait_for

HOLD = 3.0  # seconds the sibling keeps running after SIGTERM

# The sibling writes its own record (not the agent's): a line with its node, pid and wall time
# at its start and every 100 ms while it lives, through the SIGTERM grace it takes.
SIBLING = f"""
import json, os, signal, sys, time
path, node, asked = sys.argv[1], os.environ["CLUSTERD_NODE"], []
signal.signal(signal.SIGTERM, lambda *_: asked.append(time.time()))
def line(event):
    with open(path, "a") as f:
        f.write(json.dumps({{"node": node, "pid": os.getpid(), "t": time.time(), "event": event}}) + "\\n")
line("start")
while not asked or time.time() - asked[0] < {HOLD}:
    line("alive")
    time.sleep(0.1)
line("exit")
"""
# Fails (exits) after two seconds on the node named in argv[1], runs on any other.
FAILING = "import os, sys, time; time.sleep(2 if os.environ['CLUSTERD_NODE'] == sys.argv[1] else 600)"


def runs(path):
    """[(node, first t, last t, pid)] per process of the sibling, from its own lines."""
    spans = {}
    with open(path) as f:
        for line in f:
            x = json.loads(line)
            lo, hi = spans.get((x["node"], x["pid"]), (x["t"], x["t"]))
            spans[(x["node"], x["pid"])] = (min(lo, x["t"]), max(hi, x["t"]))
    return [(node, lo, hi, pid) for (node, pid), (lo, hi) in spans.items()]


def overlaps(spans):
    return [(a, b) for i, a in enumerate(spans) for b in spans[i + 1:] if a[0] != b[0] and a[1] <= b[2] and b[1] <= a[2]]


def test_a_resource_failure_hands_the_group_over_before_its_sibling_starts_elsewhere(make_cluster, tmp_path):
    cluster = make_cluster(3)
    record = str(tmp_path / "sibling.jsonl")
    with cluster.client("node1") as c:
        c.Group.create("app")
        c.Group.set_preferred_owners("app", ["node1"])
        c.Resource.create("app", "app-slow-stop", "process", {
            "args": [sys.executable, "-c", SIBLING, record], "stop_timeout": HOLD + 7})
        c.Resource.create("app", "app-fails", "process", {"args": [sys.executable, "-c", FAILING, "node1"]})
        c.Resource.set_restart_policy("app-fails", {"threshold": 0})
        assert c.Operation.wait(c.Group.online("app")["handle"], 60)["status"] == "succeeded"

        def moved():
            g = c.Group.get_record("app")
            return g if g["owner"] != "node1" and g["state"] == "Online" else None
        g = wait_for(moved, timeout=90, what="the group failed over from node1 and is Online")
        assert g["last_failover"]["from"] == "node1" and g["last_failover"]["reason"] == "resource failed"
    wait_for(lambda: any(n == g["owner"] for n, *_ in runs(record)), what="the sibling runs on the new owner")
    old = [pid for n, *_, pid in runs(record) if n == "node1"]
    wait_for(lambda: all(gone(pid) for pid in old), timeout=60, what="the sibling on node1 ended")
    spans = runs(record)
    assert {n for n, *_ in spans} >= {"node1", g["owner"]}, spans
    assert overlaps(spans) == [], f"the sibling ran on two nodes at once: {overlaps(spans)}"
