"""The import graph of ``device/``, read from the source (imports inside functions
count, ``if TYPE_CHECKING:`` ones do not): no cycle anywhere, the supervisor is
imported only by the command that runs it, and the processing pieces never import paho."""

from __future__ import annotations

import ast
from pathlib import Path

import device

ROOT = Path(device.__file__).resolve().parent
# pipelines.py still takes PipelineContext/RepUpdate/SoundEvent from the supervisor's
# transitional re-exports; remove it from here once it imports them from .runner/.ledger
SUPERVISOR_IMPORTERS = {"device.cli.daemon"}
NO_PAHO = ("device.daemon.runner", "device.daemon.ledger", "device.daemon.model_holder",
           "device.daemon.telemetry", "device.daemon.pipelines", "device.daemon.errors")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports_of(path: Path) -> set[str]:
    """Absolute names of the modules (or packages) that ``path`` imports."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if _type_checking(child):
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in child.names)  # `from . import runner`
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    return {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            strong(v)
    return found


def test_no_import_cycle_in_device():
    edges = graph()
    assert "device.daemon.runner" in edges["device.daemon.supervisor"]  # the graph is read at all
    assert cycles(edges) == []


def test_only_the_run_command_imports_the_supervisor():
    importers = {m for m, targets in graph().items() if "device.daemon.supervisor" in targets}
    assert importers <= SUPERVISOR_IMPORTERS, importers


def test_processing_pieces_never_import_paho():
    for name in NO_PAHO:
        path = ROOT.parent / (name.replace(".", "/") + ".py")
        assert not any(m.split(".")[0] == "paho" for m in imports_of(path)), name
    edges = graph()
    reachable, todo = set(), ["device.daemon.runner", "device.daemon.ledger"]
    while todo:
        module = todo.pop()
        if module not in reachable:
            reachable.add(module)
            todo.extend(edges.get(module, ()))
    assert "device.daemon.mqtt" not in reachable and "device.daemon.publisher" not in reachable


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
