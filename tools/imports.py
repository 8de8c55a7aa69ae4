"""The package's import graph as text (every import, a function's own included), one line
per module with what it imports, and the layer rule: exits 1 on a cycle or on an import
against LAYERS.

    python tools/imports.py [PACKAGE_DIR]

Modules are named by their dotted path under the package (``io.storage``); a module's layer
is its subpackage, or its own name at the top (``errors``, ``api``).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

# From the top down: a module may import its own layer and the layers below it, never above.
LAYERS = ("cli", "api", "model", "run", "ops", "config", "io", "errors")


def modules(package: Path) -> dict[str, Path]:
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package).with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            found[".".join(parts)] = path
    return found


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom, names: set[str]) -> set[str]:
    """The package modules that one ``from ... import ...`` names."""
    if node.level == 0:
        root, _, rest = (node.module or "").partition(".")
        if root != "pipeline":
            return set()
        base = rest.split(".") if rest else []
    else:
        here = importer.split(".") if importer else []
        package = here if is_package else here[:-1]
        base = package[:len(package) - (node.level - 1)] + (
            node.module.split(".") if node.module else [])
    mod = ".".join(base)
    out = {mod} if mod in names else set()
    for alias in node.names:  # ``from . import kernels`` names a module
        sub = ".".join([*base, alias.name])
        if sub in names:
            out.add(sub)
    if not out:  # an attribute of a package's __init__, e.g. ``from . import errors``
        out = {m for m in names if mod and mod.startswith(m + ".")}
    return out


def graph(package: Path) -> dict[str, set[str]]:
    mods = modules(package)
    names = set(mods)
    edges = {name: set() for name in names}
    for name, path in mods.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                edges[name] |= _resolve(name, is_package, node, names) - {name}
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    parts = alias.name.split(".")
                    if parts[0] == "pipeline" and ".".join(parts[1:]) in names:
                        edges[name].add(".".join(parts[1:]))
    return {n: e for n, e in edges.items() if n}


def layer(module: str) -> int | None:
    head = module.split(".")[0]
    return LAYERS.index(head) if head in LAYERS else None


def against_layers(edges: dict[str, set[str]]) -> list[str]:
    """Every import from a module to one in a layer above it."""
    bad = []
    for src, targets in sorted(edges.items()):
        for dst in sorted(targets):
            a, b = layer(src), layer(dst)
            if a is not None and b is not None and b < a:
                bad.append(f"{src} -> {dst} ({LAYERS[a]} may not import {LAYERS[b]})")
    return bad


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path of modules, or None (depth-first search, three colours)."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = "done"
        return None

    return next((c for n in sorted(edges) if n not in state and (c := visit(n))), None)


def layers(edges: dict[str, set[str]]) -> list[list[str]]:
    """Modules from the top (imported by none above) down: each below all its importers."""
    depth = {}

    def down(node):  # the longest path from node to a module that imports nothing
        if node not in depth:
            depth[node] = 1 + max((down(n) for n in edges[node]), default=-1)
        return depth[node]

    for n in edges:
        down(n)
    top = max(depth.values())
    return [sorted(n for n in edges if depth[n] == d) for d in range(top, -1, -1)]


if __name__ == "__main__":
    package = Path(sys.argv[1] if len(sys.argv) > 1 else "pipeline")
    edges = graph(package)
    # the subpackages' __init__ files hold only their docstrings: leave them out of the graph
    edges = {n: e for n, e in edges.items()
             if e or not (package / n.replace(".", "/") / "__init__.py").exists()}
    edges = {n: e & set(edges) for n, e in edges.items()}
    found = cycle(edges)
    if found:
        print("import cycle: " + " -> ".join(found))
        sys.exit(1)
    bad = against_layers(edges)
    if bad:
        print("imports against the layers " + " > ".join(LAYERS) + ":")
        print("\n".join("  " + b for b in bad))
        sys.exit(1)
    for level in layers(edges):
        for n in level:
            print(f"{n:<22} -> {', '.join(sorted(edges[n])) or '(nothing of the package)'}")
