"""The package's import graph as text (every import, a function's own included), one line
per module with what it imports; exits 1 on a cycle.

    python tools/imports.py [PACKAGE_DIR]
"""

import ast
import sys
from pathlib import Path


def graph(package: Path) -> dict[str, set[str]]:
    names = {p.stem for p in package.glob("*.py")} - {"__init__", "__main__"}
    edges = {name: set() for name in names}
    for name in names:
        for node in ast.walk(ast.parse((package / f"{name}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                targets = [node.module] if node.module else [a.name for a in node.names]
                edges[name] |= {t.split(".")[0] for t in targets} & names
    return edges


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
    edges = graph(Path(sys.argv[1] if len(sys.argv) > 1 else "pipeline"))
    found = cycle(edges)
    if found:
        print("import cycle: " + " -> ".join(found))
        sys.exit(1)
    for level in layers(edges):
        for n in level:
            print(f"{n:<15} -> {', '.join(sorted(edges[n])) or '(nothing of the package)'}")
