"""The client wire: 4-byte big-endian length, then one msgpack map.

Request:  {"id": int, "method": "Class.method", "args": [...], "session": ref?, "rid": str?}
Response: {"id": int, "ok": value} or {"id": int, "error": {code, number, message, params}}
"rid" is the request id that makes a retried write apply once; the server makes one if absent.
"""
import struct

import msgpack

HEADER = struct.Struct(">I")
MAX_FRAME = 1024 * 1024


def encode(obj):
    body = msgpack.packb(obj, use_bin_type=True)
    return HEADER.pack(len(body)) + body


def decode(body):
    return msgpack.unpackb(body, raw=False, strict_map_key=False)
