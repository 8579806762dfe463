"""The XenAPI endpoint, driven by the official SDK (PyPI `XenAPI`) against a real 3-node cluster.

One cluster serves the module; the tests run in file order and the last one kills nodes.
"""
import http.client
import json
import re
import subprocess
import sys
import time
import xmlrpc.client

import pytest
import XenAPI

from clusterctl.lab.launcher import LocalCluster
from clusterd import config, xapi
from clusterd.methods import API_VERSION
from conftest import running_cluster, wait_for

SEED_FIELDS = ("allowed_operations", "cluster_config", "cluster_hosts", "cluster_stack", "cluster_stack_version",
               "cluster_token", "current_operations", "is_quorate", "live_hosts", "other_config", "pending_forget",
               "pool_auto_join", "quorum", "token_timeout", "token_timeout_coefficient", "uuid")
CLUSTER_HOST_FIELDS = ("uuid", "cluster", "host", "enabled", "PIF", "joined", "live", "last_update_live",
                       "allowed_operations", "current_operations", "other_config")
REF = re.compile(r"OpaqueRef:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
XAPI_TIME = re.compile(r"\d{8}T\d\d:\d\d:\d\dZ")


class Transport(xmlrpc.client.Transport):
    """The SDK's default transport, with a timeout so that a hung daemon fails the test."""

    def make_connection(self, host):
        conn = super().make_connection(host)
        conn.timeout = 20
        return conn


@pytest.fixture(scope="module")
def xc(tmp_path_factory, xprocess):
    with running_cluster(tmp_path_factory, xprocess, "xenapi") as c:
        for name in c.names():  # every replica holds the Cluster record, so any node answers reads
            wait_for(lambda: c.cluster_ref(name), timeout=30, what=f"{name} ready")
        yield c


def url(xc, name):
    return f"http://{xc.node(name)['xapi']}/"


def login(xc, name="node1", user="admin"):
    creds = xc.credentials(user)
    s = XenAPI.Session(url(xc, name), transport=Transport())
    s.xenapi.login_with_password(creds["user"], creds["password"], "2.21", "clusterd-tests")
    return s


def raw(xc, name="node1"):
    """A plain XML-RPC proxy: replies come back as the {"Status": ...} maps themselves."""
    return xmlrpc.client.ServerProxy(url(xc, name), transport=Transport())


def post(xc, body, name="node1", path="/", method="POST"):
    host, port = xc.node(name)["xapi"].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=20)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "text/xml"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def failure(fn, *args):
    with pytest.raises(XenAPI.Failure) as e:
        fn(*args)
    return e.value.details


def cluster_ref(x):
    refs = x.Cluster.get_all()
    assert len(refs) == 1
    return refs[0]


# -- discovery and sessions -------------------------------------------------------------------
def test_status_json_gives_each_node_its_xapi_url_and_credentials_log_in(xc):
    run = subprocess.run([sys.executable, "-m", "clusterctl.cli", "status", "--json", "--dir", xc.dir],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    nodes = json.loads(run.stdout)["nodes"]
    assert [n["xapi_url"] for n in nodes] == [url(xc, n) for n in xc.names()]
    run = subprocess.run([sys.executable, "-m", "clusterctl.cli", "credentials", "--json", "--dir", xc.dir],
                         capture_output=True, text=True, timeout=60)
    creds = json.loads(run.stdout)
    for n in nodes:
        s = XenAPI.Session(n["xapi_url"], transport=Transport())
        s.xenapi.login_with_password(creds["user"], creds["password"])
        assert len(s.xenapi.Cluster.get_all()) == 1
        s.xenapi.session.logout()


def test_xapi_url_is_null_when_the_endpoint_is_off(tmp_path):
    c = LocalCluster(str(tmp_path / "off"))
    c.create(1, xapi=False)
    assert c.status()["nodes"][0]["xapi_url"] is None
    assert 'xapi = "off"' in open(c.node("node1")["config"]).read()


def test_login_with_two_to_four_arguments_and_logout(xc):
    creds = xc.credentials("operator")
    p = raw(xc)
    for extra in ([], ["2.21"], ["2.21", "tests"]):
        r = p.session.login_with_password(creds["user"], creds["password"], *extra)
        assert r["Status"] == "Success" and REF.fullmatch(r["Value"])
        assert p.session.get_role(r["Value"]) == {"Status": "Success", "Value": "pool-operator"}
        assert p.session.logout(r["Value"]) == {"Status": "Success", "Value": ""}
        assert p.Cluster.get_all(r["Value"])["ErrorDescription"] == ["SESSION_INVALID", r["Value"]]
    r = p.session.login_with_password(creds["user"], creds["password"], "2.21", "tests", "one too many")
    assert r["ErrorDescription"][0] == "MESSAGE_PARAMETER_COUNT_MISMATCH"
    r = p.session.login_with_password(creds["user"], "wrong")
    assert r["ErrorDescription"] == ["SESSION_AUTHENTICATION_FAILED", creds["user"]]

    s = login(xc, user="operator")
    assert cluster_ref(s.xenapi)
    s.xenapi.session.logout()
    assert s.handle is None


def test_slave_local_login_and_local_logout(xc):
    creds = xc.credentials("reader")
    s = XenAPI.Session(url(xc, "node2"), transport=Transport())
    s.slave_local_login_with_password(creds["user"], creds["password"])
    ref = s.handle
    assert cluster_ref(s.xenapi)
    s.xenapi.session.logout()  # the SDK sends session.local_logout after a slave_local login
    assert raw(xc, "node2").Cluster.get_all(ref)["ErrorDescription"][0] == "SESSION_INVALID"


def test_an_unknown_session_makes_the_sdk_log_in_again(xc):
    s = login(xc, "node2")
    s._session = "OpaqueRef:00000000-0000-0000-0000-000000000000"  # as after a daemon restart
    assert cluster_ref(s.xenapi)
    assert s.handle != "OpaqueRef:00000000-0000-0000-0000-000000000000"


def test_api_version_is_readable(xc):
    s = login(xc)
    assert s.API_version == "%d.%d" % API_VERSION
    pool = s.xenapi.pool.get_all()[0]
    assert s.xenapi.pool.get_master(pool) in s.xenapi.host.get_all()


# -- the Cluster class ------------------------------------------------------------------------
def test_get_all_records_holds_the_seed_fields_in_xapi_types(xc):
    x = login(xc).xenapi
    records = x.Cluster.get_all_records()
    assert list(records) == x.Cluster.get_all() and REF.fullmatch(next(iter(records)))
    rec = next(iter(records.values()))
    assert set(SEED_FIELDS) <= set(rec)
    assert rec["cluster_stack"] == "corosync" and rec["cluster_stack_version"] == "2"  # Int64 as a string
    assert (rec["live_hosts"], rec["quorum"], rec["is_quorate"]) == ("3", "2", True)
    assert isinstance(rec["token_timeout"], float) and isinstance(rec["token_timeout_coefficient"], float)
    assert isinstance(rec["pool_auto_join"], bool) and rec["cluster_token"]
    assert len(rec["cluster_hosts"]) == 3 and all(REF.fullmatch(r) for r in rec["cluster_hosts"])
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in rec["cluster_config"].items())
    assert rec["pending_forget"] == [] and rec["current_operations"] == {}


def test_the_wire_has_no_nil_no_fault_no_bare_int(xc):
    s = login(xc)
    bodies = []
    for method, args in (("Cluster.get_all_records", []), ("Cluster_host.get_all_records", []),
                         ("Node.status", []), ("Cluster.get_record", ["OpaqueRef:nope"]), ("No.such", [])):
        body = xmlrpc.client.dumps((s.handle, *args), method).encode()
        status, reply = post(xc, body)
        assert status == 200
        bodies.append(reply.decode())
        (value,), _ = xmlrpc.client.loads(reply)
        assert value["Status"] in ("Success", "Failure")
    text = "".join(bodies)
    assert "<nil" not in text and "<fault>" not in text and "<int>" not in text and "<i4>" not in text
    times = re.findall(r"<dateTime.iso8601>(.*?)</dateTime.iso8601>", bodies[1])
    assert len(times) == 3 and all(XAPI_TIME.fullmatch(t) for t in times)


def test_every_getter_agrees_with_the_record(xc):
    x = login(xc).xenapi
    ref = cluster_ref(x)
    rec = x.Cluster.get_record(ref)
    for field in SEED_FIELDS:
        assert getattr(x.Cluster, f"get_{field}")(ref) == rec[field], field
    assert x.Cluster.get_by_uuid(rec["uuid"]) == ref
    assert x.Cluster.get_network(ref) == x.network.get_all()[0]
    for cls in ("Cluster_host", "host", "pool", "network", "PIF"):
        proxy = getattr(x, cls)
        records = proxy.get_all_records()
        assert sorted(records) == sorted(proxy.get_all()) and records, cls
        for r, record in records.items():
            assert proxy.get_record(r) == record and proxy.get_by_uuid(record["uuid"]) == r
            for field, value in record.items():
                assert getattr(proxy, f"get_{field}")(r) == value, (cls, field)
    hosts = x.Cluster_host.get_all_records()
    assert set(hosts) == set(rec["cluster_hosts"])
    assert all(set(CLUSTER_HOST_FIELDS) <= set(h) for h in hosts.values())
    assert {h["host"] for h in hosts.values()} == set(x.host.get_all())
    assert all(h["live"] and h["enabled"] and h["cluster"] == ref for h in hosts.values())
    assert all(isinstance(h["last_update_live"], xmlrpc.client.DateTime) for h in hosts.values())


def test_other_config_round_trip_through_one_node_and_read_back_from_the_others(xc):
    x1 = login(xc, "node1").xenapi
    ref = cluster_ref(x1)
    x1.Cluster.set_other_config(ref, {"owner": "tests", "site": "lab"})
    assert x1.Cluster.add_to_other_config(ref, "rack", "7") == ""
    want = {"owner": "tests", "site": "lab", "rack": "7"}
    for name in ("node2", "node3"):
        x = login(xc, name).xenapi
        wait_for(lambda: x.Cluster.get_other_config(ref) == want, timeout=10, what=f"{name} reads the writes")
    x2 = login(xc, "node2").xenapi
    assert failure(x2.Cluster.add_to_other_config, ref, "rack", "8") == \
        ["MAP_DUPLICATE_KEY", "Cluster", "other_config", ref, "rack"]
    assert x2.Cluster.get_other_config(ref)["rack"] == "7"
    x2.Cluster.remove_from_other_config(ref, "rack")
    x2.Cluster.remove_from_other_config(ref, "never-there")
    wait_for(lambda: x1.Cluster.get_other_config(ref) == {"owner": "tests", "site": "lab"}, timeout=10,
             what="node1 reads the removal")


def test_bad_calls_get_xapi_errors_and_change_nothing(xc):
    x = login(xc).xenapi
    ref = cluster_ref(x)
    before = x.Cluster.get_record(ref)
    bogus = "OpaqueRef:11111111-2222-3333-4444-555555555555"
    assert failure(x.Cluster.get_record, bogus) == ["HANDLE_INVALID", "Cluster", bogus]
    assert failure(x.Cluster.set_other_config, bogus, {})[:2] == ["HANDLE_INVALID", "Cluster"]
    assert failure(x.Cluster_host.get_live, bogus) == ["HANDLE_INVALID", "Cluster_host", bogus]
    assert failure(x.host.get_record, bogus) == ["HANDLE_INVALID", "host", bogus]
    assert failure(x.task.get_status, bogus) == ["HANDLE_INVALID", "task", bogus]
    assert failure(x.Cluster.get_by_uuid, "no-such-uuid") == ["UUID_INVALID", "Cluster", "no-such-uuid"]
    assert failure(x.Cluster.frobnicate, ref) == ["MESSAGE_METHOD_UNKNOWN", "Cluster.frobnicate"]
    assert failure(x.Cluster.get_record) == ["MESSAGE_PARAMETER_COUNT_MISMATCH", "Cluster.get_record", "2", "1"]
    assert failure(x.Cluster.add_to_other_config, ref, "k")[0] == "MESSAGE_PARAMETER_COUNT_MISMATCH"
    assert failure(x.Cluster.set_other_config, ref, ["not", "a", "map"])[0] == "FIELD_TYPE_ERROR"
    assert failure(x.Cluster.add_to_other_config, ref, 7, "v")[0] == "FIELD_TYPE_ERROR"

    net, pif = x.network.get_all()[0], x.PIF.get_all()[0]
    assert failure(x.Cluster.create, pif, "pacemaker", True, 1.0, 0.65) == ["INVALID_CLUSTER_STACK", "pacemaker"]
    assert failure(x.Cluster.create, pif, "corosync", True, "a lot", 0.65)[0] == "FIELD_TYPE_ERROR"
    # numeric strings pass as floats: the call gets as far as the database
    assert failure(x.Cluster.create, pif, "corosync", True, "1.5", "0.5")[0] == "CLUSTER_ALREADY_EXISTS"
    assert failure(x.Cluster.pool_create, net, "corosync", 1000.0, 0.65)[:2] == ["INVALID_VALUE", "token_timeout"]
    assert failure(x.Cluster.destroy, ref) == ["CLUSTER_DOES_NOT_HAVE_ONE_NODE", "3"]
    assert failure(x.Cluster_host.create, ref, x.host.get_all()[0], x.PIF.get_all()[0])[0] in (
        "INVALID_VALUE", "PIF_NOT_ATTACHED_TO_HOST")

    # bodies that are not calls at all: answered as Failures, the connection's daemon unharmed
    status, reply = post(xc, b"<methodCall><methodName>x</methodName><params><param>")
    assert status == 200 and xmlrpc.client.loads(reply)[0][0]["ErrorDescription"][0] == "MALFORMED_REQUEST"
    bomb = (b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaaaaaaaaaaaaaa">'
            + b"".join(b'<!ENTITY %c "%s">' % (98 + i, (b"&%c;" % (97 + i)) * 16) for i in range(8))
            + b']><methodCall><methodName>session.get_role</methodName><params><param><value>&i;</value>'
            + b"</param></params></methodCall>")
    status, reply = post(xc, bomb)
    assert xmlrpc.client.loads(reply)[0][0]["ErrorDescription"][0] == "MALFORMED_REQUEST"
    status, reply = post(xc, xmlrpc.client.dumps(("x" * (xapi.MAX_BODY + 1),), "session.get_role").encode())
    assert status == 200 and xmlrpc.client.loads(reply)[0][0]["ErrorDescription"][0] == "FRAME_TOO_LARGE"
    status, reply = post(xc, xmlrpc.client.dumps(({"a": 1},), methodresponse=True).encode())
    assert xmlrpc.client.loads(reply)[0][0]["ErrorDescription"][0] == "MALFORMED_REQUEST"
    assert post(xc, b"", method="GET")[0] == 405
    status, reply = post(xc, xmlrpc.client.dumps(("x", "y"), "session.login_with_password").encode(), path="/RPC2")
    assert xmlrpc.client.loads(reply)[0][0]["ErrorDescription"][0] == "SESSION_AUTHENTICATION_FAILED"

    after = login(xc).xenapi.Cluster.get_record(ref)
    assert after == before


def test_rbac_read_only_session_cannot_write(xc):
    reader = login(xc, "node2", "reader").xenapi
    ref = cluster_ref(reader)
    before = reader.Cluster.get_other_config(ref)
    for call, args in ((reader.Cluster.set_other_config, (ref, {"x": "y"})),
                       (reader.Cluster.add_to_other_config, (ref, "x", "y")),
                       (reader.Cluster.remove_from_other_config, (ref, "owner")),
                       (reader.Cluster.pool_resync, (ref,)),
                       (reader.Async.Cluster.pool_destroy, (ref,)),
                       (reader.Cluster.get_cluster_token, (ref,))):
        assert failure(call, *args)[0] == "RBAC_PERMISSION_DENIED"
    assert reader.Cluster.get_record(ref)["cluster_token"] == ""  # the secret stays with pool-admin
    assert reader.Cluster.get_other_config(ref) == before
    operator = login(xc, "node2", "operator").xenapi
    operator.Cluster.add_to_other_config(ref, "by", "operator")
    ch = operator.Cluster_host.get_all()[0]
    assert failure(operator.Cluster_host.forget, ch)[0] == "RBAC_PERMISSION_DENIED"
    operator.Cluster.remove_from_other_config(ref, "by")


def test_async_calls_return_tasks(xc):
    x = login(xc).xenapi
    ref = cluster_ref(x)

    def finished(task):
        return wait_for(lambda: x.task.get_status(task) != "pending" and x.task.get_status(task), timeout=15,
                        what="the task finishes")

    task = x.Async.Cluster.pool_resync(ref)
    assert REF.fullmatch(task) and finished(task) == "success"
    assert x.task.get_result(task) == "" and x.task.get_error_info(task) == []
    task = x.Async.Cluster.get_network(ref)
    assert finished(task) == "success"
    assert x.task.get_result(task) == f"<value><string>{x.Cluster.get_network(ref)}</string></value>"
    rec = x.task.get_record(task)
    assert rec["name_label"] == "Async.Cluster.get_network" and rec["progress"] == 1.0
    assert XAPI_TIME.fullmatch(rec["created"].value) and x.task.get_by_uuid(rec["uuid"]) == task
    task = x.Async.Cluster.pool_create(x.network.get_all()[0], "corosync", 1.0, 0.65)
    assert finished(task) == "failure" and x.task.get_error_info(task)[0] == "CLUSTER_ALREADY_EXISTS"
    assert task in x.task.get_all()
    x.task.destroy(task)
    assert failure(x.task.get_status, task)[0] == "HANDLE_INVALID"
    assert failure(x.Async.Cluster.get_record, ref)[0] == "MESSAGE_METHOD_UNKNOWN"
    assert failure(x.Async.Cluster.pool_resync)[0] == "MESSAGE_PARAMETER_COUNT_MISMATCH"


# -- Cluster_host and the Cluster's life cycle -------------------------------------------------
def host_of(x, name):
    return next(r for r, h in x.host.get_all_records().items() if h["name_label"] == name)


def cluster_host_of(x, name):
    host = host_of(x, name)
    return next(r for r, ch in x.Cluster_host.get_all_records().items() if ch["host"] == host)


def test_cluster_host_disable_enable_destroy_create(xc):
    x = login(xc).xenapi
    ref = cluster_ref(x)
    ch3 = cluster_host_of(x, "node3")
    x.Cluster_host.disable(ch3)
    x2 = login(xc, "node2").xenapi
    wait_for(lambda: x2.Cluster_host.get_enabled(ch3) is False, timeout=10, what="node2 sees the disable")
    assert failure(x.Cluster.pool_destroy, ref) == ["CLUSTERING_DISABLED", ch3]
    assert failure(x.Cluster_host.destroy, ch3) == ["CLUSTERING_DISABLED", ch3]
    assert x.Cluster_host.get_allowed_operations(ch3) == ["enable"]
    x.Cluster_host.enable(ch3)
    assert x.Cluster_host.get_enabled(ch3) is True

    x.Cluster_host.destroy(ch3)
    assert ch3 not in x.Cluster.get_cluster_hosts(ref) and len(x.Cluster_host.get_all()) == 2
    host3, pif1 = host_of(x, "node3"), x.host.get_PIFs(host_of(x, "node1"))[0]
    pif3 = x.host.get_PIFs(host3)[0]
    assert failure(x.Cluster_host.create, ref, host3, pif1) == ["PIF_NOT_ATTACHED_TO_HOST", pif1, host3]
    new = x.Cluster_host.create(ref, host3, pif3)
    assert x.Cluster_host.get_host(new) == host3 and x.Cluster_host.get_PIF(new) == pif3
    assert failure(x.Cluster_host.create, ref, host3, pif3)[:2] == ["INVALID_VALUE", "host"]
    x.Cluster_host.force_destroy(new)
    x.Cluster.pool_resync(ref)  # makes the missing one again
    assert len(x.Cluster.get_cluster_hosts(ref)) == 3

    task = x.Async.Cluster_host.disable(cluster_host_of(x, "node2"))
    wait_for(lambda: x.task.get_status(task) == "success", timeout=15, what="the async disable")
    x.Cluster.pool_resync(ref)  # enables every Cluster_host again
    assert all(ch["enabled"] for ch in x.Cluster_host.get_all_records().values())


def test_cluster_destroy_and_create_again(xc):
    x = login(xc).xenapi
    ref = cluster_ref(x)
    net, pif1 = x.network.get_all()[0], x.host.get_PIFs(host_of(x, "node1"))[0]
    x.Cluster.pool_destroy(ref)
    assert x.Cluster.get_all() == [] and x.Cluster_host.get_all() == []
    assert failure(x.Cluster.get_record, ref)[0] == "HANDLE_INVALID"

    one = x.Cluster.create(pif1, "corosync", False, 2.0, "0.5")
    rec = x.Cluster.get_record(one)
    assert len(rec["cluster_hosts"]) == 1 and rec["pool_auto_join"] is False and rec["token_timeout"] == 2.0
    assert rec["allowed_operations"].count("destroy") == 1
    ch = rec["cluster_hosts"][0]
    assert failure(x.Cluster_host.destroy, ch) == ["CLUSTER_HOST_IS_LAST", ch]
    x.Cluster.destroy(one)
    assert x.Cluster.get_all() == []

    again = x.Cluster.pool_create(net, "corosync", "1.0", 0.65)
    assert len(x.Cluster.get_cluster_hosts(again)) == 3
    x.Cluster.pool_force_destroy(again)
    ref = x.Cluster.pool_create(net, "corosync", 1.0, 0.65)
    for name in xc.names():
        xn = login(xc, name).xenapi
        wait_for(lambda: xn.Cluster.get_all() == [ref], timeout=10, what=f"{name} sees the new cluster")
    assert x.Cluster.get_live_hosts(ref) == "3"


# -- measured values: the last test, it kills nodes -------------------------------------------
def test_killed_nodes_leave_live_hosts_then_quorum(xc):
    x = login(xc, "node1").xenapi
    ref = cluster_ref(x)
    effective = xc.node_status("node1")["effective_token"]
    ch3, host3 = cluster_host_of(x, "node3"), host_of(x, "node3")
    assert x.Cluster_host.get_live(ch3) is True

    t0 = time.monotonic()
    xc.kill("node3")
    wait_for(lambda: x.Cluster.get_live_hosts(ref) == "2", timeout=effective + 3.0, interval=0.02,
             what="live_hosts 2 on node1 within the effective token (+ poll margin)")
    dropped = time.monotonic() - t0
    print(f"node1 saw live_hosts drop {dropped:.2f} s after kill -9 (effective token {effective} s)")
    assert x.Cluster.get_is_quorate(ref) is True
    lives = {ch["host"]: ch["live"] for ch in x.Cluster_host.get_all_records().values()}
    assert lives == {h: h != host3 for h in x.host.get_all()}

    # a dead host can be forgotten: its Cluster_host goes, its IP waits in pending_forget
    x.Cluster_host.forget(ch3)
    forgotten = x.Cluster.get_pending_forget(ref)
    assert forgotten == [xc.node("node3")["heartbeat"].rsplit(":", 1)[0]]
    x.Cluster.pool_resync(ref)
    assert host3 not in {ch["host"] for ch in x.Cluster_host.get_all_records().values()}
    pif3 = x.host.get_PIFs(host3)[0]
    assert failure(x.Cluster_host.create, ref, host3, pif3)[:2] == ["INVALID_VALUE", "host"]

    xc.kill("node2")
    wait_for(lambda: x.Cluster.get_is_quorate(ref) is False, timeout=effective + 3.0, what="node1 alone")
    rec = x.Cluster.get_record(ref)
    assert (rec["is_quorate"], rec["live_hosts"], rec["quorum"]) == (False, "1", "2")
    assert failure(x.Cluster.add_to_other_config, ref, "alone", "1") == ["CLUSTER_NOT_QUORATE", "node1"]
    assert failure(x.Cluster.pool_force_destroy, ref) == ["CLUSTER_FORCE_DESTROY_FAILED", ref, "CLUSTER_NOT_QUORATE"]
    assert "alone" not in x.Cluster.get_other_config(ref)
    assert [ch["live"] for ch in x.Cluster_host.get_all_records().values()].count(True) == 1


# -- the pure parts ---------------------------------------------------------------------------
def test_wire_conversions():
    assert xapi.to_wire({"n": 3, "b": True, "f": 0.5, "none": None, "l": [1, "s"]}) == \
        {"n": "3", "b": True, "f": 0.5, "none": "", "l": ["1", "s"]}
    assert xapi.to_wire({"last_update_live": 0.0})["last_update_live"].value == "19700101T00:00:00Z"
    assert xapi.to_wire("a\x00b") == "a\ufffdb"
    assert xapi.from_wire("12", "int") == 12 and xapi.from_wire("-1.5e3", "float") == -1500.0
    for bad, ptype in (("1_000", "int"), ("nan", "float"), ("inf", "float"), (" 1", "int"), ("0x10", "int")):
        assert xapi.from_wire(bad, ptype) == bad  # left for the type check to refuse
    assert xapi.from_wire("12", "string") == "12"


def test_config_xapi_key():
    base = {"name": "n1", "raft": "127.0.0.1:1", "heartbeat": "127.0.0.1:2", "api": "127.0.0.1:3",
            "data_dir": "/tmp/x", "token_file": "/t", "users_file": "/u",
            "members": [{"name": "n1", "raft": "127.0.0.1:1", "heartbeat": "127.0.0.1:2", "api": "127.0.0.1:3"}]}
    assert config.validate(dict(base)).xapi is None
    assert config.validate(dict(base, xapi="off")).xapi is None
    assert config.validate(dict(base, xapi="127.0.0.1:4")).xapi == "127.0.0.1:4"
    for bad in ("127.0.0.1:3", "localhost:4", "127.0.0.1", 4):
        with pytest.raises(config.ConfigError):
            config.validate(dict(base, xapi=bad))
