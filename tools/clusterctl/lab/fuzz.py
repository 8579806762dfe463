"""Hostile inputs for clusterd's three doors, and a campaign that sends them to a live cluster.

The doors: msgpack-RPC frames (server.py, wire.py), XML-RPC bodies of the XenAPI endpoint
(xapi.py) and heartbeat datagrams (membership.py). The inputs are hypothesis strategies built
from the method table (rpc.METHODS): mostly well-formed calls of real methods whose values are
hostile (wrong types, NaN and infinities, huge and negative ints, long and odd strings, deep
and wide nests, unknown keys), also real values the cluster knows (its refs, node names, a
sandbox group), and raw or mutated bytes. `tools/bench fuzz` and tests/test_fuzz.py both run
Campaign; neither has a generator of its own.

What a campaign counts, per door:
- crashes: a daemon that died or did not answer Node.status in time (must be 0);
- state changes from refused calls: the called node's state_hash (Node.status) before and
  after an input the node refused; a change is replayed once on a quiet cluster (with a fresh
  rid) and counted only if the replay changes the state again (must be 0). Unreplayed ones,
  which background writes explain, are counted apart as "unconfirmed";
- internal errors (INTERNAL_ERROR: a bug reported instead of a clear error), unanswered
  inputs, and the slowest answer.
Methods whose success would take the cluster apart (destroy, forget, remove, logout ...) never
get the cluster's real values, and Node.add never a valid name: everything else may succeed.
"""
import http.client
import math
import os
import re
import socket
import time
import uuid
import xmlrpc.client
from collections import Counter
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

import msgpack
import psutil
from hypothesis import HealthCheck, Phase, given, settings, strategies as st
from hypothesis import seed as hypothesis_seed

from clusterd import limits, membership, rpc, wire
from clusterd.errors import CODES

ANSWER_TIMEOUT = 10.0  # s: an input not answered in this time counts as unanswered
STATUS_TIMEOUT = 10.0  # s: a daemon that does not answer Node.status in this time counts as a crash
HEARTBEAT_BATCH = 20  # datagrams between two looks at the target
# a success of these would take the cluster apart: they never get the cluster's real values
NO_KNOWN = frozenset({"Cluster.destroy", "Cluster.pool_destroy", "Cluster.pool_force_destroy",
                      "Cluster.pool_resync", "Node.remove", "Node.add", "session.logout",
                      "session.local_logout"}
                     | {f"Cluster_host.{m}" for m in ("destroy", "force_destroy", "forget", "disable", "create")})
SESSIONLESS_ONLY = frozenset({"session.logout", "session.local_logout"})  # never with a real session

# -- values -----------------------------------------------------------------------------------
EDGE_INTS = [0, -1, 1, 2**31 - 1, 2**31, -2**31 - 1, 2**53 + 1, 2**63 - 1, 2**63, -2**63, 2**64 - 1,
             2**64, -2**63 - 1, 10**30]  # the last three: only XML-RPC carries them
EDGE_FLOATS = [math.nan, math.inf, -math.inf, -0.0, 1e308, -1e308, 5e-324, 0.1, 1e-9]
ODD_STRINGS = ["", " ", "\t", "\r\n", "\x00", "a\x00b", "\x7f", "\u202e", "\ufeff", "\uffff", "💥", "Ω" * 300,
               "OpaqueRef:NULL", "OpaqueRef:", "OpaqueRef:00000000-0000-0000-0000-000000000000", "../../etc/passwd",
               "%s%n%x", "{}", "[]", "null", "NaN", "-inf", "1e999", "0x10", "٣", "²", "１２", "127.0.0.1:٣",
               "127.0.0.1:²", "127.0.0.1:0", "127.0.0.1:99999", "[::1]:1", "1.2.3.4", ":", "a:b:c", "<x/>",
               "]]>", "&amp;", "<!DOCTYPE a>", "CON", "a" * 1025, "a" * 65536, "a" * 65537]
SHORT_TEXT = st.text(max_size=40)
STRINGS = st.one_of(SHORT_TEXT, st.sampled_from(ODD_STRINGS), SHORT_TEXT.map(lambda s: "OpaqueRef:" + s),
                    st.builds(lambda c, n: c * n, st.characters(), st.integers(0, 70000)))
INTS = st.one_of(st.integers(-2**63, 2**64 - 1), st.sampled_from(EDGE_INTS), st.integers(-3, 70))
FLOATS = st.one_of(st.floats(), st.sampled_from(EDGE_FLOATS))
SCALARS = st.one_of(st.none(), st.booleans(), INTS, FLOATS, STRINGS, st.binary(max_size=40))


def _nest(depth, leaf):
    for _ in range(depth):
        leaf = [leaf] if depth % 2 else {"k": leaf}
    return leaf


HOSTILE = st.one_of(
    st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                  st.dictionaries(STRINGS, inner, max_size=5)), max_leaves=12),
    st.builds(_nest, st.integers(5, 200), SCALARS),  # deep
    st.builds(lambda n, v: [v] * n, st.integers(1000, 3000), SCALARS),  # wide (MAX_MAP_ITEMS is 1024)
    st.builds(lambda n: {str(i): "v" for i in range(n)}, st.integers(1000, 1100)),
)
STRING_MAPS = st.one_of(st.dictionaries(STRINGS, STRINGS, max_size=6),
                        st.dictionaries(STRINGS, HOSTILE, max_size=4), HOSTILE)
TYPED = {  # a value of the declared type (hostile in its contents), or of another type
    "string": STRINGS, "ref": STRINGS, "int": INTS, "float": st.one_of(FLOATS, INTS), "bool": st.booleans(),
    "map": STRING_MAPS, "string_set": st.one_of(st.lists(STRINGS, max_size=6), HOSTILE),
    "nullable_string": st.one_of(st.none(), STRINGS),
    "properties": st.one_of(st.dictionaries(STRINGS, HOSTILE, max_size=6), HOSTILE),
}
# a valid wait of these parameters is a long one by design: keep them short or wrong
PARAM_OVERRIDES = {"timeout": st.one_of(st.floats(-10, 0.2), st.sampled_from([math.nan, -math.inf]), HOSTILE)}
METHOD_OVERRIDES = {("Node.add", "name"): st.one_of(st.just(""), st.sampled_from(ODD_STRINGS[1:6]),
                                                    SHORT_TEXT.map(lambda s: s + " !"))}


def weighted(*choices):
    """One of the strategies, by weight: [(weight, strategy), ...]. (st.one_of would merge
    repeated strategies, so repeating one does not weigh it.)"""
    choices = [(w, x) for w, x in choices if x is not None]
    return st.sampled_from([x for w, x in choices for _ in range(w)]).flatmap(lambda x: x)


@dataclass
class Known:
    """Values the cluster really has, so that hostile calls get past the first lookups."""
    refs: list = field(default_factory=list)
    by_param: dict = field(default_factory=dict)  # parameter name -> values
    sessions: list = field(default_factory=list)  # real session refs, every role

    def for_param(self, name, ptype):
        values = self.by_param.get(name, []) + (self.refs if ptype == "ref" else [])
        return st.sampled_from(values) if values else None


def arg_strategy(method, pname, ptype, known):
    over = METHOD_OVERRIDES.get((method, pname))
    if over is not None:
        return over
    real = known.for_param(pname, ptype) if method not in NO_KNOWN else None
    return weighted((3, PARAM_OVERRIDES.get(pname, TYPED[ptype])), (1, HOSTILE), (3, real))


def args_strategy(m, known):
    exact = st.tuples(*(arg_strategy(m.name, p, t, known) for p, t in m.params)).map(list)
    return weighted((8, exact), (1, st.lists(HOSTILE, max_size=len(m.params) + 2)), (1, HOSTILE))


def session_strategy(m, known):
    bogus = st.one_of(STRINGS, HOSTILE)
    if m.name in SESSIONLESS_ONLY or not known.sessions:
        return bogus
    return weighted((8, st.sampled_from(known.sessions)), (1, bogus))


@st.composite
def calls(draw, known, methods=None):
    """(method name, args, session): a call of a real method, sometimes of a made-up one."""
    names = sorted(methods or rpc.METHODS)
    if draw(SHAPES) == 19:
        return draw(st.one_of(STRINGS, STRINGS.map(lambda s: s + ".get_all"))), draw(HOSTILE), draw(HOSTILE)
    m = rpc.METHODS[draw(st.sampled_from(names))]
    return m.name, draw(args_strategy(m, known)), draw(session_strategy(m, known))


# -- msgpack frames ---------------------------------------------------------------------------
@dataclass
class Input:
    door: str  # "msgpack" | "xmlrpc" | "heartbeat"
    data: bytes
    call: tuple = None  # (method, args, session) when it was built from one
    fresh: object = None  # data -> the same input with a new request id (for a replay)

    def replayable(self):
        return self.fresh(self.data) if self.fresh else self.data


def _pack(obj):
    try:
        return msgpack.packb(obj, use_bin_type=True)
    except (OverflowError, ValueError, TypeError):  # e.g. an int beyond 64 bits: not on this wire
        return msgpack.packb(repr(obj)[:1000], use_bin_type=True)


# uniform (st.integers favours its bounds); hypothesis draws the first (simplest) choice more
# often than the others, so choice 0 is always the plain case: 0-16 plain, 17-19 odd
SHAPES = st.sampled_from(range(20))


def _framed(body):
    """A frame; one larger than the server takes goes with its true length but only its first
    bytes (the server refuses it unread and closes)."""
    return wire.HEADER.pack(len(body)) + body[:4096 if len(body) > wire.MAX_FRAME else None]


def too_large(inp):
    """The server may close this input's connection instead of answering."""
    return inp.door == "msgpack" and wire.HEADER.unpack(inp.data[:wire.HEADER.size])[0] > wire.MAX_FRAME


def _mutate(body, draw):
    kind = draw(st.sampled_from(range(4)))
    if not body or kind == 3:
        return draw(st.binary(max_size=200))
    i = draw(st.sampled_from(range(len(body))))
    if kind == 0:
        return body[:i] + bytes([draw(st.integers(0, 255))]) + body[i + 1:]
    if kind == 1:
        return body[:i]
    return body[:i] + draw(st.binary(min_size=1, max_size=20)) + body[i:]


def _with_rid(req):
    def fresh(_data):
        return _framed(_pack({**req, "rid": str(uuid.uuid4())}))
    return fresh


@st.composite
def msgpack_inputs(draw, known):
    method, args, session = draw(calls(known))
    req = {"id": draw(st.one_of(st.integers(1, 2**31), HOSTILE)), "method": method, "args": args,
           "session": session}
    if draw(st.booleans()):
        req["rid"] = draw(st.one_of(st.just(str(uuid.uuid4())), STRINGS, HOSTILE))
    for key in draw(st.lists(st.sampled_from(["exit_request", "extra", "ok", "error", "id", 1, ""]), max_size=2)):
        req[key] = draw(HOSTILE)
    body = _pack(req)
    shape = draw(SHAPES)
    if shape == 17:
        return Input("msgpack", _framed(_mutate(body, draw)), (method, args, session))
    if shape == 18:  # a whole frame of something that is not a request
        return Input("msgpack", _framed(_pack(draw(HOSTILE))))
    if shape == 19:  # a length the server refuses unread
        return Input("msgpack", wire.HEADER.pack(draw(st.integers(wire.MAX_FRAME + 1, 2**32 - 1))) + body[:64])
    return Input("msgpack", _framed(body), (method, args, session),
                 _with_rid(req) if req.get("rid") is None or isinstance(req.get("rid"), str) else None)


# -- XML-RPC bodies ---------------------------------------------------------------------------
_NOT_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(v, clean):
    return escape(_NOT_XML.sub("?", str(v)) if clean else str(v))


def xml_value(v, clean=True):
    """One XML-RPC <value>, written out by hand so that any int (also beyond i4 and i8) and any
    float (nan, inf) can be sent, as a hostile client would. `clean`: characters XML cannot
    carry become "?" (else the parser refuses the body before anything else looks at it)."""
    if v is None:
        return "<value><nil/></value>"
    if isinstance(v, bool):
        return f"<value><boolean>{int(v)}</boolean></value>"
    if isinstance(v, int):
        return f"<value><{'int' if -2**31 <= v < 2**31 else 'i8'}>{v}</{'int' if -2**31 <= v < 2**31 else 'i8'}></value>"
    if isinstance(v, float):
        return f"<value><double>{v!r}</double></value>"
    if isinstance(v, bytes):
        return f"<value><base64>{xmlrpc.client.Binary(v).data.hex()}</base64></value>"
    if isinstance(v, (list, tuple)):
        return "<value><array><data>" + "".join(xml_value(x, clean) for x in v) + "</data></array></value>"
    if isinstance(v, dict):
        return "<value><struct>" + "".join(f"<member><name>{_text(k, clean)}</name>{xml_value(x, clean)}</member>"
                                           for k, x in v.items()) + "</struct></value>"
    return f"<value><string>{_text(v, clean)}</string></value>"


def xml_call(method, params, clean=True):
    return ("<?xml version='1.0'?><methodCall><methodName>" + _text(method, clean) + "</methodName><params>"
            + "".join(f"<param>{xml_value(p, clean)}</param>" for p in params) + "</params></methodCall>")


MAX_XML = 2 * 1024 * 1024  # the endpoint takes 1 MiB: more only costs time

XML_ODD = [
    "", "<methodCall/>", "<methodCall><methodName></methodName></methodCall>", "<?xml version='1.0'?>",
    "<!DOCTYPE a [<!ENTITY x 'xx'><!ENTITY y '&x;&x;&x;'>]><methodCall><methodName>&y;</methodName></methodCall>",
    "<methodCall><methodName>Node.status</methodName><params><param><value><foo>1</foo></value></param></params>"
    "</methodCall>",
    "<methodCall><methodName>Node.status</methodName><params><param><value><int>1e3</int></value></param>"
    "</params></methodCall>",
    "<methodCall><methodName>Node.status</methodName><params><param><value><dateTime.iso8601>x"
    "</dateTime.iso8601></value></param></params></methodCall>",
    "<methodResponse><params><param><value>1</value></param></params></methodResponse>",
    "<methodCall><methodName>a</methodName><params>" + "<value><array><data>" * 3000 + "</params></methodCall>",
]


@st.composite
def xmlrpc_inputs(draw, known):
    method, args, session = draw(calls(known))
    m = rpc.METHODS.get(method)
    params = ([session] if m is not None and m.session else []) + (args if isinstance(args, list) else [args])
    if draw(SHAPES) >= 17:
        method = "Async." + str(method)
    text = xml_call(method, params, clean=draw(st.sampled_from([True] * 4 + [False])))[:MAX_XML]
    shape = draw(SHAPES)
    if shape == 17:
        return Input("xmlrpc", _mutate(text.encode("utf-8", "surrogatepass"), draw))
    if shape == 18:
        return Input("xmlrpc", draw(st.sampled_from(XML_ODD)).encode())
    return Input("xmlrpc", text.encode("utf-8", "surrogatepass"), (method, args, session))


# -- heartbeat datagrams ----------------------------------------------------------------------
@st.composite
def heartbeat_inputs(draw, key, members):
    """A datagram: unsigned junk, a hostile heartbeat with a bad or a good MAC (the fuzzer holds
    the key, as an insider would). A correctly signed one never is both well-formed and from a
    member: that is a real heartbeat, which the key's holder may send."""
    hb = [draw(st.one_of(st.just(membership.VERSION), HOSTILE)),
          draw(st.one_of(st.sampled_from(members), STRINGS, HOSTILE)),
          *(draw(st.one_of(INTS, HOSTILE)) for _ in range(4)),
          draw(st.one_of(st.none(), st.lists(INTS, min_size=2, max_size=2), HOSTILE)),
          draw(st.one_of(st.none(), st.lists(FLOATS, min_size=2, max_size=2), HOSTILE))]
    hb = draw(st.one_of(st.just(hb), st.lists(HOSTILE, max_size=9), HOSTILE))
    payload = _pack(hb)[:membership.MAX_DATAGRAM * 2]  # UDP carries at most 64 KiB
    kind = draw(st.sampled_from(range(5)))
    if kind == 3:
        return Input("heartbeat", draw(st.binary(max_size=membership.MAX_DATAGRAM + 10)))
    if kind == 4:
        return Input("heartbeat", payload + draw(st.binary(min_size=32, max_size=32)))
    packet = membership.sign(key, payload)
    decoded = membership.decode(key, packet)
    if isinstance(decoded, membership.Heartbeat) and decoded.sender in members:
        packet = membership.sign(key, _pack([*hb[:1], "stranger-" + decoded.sender, *hb[2:]]))
    return Input("heartbeat", packet)


# -- driving hypothesis -----------------------------------------------------------------------
BATCH = 200  # examples generated at a time: past the deadline at most one batch is generated for nothing


def each(strategy, count, body, seed=None, over=lambda: False):
    """Call body(example) for `count` examples of `strategy`, in batches until over() says
    stop: generation only (no shrinking, no example database), so that it runs as a plain loop
    against a live target. With a seed, batch k draws from seed + k (the same inputs again)."""
    for k, done in enumerate(range(0, count, BATCH)):
        if over():
            return

        @settings(max_examples=min(BATCH, count - done), database=None, deadline=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(strategy)
        def run(example):
            body(example)
        if seed is not None:
            run = hypothesis_seed(seed + k)(run)
        run()


# -- the live target --------------------------------------------------------------------------
def _host_port(address):
    host, port = address.rsplit(":", 1)
    return host, int(port)


class Frames:
    """A bare connection to a node's msgpack API."""

    def __init__(self, address, timeout):
        self.address, self.timeout, self.sock = address, timeout, None
        self.used = time.monotonic()  # the last exchange

    def _recv(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf

    def exchange(self, data):
        """The answer to one frame: a map, "closed" (the server closed it), or "timeout"."""
        self.used = time.monotonic()
        if self.sock is None:
            self.sock = socket.create_connection(_host_port(self.address), timeout=self.timeout)
        try:
            self.sock.sendall(data)
            (length,) = wire.HEADER.unpack(self._recv(wire.HEADER.size))
            resp = wire.decode(self._recv(length))
            if isinstance(resp, dict) and resp.get("error", {}).get("code") == "FRAME_TOO_LARGE":
                self.close()  # the server closes it too: the stream cannot be resynchronised
            return resp
        except socket.timeout:
            self.close()
            return "timeout"
        except (ConnectionError, OSError):
            self.close()
            return "closed"

    def call(self, method, *args, session=None):
        resp = self.exchange(wire.encode({"id": 1, "method": method, "args": list(args), "session": session}))
        if not isinstance(resp, dict) or "ok" not in resp:
            raise ConnectionError(f"{method}: {resp!r}"[:300])
        return resp["ok"]

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class XmlRpc:
    def __init__(self, address, timeout):
        self.address, self.timeout, self.conn = address, timeout, None

    def exchange(self, body):
        """(Status, first ErrorDescription entry or None), or "closed" / "timeout"."""
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(*_host_port(self.address), timeout=self.timeout)
            self.conn.request("POST", "/RPC2", body, {"Content-Type": "text/xml"})
            reply = self.conn.getresponse().read()
        except socket.timeout:
            self.close()
            return "timeout"
        except (http.client.HTTPException, OSError):
            self.close()
            return "closed"
        try:
            (value,), _ = xmlrpc.client.loads(reply)
        except Exception as e:  # the endpoint must always answer a methodResponse
            return f"unparsable reply: {e!r} {reply[:200]!r}"
        return value

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@dataclass
class Result:
    inputs: Counter = field(default_factory=Counter)  # per door
    answers: Counter = field(default_factory=Counter)  # "door: ok|CODE|closed|..."
    crashes: list = field(default_factory=list)
    state_changes: list = field(default_factory=list)  # confirmed by a replay
    unconfirmed: int = 0  # changed once, not on the replay: background writes
    internal_errors: list = field(default_factory=list)
    unanswered: list = field(default_factory=list)
    slowest: dict = field(default_factory=lambda: {"seconds": 0.0})
    seconds: float = 0.0
    heartbeats_rejected: int = 0  # by the nodes (Node.status heartbeat_rejected), during the campaign

    def summary(self):
        return {"inputs": dict(self.inputs), "total": sum(self.inputs.values()), "seconds": self.seconds,
                "crashes": len(self.crashes), "state_changes": len(self.state_changes),
                "unconfirmed_state_changes": self.unconfirmed, "internal_errors": len(self.internal_errors),
                "unanswered": len(self.unanswered), "slowest": self.slowest,
                "heartbeats_rejected": self.heartbeats_rejected,
                "answers": dict(self.answers.most_common()),
                "examples": {k: [_show(x) for x in getattr(self, k)[:5]]
                             for k in ("crashes", "state_changes", "internal_errors", "unanswered")}}


def _show(item):
    return {k: (repr(v)[:500] if isinstance(v, (bytes, tuple, list)) else v) for k, v in item.items()}


class Campaign:
    """Send hostile inputs to the nodes of a running LocalCluster, one at a time, and check
    after each that the node lives, answers, and kept its state when it refused."""

    def __init__(self, cluster, deadline=None):
        self.cluster = cluster
        self.deadline = deadline  # time.monotonic() after which no more inputs are sent
        self.door_deadline = deadline  # the same, for the door whose turn it is
        self.nodes = [n["name"] for n in cluster.meta()["nodes"]]
        self.result = Result()
        self.stopped = None  # why the campaign stopped early (a crash), or None
        creds = {u: cluster.credentials(u) for u in ("admin", "operator", "reader")}
        self.control = {n: Frames(cluster.node(n)["api"], STATUS_TIMEOUT) for n in self.nodes}
        self.admin = {n: self.control[n].call("session.login_with_password", creds["admin"]["user"],
                                              creds["admin"]["password"]) for n in self.nodes}
        sessions = {n: [self.control[n].call("session.login_with_password", c["user"], c["password"])
                        for c in creds.values()] for n in self.nodes}  # a session is its node's own
        self.frames = {n: Frames(cluster.node(n)["api"], ANSWER_TIMEOUT) for n in self.nodes}
        self.xmlrpc = {n: XmlRpc(cluster.node(n)["xapi"], ANSWER_TIMEOUT) for n in self.nodes}
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.heartbeat = {n: _host_port(cluster.node(n)["heartbeat"]) for n in self.nodes}
        self.pids = {n: cluster.pid(n) for n in self.nodes}
        with open(os.path.join(cluster.dir, "cluster.token"), "rb") as f:
            self.key = membership.heartbeat_key(f.read().strip())
        self.known = self._known(sessions)
        self.hashes = {n: self.status(n)["state_hash"] for n in self.nodes}
        self.rejected_before = self.rejected()

    def _known(self, sessions):
        c, s = self.control[self.nodes[0]], self.admin[self.nodes[0]]
        for name in ("fuzz-sandbox", "fuzz-other"):
            try:
                c.call("Group.create", name, session=s)
                c.call("Resource.create", name, name + "-r", "dummy", {}, session=s)
            except ConnectionError:
                pass  # already there (a second campaign on the same cluster)
        refs = [*c.call("Cluster.get_all", session=s), *c.call("host.get_all", session=s),
                *c.call("PIF.get_all", session=s), *c.call("network.get_all", session=s),
                *c.call("Cluster_host.get_all", session=s), *c.call("pool.get_all", session=s)]
        by_param = {"node": self.nodes, "destination": self.nodes, "group": ["fuzz-sandbox", "fuzz-other"],
                    "resource": ["fuzz-sandbox-r", "fuzz-other-r"], "depends_on": ["fuzz-other-r"],
                    "type": ["dummy"], "uname": ["admin", "reader"], "model": ["primary-backup"]}
        return {n: Known(refs=refs, sessions=sessions[n], by_param=by_param) for n in self.nodes}

    # -- looking at the target ----------------------------------------------------------------
    def status(self, node):
        control = self.control[node]
        if time.monotonic() - control.used >= limits.IDLE_TIMEOUT / 2:  # the node closes an idle one:
            control.close()  # a new connection (the session is the node's, not the connection's)
        return control.call("Node.status", session=self.admin[node])

    def rejected(self):
        """Heartbeat datagrams every node rejected so far, in all."""
        return sum(sum(self.status(n)["heartbeat_rejected"].values()) for n in self.nodes)

    def alive(self, node):
        """None if the node lives and answers; else what is wrong."""
        try:
            if psutil.Process(self.pids[node]).status() == psutil.STATUS_ZOMBIE:
                return "its process is gone"
        except psutil.NoSuchProcess:
            return "its process is gone"
        try:
            self.status(node)
        except (ConnectionError, OSError) as e:
            self.control[node].close()
            return f"Node.status not answered: {e}"
        return None

    def _quiet_hash(self, node, limit=5.0):
        """The node's state_hash once it stays put for a moment (background writes done)."""
        end, last = time.monotonic() + limit, self.status(node)["state_hash"]
        while time.monotonic() < end:
            time.sleep(0.3)
            now = self.status(node)["state_hash"]
            if now == last:
                return now
            last = now
        return last

    # -- sending --------------------------------------------------------------------------------
    def send(self, node, inp):
        """(refused, answer label, seconds)."""
        t0 = time.monotonic()
        if inp.door == "msgpack":
            resp = self.frames[node].exchange(inp.data)
            label = resp if isinstance(resp, str) else ("ok" if "ok" in resp else str(resp.get("error", {}).get("code")))
        elif inp.door == "xmlrpc":
            resp = self.xmlrpc[node].exchange(inp.data)
            if isinstance(resp, dict) and resp.get("Status") == "Success":
                label = "ok"
            elif isinstance(resp, dict) and resp.get("ErrorDescription"):
                label = str(resp["ErrorDescription"][0])
            else:
                label = resp if isinstance(resp, str) else f"not a xapi reply: {resp!r}"[:200]
        else:
            self.udp.sendto(inp.data, self.heartbeat[node])
            label = "sent"
        return label != "ok", label, time.monotonic() - t0

    def one(self, node, inp, check=True):
        r = self.result
        r.inputs[inp.door] += 1
        refused, label, seconds = self.send(node, inp)
        r.answers[f"{inp.door}: {label if label in CODES or label in ('ok', 'sent', 'closed') else 'other'}"] += 1
        item = {"node": node, "door": inp.door, "answer": label, "input": inp.data[:2000], "call": inp.call}
        if seconds > r.slowest["seconds"]:
            r.slowest = {"seconds": seconds, "node": node, "door": inp.door, "answer": label,
                         "input": repr(inp.data[:300])}
        if label == "INTERNAL_ERROR":
            r.internal_errors.append(item)
        elif label not in CODES and label not in ("ok", "sent") and not (label == "closed" and too_large(inp)):
            r.unanswered.append(item)
        if check:
            self.check(node, inp, refused, item)

    def check(self, node, inp, refused, item):
        wrong = self.alive(node)
        if wrong:
            self.result.crashes.append({**item, "wrong": wrong})
            raise RuntimeError(f"{node}: {wrong} after {item['door']} input {item['input'][:200]!r}")
        before, after = self.hashes[node], self.status(node)["state_hash"]
        self.hashes[node] = after
        if not refused or before == after:
            return
        quiet = self._quiet_hash(node)  # replay once on a quiet cluster: is it this input?
        self.send(node, Input(inp.door, inp.replayable()))
        self.hashes[node] = self.status(node)["state_hash"]
        if self.hashes[node] != quiet:
            self.result.state_changes.append(item)
        else:
            self.result.unconfirmed += 1

    def over(self):
        return self.door_deadline is not None and time.monotonic() >= self.door_deadline

    # -- the doors --------------------------------------------------------------------------------
    def run(self, counts, seed=None):
        """counts: {"msgpack": n, "xmlrpc": n, "heartbeat": n}. Stops early at the deadline; each
        door gets an equal share of the time left when its turn comes (so a slow machine still
        reaches every door)."""
        t0 = time.monotonic()
        turn = iter(range(10**12))
        strategies = {"msgpack": msgpack_inputs, "xmlrpc": xmlrpc_inputs,
                      "heartbeat": lambda _known: heartbeat_inputs(self.key, self.nodes)}
        try:
            for i, (door, count) in enumerate(counts.items()):
                if self.deadline is not None:
                    now = time.monotonic()
                    self.door_deadline = now + max(0.0, self.deadline - now) / (len(counts) - i)
                for k, node in enumerate(self.nodes):  # a node at a time: its sessions are its own
                    def body(inp, node=node, door=door):
                        if self.over() or self.stopped:
                            return
                        try:
                            self.one(node, inp, check=door != "heartbeat" or next(turn) % HEARTBEAT_BATCH == 0)
                        except Exception as e:  # kept short: hypothesis would print the whole input
                            self.stopped = f"{type(e).__name__}: {e}"[:1000]
                    share = count // len(self.nodes) + (k < count % len(self.nodes))
                    if share:
                        each(strategies[door](self.known[node]), share, body, seed,
                             over=lambda: self.over() or self.stopped)
                    if self.stopped:
                        raise RuntimeError(f"the campaign stopped: {self.stopped}")
            for node in self.nodes:  # at the end: everybody lives, and still sees everybody
                wrong = self.alive(node) or (None if self.status(node)["live_hosts"] == len(self.nodes)
                                             else "does not see every node live")
                if wrong:
                    self.result.crashes.append({"node": node, "door": "end", "wrong": wrong})
            self.result.heartbeats_rejected = self.rejected() - self.rejected_before
        finally:
            self.result.seconds = time.monotonic() - t0
            self.close()
        return self.result

    def close(self):
        for conns in (self.control, self.frames, self.xmlrpc):
            for c in conns.values():
                c.close()
        self.udp.close()


def split(total, weights=(("msgpack", 5), ("xmlrpc", 3), ("heartbeat", 2))):
    """total inputs divided between the doors by weight."""
    s = sum(w for _, w in weights)
    counts = {d: total * w // s for d, w in weights}
    counts[weights[0][0]] += total - sum(counts.values())
    return counts

