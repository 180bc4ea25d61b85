"""The app's imports run one way (docs/architecture.md): what lint-imports cannot see.

``lint-imports`` (pyproject.toml) checks the layers. This checks the rest of the rule:
no import of the app's own modules inside a function (which is how a cycle hides)
except in ``AppConfig.ready()``, and no import cycle among the app's modules at all,
counting those in functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "ws_gateway"


def _modules() -> dict[str, tuple[Path, bool]]:
    found = {}
    for path in APP.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        parts = list(path.relative_to(APP.parent).with_suffix("").parts)
        package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if package else parts)] = (path, package)
    return found


def _imports() -> tuple[dict[str, set[str]], list[str]]:
    """Edges module -> module (outside TYPE_CHECKING), and the function-level ones outside ready()."""
    modules = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[str, set[str]] = {m: set() for m in modules}
    in_functions: list[str] = []
    for module, (path, package) in modules.items():
        base = module if package else module.rpartition(".")[0]

        def visit(
            node: ast.AST, function: str | None, guarded: bool, module: str = module, base: str = base
        ) -> None:
            for child in ast.iter_child_nodes(node):
                inner = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else function
                guard = guarded or (isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test))
                targets: list[str] = []
                if isinstance(child, ast.Import):
                    targets = [alias.name for alias in child.names]
                elif isinstance(child, ast.ImportFrom):
                    origin = child.module or ""
                    if child.level:
                        parts = base.split(".")
                        origin = ".".join(
                            parts[: len(parts) - child.level + 1] + ([origin] if origin else [])
                        )
                    targets = [f"{origin}.{alias.name}" for alias in child.names] + [origin]
                own = {resolve(t) for t in targets if t.startswith("ws_gateway")} - {None, module}
                if own and not guard:
                    edges[module] |= {t for t in own if t is not None}
                    if inner is not None and inner != "ready":
                        in_functions.append(f"{module} ({inner}) imports {sorted(own)}")
                visit(child, inner, guard, module, base)

        visit(ast.parse(path.read_text()), None, False)
    return edges, in_functions


def test_no_function_level_import_of_the_apps_own_modules_outside_ready() -> None:
    _, in_functions = _imports()
    assert in_functions == []


def test_no_import_cycle_among_the_apps_modules() -> None:
    edges, _ = _imports()
    # Only the package roots may be imported from below (``from .. import x`` names the package).
    edges = {
        m: {t for t in targets if t != "ws_gateway" and not m.startswith(t + ".")}
        for m, targets in edges.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def connect(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in edges:
        if node not in index:
            connect(node)
    assert cycles == []
