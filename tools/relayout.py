"""One-off: move the flat modules of pipeline/ into subpackages by layer and rewrite imports.

    python tools/relayout.py            # git mv + rewrite pipeline/, tests/, benchmarks/, tools/

Kept in the repository as the record of the move (the mapping is LAYOUT below).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

# old flat module -> new dotted module under pipeline/ (unlisted modules stay where they are)
LAYOUT = {
    "storage": "io.storage", "urls": "io.urls", "local_storage": "io.local_storage",
    "object_storage": "io.object_storage", "lease": "io.lease", "sources": "io.sources",
    "formats": "io.formats", "chunking": "io.chunking", "footers": "io.footers",
    "parquet_plan": "io.parquet_plan", "csv_plan": "io.csv_plan", "reading": "io.reading",
    "identity": "io.identity", "writer": "io.writer", "parts": "io.parts", "resume": "io.resume",
    "commit_local": "io.commit_local", "commit_store": "io.commit_store",
    "params": "config.params", "options": "config.options", "exec_options": "config.exec_options",
    "buffers": "ops.buffers", "kernels": "ops.kernels", "device": "ops.device",
    "values": "ops.values", "design": "ops.design", "transform": "ops.transform",
    "score": "ops.score",
    "execution": "run.execution", "cluster": "run.cluster", "chunks": "run.chunks",
    "tasks": "run.tasks", "progress": "run.progress", "monitor": "run.monitor",
    "synthetic": "run.synthetic",
    "stats": "model.stats", "newton": "model.newton", "model": "model.estimator",
    "model_fit": "model.fit", "model_file": "model.modelfile", "model_dask": "model.dask_frames",
    "sklearn_compat": "model.sklearn_compat",
    "cli": "cli.parser", "commands": "cli.commands", "jobs": "cli.jobs", "report": "cli.report",
    "charts": "cli.charts", "bench": "cli.bench",
}
# each subpackage's __init__: what lives there and what it may import (tools/imports.py checks)
INITS = {
    "io": """Input and output: the storage seam (local disks and fsspec stores), discovery and the
Parquet/CSV readers, the part writer, the committers and their manifest, the one-writer lease.

May import: ``pipeline.errors`` only. Knows nothing of models, kernels or executors.
""",
    "config": """Parameters and options, each declared once: the validation of a value
(``params``) and the option table the CLI, job files and the library share (``options``).

May import: ``pipeline.io`` (URL rules, storage options) and ``pipeline.errors``.
""",
    "ops": """Compute on one block: the kernels (sigmoid, log-sigmoid, derivative), the sigmoid
transform, scoring and evaluation statistics, the design matrix, value and label checks,
column buffers and the device (NumPy or CuPy).

May import: ``pipeline.config``, ``pipeline.io`` (column types), ``pipeline.errors``.
""",
    "run": """Orchestration: executors (threads, a local or an existing Dask cluster), chunk tasks
and how one runs and is measured, progress, the synthetic data generator's tasks.

May import: ``pipeline.ops``, ``pipeline.config``, ``pipeline.io``, ``pipeline.errors``.
""",
    "model": """The logistic model: per-chunk statistics, the Newton solver, the estimator, its
model file and its dask glue, and the scikit-learn transformer.

May import: ``pipeline.run``, ``pipeline.ops``, ``pipeline.config``, ``pipeline.io``,
``pipeline.errors``.
""",
    "cli": """The command line: the parser and the commands, job files, the HTML report and the
activation benchmark. Parses and calls the library (``pipeline.api``); may import every layer.
""",
}


def relative(importer: str, target: str) -> str:
    """The relative module path from dotted module ``importer`` to dotted ``target``."""
    here = importer.split(".")[:-1]          # the importer's package, under pipeline
    there = target.split(".")
    common = 0
    while common < len(here) and common < len(there) - 1 and here[common] == there[common]:
        common += 1
    ups = len(here) - common
    return "." * (ups + 1) + ".".join(there[common:])


def rewrite_package_file(path: Path, importer: str, layout: dict) -> str:
    """Every relative import of the module ``importer`` (its old dotted name), resolved to the
    old target, mapped by ``layout`` and written relative to the module's new place."""
    text = path.read_text()
    new_importer = layout.get(importer, importer)
    if path.name == "__init__.py":  # relative to the package itself
        new_importer = f"{new_importer}.__init__" if new_importer else "__init__"
    package = importer.split(".")[:-1] if path.name != "__init__.py" else importer.split(".")
    package = [p for p in package if p]

    def target(dots: str, mod: str) -> str:
        base = package[:len(package) - (len(dots) - 1)]
        return ".".join([*base, *([mod] if mod else [])])

    def from_mod(m):
        indent, dots, mod, rest = m.groups()
        old = target(dots, mod)
        return f"{indent}from {relative(new_importer, layout.get(old, old))} import{rest}"

    text = re.sub(r"^(\s*)from (\.+)([a-z_][a-z_.]*) import(.*)$", from_mod, text, flags=re.M)

    def from_dot(m):
        indent, dots, names = m.group(1), m.group(2), [n.strip() for n in m.group(3).split(",")]
        lines = []
        for n in names:
            old = target(dots, n)
            rel = relative(new_importer, layout.get(old, old))
            leaf = rel.rsplit(".", 1)[1]
            prefix = rel[:-len(leaf)]
            prefix = prefix if set(prefix) == {"."} else prefix[:-1]
            lines.append(f"{indent}from {prefix} import {leaf}")
        return "\n".join(lines)

    return re.sub(r"^(\s*)from (\.+) import ([a-z_, ]+)$", from_dot, text, flags=re.M)


def rewrite_outside(text: str, layout: dict) -> str:
    """``pipeline.old`` and ``pipeline/old.py`` to their new places, in one pass each."""
    names = "|".join(sorted(layout, key=len, reverse=True))
    text = re.sub(rf"\bpipeline\.({names})\b", lambda m: f"pipeline.{layout[m.group(1)]}", text)
    return re.sub(rf"\bpipeline/({names})\.py\b",
                  lambda m: f"pipeline/{layout[m.group(1)].replace('.', '/')}.py", text)


def main(argv: list[str]) -> int:
    layout = dict(LAYOUT)
    for item in argv:
        old, new = item.split("=")
        layout[old] = new
    root = Path(__file__).resolve().parent.parent
    pkg = root / "pipeline"
    flat = {p.stem for p in pkg.glob("*.py")}
    layout = {k: v for k, v in layout.items() if k in flat}
    # rewrite package files first (by their new names), then move them
    for p in sorted(pkg.rglob("*.py")):
        parts = p.relative_to(pkg).with_suffix("").parts
        importer = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        p.write_text(rewrite_package_file(p, importer, layout))
    init = pkg / "__init__.py"
    t = init.read_text()
    for old, new in layout.items():
        t = re.sub(rf'(: "){old}(")', rf"\g<1>{new}\g<2>", t)
    init.write_text(t)
    for sub in sorted({v.split(".")[0] for v in layout.values()}):
        (pkg / sub).mkdir(exist_ok=True)
        (pkg / sub / "__init__.py").write_text('"""' + INITS[sub] + '"""\n')
        subprocess.run(["git", "add", str(pkg / sub / "__init__.py")], check=True, cwd=root)
    for old, new in layout.items():
        dest = pkg / (new.replace(".", "/") + ".py")
        subprocess.run(["git", "mv", str(pkg / f"{old}.py"), str(dest)], check=True, cwd=root)
    for folder in ("tests", "benchmarks", "tools"):
        for p in (root / folder).rglob("*.py"):
            if p.name == "relayout.py":
                continue
            p.write_text(rewrite_outside(p.read_text(), layout))
    for name in ("pyproject.toml",):
        p = root / name
        p.write_text(rewrite_outside(p.read_text(), layout))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
