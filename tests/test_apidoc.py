"""docs/api.md against the code: the method table, the agents' properties and the error codes.

Issue 17: "The API reference lists every method with its parameters, roles and errors [...], and
every agent's properties (the dummy agent's locked, reject_move, not_now, fail_start,
start_delay, stop_delay, witness are known only from its validation errors)."
"""
import os
import re

import pytest

from clusterd import agents, apidoc, method, rpc
from clusterd.errors import CODES

DOC = os.path.join(os.path.dirname(__file__), "..", "docs", "api.md")


def text():
    with open(DOC, encoding="utf-8") as f:
        return f.read()


def test_docs_api_md_is_what_the_method_table_and_the_agents_say():
    """The generated parts of docs/api.md equal a fresh rendering: when a method, a role, a
    parameter, an agent property or an error code changes, this fails until
    `python -m clusterd.apidoc docs/api.md` is run."""
    doc = text()
    assert apidoc.updated(doc) == doc, "docs/api.md is out of date: run python -m clusterd.apidoc docs/api.md"


def test_every_method_has_a_row_with_its_role_and_parameters():
    doc = text()
    for m in rpc.METHODS.values():
        row = next((line for line in doc.splitlines() if line.startswith(f"| `{m.name}` |")), None)
        assert row is not None, m.name
        assert (m.role if m.session else "none (no session)") in row
        assert all(f"`{p}` {t}" in row for p, t in m.params), row


def test_every_agent_property_is_documented():
    doc = text()
    for name, cls in agents.AGENTS.items():
        section = re.split(r"^#|^<!--", doc.split(f"### `{name}`", 1)[1], maxsplit=1, flags=re.M)[0]
        assert set(re.findall(r"^\| `(\w+)` \|", section, re.M)) == set(cls.PROPERTIES), name
    assert {"locked", "reject_move", "not_now", "fail_start", "start_delay", "stop_delay", "witness"} <= \
        set(agents.AGENTS["dummy"].PROPERTIES)


def test_every_error_code_is_listed_with_its_number():
    doc = text()
    for code, (number, _) in CODES.items():
        assert f"| `{code}` | {f'{number} = 0x{number:X}' if number is not None else '-'} |" in doc, code


def test_a_method_without_documentation_fails_the_rendering(monkeypatch):
    """The check can fail: a method registered without a line in apidoc.DOCS is an error."""
    async def nothing(call):
        return ""
    monkeypatch.setitem(rpc.METHODS, "Group.frobnicate", method.Method("Group.frobnicate", nothing, "read-only", (), True))
    with pytest.raises(KeyError, match="Group.frobnicate"):
        apidoc.render_methods()


def test_an_undocumented_agent_property_fails_the_rendering(monkeypatch):
    monkeypatch.setattr(agents.AGENTS["dummy"], "PROPERTIES", agents.AGENTS["dummy"].PROPERTIES | {"wobble"})
    with pytest.raises(KeyError, match="wobble"):
        apidoc.render_agents()


def test_a_hand_edited_generated_part_is_noticed():
    doc = text()
    edited = doc.replace("| `Group.move` |", "| `Group.moved` |", 1)
    assert edited != doc and apidoc.updated(edited) == doc
    assert apidoc.main(["--check", DOC]) == 0
