"""What a module of command handlers needs: ok() for a result, @handler, which declares a
handler as part of the module defining it, and first() to combine preconditions. db.HANDLERS is
the table of the handlers of the modules db names (handler_table)."""


def ok(value=None):
    return {"ok": value}


_DECLARED = {}  # module name -> {op: (needs, handler)}


def handler(op, needs=None):
    """Declare fn the handler of `op`; `needs(state, cmd)` returns a failure when the command
    cannot apply. apply() checks it first, and Node.write checks it against the local state
    before submitting, so a write that is bound to be refused never takes a log entry."""
    def deco(fn):
        own = _DECLARED.setdefault(fn.__module__, {})
        if op in own:
            raise ValueError(f"{fn.__module__} declares a handler of {op!r} twice")
        own[op] = (needs, fn)
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
    """{op: (needs, fn)} of the handlers the (imported) `modules` declare; an op handled by two
    of them is an error."""
    table = {}
    for module in modules:
        for op, entry in _DECLARED.get(module.__name__, {}).items():
            if op in table:
                raise ValueError(f"{op!r} is handled by {table[op][1].__module__} and {module.__name__}")
            table[op] = entry
    return table
