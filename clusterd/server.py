"""The client API server: asyncio streams, one task per request, responses by id.

Hostile input is answered, not obeyed: an oversized frame gets FRAME_TOO_LARGE and the
connection is closed (its stream cannot be resynchronised); bytes that are not a msgpack map
with a method get MALFORMED_REQUEST and the connection goes on. Nothing of either reaches
the database, and other clients never notice.

Connections are bounded (limits.py): a cap in total and per source address, a login
deadline for a connection that has not authenticated (a request with a live session, or a
successful login), an idle timeout for one that has.
"""
import asyncio
import logging

from . import limits, rpc, wire
from .errors import ClusterError

log = logging.getLogger("clusterd.server")

MAX_IN_FLIGHT = 4096  # per connection
MAX_RID = 128


class Connection:
    def __init__(self, loop):
        self.login_deadline = loop.time() + limits.LOGIN_TIMEOUT
        self.authenticated = False
        self.in_flight = set()

    def timeout(self, loop):
        """Seconds the next read may wait for its bytes."""
        return limits.IDLE_TIMEOUT if self.authenticated else max(self.login_deadline - loop.time(), 0.0)


def _error_frame(req_id, err):
    return wire.encode({"id": req_id, "error": err.to_wire()})


class Server:
    def __init__(self, node, gate):
        self.node = node
        self.gate = gate

    async def handle(self, reader, writer):
        source = limits.source_of(writer.transport)
        if not self.gate.admit(source):
            writer.transport.abort()
            return
        conn = Connection(asyncio.get_running_loop())
        try:
            while True:
                header = await self._read(reader, wire.HEADER.size, conn)
                if header is None:
                    return
                (length,) = wire.HEADER.unpack(header)
                if length > wire.MAX_FRAME:
                    writer.write(_error_frame(None, ClusterError(
                        "FRAME_TOO_LARGE", length, wire.MAX_FRAME)))
                    await writer.drain()
                    return
                body = await self._read(reader, length, conn)
                if body is None:
                    return
                while len(conn.in_flight) >= MAX_IN_FLIGHT:
                    await asyncio.wait(conn.in_flight, return_when=asyncio.FIRST_COMPLETED)
                task = asyncio.ensure_future(self._answer(body, writer, conn))
                conn.in_flight.add(task)
                task.add_done_callback(conn.in_flight.discard)
        except ConnectionError:
            return
        finally:
            self.gate.release(source)
            for task in conn.in_flight:
                task.cancel()
            writer.close()

    async def _read(self, reader, n, conn):
        """n bytes; None at the end of the stream, or when the login deadline or the idle
        timeout has passed with no request of this connection being answered."""
        loop = asyncio.get_running_loop()
        while True:
            was_authenticated = conn.authenticated
            try:
                return await asyncio.wait_for(reader.readexactly(n), conn.timeout(loop))
            except asyncio.IncompleteReadError:
                return None
            except asyncio.TimeoutError:  # readexactly consumed nothing: the bytes stay buffered
                if conn.in_flight:  # a login, or a long call (Operation.wait), still being answered
                    await asyncio.wait(conn.in_flight)
                    if conn.authenticated:
                        continue
                elif conn.authenticated and not was_authenticated:  # logged in meanwhile
                    continue
                self.gate.timed_out += 1
                return None

    async def _answer(self, body, writer, conn):
        req_id = None
        try:
            try:
                req = wire.decode(body)
            except Exception:
                raise ClusterError("MALFORMED_REQUEST", message="the frame is not valid msgpack") from None
            if not isinstance(req, dict) or not isinstance(req.get("method"), str):
                raise ClusterError("MALFORMED_REQUEST", message="a request is a map with a string 'method'")
            req_id = req.get("id") if isinstance(req.get("id"), (int, str)) else None
            rid = req.get("rid")
            if rid is not None and not (isinstance(rid, str) and 0 < len(rid) <= MAX_RID):
                raise ClusterError("FIELD_TYPE_ERROR", "rid", message=f"rid must be a string of 1-{MAX_RID} characters")
            exit_request = req.get("exit_request")  # the request an exit program runs for (exitprog.py)
            if exit_request is not None and not (isinstance(exit_request, str) and len(exit_request) <= MAX_RID):
                raise ClusterError("FIELD_TYPE_ERROR", "exit_request",
                                   message=f"exit_request must be a string of at most {MAX_RID} characters")
            if self.node.sessions.get(req.get("session")) is not None:
                conn.authenticated = True
            value = await rpc.dispatch(self.node, req["method"], req.get("args", []), req.get("session"), rid,
                                       exit_request or None)
            conn.authenticated = conn.authenticated or rpc.is_login(req["method"])
            frame = wire.encode({"id": req_id, "ok": value})
        except ClusterError as e:
            frame = _error_frame(req_id, e)
        except Exception as e:  # a bug: report it, keep serving
            log.exception("request failed")
            frame = _error_frame(req_id, ClusterError("INTERNAL_ERROR", message=repr(e)))
        if not writer.is_closing():
            writer.write(frame)
            try:
                await writer.drain()
            except ConnectionError:
                pass


async def start(node, address, gate):
    host, port = address.rsplit(":", 1)
    server = Server(node, gate)
    return await asyncio.start_server(server.handle, host, int(port), limit=wire.MAX_FRAME + 16,
                                      backlog=limits.BACKLOG)
