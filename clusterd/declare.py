"""Tables built from declarations: a module declares entries (its command handlers, its API
methods) as it defines them, and a table holds the entries of exactly the modules it names,
whatever else was imported."""
from types import ModuleType
from typing import Generic, TypeVar

E = TypeVar("E")


class Declarations(Generic[E]):
    def __init__(self, what: str) -> None:
        self.what = what  # what one entry is, for the errors
        self._by_module: dict[str, dict[str, E]] = {}  # module name -> {key: entry}, in the order declared

    def declare(self, module: str, key: str, entry: E) -> None:
        own = self._by_module.setdefault(module, {})
        if key in own:
            raise ValueError(f"{module} declares the {self.what} {key!r} twice")
        own[key] = entry

    def table(self, *modules: ModuleType) -> dict[str, E]:
        """{key: entry} of what the (imported) `modules` declare; a key two of them declare is an error."""
        table: dict[str, E] = {}
        by: dict[str, str] = {}
        for module in modules:
            for key, entry in self._by_module.get(module.__name__, {}).items():
                if key in table:
                    raise ValueError(f"the {self.what} {key!r} is declared by {by[key]} and {module.__name__}")
                table[key], by[key] = entry, module.__name__
        return table
