"""The package's layers: data flows one way (engine -> pipeline -> probing -> checks -> faces), with no cycles.

Imports under ``if TYPE_CHECKING:`` are annotations only (never executed) and are not counted.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Lower numbers are lower layers; a module may import its own layer and the ones below it.
LAYERS = {"engine": 0, "pipeline": 1, "probing": 2, "sanitycheck_plugins": 3, "faces": 4}


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted((ROOT / "sanitycheck").rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    for path in sorted((ROOT / "plugins").glob("*.py")):
        found["sanitycheck_plugins." + path.stem] = path
    return found


def _runtime_imports(path: Path) -> set[str]:
    """Every module named by an import statement that can execute (top level or inside functions)."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for child in node.body for n in ast.walk(child))
    names = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return names


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] == "sanitycheck_plugins":
        return LAYERS["sanitycheck_plugins"]
    return LAYERS.get(parts[1]) if parts[0] == "sanitycheck" and len(parts) > 1 else None


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {m for m in _runtime_imports(path) if m in modules and m != name} for name, path in modules.items()}


def test_no_layer_imports_a_layer_above_it():
    upward = []
    for module, imported in _graph().items():
        own = _layer(module)
        for target in imported:
            theirs = _layer(target)
            if own is not None and theirs is not None and theirs > own:
                upward.append(f"{module} imports {target}")
    assert not upward, "upward imports:\n" + "\n".join(sorted(upward))


def test_no_import_cycles():
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"


def test_the_plugin_api_is_importable_from_the_package():
    import sanitycheck

    for name in ("hookimpl", "Check", "CheckSettings", "CodeDoc", "Finding", "PipelineContext", "run"):
        assert getattr(sanitycheck, name) is not None, name
