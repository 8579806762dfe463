"""The XenAPI endpoint: xapi's XML-RPC wire over HTTP, translated onto the one method table.

The official SDK (`XenAPI.Session("http://HOST:PORT/")`) posts to /RPC2 when its URL has no
path; / and /RPC2 are both served. A call is `Class.method(session_ref, args...)`: the session
ref comes off the front and the rest goes through rpc.dispatch like every other interface's
call, with xapi's wire conventions on the way in and out:

- every reply is a methodResponse holding {"Status": "Success", "Value": v} or
  {"Status": "Failure", "ErrorDescription": [CODE, params...]}: never a fault, never nil;
- ints travel as strings (xapi's Int64); an "int" or "float" parameter also accepts a numeric
  string; floats stay doubles; None goes out as "" (void results already are "");
- the float unix times the database keeps (last_update_live, a task's created/finished) go out
  as dateTime.iso8601 YYYYMMDDTHH:MM:SSZ;
- session.login_with_password takes 2 to 4 arguments (version and originator must be strings
  and are otherwise ignored); Async.<Class>.<message> starts a task and returns its ref, and
  the task's result is the value's XML, as xapi keeps it.

Hostile bodies are answered, not obeyed: a body over MAX_BODY is refused unread, a DTD or an
entity declaration is refused while parsing (no entity expansion), and a large body is parsed
on a worker thread so that the event loop (membership, Raft replies) keeps its pace.

Connections are bounded as the msgpack server's are (limits.py): a cap in total and per
source address, a login deadline until a call carries a live session or a login succeeds
(a call being answered holds it off), then HTTP keep-alive's idle timeout.
"""
import asyncio
import concurrent.futures
import logging
import math
import re
import time
import xmlrpc.client
from pyexpat import ParserCreate

from aiohttp import web

from . import auth, limits, rpc
from .errors import ClusterError

log = logging.getLogger("clusterd.xapi")

MAX_BODY = 1024 * 1024
PARSE_INLINE = 16 * 1024  # bodies above this many bytes are parsed off the event loop
PATHS = ("/", "/RPC2")
LOGIN = "session.login_with_password"
DATETIME_FIELDS = frozenset({"last_update_live", "created", "finished"})
# xapi's asynchronous messages of the classes we serve (the generated getters and setters are not)
ASYNC = frozenset(
    [f"Cluster.{m}" for m in ("create", "destroy", "get_network", "pool_create", "pool_destroy",
                              "pool_force_destroy", "pool_resync")]
    + [f"Cluster_host.{m}" for m in ("create", "destroy", "enable", "disable", "force_destroy", "forget")])
MAX_ECHO = 200  # how much of an unknown method name an error repeats

_INT = re.compile(r"[+-]?[0-9]{1,19}")
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{1,3})?")
_NOT_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


# -- values in and out ------------------------------------------------------------------------
def from_wire(value, ptype):
    """An argument as the method table declares it: numeric strings become numbers."""
    if isinstance(value, str) and len(value) <= 64:
        if ptype == "int" and _INT.fullmatch(value):
            return int(value)
        if ptype == "float" and _FLOAT.fullmatch(value):
            return float(value)
    return value  # anything else is dispatch's to check


def to_wire(value, key=None):
    """A result in xapi's conventions; `key` is the field the value is (for the times)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return value
    if key in DATETIME_FIELDS and isinstance(value, (int, float)):
        return xmlrpc.client.DateTime(time.strftime("%Y%m%dT%H:%M:%SZ", time.gmtime(value)))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {to_wire(str(k)): to_wire(v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_wire(v) for v in value]
    return _NOT_XML.sub("\ufffd", value if isinstance(value, str) else str(value))


def _field_of(method):
    """The field a generated getter returns ("Cluster_host.get_last_update_live" -> ...)."""
    message = method.rsplit(".", 1)[-1]
    return message[4:] if message.startswith("get_") else None


def value_xml(value):
    """A wire value as one XML-RPC <value> element: what xapi keeps as a task's result."""
    if value == "":
        return ""
    xml = xmlrpc.client.dumps((value,), allow_none=False)
    return xml[xml.index("<value>"):xml.rindex("</value>") + len("</value>")]


# -- calls ------------------------------------------------------------------------------------
def _prepare(name, params):
    """The table's method, the session ref and the converted arguments of one xapi call."""
    if name == LOGIN and 2 <= len(params) <= 4:
        if not all(isinstance(p, str) and len(p) <= rpc.MAX_STRING for p in params[2:]):
            raise ClusterError("FIELD_TYPE_ERROR", "version", message="version and originator must be strings")
        params = params[:2]
    m = rpc.METHODS.get(name)
    if m is None:
        raise ClusterError("MESSAGE_METHOD_UNKNOWN", name[:MAX_ECHO])
    expected = len(m.params) + (1 if m.session else 0)
    if len(params) != expected:
        raise ClusterError("MESSAGE_PARAMETER_COUNT_MISMATCH", name, expected, len(params))
    session_ref, args = (params[0], params[1:]) if m.session else (None, params)
    return m, session_ref, [from_wire(a, ptype) for a, (_, ptype) in zip(args, m.params)]


async def call(node, name, params):
    """One xapi call: its Value on success, else a ClusterError."""
    if name.startswith("Async."):
        return _start_task(node, name[len("Async."):], params)
    _, session_ref, args = _prepare(name, params)
    return to_wire(await rpc.dispatch(node, name, args, session_ref), _field_of(name))


def _start_task(node, name, params):
    """Refuse at once what the caller cannot do; run the rest as a task."""
    if name not in ASYNC:
        raise ClusterError("MESSAGE_METHOD_UNKNOWN", f"Async.{name}"[:MAX_ECHO])
    m, session_ref, args = _prepare(name, params)
    session = node.sessions.get(session_ref)
    if session is None:
        raise ClusterError("SESSION_INVALID", session_ref if isinstance(session_ref, str) else "")
    if auth.rank(session["role"]) < auth.rank(m.role):
        raise ClusterError("RBAC_PERMISSION_DENIED", m.name, m.role)

    async def run():
        return value_xml(to_wire(await rpc.dispatch(node, name, args, session_ref)))
    return node.tasks.start(f"Async.{name}", session["user"], run())


# -- the HTTP side ----------------------------------------------------------------------------
def _refuse_dtd(*_):
    raise ClusterError("MALFORMED_REQUEST", message="a DTD or entity declaration is not accepted")


def parse_call(body):
    """(method name, params) of an XML-RPC methodCall; MALFORMED_REQUEST for anything else."""
    target = xmlrpc.client.Unmarshaller()
    target.xml(None, None)  # expat hands over str: nothing for the Unmarshaller to decode
    parser = ParserCreate(None, None)
    parser.StartElementHandler, parser.EndElementHandler = target.start, target.end
    parser.CharacterDataHandler = target.data
    parser.StartDoctypeDeclHandler = parser.EntityDeclHandler = _refuse_dtd
    try:
        parser.Parse(body, True)
        params, name = target.close(), target.getmethodname()
    except ClusterError:
        raise
    except Exception:
        raise ClusterError("MALFORMED_REQUEST", message="the body is not an XML-RPC methodCall") from None
    if not isinstance(name, str) or not name:
        raise ClusterError("MALFORMED_REQUEST", message="the methodCall has no methodName")
    return name, list(params)


def failure(err):
    return {"Status": "Failure", "ErrorDescription": [err.code, *map(to_wire, err.params)]}


def _reply(result):
    def dumps(r):
        return xmlrpc.client.dumps((r,), methodresponse=True, allow_none=False, encoding="utf-8")
    try:
        xml = dumps(result)
    except Exception as e:  # a value to_wire let through: a bug, reported as one
        log.exception("cannot encode a reply")
        xml = dumps(failure(ClusterError("INTERNAL_ERROR", message=repr(e))))
    return web.Response(body=xml.encode(), content_type="text/xml", charset="utf-8")


class _Gated(asyncio.Protocol):
    """aiohttp's protocol for one connection, admitted by the gate and closed at its login
    deadline unless it has authenticated by then or is being answered."""

    def __init__(self, inner, gate, conns):
        self.inner, self.gate, self.conns = inner, gate, conns
        self.transport = self.source = self.timer = None
        self.authenticated = False
        self.busy = 0

    def connection_made(self, transport):
        self.source = limits.source_of(transport)
        if not self.gate.admit(self.source):
            self.source = None
            transport.abort()
            return
        self.transport = transport
        self.conns[transport] = self
        self.timer = asyncio.get_running_loop().call_later(limits.LOGIN_TIMEOUT, self._deadline)
        self.inner.connection_made(transport)

    def _deadline(self):
        if self.authenticated:
            return
        if self.busy:  # a login still being answered: look again shortly
            self.timer = asyncio.get_running_loop().call_later(0.1, self._deadline)
            return
        self.gate.timed_out += 1
        self.transport.abort()

    def connection_lost(self, exc):
        if self.source is None:
            return
        self.gate.release(self.source)
        self.conns.pop(self.transport, None)
        self.timer.cancel()
        self.inner.connection_lost(exc)

    def data_received(self, data):
        self.inner.data_received(data)

    def eof_received(self):
        return self.inner.eof_received()

    def pause_writing(self):
        self.inner.pause_writing()

    def resume_writing(self):
        self.inner.resume_writing()


class Endpoint:
    def __init__(self, node):
        self.node = node
        self.parser = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="xapi-parse")
        self.conns = {}  # transport -> _Gated

    async def handle(self, request):
        too_large = False
        conn = self.conns.get(request.transport)
        try:
            body = await self._body(request)
            if len(body) <= PARSE_INLINE:
                name, params = parse_call(body)
            else:
                name, params = await asyncio.get_running_loop().run_in_executor(self.parser, parse_call, body)
            result = {"Status": "Success", "Value": await self._call(conn, name, params)}
        except ClusterError as e:
            too_large = e.code == "FRAME_TOO_LARGE"
            result = failure(e)
        except Exception as e:  # a bug: report it, keep serving
            log.exception("XenAPI call failed")
            result = failure(ClusterError("INTERNAL_ERROR", repr(e)))
        response = _reply(result)
        if too_large:  # the rest of the body was never read: this connection cannot go on
            response.force_close()
        return response

    async def _call(self, conn, name, params):
        if conn is None:
            return await call(self.node, name, params)
        if params and self.node.sessions.get(params[0]) is not None:
            conn.authenticated = True
        conn.busy += 1
        try:
            value = await call(self.node, name, params)
        finally:
            conn.busy -= 1
        conn.authenticated = conn.authenticated or rpc.is_login(name)
        return value

    async def _body(self, request):
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise ClusterError("FRAME_TOO_LARGE", request.content_length, MAX_BODY)
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise ClusterError("FRAME_TOO_LARGE", "chunked", MAX_BODY) from None

    async def close(self, _app=None):
        self.parser.shutdown(wait=False, cancel_futures=True)


class Runner:
    def __init__(self, server, runner):
        self.server, self.runner = server, runner

    async def cleanup(self):
        self.server.close()
        await self.runner.cleanup()


async def start(node, address, gate):
    """Serve the XenAPI on HOST:PORT; returns a Runner (await runner.cleanup() to stop)."""
    host, port = address.rsplit(":", 1)
    endpoint = Endpoint(node)
    app = web.Application(client_max_size=MAX_BODY)
    for path in PATHS:
        app.router.add_post(path, endpoint.handle)
    app.on_cleanup.append(endpoint.close)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0, keepalive_timeout=limits.IDLE_TIMEOUT)
    await runner.setup()
    protocol = runner.server  # aiohttp's protocol factory, behind the gate
    server = await asyncio.get_running_loop().create_server(
        lambda: _Gated(protocol(), gate, endpoint.conns), host, int(port), reuse_address=True,
        backlog=limits.BACKLOG)
    return Runner(server, runner)
