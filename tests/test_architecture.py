"""The package's shape: no import cycle (top-level or inside functions), modules of
one concept (under 700 lines), lower layers never importing higher ones, and the
product assembling its pipelines only through the two factories."""

from __future__ import annotations

import ast
from pathlib import Path

DEVICE = Path(__file__).resolve().parents[1] / "device"
MAX_LINES = 700
# lower layers never import higher ones (a module may import its own layer and below)
LAYERS = {
    "components": 1,
    "lazy": 1,
    "storage": 1,
    "stderr": 1,
    "pretrained": 2,
    "inference": 2,
    "video": 2,
    "boards": 2,
    "pose": 3,
    "audio": 3,
    "learn": 3,
    "daemon": 4,
    "cli": 5,
    "__main__": 5,
    "__init__": 1,  # the root package holds only the version
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(DEVICE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside functions."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            for alias in node.names:  # `from . import x` may import a submodule
                found.add(f"{module}.{alias.name}")
    return {m for m in found if m.startswith("device")}


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in DEVICE.rglob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
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
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _is_package_init_edge(a: str, b: str) -> bool:
    """A package's ``__init__`` re-exporting its own modules is not a cycle of concepts."""
    return a.startswith(b + ".") or b.startswith(a + ".")


def test_no_import_cycles() -> None:
    graph = _graph()
    pruned = {a: {b for b in bs if not _is_package_init_edge(a, b)} for a, bs in graph.items()}
    assert _cycles(pruned) == []


def test_modules_hold_one_concept() -> None:
    long = {str(p.relative_to(DEVICE.parent)): n for p in DEVICE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS[parts[1] if len(parts) > 1 else "__init__"]


def test_lower_layers_never_import_higher_ones() -> None:
    wrong = []
    for a, bs in _graph().items():
        for b in bs:
            if _layer(b) > _layer(a):
                wrong.append(f"{a} imports {b}")
    assert wrong == []


def test_only_the_factories_assemble_the_pipelines() -> None:
    """The counter and the sound stages are composed in the
    factories alone; the daemon, the CLI and the scripts call the factories."""
    assembling = ("HumanBodyActionCounter(", "SoundEventDetector(", "WindowClassifier(")
    allowed = {DEVICE / "pose" / "pipeline.py", DEVICE / "audio" / "pipeline.py"}
    places = []
    for path in [*DEVICE.rglob("*.py"), *(DEVICE.parent / "scripts").glob("*.py")]:
        if path in allowed or path.parent.name == "components":
            continue
        text = path.read_text()
        for token in assembling:
            for line in text.splitlines():
                stripped = line.strip()
                if token in stripped and not stripped.startswith(("#", "class ", "def ", '"', "'")) and "(" + token not in stripped:
                    places.append(f"{path.relative_to(DEVICE.parent)}: {stripped}")
    assert places == []


# the run command alone builds the daemon; the pieces that process data never speak MQTT themselves
SUPERVISOR_IMPORTERS = {"device.cli.daemon"}
NO_PAHO = ("device.daemon.runner", "device.daemon.ledger", "device.daemon.model_holder",
           "device.daemon.telemetry", "device.daemon.pipelines", "device.daemon.errors")


def test_only_the_run_command_imports_the_supervisor() -> None:
    graph = _graph()
    assert "device.daemon.runner" in graph["device.daemon.supervisor"]  # the graph is read at all
    assert {m for m, targets in graph.items() if "device.daemon.supervisor" in targets} <= SUPERVISOR_IMPORTERS


def test_processing_pieces_never_import_paho() -> None:
    for name in NO_PAHO:
        path = DEVICE.parent / (name.replace(".", "/") + ".py")
        assert not any(m.split(".")[0] == "paho" for m in _imports(path) | _all_imports(path)), name


def _all_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            found.add(node.module or "")
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_import_of_the_package_resolves() -> None:
    """A module moved without its importers being updated fails here, not in the field
    (imports inside functions included, which only run on some paths)."""
    modules = {_module_name(p) for p in DEVICE.rglob("*.py")}
    names: dict[str, set[str]] = {}
    for path in DEVICE.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
                names.setdefault(module, set()).add(str(path.relative_to(DEVICE.parent)))
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("device"):
                names.setdefault(node.module or "", set()).add(str(path.relative_to(DEVICE.parent)))
    missing = {m: sorted(where) for m, where in names.items() if m not in modules}
    assert missing == {}
