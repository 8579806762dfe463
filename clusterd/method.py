"""What a module of API methods needs: rpc(), which declares a method (its name "Class.method",
minimum role, typed parameters, whether it needs a session) as part of the module defining it,
and require(). rpc.METHODS is the table of the methods of the modules rpc names (method_table)."""
from dataclasses import dataclass

from . import auth
from .declare import Declarations
from .errors import ClusterError


@dataclass
class Method:
    name: str
    fn: object
    role: str
    params: tuple
    session: bool


_DECLARED = Declarations("method")


def rpc(name, *, role="read-only", params=(), session=True):
    def deco(fn):
        _DECLARED.declare(fn.__module__, name, Method(name, fn, role, tuple(params), session))
        return fn
    return deco


def require(call, role, method, why):
    """Refuse, as dispatch() does, a call whose arguments need more than the method's role."""
    if auth.rank(call.session["role"]) < auth.rank(role):
        raise ClusterError("RBAC_PERMISSION_DENIED", method, role, message=f"{why}: {role} only")


def method_table(*modules):
    """{name: Method} of the methods the (imported) `modules` declare."""
    return _DECLARED.table(*modules)
