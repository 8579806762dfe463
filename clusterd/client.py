"""Python clients of the clusterd API, sync and async.

    c = Client("127.0.0.1:7301", "admin", "secret")
    ref = c.Cluster.get_all()[0]
    c.Cluster.add_to_other_config(ref, "k", "v")

Every call carries a request id; a write answered CLUSTER_WRITE_UNKNOWN (not confirmed in
time) is retried with the same id, so it applies once. An expired session logs in again.

A client made inside an exit program (CLUSTERD_REQUEST in its environment, exitprog.py) passes
that request handle on in every call ("exit_request"), so that the daemon can refuse what an
exit program may not call (the recovery-domain APIs, as IBM's CRG APIs).
"""
import asyncio
import itertools
import os
import socket
import uuid

from . import wire
from .errors import ClusterError

RETRY_CODES = ("CLUSTER_WRITE_UNKNOWN",)


def _address(addr):
    host, port = addr.rsplit(":", 1)
    return host, int(port)


def _result(resp):
    if "error" in resp:
        raise ClusterError.from_wire(resp["error"])
    return resp.get("ok")


def _settled(resp, uncertain):
    """The result; after an attempt that may have committed, a refusal of the retry (not quorate,
    or a precheck that sees the first attempt's effect) does not say it did not happen."""
    if uncertain and "error" in resp and resp["error"].get("code") not in RETRY_CODES:
        raise ClusterError("CLUSTER_WRITE_UNKNOWN", f"a retry was refused with {resp['error'].get('code')}")
    return _result(resp)


class _Proxy:
    def __init__(self, call, prefix):
        self._call, self._prefix = call, prefix

    def __getattr__(self, name):
        return lambda *args, **kw: self._call(f"{self._prefix}.{name}", *args, **kw)


def exit_request_from_environment():
    """The request handle an exit program runs for (CLUSTERD_REQUEST), or None."""
    return os.environ.get("CLUSTERD_REQUEST") or None


def _frame(method, args, session, rid, exit_request):
    req = {"method": method, "args": list(args), "session": session, "rid": rid}
    if exit_request:
        req["exit_request"] = exit_request
    return req


class Client:
    def __init__(self, address, user=None, password=None, timeout=10.0, retries=2, exit_request=None):
        self.address, self.user, self.password = address, user, password
        self.timeout, self.retries = timeout, retries
        self.exit_request = exit_request or exit_request_from_environment()
        self.session = None
        self._sock = None
        self._ids = itertools.count(1)
        self._buf = b""

    def __getattr__(self, name):
        if name[:1].isupper():
            return _Proxy(self.call, name)
        raise AttributeError(name)

    def connect(self):
        if self._sock is None:
            self._sock = socket.create_connection(_address(self.address), timeout=self.timeout)
        return self

    def close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self):
        return self.connect()

    def __exit__(self, *exc):
        self.close()

    def request(self, req):
        """Send one raw request map; return the raw response map."""
        self.connect()
        req.setdefault("id", next(self._ids))
        try:
            self._sock.sendall(wire.encode(req))
            header = self._recv(wire.HEADER.size)
            (length,) = wire.HEADER.unpack(header)
            return wire.decode(self._recv(length))
        except (OSError, ValueError):
            self.close()
            raise

    def _recv(self, n):
        chunks = []
        while n:
            chunk = self._sock.recv(n)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def login(self):
        self.session = _result(self.request({"method": "session.login_with_password",
                                             "args": [self.user, self.password]}))
        return self.session

    def call(self, method, *args, rid=None):
        if self.session is None and self.user is not None and method != "session.login_with_password":
            self.login()
        rid = rid or str(uuid.uuid4())
        uncertain = False  # an earlier attempt may have committed
        for attempt in range(self.retries + 1):
            resp = self.request(_frame(method, args, self.session, rid, self.exit_request))
            err = resp.get("error")
            if err and err.get("code") == "SESSION_INVALID" and self.user is not None and attempt < self.retries:
                self.login()
                continue
            if err and err.get("code") in RETRY_CODES and attempt < self.retries:
                uncertain = True
                continue
            return _settled(resp, uncertain)


class AsyncClient:
    """Pipelined: many calls may be in flight on one connection."""

    def __init__(self, address, user=None, password=None, timeout=10.0, retries=2, exit_request=None):
        self.address, self.user, self.password = address, user, password
        self.timeout, self.retries = timeout, retries
        self.exit_request = exit_request or exit_request_from_environment()
        self.session = None
        self._ids = itertools.count(1)
        self._waiting = {}
        self._writer = self._task = None
        self._lock = self._login_lock = None  # made on first use, on the caller's loop

    def __getattr__(self, name):
        if name[:1].isupper():
            return _Proxy(self.call, name)
        raise AttributeError(name)

    async def connect(self):
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:
            if self._writer is None:
                host, port = _address(self.address)
                reader, self._writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port, limit=wire.MAX_FRAME + 16), self.timeout)
                self._task = asyncio.ensure_future(self._read_loop(reader))
        return self

    async def close(self):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def __aenter__(self):
        return await self.connect()

    async def __aexit__(self, *exc):
        await self.close()

    async def _read_loop(self, reader):
        try:
            while True:
                (length,) = wire.HEADER.unpack(await reader.readexactly(wire.HEADER.size))
                resp = wire.decode(await reader.readexactly(length))
                fut = self._waiting.pop(resp.get("id"), None)
                if fut is not None and not fut.done():
                    fut.set_result(resp)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            for fut in self._waiting.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("the connection to clusterd closed"))
            self._waiting.clear()
            self._writer = None

    async def request(self, req):
        await self.connect()
        req_id = next(self._ids)
        req["id"] = req_id
        fut = asyncio.get_running_loop().create_future()
        self._waiting[req_id] = fut
        self._writer.write(wire.encode(req))
        try:
            return await asyncio.wait_for(fut, self.timeout)
        finally:
            self._waiting.pop(req_id, None)

    async def login(self):
        self.session = _result(await self.request({"method": "session.login_with_password",
                                                   "args": [self.user, self.password]}))
        return self.session

    async def call(self, method, *args, rid=None):
        if self.session is None and self.user is not None:
            self._login_lock = self._login_lock or asyncio.Lock()
            async with self._login_lock:  # one login for many concurrent first calls
                if self.session is None:
                    await self.login()
        rid = rid or str(uuid.uuid4())
        uncertain = False  # an earlier attempt may have committed
        for attempt in range(self.retries + 1):
            resp = await self.request(_frame(method, args, self.session, rid, self.exit_request))
            err = resp.get("error")
            if err and err.get("code") == "SESSION_INVALID" and self.user is not None and attempt < self.retries:
                await self.login()
                continue
            if err and err.get("code") in RETRY_CODES and attempt < self.retries:
                uncertain = True
                continue
            return _settled(resp, uncertain)
