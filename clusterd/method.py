"""What a module of API methods needs: rpc(), which declares a method (its name "Class.method",
minimum role, typed parameters, whether it needs a session) as part of the module defining it,
and require(). rpc.METHODS is the table of the methods of the modules rpc names (method_table)."""
from dataclasses import dataclass

from . import auth
from .errors import ClusterError


@dataclass
class Method:
    name: str
    fn: object
    role: str
    params: tuple
    session: bool


_DECLARED = {}  # module name -> {method name: Method}, in the order declared


def rpc(name, *, role="read-only", params=(), session=True):
    def deco(fn):
        own = _DECLARED.setdefault(fn.__module__, {})
        if name in own:
            raise ValueError(f"{fn.__module__} declares {name!r} twice")
        own[name] = Method(name, fn, role, tuple(params), session)
        return fn
    return deco


def require(call, role, method, why):
    """Refuse, as dispatch() does, a call whose arguments need more than the method's role."""
    if auth.rank(call.session["role"]) < auth.rank(role):
        raise ClusterError("RBAC_PERMISSION_DENIED", method, role, message=f"{why}: {role} only")


def method_table(*modules):
    """{name: Method} of the methods the (imported) `modules` declare; a name declared by two
    of them is an error."""
    table = {}
    for module in modules:
        for name, m in _DECLARED.get(module.__name__, {}).items():
            if name in table:
                raise ValueError(f"{name!r} is declared by {table[name].fn.__module__} and {module.__name__}")
            table[name] = m
    return table
