"""The project's modules import one another without a cycle: each layer can be read, tested
and changed on top of the ones below it. The graph is built from the source (ast), so a cycle
is found whether or not anything imports the modules in the order that would break."""
import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = {"clusterd": "clusterd", "raft": "raft", "clusterctl": "tools/clusterctl"}  # name -> dir


def project_modules():
    """{module name: (path, is a package's __init__)}."""
    out = {}
    for pkg, d in PACKAGES.items():
        for dirpath, _, files in os.walk(os.path.join(ROOT, d)):
            for f in files:
                if f.endswith(".py"):
                    parts = os.path.relpath(os.path.join(dirpath, f), os.path.join(ROOT, d))[:-3].split(os.sep)
                    if parts[-1] == "__init__":
                        parts = parts[:-1]
                    out[".".join([pkg, *parts])] = (os.path.join(dirpath, f), f == "__init__.py")
    return out


def imported(tree, package, modules):
    """The project modules a module's source imports (at any depth: a function's import counts)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules]
            yield from subs if len(subs) == len(node.names) else [base, *subs]


def import_graph():
    modules = project_modules()
    graph = {}
    for name, (path, is_init) in modules.items():
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        package = name if is_init else name.rpartition(".")[0]
        graph[name] = sorted({m for m in imported(tree, package, modules) if m in modules and m != name})
    return graph


def cycles(graph):
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_cycles_finds_a_planted_cycle_and_only_it():
    assert cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"], "e": []}) == [["a", "b", "c"]]


def test_no_module_of_the_project_imports_itself_through_others():
    graph = import_graph()
    assert {"clusterd.db", "raft.replica", "clusterctl.cli", "clusterctl.lab.bench.common"} <= set(graph)
    assert "clusterd.groups" in graph["clusterd.db"]  # the graph sees imports
    assert cycles(graph) == []
