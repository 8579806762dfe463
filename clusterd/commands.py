"""What a module of command handlers needs: ok() for a result, the @handler marker and first()
to combine preconditions. db.HANDLERS is the table of every marked handler of the modules
db names (handler_table)."""


def ok(value=None):
    return {"ok": value}


def handler(op, needs=None):
    """Mark fn as the handler of `op`; `needs(state, cmd)` returns a failure when the command
    cannot apply. apply() checks it first, and Node.write checks it against the local state
    before submitting, so a write that is bound to be refused never takes a log entry."""
    def deco(fn):
        fn.handles = (op, needs)
        return fn
    return deco


def first(*checks):
    """A precondition made of several: the first failure among them, or None."""
    def needs(state, cmd):
        for check in checks:
            refused = check(state, cmd)
            if refused:
                return refused
        return None
    return needs


def handler_table(*modules):
    """{op: (needs, fn)} of the handlers defined in `modules`; an op handled twice is an error."""
    table = {}
    for module in modules:
        for fn in vars(module).values():
            if callable(fn) and hasattr(fn, "handles") and fn.__module__ == module.__name__:
                op, needs = fn.handles
                if op in table:
                    raise ValueError(f"two handlers of {op!r}: {table[op][1].__qualname__} and {fn.__qualname__}")
                table[op] = (needs, fn)
    return table
