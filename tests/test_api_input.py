"""Every kind of bad client input, against one real 3-node cluster.

Each case checks three things (invariant 5, "bad input changes nothing"):
  1. the exact error code comes back;
  2. nothing changed: the database as every node reports it (the Cluster record with its
     other_config, Cluster_host, host, PIF and network records) and every node's commit index;
  3. the daemon keeps serving: a connection opened before the bad input still answers
     afterwards, and so does a fresh one.
The whole module shares one cluster; every case leaves it as it found it.
"""
import random
import socket
import struct
import threading
import uuid

import msgpack
import pytest

from clusterd import rpc, wire
from clusterd.client import Client
from conftest import running_cluster, wait_for

NODES = ("node1", "node2", "node3")
BASELINE = {"owner": "test_api_input", "colour": "blue"}
BOGUS_REF = "OpaqueRef:00000000-0000-0000-0000-000000000000"
RUNTIME_FIELDS = ("is_quorate", "live_hosts", "quorum")  # this node's measured view, not the database
LIVENESS_FIELDS = ("live", "last_update_live")  # change whenever a membership view commits


# -- a raw connection ---------------------------------------------------------------------------
class Raw:
    """A bare TCP connection to a node's API: frames, or any bytes at all."""

    def __init__(self, address, timeout=10.0):
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)

    def send(self, data):
        self.sock.sendall(data)

    def send_body(self, body):
        self.send(wire.HEADER.pack(len(body)) + body)

    def send_frame(self, obj):
        self.send(wire.encode(obj))

    def _recv_exactly(self, n):
        chunks = []
        while n:
            chunk = self.sock.recv(n)
            if not chunk:
                raise ConnectionError("closed by the server")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def recv_frame(self):
        (length,) = wire.HEADER.unpack(self._recv_exactly(wire.HEADER.size))
        return wire.decode(self._recv_exactly(length))

    def call(self, obj):
        self.send_frame(obj)
        return self.recv_frame()

    def frames_until_closed(self):
        """Every frame the server sends until it closes the connection. A reset counts as closed."""
        frames = []
        try:
            while True:
                frames.append(self.recv_frame())
        except (ConnectionError, OSError) as e:
            if isinstance(e, socket.timeout):
                raise AssertionError(f"the server neither answered nor closed (got {frames!r})") from None
        return frames

    def assert_closed(self):
        assert self.frames_until_closed() == []

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def error_code(resp):
    assert "ok" not in resp, resp
    return resp["error"]["code"]


# -- the module's cluster -----------------------------------------------------------------------
class Env:
    def __init__(self, cluster):
        self.cluster = cluster
        self.admins = {n: cluster.client(n, "admin").connect() for n in NODES}
        wait_for(lambda: all(c.Node.status()["ready"] and c.Cluster.get_all() for c in self.admins.values()),
                 timeout=60, what="every node ready, with the cluster record")
        a = self.admins["node1"]
        self.ref = a.Cluster.get_all()[0]
        wait_for(lambda: a.Cluster.set_other_config(self.ref, BASELINE) == "", timeout=30,
                 what="the baseline other_config written")
        self.cluster_uuid = a.Cluster.get_uuid(self.ref)
        self.network = a.Cluster.get_network(self.ref)
        self.hosts = a.call("host.get_all_records")
        self.pifs = a.PIF.get_all_records()
        self.cluster_hosts = a.Cluster_host.get_all_records()
        self.sessions = {n: {u: self.login(n, u) for u in ("admin", "operator", "reader")} for n in NODES}
        wait_for(lambda: all(c.Cluster.get_other_config(self.ref) == BASELINE for c in self.admins.values()),
                 what="the baseline other_config on every node")

    def api(self, node):
        return self.cluster.node(node)["api"]

    def password(self, user):
        return self.cluster.credentials(user)["password"]

    def login(self, node, user):
        with Client(self.api(node), user, self.password(user)) as c:
            return c.login()

    def client(self, node, user="reader"):
        return self.cluster.client(node, user)

    def raw(self, node="node1"):
        return Raw(self.api(node))

    def req(self, method, *args, node="node1", user="admin", **extra):
        """A request map with a valid session of `user` on `node`."""
        r = {"id": 1, "method": method, "args": list(args), "session": self.sessions[node][user]}
        r.update(extra)
        return r

    # -- what "unchanged" means --------------------------------------------------------------
    def _one(self, node):
        c = self.admins[node]
        st = c.Node.status()
        clusters = c.Cluster.get_all_records()
        for rec in clusters.values():
            for f in RUNTIME_FIELDS:
                rec.pop(f)
        liveness = {}
        cluster_hosts = c.Cluster_host.get_all_records()
        for ref, rec in cluster_hosts.items():
            liveness[ref] = tuple(rec.pop(f) for f in LIVENESS_FIELDS)
        db = {"Cluster": clusters, "Cluster_host": cluster_hosts, "host": c.call("host.get_all_records"),
              "PIF": c.PIF.get_all_records(), "network": c.call("network.get_all_records")}
        return st, db, liveness

    def snapshot(self):
        """The database, commit index, term and liveness, once every node agrees on them."""
        def agreed():
            views = {n: self._one(n) for n in NODES}
            commits = {st["commit_index"] for st, _, _ in views.values()}
            dbs = [db for _, db, _ in views.values()]
            if len(commits) == 1 and all(db == dbs[0] for db in dbs) \
                    and all(st["is_quorate"] and st["ready"] for st, _, _ in views.values()):
                return views
            return None
        views = wait_for(agreed, timeout=30, interval=0.1, what="every node agreeing on the database")
        st, db, liveness = views["node1"]
        return {"commit": st["commit_index"], "terms": sorted(s["term"] for s, _, _ in views.values()),
                "db": db, "liveness": liveness}


@pytest.fixture(scope="module")
def env(tmp_path_factory, xprocess):
    with running_cluster(tmp_path_factory, xprocess, "apiinput") as cluster:
        e = Env(cluster)
        yield e
        for c in e.admins.values():
            c.close()


def refused_without_change(env, attempt, node="node1", commit_may_move=False):
    """Run attempt() (which sends the bad input and checks the error code) and check that
    nothing changed and that `node` keeps serving.

    The commit index must not move. It may move for a reason of its own (a leader election
    after a scheduling hiccup, a membership view committed): then the attempt is run again, a
    bounded number of times. A write that the database refuses is still a committed log entry;
    those cases pass commit_may_move and are held to an unchanged database.
    """
    for _ in range(4):
        early = env.client(node, "reader")
        early.login()  # this connection is open, and logged in, before the bad input
        try:
            before = env.snapshot()
            assert before["db"]["Cluster"][env.ref]["other_config"] == BASELINE
            result = attempt()
            after = env.snapshot()
            assert after["db"] == before["db"]
            assert early.Cluster.get_other_config(env.ref) == BASELINE
            assert early.Node.status()["name"] == node
        finally:
            early.close()
        with env.client(node, "reader") as fresh:
            assert fresh.Cluster.get_other_config(env.ref) == BASELINE
            assert fresh.Cluster.get_all() == [env.ref]
        if commit_may_move or after["commit"] == before["commit"]:
            return result
        explained = after["terms"] != before["terms"] or after["liveness"] != before["liveness"]
        assert explained, (f"the commit index moved from {before['commit']} to {after['commit']} "
                           "with no election and no membership view change")
    pytest.fail("the cluster kept electing leaders or changing views: the commit index never held still")


# -- framing ----------------------------------------------------------------------------------
@pytest.mark.parametrize("length", [wire.MAX_FRAME + 1, 2 ** 31, 2 ** 32 - 1])
def test_oversized_frame_is_refused_and_the_connection_closed(env, length):
    def attempt():
        with env.raw() as r:
            r.send(wire.HEADER.pack(length))
            resp = r.recv_frame()
            assert resp["id"] is None
            assert error_code(resp) == "FRAME_TOO_LARGE"
            assert resp["error"]["params"] == [str(length), str(wire.MAX_FRAME)]
            r.assert_closed()
    refused_without_change(env, attempt)


def test_a_frame_of_exactly_the_limit_is_served(env):
    """The limit is inclusive: the frame size alone is not what is refused."""
    req = env.req("Cluster.get_other_config", env.ref, user="reader", id=77)
    overhead = len(msgpack.packb(dict(req, pad="x" * 100_000), use_bin_type=True)) - 100_000
    req["pad"] = "x" * (wire.MAX_FRAME - overhead)
    body = msgpack.packb(req, use_bin_type=True)
    assert len(body) == wire.MAX_FRAME
    with env.raw() as r:
        r.send_body(body)
        assert r.recv_frame() == {"id": 77, "ok": BASELINE}
        big = msgpack.packb(dict(req, pad=req["pad"] + "x"), use_bin_type=True)
        r.send(wire.HEADER.pack(len(big)))  # the server reads no further than the header
        assert error_code(r.recv_frame()) == "FRAME_TOO_LARGE"
        r.assert_closed()


MALFORMED = [
    ("never-used-byte", b"\xc1"),
    ("truncated-array", b"\x92\x01"),
    ("truncated-map", b"\x81\xa6method"),
    ("truncated-string", b"\xa9Cluster"),
    ("extra-data", msgpack.packb({"method": "Cluster.get_all"}) + b"\x00"),
    ("two-maps", msgpack.packb({"method": "Cluster.get_all"}) * 2),
    ("empty-frame", b""),
    ("nested-too-deep", b"\x91" * 100_000 + b"\x00"),
    ("huge-array-header", b"\xdd\xff\xff\xff\xff"),
    ("huge-map-header", b"\xdf\xff\xff\xff\xff"),
    ("huge-string-header", b"\xdb\xff\xff\xff\xff"),
    ("invalid-utf8-string", b"\x81\xa6method\xa2\xff\xfe"),
    ("invalid-utf8-key", b"\x81\xa2\xff\xfe\xa1x"),
    ("bad-timestamp-ext", b"\xd4\xff" + b"\x00"),
]


@pytest.mark.parametrize("body", [b for _, b in MALFORMED], ids=[n for n, _ in MALFORMED])
def test_malformed_msgpack(env, body):
    def attempt():
        with env.raw() as r:
            r.send_body(body)
            resp = r.recv_frame()
            assert resp["id"] is None and error_code(resp) == "MALFORMED_REQUEST"
            # the same connection goes on
            assert r.call(env.req("Cluster.get_other_config", env.ref, user="reader", id=5)) == {"id": 5, "ok": BASELINE}
    refused_without_change(env, attempt)


def test_malformed_and_good_requests_pipelined_on_one_connection(env):
    def attempt():
        with env.raw() as r:
            good = [env.req("Cluster.get_other_config", env.ref, user="reader", id=i) for i in (1, 2, 3)]
            burst = (wire.encode(good[0]) + wire.HEADER.pack(1) + b"\xc1" + wire.encode(good[1])
                     + wire.HEADER.pack(3) + b"\x92\x01\x02" + b"\x00\x00\x00\x00" + wire.encode(good[2]))
            r.send(burst)
            responses = [r.recv_frame() for _ in range(6)]
            oks = sorted((x["id"], x["ok"] == BASELINE) for x in responses if "ok" in x)
            errors = [error_code(x) for x in responses if "error" in x]
            assert oks == [(1, True), (2, True), (3, True)]
            assert errors == ["MALFORMED_REQUEST"] * 3
    refused_without_change(env, attempt)


NOT_REQUESTS = [
    ("array", [1, 2, 3]),
    ("string", "Cluster.get_all"),
    ("int", 42),
    ("nil", None),
    ("bool", True),
    ("float", 1.5),
    ("bytes", b"Cluster.get_all"),
    ("ext", msgpack.ExtType(5, b"x")),
    ("empty-map", {}),
    ("no-method", {"id": 3, "args": []}),
    ("method-int", {"id": 3, "method": 5}),
    ("method-nil", {"id": 3, "method": None}),
    ("method-list", {"id": 3, "method": ["Cluster.get_all"]}),
    ("method-bytes", {"id": 3, "method": b"Cluster.get_all"}),
    ("method-map", {"id": 3, "method": {"Cluster": "get_all"}}),
    ("int-keys", {1: "Cluster.get_all", 2: []}),
    ("array-of-request", [{"method": "Cluster.get_all"}]),
]


@pytest.mark.parametrize("value", [v for _, v in NOT_REQUESTS], ids=[n for n, _ in NOT_REQUESTS])
def test_msgpack_that_is_not_a_request(env, value):
    def attempt():
        with env.raw() as r:
            r.send_body(msgpack.packb(value, use_bin_type=True))
            assert error_code(r.recv_frame()) == "MALFORMED_REQUEST"
            assert r.call(env.req("Cluster.get_all", user="reader", id=6)) == {"id": 6, "ok": [env.ref]}
    refused_without_change(env, attempt)


# -- dispatch ----------------------------------------------------------------------------------
UNKNOWN_METHODS = ["Cluster.nope", "", "cluster.get_all", "Cluster", "Cluster.get_all ", " Cluster.get_all",
                   "Cluster.get_all\x00", "Cluster.set_cluster_token", "Cluster.get_recordx", "__init__",
                   "METHODS", "session.login", "Cluster..get_all", "x" * 60_000, "Clüster.get_all"]


@pytest.mark.parametrize("method", UNKNOWN_METHODS, ids=lambda m: repr(m[:30]))
@pytest.mark.parametrize("with_session", [True, False], ids=["session", "no-session"])
def test_unknown_method(env, method, with_session):
    assert method not in rpc.METHODS

    def attempt():
        with env.raw() as r:
            req = env.req(method, id=11) if with_session else {"id": 11, "method": method, "args": []}
            resp = r.call(req)
            assert resp["id"] == 11 and error_code(resp) == "MESSAGE_METHOD_UNKNOWN"
            assert resp["error"]["params"] == [method]
    refused_without_change(env, attempt)


ARITY = [
    ("Cluster.get_all", ["REF"]),
    ("Cluster.get_record", []),
    ("Cluster.get_record", ["REF", "REF"]),
    ("Cluster.add_to_other_config", ["REF", "arity"]),
    ("Cluster.add_to_other_config", ["REF", "arity", "v", "extra"]),
    ("Cluster.set_other_config", ["REF"]),
    ("Cluster.set_other_config", ["REF", {"arity": "v"}, {"arity": "v"}]),
    ("Cluster.cas_other_config", ["REF", "arity", None]),
    ("Cluster.destroy", []),
    ("Cluster.pool_force_destroy", ["REF", True]),
    ("session.login_with_password", ["admin"]),
    ("session.logout", ["REF"]),
    ("Node.status", [1]),
    ("Cluster.create", ["PIF", "corosync", True, 1.0]),
]


@pytest.mark.parametrize("method,args", ARITY, ids=[f"{m}-{len(a)}" for m, a in ARITY])
def test_wrong_arity(env, method, args):
    args = [env.ref if a == "REF" else next(iter(env.pifs)) if a == "PIF" else a for a in args]
    expected_count = len(rpc.METHODS[method].params)
    assert len(args) != expected_count

    def attempt():
        with env.raw() as r:
            resp = r.call(env.req(method, *args, id=12))
            assert resp["id"] == 12 and error_code(resp) == "MESSAGE_PARAMETER_COUNT_MISMATCH"
            assert resp["error"]["params"] == [method, str(expected_count), str(len(args))]
    refused_without_change(env, attempt)


def test_missing_args_means_no_args(env):
    def attempt():
        with env.raw() as r:
            req = env.req("Cluster.get_record", id=13)
            del req["args"]
            assert error_code(r.call(req)) == "MESSAGE_PARAMETER_COUNT_MISMATCH"
            req = env.req("Cluster.get_all", user="reader", id=14)
            del req["args"]
            assert r.call(req) == {"id": 14, "ok": [env.ref]}
    refused_without_change(env, attempt)


@pytest.mark.parametrize("args", [None, "REF", {"0": "REF"}, 7, b"REF"], ids=["nil", "string", "map", "int", "bytes"])
def test_args_that_are_not_a_list(env, args):
    args = env.ref if args == "REF" else args

    def attempt():
        with env.raw() as r:
            req = env.req("Cluster.get_record", id=15)
            req["args"] = args
            resp = r.call(req)
            assert resp["id"] == 15 and error_code(resp) == "FIELD_TYPE_ERROR"
            assert resp["error"]["params"] == ["args"]
    refused_without_change(env, attempt)


TOO_MANY = {f"k{i}": "v" for i in range(1025)}
WRONG_TYPES = [
    # (id, method, args, the parameter named in the error)
    ("key-int", "Cluster.add_to_other_config", ["REF", 5, "v"], "key"),
    ("value-int", "Cluster.add_to_other_config", ["REF", "typed", 5], "value"),
    ("value-nil", "Cluster.add_to_other_config", ["REF", "typed", None], "value"),
    ("value-bool", "Cluster.add_to_other_config", ["REF", "typed", True], "value"),
    ("value-float", "Cluster.add_to_other_config", ["REF", "typed", 1.5], "value"),
    ("value-bytes", "Cluster.add_to_other_config", ["REF", "typed", b"v"], "value"),
    ("value-too-long", "Cluster.add_to_other_config", ["REF", "typed", "x" * (rpc.MAX_STRING + 1)], "value"),
    ("key-list", "Cluster.add_to_other_config", ["REF", ["typed"], "v"], "key"),
    ("ref-int", "Cluster.add_to_other_config", [5, "typed", "v"], "self"),
    ("ref-nil", "Cluster.add_to_other_config", [None, "typed", "v"], "self"),
    ("map-int-value", "Cluster.set_other_config", ["REF", {"typed": 1}], "value"),
    ("map-nil-value", "Cluster.set_other_config", ["REF", {"typed": None}], "value"),
    ("map-bool-value", "Cluster.set_other_config", ["REF", {"typed": False}], "value"),
    ("map-nested", "Cluster.set_other_config", ["REF", {"typed": {"nested": "x"}}], "value"),
    ("map-int-key", "Cluster.set_other_config", ["REF", {1: "v"}], "value"),
    ("map-bytes-value", "Cluster.set_other_config", ["REF", {"typed": b"v"}], "value"),
    ("map-is-list", "Cluster.set_other_config", ["REF", ["typed", "v"]], "value"),
    ("map-is-string", "Cluster.set_other_config", ["REF", "typed=v"], "value"),
    ("map-too-many", "Cluster.set_other_config", ["REF", TOO_MANY], "value"),
    ("cas-expected-int", "Cluster.cas_other_config", ["REF", "typed", 5, "v"], "expected"),
    ("cas-new-bool", "Cluster.cas_other_config", ["REF", "typed", None, False], "new"),
    ("bool-as-string", "Cluster.create", ["PIF", "corosync", "true", 1.0, 0.65], "pool_auto_join"),
    ("bool-as-int", "Cluster.create", ["PIF", "corosync", 1, 1.0, 0.65], "pool_auto_join"),
    ("float-as-bool", "Cluster.create", ["PIF", "corosync", True, True, 0.65], "token_timeout"),
    ("float-as-string", "Cluster.create", ["PIF", "corosync", True, "1.0", 0.65], "token_timeout"),
    ("float-as-nil", "Cluster.create", ["PIF", "corosync", True, 1.0, None], "token_timeout_coefficient"),
    ("stack-int", "Cluster.create", ["PIF", 1, True, 1.0, 0.65], "cluster_stack"),
    ("pool-float-as-bool", "Cluster.pool_create", ["NET", "corosync", 1.0, False], "token_timeout_coefficient"),
    ("get-record-nil", "Cluster.get_record", [None], "self"),
    ("get-by-uuid-int", "Cluster.get_by_uuid", [123], "uuid"),
    ("host-get-record-map", "host.get_record", [{"ref": "x"}], "self"),
    ("login-user-int", "session.login_with_password", [123, "pw"], "uname"),
    ("login-pwd-nil", "session.login_with_password", ["admin", None], "pwd"),
    ("node-add-ints", "Node.add", [1, 2, 3, 4], "name"),
]


@pytest.mark.parametrize("method,args,param", [w[1:] for w in WRONG_TYPES], ids=[w[0] for w in WRONG_TYPES])
def test_wrong_types(env, method, args, param):
    subst = {"REF": env.ref, "PIF": next(iter(env.pifs)), "NET": env.network}
    args = [subst.get(a, a) if isinstance(a, str) else a for a in args]

    def attempt():
        with env.raw() as r:
            resp = r.call(env.req(method, *args, id=16))
            assert resp["id"] == 16 and error_code(resp) == "FIELD_TYPE_ERROR"
            assert resp["error"]["params"] == [param]
    refused_without_change(env, attempt)


def test_wrong_types_through_the_python_client(env):
    def attempt():
        with env.client("node1", "operator") as c:
            with pytest.raises(Exception) as e:
                c.Cluster.add_to_other_config(env.ref, "typed", 42)
            assert getattr(e.value, "code", None) == "FIELD_TYPE_ERROR"
            with pytest.raises(Exception) as e:
                c.Cluster.set_other_config(env.ref, {"typed": 1.0})
            assert getattr(e.value, "code", None) == "FIELD_TYPE_ERROR"
    refused_without_change(env, attempt)


# -- sessions and roles -----------------------------------------------------------------------
def _logged_out_session(env):
    s = env.login("node1", "admin")
    with env.raw() as r:
        assert r.call({"id": 1, "method": "session.logout", "args": [], "session": s}) == {"id": 1, "ok": ""}
    return s


UNAUTHENTICATED = [
    ("absent", lambda env: ...),
    ("nil", lambda env: None),
    ("empty", lambda env: ""),
    ("bogus", lambda env: "OpaqueRef:bogus"),
    ("int", lambda env: 12345),
    ("list", lambda env: [env.sessions["node1"]["admin"]]),
    ("map", lambda env: {"session": env.sessions["node1"]["admin"]}),
    ("another-nodes-session", lambda env: env.sessions["node2"]["admin"]),
    ("logged-out", _logged_out_session),
    ("case-changed", lambda env: env.sessions["node1"]["admin"].upper()),
]


@pytest.mark.parametrize("make_session", [u[1] for u in UNAUTHENTICATED], ids=[u[0] for u in UNAUTHENTICATED])
@pytest.mark.parametrize("method,args", [
    ("Cluster.add_to_other_config", ["REF", "unauthenticated", "x"]),
    ("Cluster.get_other_config", ["REF"]),
], ids=["write", "read"])
def test_unauthenticated_call(env, make_session, method, args):
    session = make_session(env)
    args = [env.ref if a == "REF" else a for a in args]

    def attempt():
        req = {"id": 17, "method": method, "args": args}
        if session is not ...:
            req["session"] = session
        with env.raw() as r:
            resp = r.call(req)
            assert resp["id"] == 17 and error_code(resp) == "SESSION_INVALID"
    refused_without_change(env, attempt)


def test_login_needs_no_session_and_logout_ends_one(env):
    with env.raw() as r:
        resp = r.call({"id": 1, "method": "session.login_with_password",
                       "args": ["reader", env.password("reader")]})
        s = resp["ok"]
        assert isinstance(s, str) and s.startswith("OpaqueRef:")
        assert r.call({"id": 2, "method": "session.get_role", "args": [], "session": s}) == {"id": 2, "ok": "read-only"}
        assert r.call({"id": 3, "method": "session.logout", "args": [], "session": s})["ok"] == ""
        assert error_code(r.call({"id": 4, "method": "session.get_role", "args": [], "session": s})) == "SESSION_INVALID"


BAD_LOGINS = [
    ("wrong-password", "admin", lambda env: "wrong"),
    ("empty-password", "admin", lambda env: ""),
    ("unknown-user", "nobody", lambda env: env.password("admin")),
    ("empty-user", "", lambda env: ""),
    ("password-plus-space", "admin", lambda env: env.password("admin") + " "),
    ("password-prefix", "admin", lambda env: env.password("admin")[:-1]),
    ("user-case", "ADMIN", lambda env: env.password("admin")),
    ("another-users-password", "reader", lambda env: env.password("admin")),
    ("long-password", "admin", lambda env: "p" * 60_000),
]


@pytest.mark.parametrize("user,make_password", [b[1:] for b in BAD_LOGINS], ids=[b[0] for b in BAD_LOGINS])
def test_bad_password(env, user, make_password):
    password = make_password(env)

    def attempt():
        with env.raw() as r:
            resp = r.call({"id": 18, "method": "session.login_with_password", "args": [user, password]})
            assert resp["id"] == 18 and error_code(resp) == "SESSION_AUTHENTICATION_FAILED"
            good = r.call({"id": 19, "method": "session.login_with_password", "args": ["reader", env.password("reader")]})
            assert good["ok"].startswith("OpaqueRef:")
    refused_without_change(env, attempt)


def test_bad_password_through_the_python_client(env):
    def attempt():
        with Client(env.api("node1"), "operator", "not-the-password") as c:
            with pytest.raises(Exception) as e:
                c.Cluster.get_all()
            assert getattr(e.value, "code", None) == "SESSION_AUTHENTICATION_FAILED"
    refused_without_change(env, attempt)


RBAC = [
    # (user, method, args, required role); destructive calls name a bogus ref, so that even a
    # broken role check could not take the cluster down
    ("reader", "Cluster.add_to_other_config", ["REF", "rbac", "x"], "pool-operator"),
    ("reader", "Cluster.set_other_config", ["REF", {}], "pool-operator"),
    ("reader", "Cluster.remove_from_other_config", ["REF", "owner"], "pool-operator"),
    ("reader", "Cluster.cas_other_config", ["REF", "owner", "test_api_input", None], "pool-operator"),
    ("reader", "Cluster.create", ["PIF", "corosync", True, 1.0, 0.65], "pool-operator"),
    ("reader", "Cluster.pool_create", ["NET", "corosync", 1.0, 0.65], "pool-operator"),
    ("reader", "Cluster.destroy", [BOGUS_REF], "pool-operator"),
    ("reader", "Cluster.pool_destroy", [BOGUS_REF], "pool-operator"),
    ("reader", "Cluster.pool_force_destroy", [BOGUS_REF], "pool-operator"),
    ("reader", "Cluster.pool_resync", [BOGUS_REF], "pool-operator"),
    ("reader", "Cluster.get_cluster_token", ["REF"], "pool-admin"),
    ("reader", "Node.add", ["rbac", "bad-address", "bad-address", "bad-address"], "pool-admin"),
    ("reader", "Node.remove", ["no-such-node"], "pool-admin"),
    ("operator", "Cluster.get_cluster_token", ["REF"], "pool-admin"),
    ("operator", "Node.add", ["rbac", "bad-address", "bad-address", "bad-address"], "pool-admin"),
    ("operator", "Node.remove", ["no-such-node"], "pool-admin"),
]


@pytest.mark.parametrize("user,method,args,role", RBAC, ids=[f"{u}-{m}" for u, m, _, _ in RBAC])
def test_missing_role(env, user, method, args, role):
    subst = {"REF": env.ref, "PIF": next(iter(env.pifs)), "NET": env.network}
    args = [subst.get(a, a) if isinstance(a, str) else a for a in args]

    def attempt():
        with env.raw() as r:
            resp = r.call(env.req(method, *args, user=user, id=20))
            assert resp["id"] == 20 and error_code(resp) == "RBAC_PERMISSION_DENIED"
            assert resp["error"]["params"] == [method, role]
    refused_without_change(env, attempt)


def test_only_pool_admin_sees_the_cluster_token(env):
    with open(env.cluster.dir + "/cluster.token") as f:
        token = f.read().strip()
    for node in NODES:
        with env.client(node, "admin") as a:
            assert a.Cluster.get_cluster_token(env.ref) == token
            assert a.Cluster.get_record(env.ref)["cluster_token"] == token
            assert a.Cluster.get_all_records()[env.ref]["cluster_token"] == token
        for user in ("operator", "reader"):
            with env.client(node, user) as c:
                rec = c.Cluster.get_record(env.ref)
                assert rec["cluster_token"] == ""
                assert rec["other_config"] == BASELINE  # the rest of the record is there
                assert c.Cluster.get_all_records()[env.ref]["cluster_token"] == ""
                assert token not in repr(c.Cluster.get_all_records())


# -- handles and uuids ------------------------------------------------------------------------
READ_HANDLES = [
    # (method, args, class named in the error)
    ("Cluster.get_record", [BOGUS_REF], "Cluster"),
    ("Cluster.get_record", [""], "Cluster"),
    ("Cluster.get_record", ["CLUSTER_UUID"], "Cluster"),  # a uuid is not a ref
    ("Cluster.get_other_config", [BOGUS_REF], "Cluster"),
    ("Cluster.get_network", [BOGUS_REF], "Cluster"),
    ("Cluster.get_cluster_token", [BOGUS_REF], "Cluster"),
    ("Cluster.get_is_quorate", ["NET"], "Cluster"),  # another class's ref
    ("Cluster_host.get_record", ["REF"], "Cluster_host"),
    ("Cluster_host.get_live", [BOGUS_REF], "Cluster_host"),
    ("host.get_record", ["PIF"], "host"),
    ("host.get_address", [BOGUS_REF], "host"),
    ("PIF.get_record", ["HOST"], "PIF"),
    ("network.get_record", ["REF"], "network"),
    ("network.get_PIFs", [BOGUS_REF], "network"),
    ("Cluster.create", [BOGUS_REF, "corosync", True, 1.0, 0.65], "PIF"),
    ("Cluster.create", ["HOST", "corosync", True, 1.0, 0.65], "PIF"),
    ("Cluster.pool_create", [BOGUS_REF, "corosync", 1.0, 0.65], "network"),
]


@pytest.mark.parametrize("method,args,cls", READ_HANDLES, ids=[f"{m}-{i}" for i, (m, _, _) in enumerate(READ_HANDLES)])
def test_invalid_handle(env, method, args, cls):
    subst = {"REF": env.ref, "PIF": next(iter(env.pifs)), "NET": env.network, "HOST": next(iter(env.hosts)),
             "CLUSTER_UUID": env.cluster_uuid}
    args = [subst.get(a, a) if isinstance(a, str) else a for a in args]

    def attempt():
        with env.raw() as r:
            resp = r.call(env.req(method, *args, id=21))
            assert resp["id"] == 21 and error_code(resp) == "HANDLE_INVALID"
            assert resp["error"]["params"][:2] == [cls, args[0]]
    refused_without_change(env, attempt)


WRITE_HANDLES = [
    ("Cluster.add_to_other_config", [BOGUS_REF, "handle", "x"]),
    ("Cluster.set_other_config", [BOGUS_REF, {}]),
    ("Cluster.remove_from_other_config", [BOGUS_REF, "owner"]),
    ("Cluster.cas_other_config", ["", "owner", "test_api_input", None]),
    ("Cluster.destroy", [BOGUS_REF]),
    ("Cluster.pool_destroy", [BOGUS_REF]),
    ("Cluster.pool_force_destroy", [BOGUS_REF]),
    ("Cluster.pool_resync", [BOGUS_REF]),
]


@pytest.mark.parametrize("method,args", WRITE_HANDLES, ids=[m for m, _ in WRITE_HANDLES])
def test_invalid_handle_in_a_write(env, method, args):
    """The log decides these (a ref may go away between check and commit): the refusal is a
    committed entry, so the commit index moves, but the database does not."""
    def attempt():
        with env.raw() as r:
            resp = r.call(env.req(method, *args, user="operator", id=22))
            assert resp["id"] == 22 and error_code(resp) == "HANDLE_INVALID"
            assert resp["error"]["params"] == ["Cluster", args[0]]
    refused_without_change(env, attempt, commit_may_move=True)


BAD_UUIDS = [
    ("Cluster.get_by_uuid", "not-a-uuid", "Cluster"),
    ("Cluster.get_by_uuid", "", "Cluster"),
    ("Cluster.get_by_uuid", "RANDOM", "Cluster"),
    ("Cluster.get_by_uuid", "CLUSTER_UUID_UPPER", "Cluster"),
    ("Cluster.get_by_uuid", "HOST_UUID", "Cluster"),  # another class's uuid
    ("Cluster.get_by_uuid", "REF", "Cluster"),  # a ref is not a uuid
    ("host.get_by_uuid", "CLUSTER_UUID", "host"),
    ("Cluster_host.get_by_uuid", "PIF_UUID", "Cluster_host"),
    ("PIF.get_by_uuid", "RANDOM", "PIF"),
    ("network.get_by_uuid", "CLUSTER_UUID", "network"),
]


@pytest.mark.parametrize("method,value,cls", BAD_UUIDS, ids=[f"{m}-{v}" for m, v, _ in BAD_UUIDS])
def test_bad_uuid(env, method, value, cls):
    value = {"RANDOM": str(uuid.uuid4()), "CLUSTER_UUID": env.cluster_uuid,
             "CLUSTER_UUID_UPPER": env.cluster_uuid.upper(),
             "HOST_UUID": next(iter(env.hosts.values()))["uuid"],
             "PIF_UUID": next(iter(env.pifs.values()))["uuid"], "REF": env.ref}.get(value, value)

    def attempt():
        with env.raw() as r:
            resp = r.call(env.req(method, value, user="reader", id=23))
            assert resp["id"] == 23 and error_code(resp) == "UUID_INVALID"
            assert resp["error"]["params"] == [cls, value]
    refused_without_change(env, attempt)


def test_good_uuids_resolve(env):
    """The positive control for test_bad_uuid: each class finds its own uuids."""
    with env.client("node2", "reader") as c:
        assert c.Cluster.get_by_uuid(env.cluster_uuid) == env.ref
        for ref, rec in env.hosts.items():
            assert c.call("host.get_by_uuid", rec["uuid"]) == ref
        for ref, rec in env.pifs.items():
            assert c.PIF.get_by_uuid(rec["uuid"]) == ref
        for ref, rec in env.cluster_hosts.items():
            assert c.Cluster_host.get_by_uuid(rec["uuid"]) == ref


# -- request ids ------------------------------------------------------------------------------
BAD_RIDS = [("int", 5), ("float", 1.5), ("bool", True), ("empty", ""), ("too-long", "r" * 129),
            ("list", ["r"]), ("map", {"r": "1"}), ("bytes", b"rid")]


@pytest.mark.parametrize("rid", [r for _, r in BAD_RIDS], ids=[n for n, _ in BAD_RIDS])
def test_bad_rid(env, rid):
    def attempt():
        with env.raw() as r:
            resp = r.call(env.req("Cluster.add_to_other_config", env.ref, "rid-probe", "x", rid=rid, id=24))
            assert resp["id"] == 24 and error_code(resp) == "FIELD_TYPE_ERROR"
            assert resp["error"]["params"] == ["rid"]
    refused_without_change(env, attempt)


def test_a_longest_rid_is_accepted_and_a_retry_applies_once(env):
    """The positive control for test_bad_rid, and dedup over the wire. Leaves other_config as it was."""
    rid = "r" * 128
    with env.raw("node2") as r:
        add = env.req("Cluster.add_to_other_config", env.ref, "rid-probe", "x", node="node2", rid=rid, id=25)
        assert r.call(add) == {"id": 25, "ok": ""}
        assert r.call(env.req("Cluster.get_other_config", env.ref, node="node2", id=26))["ok"] == dict(
            BASELINE, **{"rid-probe": "x"})
        remove = env.req("Cluster.remove_from_other_config", env.ref, "rid-probe", node="node2", id=27)
        assert r.call(remove) == {"id": 27, "ok": ""}
        assert r.call(add) == {"id": 25, "ok": ""}  # the retry: answered again, not applied again
    wait_for(lambda: all(c.Cluster.get_other_config(env.ref) == BASELINE for c in env.admins.values()),
             what="other_config back to the baseline everywhere")
    with env.raw("node1") as r:  # the rid is in the replicated database: another node knows it too
        resp = r.call(env.req("Cluster.add_to_other_config", env.ref, "rid-probe", "x", rid=rid, id=28))
        assert resp == {"id": 28, "ok": ""}
    env.snapshot()
    assert env.admins["node3"].Cluster.get_other_config(env.ref) == BASELINE


# -- broken connections and garbage -----------------------------------------------------------
def _half_header(env):
    with env.raw() as r:
        r.send(b"\x00\x00")


def _half_body(env):
    with env.raw() as r:
        r.send(wire.HEADER.pack(100) + b"\x81" * 50)


def _good_then_half(env):
    with env.raw() as r:
        r.send(wire.encode(env.req("Cluster.get_all", user="reader", id=29)) + wire.HEADER.pack(64) + b"\x80")
        assert r.recv_frame() == {"id": 29, "ok": [env.ref]}


def _half_then_reset(env):
    with env.raw() as r:
        r.send(wire.encode(env.req("Cluster.add_to_other_config", env.ref, "half", "x", id=30))[:-3])
        r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST


def _half_then_shutdown(env):
    """After a half frame and the end of our stream, the server closes its side, and does not
    answer or apply the half request."""
    with env.raw() as r:
        r.send(wire.encode(env.req("Cluster.add_to_other_config", env.ref, "half", "x", id=31))[:-1])
        r.sock.shutdown(socket.SHUT_WR)
        r.assert_closed()


def _half_while_others_are_served(env):
    """A client that stalls mid-frame holds up nobody else on the same node."""
    stalled = env.raw()
    try:
        stalled.send(wire.HEADER.pack(1000) + b"\x00" * 10)
        with env.client("node1", "reader") as c:
            for _ in range(5):
                assert c.Cluster.get_other_config(env.ref) == BASELINE
    finally:
        stalled.close()


HALF_SENT = [_half_header, _half_body, _good_then_half, _half_then_reset, _half_then_shutdown,
             _half_while_others_are_served]


@pytest.mark.parametrize("send", HALF_SENT, ids=[f.__name__.strip("_") for f in HALF_SENT])
def test_half_sent_frame_then_disconnect(env, send):
    refused_without_change(env, lambda: send(env))


def _assert_refusals(frames):
    codes = [error_code(f) for f in frames]
    assert set(codes) <= {"FRAME_TOO_LARGE", "MALFORMED_REQUEST"}, codes
    return codes


GARBAGE = [
    ("http", b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
    ("tls-client-hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32))),
    ("all-ones", b"\xff" * 4096),
]


@pytest.mark.parametrize("data", [g for _, g in GARBAGE], ids=[n for n, _ in GARBAGE])
def test_another_protocol_on_the_port(env, data):
    """Its first four bytes read as a length far above the limit: refused, connection closed."""
    def attempt():
        with env.raw() as r:
            r.send(data)
            frames = r.frames_until_closed()
            # the refusal may be lost to a reset: the server closes with our bytes unread
            assert _assert_refusals(frames) in ([], ["FRAME_TOO_LARGE"])
    refused_without_change(env, attempt)


@pytest.mark.parametrize("node", NODES)
def test_a_burst_of_random_bytes(env, node):
    """Unframed random bytes, leader and followers alike: only refusals come back, the
    connection ends, and nothing else notices."""
    def attempt():
        rng = random.Random(f"garbage-{node}")
        for size in (7, 4096, 256 * 1024):
            with env.raw(node) as r:
                try:
                    r.send(rng.randbytes(size))
                    r.sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass  # broken pipe or reset: the server already refused a frame and closed
                _assert_refusals(r.frames_until_closed())
    refused_without_change(env, attempt, node=node)


def test_a_burst_of_framed_garbage(env):
    """Well-framed random bodies: one MALFORMED_REQUEST each, and the connection goes on."""
    rng = random.Random("framed-garbage")
    bodies = [bytes([0xc1]) + rng.randbytes(rng.randrange(0, 2000)) for _ in range(100)]
    bodies += [rng.randbytes(rng.randrange(2, 2000)) for _ in range(100)]

    def attempt():
        with env.raw() as r:
            r.send(b"".join(wire.HEADER.pack(len(b)) + b for b in bodies))
            codes = [error_code(r.recv_frame()) for _ in bodies]
            assert codes == ["MALFORMED_REQUEST"] * len(bodies)
            assert r.call(env.req("Cluster.get_other_config", env.ref, user="reader", id=32)) == {
                "id": 32, "ok": BASELINE}
    refused_without_change(env, attempt)


def test_garbage_on_many_connections_at_once(env):
    """Twenty hostile connections on every node at once, while a good client keeps reading."""
    errors = []

    def hostile(node, seed):
        rng = random.Random(seed)
        try:
            with env.raw(node) as r:
                try:
                    for _ in range(20):
                        body = rng.randbytes(rng.randrange(1, 512))
                        r.send(wire.HEADER.pack(len(body)) + body)
                    r.send(rng.randbytes(64))
                    r.sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass  # broken pipe or reset: the server already refused a frame and closed
                _assert_refusals(r.frames_until_closed())
        except Exception as e:  # reported by the main thread
            errors.append(e)

    def attempt():
        threads = [threading.Thread(target=hostile, args=(n, f"{n}-{i}")) for n in NODES for i in range(20)]
        for t in threads:
            t.start()
        with env.client("node3", "reader") as c:
            for _ in range(10):
                assert c.Cluster.get_other_config(env.ref) == BASELINE
        for t in threads:
            t.join(30)
        assert not any(t.is_alive() for t in threads)
        assert errors == []
    refused_without_change(env, attempt)
