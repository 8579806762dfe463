"""The fuzzer against a real 3-node cluster, bounded for CI: a few thousand hostile inputs at
the three doors (tools/clusterctl/lab/fuzz.py; `tools/bench fuzz` runs 100,000). No daemon dies
or stops answering, no refused input changes the state, every input gets a clear error."""
import math
import time
import urllib.request
import xmlrpc.client

import pytest

from clusterctl.lab import fuzz
from clusterd.errors import ClusterError

INPUTS = 2000
LIMIT = 40.0  # seconds of sending at most; the test checks how many inputs went out


def test_hostile_inputs_crash_nothing_and_refusals_change_nothing(cluster3):
    campaign = fuzz.Campaign(cluster3, deadline=time.monotonic() + LIMIT)
    r = campaign.run(fuzz.split(INPUTS), seed=12).summary()
    assert r["crashes"] == 0, r["examples"]["crashes"]
    assert r["state_changes"] == 0, r["examples"]["state_changes"]
    assert r["internal_errors"] == 0, r["examples"]["internal_errors"]
    assert r["unanswered"] == 0, r["examples"]["unanswered"]
    assert r["total"] >= INPUTS // 3, f"only {r['total']} inputs went out in {LIMIT} s"
    assert all(r["inputs"].get(door) for door in ("msgpack", "xmlrpc", "heartbeat")), r["inputs"]
    # the datagrams arrived and were turned away (loopback drops almost none)
    assert r["heartbeats_rejected"] >= r["inputs"]["heartbeat"] * 0.9, r
    # the calls got past the first checks: some reached the methods and were answered by them
    assert r["answers"].get("msgpack: ok") and r["answers"].get("xmlrpc: ok"), r["answers"]


def _xapi(cluster, name="node1"):
    creds = cluster.credentials("admin")
    proxy = xmlrpc.client.ServerProxy(f"http://{cluster.node(name)['xapi']}/", allow_none=True)
    return proxy, proxy.session.login_with_password(creds["user"], creds["password"])["Value"]


def test_an_int_beyond_64_bits_is_refused_at_the_door(cluster3):
    """XML-RPC carries ints of any size; one stored as a group's flags made the database
    unpackable (Node.status and the state hash failed from then on)."""
    proxy, session = _xapi(cluster3)
    assert proxy.Group.create(session, "big")["Status"] == "Success"
    body = fuzz.xml_call("Group.set_flags", [session, "big", 10**30]).encode()
    reply, = xmlrpc.client.loads(urllib.request.urlopen(
        f"http://{cluster3.node('node1')['xapi']}/RPC2", body, timeout=10).read())[0]
    assert reply["ErrorDescription"][0] == "FIELD_TYPE_ERROR"
    assert cluster3.node_status("node1")["state_hash"]


@pytest.mark.parametrize("timeout", [math.nan, math.inf])
def test_a_wait_with_a_timeout_that_is_not_finite_is_refused(cluster3, timeout):
    """Events.wait and Operation.wait took NaN, whose deadline is never reached: the call
    never answered."""
    with cluster3.client("node1") as c:
        for method, args in (("Events.wait", ("q", "k", timeout)), ("Operation.wait", ("h", timeout))):
            with pytest.raises(ClusterError) as e:
                c.call(method, *args)
            assert e.value.code == "FIELD_TYPE_ERROR", (method, e.value)
