"""The client API server: asyncio streams, one task per request, responses by id.

Hostile input is answered, not obeyed: an oversized frame gets FRAME_TOO_LARGE and the
connection is closed (its stream cannot be resynchronised); bytes that are not a msgpack map
with a method get MALFORMED_REQUEST and the connection goes on. Nothing of either reaches
the database, and other clients never notice.
"""
import asyncio
import logging

from . import rpc, wire
from .errors import ClusterError

log = logging.getLogger("clusterd.server")

MAX_CONNECTIONS = 1024
MAX_IN_FLIGHT = 4096  # per connection
MAX_RID = 128


def _error_frame(req_id, err):
    return wire.encode({"id": req_id, "error": err.to_wire()})


class Server:
    def __init__(self, node):
        self.node = node
        self.connections = 0

    async def handle(self, reader, writer):
        if self.connections >= MAX_CONNECTIONS:
            writer.close()
            return
        self.connections += 1
        in_flight = set()
        try:
            while True:
                try:
                    header = await reader.readexactly(wire.HEADER.size)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                (length,) = wire.HEADER.unpack(header)
                if length > wire.MAX_FRAME:
                    writer.write(_error_frame(None, ClusterError(
                        "FRAME_TOO_LARGE", length, wire.MAX_FRAME)))
                    await writer.drain()
                    return
                try:
                    body = await reader.readexactly(length)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                while len(in_flight) >= MAX_IN_FLIGHT:
                    await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                task = asyncio.ensure_future(self._answer(body, writer))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
        finally:
            self.connections -= 1
            for task in in_flight:
                task.cancel()
            writer.close()

    async def _answer(self, body, writer):
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
            value = await rpc.dispatch(self.node, req["method"], req.get("args", []), req.get("session"), rid,
                                       exit_request or None)
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


async def start(node, address):
    host, port = address.rsplit(":", 1)
    server = Server(node)
    return await asyncio.start_server(server.handle, host, int(port), limit=wire.MAX_FRAME + 16)
