"""What a module of command handlers needs: ok() for a result, @handler, which declares a
handler as part of the module defining it, and first() to combine preconditions. db.HANDLERS is
the table of the handlers of the modules db names (handler_table)."""
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar

from .declare import Declarations
from .schema import Command, Result, State

Needs = Callable[[State, Command], Result | None]  # a precondition: the failure, or None
Handler = Callable[[State, Command], Result]
F = TypeVar("F", bound=Handler)

_DECLARED: Declarations[tuple[Needs | None, Handler]] = Declarations("handler of")


def ok(value: Any = None) -> Result:
    return {"ok": value}


def pending(handle: str | None = None) -> Result:
    """The result of a command whose work goes on after it (ERROR_IO_PENDING, 0x3E5): the handle
    to follow it by, when it has one."""
    return ok({"status": "ERROR_IO_PENDING", "code": 0x3E5, **({"handle": handle} if handle is not None else {})})


def handler(op: str, needs: Needs | None = None) -> Callable[[F], F]:
    """Declare fn the handler of `op`; `needs(state, cmd)` returns a failure when the command
    cannot apply. apply() checks it first, and Node.write checks it against the local state
    before submitting, so a write that is bound to be refused never takes a log entry."""
    def deco(fn: F) -> F:
        _DECLARED.declare(fn.__module__, op, (needs, fn))
        return fn
    return deco


def first(*checks: Needs) -> Needs:
    """A precondition made of several: the first failure among them, or None."""
    def needs(state: State, cmd: Command) -> Result | None:
        for check in checks:
            refused = check(state, cmd)
            if refused:
                return refused
        return None
    return needs


def handler_table(*modules: ModuleType) -> dict[str, tuple[Needs | None, Handler]]:
    """{op: (needs, fn)} of the handlers the (imported) `modules` declare."""
    return _DECLARED.table(*modules)
