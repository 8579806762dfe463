"""Request ids, against real daemons: a retried write gets its first result (the dedup table
is consulted before the precheck), and a forced Group.delete over XML-RPC (where calls carry
no request id) takes its own offline step every time."""
import json
import uuid
import xmlrpc.client

import pytest

from conftest import running_cluster, wait_for


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, xprocess):
    with running_cluster(tmp_path_factory, xprocess, "requests") as c:
        yield c


def _xapi(cluster, node="node1"):
    proxy = xmlrpc.client.ServerProxy(f"http://{cluster.node(node)['xapi']}/")
    creds = cluster.credentials("admin")
    r = proxy.session.login_with_password(creds["user"], creds["password"])
    assert r["Status"] == "Success", r
    session = r["Value"]

    def call(method, *args):
        r = getattr(proxy, method)(session, *args)
        assert r["Status"] == "Success", (method, args, r)
        return r["Value"]
    return call


def _stops(witness):
    try:
        with open(witness) as f:
            return [json.loads(line)["resource"] for line in f if json.loads(line)["event"] == "stop"]
    except FileNotFoundError:
        return []


def test_each_forced_delete_over_xmlrpc_takes_its_offline_step(cluster, tmp_path):
    witness = str(tmp_path / "witness.jsonl")
    call = _xapi(cluster)
    ids = {}
    for i in range(3):
        call("Group.create", f"force-{i}")
        ids[i] = call("Resource.create", f"force-{i}", f"force-{i}-r", "dummy", {"witness": witness})
        op = call("Group.online", f"force-{i}")
        assert call("Operation.wait", op["handle"], 30.0)["status"] == "succeeded"
    for i in range(3):
        call("Group.delete", f"force-{i}", True)
        # it returned after the offline step: the resource has stopped already
        assert ids[i] in _stops(witness), (i, _stops(witness))


def test_a_retried_write_gets_its_first_result(cluster):
    with cluster.client("node1") as c:
        rid = str(uuid.uuid4())
        created = c.call("Group.create", "retried", rid=rid)
        assert c.call("Group.create", "retried", rid=rid) == created  # not ERROR_OBJECT_ALREADY_EXISTS
        rid = str(uuid.uuid4())
        assert c.call("Group.delete", "retried", False, rid=rid) == ""
        assert c.call("Group.delete", "retried", False, rid=rid) == ""  # not ERROR_GROUP_NOT_FOUND
    with cluster.client("node2") as c:  # another node's replica holds the same table
        wait_for(lambda: c.call("Group.delete", "retried", False, rid=rid) == "", 10, what="node2 answers")


def test_a_retry_gets_its_first_result_past_the_methods_own_reads(cluster):
    """Methods that read the database before they write (a forced delete looks whether to take
    the group offline first, set_properties checks what a property was) answer a retry with its
    first result, though what they read is gone since."""
    with cluster.client("node1") as c:
        c.Group.create("retried-force")
        c.Resource.create("retried-force", "retried-force-r", "dummy", {})
        assert c.Operation.wait(c.Group.online("retried-force")["handle"], 30)["status"] == "succeeded"
        rid = str(uuid.uuid4())
        assert c.call("Group.delete", "retried-force", True, rid=rid) == ""
        assert c.call("Group.delete", "retried-force", True, rid=rid) == ""  # not ERROR_GROUP_NOT_FOUND

        c.Group.create("retried-props")
        c.Resource.create("retried-props", "retried-props-r", "dummy", {})
        rid = str(uuid.uuid4())
        assert c.call("Resource.set_properties", "retried-props-r", {"stop_delay": 0.1}, rid=rid) == ""
        c.Resource.delete("retried-props-r")
        assert c.call("Resource.set_properties", "retried-props-r", {"stop_delay": 0.1}, rid=rid) == ""

        c.Resource.create("retried-props", "retried-online-r", "dummy", {})
        rid = str(uuid.uuid4())
        op = c.call("Resource.online", "retried-online-r", rid=rid)
        assert c.Operation.wait(op["handle"], 30)["status"] == "succeeded"
        assert c.Operation.wait(c.Group.offline("retried-props")["handle"], 30)["status"] == "succeeded"
        c.Resource.delete("retried-online-r")
        assert c.call("Resource.online", "retried-online-r", rid=rid) == op
