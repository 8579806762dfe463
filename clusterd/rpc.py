"""The method table every interface dispatches through, with its checks.

A method declares its name ("Class.method"), minimum role, parameters with types, and
whether it needs a session. dispatch() checks, in order: the method exists, the argument
count, the session, the role, each argument's type; only then does the method run. Every
refusal is a ClusterError and changes nothing.
"""
import math
from dataclasses import dataclass

from . import auth, domain_methods, group_methods, methods, move_methods
from .errors import ClusterError
from .method import Method, method_table

MAX_STRING = 64 * 1024
MIN_INT, MAX_INT = -2**63, 2**64 - 1
MAX_MAP_ITEMS = 1024


# every module with methods is named here, so that importing rpc alone serves every method
METHODS: dict[str, Method] = method_table(domain_methods, group_methods, methods, move_methods)


def _is_str(v):
    return isinstance(v, str) and len(v) <= MAX_STRING


def _plain(v, depth=0):
    """Plain data a resource agent may take: scalars, lists and string-keyed maps, bounded."""
    if v is None or isinstance(v, (bool, float)):
        return True
    if isinstance(v, int):
        return MIN_INT <= v <= MAX_INT
    if isinstance(v, str):
        return len(v) <= MAX_STRING
    if depth >= 4:
        return False
    if isinstance(v, list):
        return len(v) <= MAX_MAP_ITEMS and all(_plain(x, depth + 1) for x in v)
    if isinstance(v, dict):
        return len(v) <= MAX_MAP_ITEMS and all(_is_str(k) and _plain(x, depth + 1) for k, x in v.items())
    return False


CHECKS = {
    "string": _is_str,
    "ref": _is_str,
    # what the log and msgpack carry (XML-RPC carries ints of any size); NaN and infinities
    # are no quantity (a NaN deadline is never reached)
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool) and MIN_INT <= v <= MAX_INT,
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    and abs(v) <= MAX_INT,
    "bool": lambda v: isinstance(v, bool),
    "map": lambda v: isinstance(v, dict) and len(v) <= MAX_MAP_ITEMS
    and all(_is_str(k) and _is_str(x) for k, x in v.items()),
    "string_set": lambda v: isinstance(v, list) and len(v) <= MAX_MAP_ITEMS and all(_is_str(x) for x in v),
    "nullable_string": lambda v: v is None or _is_str(v),
    "properties": lambda v: isinstance(v, dict) and _plain(v),
}


@dataclass
class Call:
    node: object
    session: dict  # {"user", "role"} or None
    session_ref: str
    rid: str = None
    exit_request: str = None  # set when the caller runs as an exit program (its CLUSTERD_REQUEST)

    def answered(self):
        """A retry of a request already applied: its write returns the first result, so what a
        method reads to prepare that write (and may be gone since) is neither needed nor checked."""
        return self.rid is not None and self.node.first_result(self.rid) is not None


def is_login(method_name):
    """A method that needs no session: one that makes one (session.login_with_password...)."""
    m = METHODS.get(method_name) if isinstance(method_name, str) else None
    return m is not None and not m.session


async def dispatch(node, method_name, args, session_ref=None, rid=None, exit_request=None):
    m = METHODS.get(method_name) if isinstance(method_name, str) else None
    if m is None:
        raise ClusterError("MESSAGE_METHOD_UNKNOWN", method_name)
    if not isinstance(args, list):
        raise ClusterError("FIELD_TYPE_ERROR", "args", message="args must be a list")
    if len(args) != len(m.params):
        raise ClusterError("MESSAGE_PARAMETER_COUNT_MISMATCH", m.name, len(m.params), len(args))
    session = None
    if m.session:
        session = node.sessions.get(session_ref)
        if session is None:
            raise ClusterError("SESSION_INVALID", session_ref if isinstance(session_ref, str) else "")
        if auth.rank(session["role"]) < auth.rank(m.role):
            raise ClusterError("RBAC_PERMISSION_DENIED", m.name, m.role)
    for (pname, ptype), value in zip(m.params, args):
        if not CHECKS[ptype](value):
            raise ClusterError("FIELD_TYPE_ERROR", pname, message=f"{pname} must be a {ptype}")
    return await m.fn(Call(node, session, session_ref, rid, exit_request), *args)
