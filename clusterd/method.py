"""What a module of API methods needs: rpc(), which declares a method (its name "Class.method",
minimum role, typed parameters, whether it needs a session) as part of the module defining it,
and require(). rpc.METHODS is the table of the methods of the modules rpc names (method_table)."""
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar

from . import auth
from .declare import Declarations
from .errors import ClusterError


@dataclass
class Method:
    name: str
    fn: Callable[..., Awaitable[Any]]
    role: str
    params: tuple[tuple[str, str], ...]  # (name, type) each; the types are rpc.CHECKS'
    session: bool


F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
_DECLARED: Declarations[Method] = Declarations("method")


def rpc(name: str, *, role: str = "read-only", params: tuple[tuple[str, str], ...] = (),
        session: bool = True) -> Callable[[F], F]:
    def deco(fn: F) -> F:
        _DECLARED.declare(fn.__module__, name, Method(name, fn, role, tuple(params), session))
        return fn
    return deco


def require(call: Any, role: str, method: str, why: str) -> None:
    """Refuse, as dispatch() does, a call whose arguments need more than the method's role."""
    if auth.rank(call.session["role"]) < auth.rank(role):
        raise ClusterError("RBAC_PERMISSION_DENIED", method, role, message=f"{why}: {role} only")


def method_table(*modules: ModuleType) -> dict[str, Method]:
    """{name: Method} of the methods the (imported) `modules` declare."""
    return _DECLARED.table(*modules)
