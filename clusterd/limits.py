"""Connection limits of the client-facing servers (server.py, xapi.py).

An unauthenticated connection (no request with a live session yet, no successful login) is
closed LOGIN_TIMEOUT seconds after it was accepted; an authenticated one after IDLE_TIMEOUT
seconds without a request (never while one of its requests is being answered). Each server
admits at most caps()[0] connections in total and caps()[1] from one source address, both
well below the descriptor limit, whose soft value the daemon raises to the hard one at start.
"""
import resource

LOGIN_TIMEOUT = 5.0
IDLE_TIMEOUT = 600.0
MAX_TOTAL = 4096  # per server
MAX_PER_SOURCE = 256
BACKLOG = 1024  # accepted but not yet taken connections (the kernel caps it at somaxconn)
FD_SHARE = 4  # each server may use at most 1/FD_SHARE of the descriptors


def caps(nofile=None):
    """(total, per source) for one server, given the soft descriptor limit."""
    if nofile is None:
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    total = max(1, min(MAX_TOTAL, nofile // FD_SHARE))
    return total, max(1, min(MAX_PER_SOURCE, total // 4))


def raise_nofile():
    """Raise the soft descriptor limit to the hard one; return the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


class Gate:
    """Admission of one server's connections: at most `total` open, `per_source` from one address."""

    def __init__(self, total=None, per_source=None):
        default_total, default_per_source = caps()
        self.total = total or default_total
        self.per_source = per_source or default_per_source
        self.by_source = {}
        self.open = 0
        self.refused = 0
        self.timed_out = 0

    def admit(self, source):
        n = self.by_source.get(source, 0)
        if self.open >= self.total or n >= self.per_source:
            self.refused += 1
            return False
        self.by_source[source] = n + 1
        self.open += 1
        return True

    def release(self, source):
        self.open -= 1
        n = self.by_source.pop(source) - 1
        if n:
            self.by_source[source] = n

    def stats(self):
        return {"open": self.open, "cap": self.total, "per_source_cap": self.per_source,
                "refused": self.refused, "timed_out": self.timed_out}


def source_of(transport):
    peer = transport.get_extra_info("peername")
    return peer[0] if isinstance(peer, tuple) and peer else str(peer)
