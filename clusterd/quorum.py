"""Quorum arithmetic: pure functions of what membership measured."""


def effective_token(token_timeout, coefficient, n_members):
    """corosync: token + max(0, n - 2) * token_coefficient."""
    return float(token_timeout) + max(0, n_members - 2) * float(coefficient)


def quorum(expected_votes, total_votes):
    """votequorum: max(floor((expected + 2) / 2), floor((total + 2) / 2))."""
    return max((expected_votes + 2) // 2, (total_votes + 2) // 2)


def live_members(last_heard, now, token, self_name):
    """Members heard within the token, plus this node itself."""
    return sorted({name for name, t in last_heard.items() if now - t <= token} | {self_name})


def view(members, votes, live, expected_votes=None):
    """The quorum view from the live set: votes are per member (default 1)."""
    expected = expected_votes if expected_votes is not None else sum(votes.get(m, 1) for m in members)
    live_votes = sum(votes.get(m, 1) for m in live if m in members)
    q = quorum(expected, live_votes)
    return {
        "live": list(live),
        "live_hosts": len([m for m in live if m in members]),
        "expected_votes": expected,
        "total_votes": live_votes,
        "quorum": q,
        "is_quorate": live_votes >= q,
    }
