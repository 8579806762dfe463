"""The fuzzer against a real 3-node cluster, bounded for CI: a few thousand hostile inputs at
the three doors (tools/clusterctl/fuzz.py; `tools/bench fuzz` runs 100,000). No daemon dies
or stops answering, no refused input changes the state, every input gets a clear error."""
import time

from clusterctl import fuzz

INPUTS = 3000
LIMIT = 50.0  # seconds of sending at most; the test checks how many inputs went out


def test_hostile_inputs_crash_nothing_and_refusals_change_nothing(cluster3):
    campaign = fuzz.Campaign(cluster3, deadline=time.monotonic() + LIMIT)
    r = campaign.run(fuzz.split(INPUTS), seed=12).summary()
    assert r["crashes"] == 0, r["examples"]["crashes"]
    assert r["state_changes"] == 0, r["examples"]["state_changes"]
    assert r["internal_errors"] == 0, r["examples"]["internal_errors"]
    assert r["unanswered"] == 0, r["examples"]["unanswered"]
    assert r["total"] >= INPUTS // 3, f"only {r['total']} inputs went out in {LIMIT} s"
    assert all(r["inputs"].get(door) for door in ("msgpack", "xmlrpc", "heartbeat")), r["inputs"]
    # the calls got past the first checks: some reached the methods and were answered by them
    assert r["answers"].get("msgpack: ok") and r["answers"].get("xmlrpc: ok"), r["answers"]
