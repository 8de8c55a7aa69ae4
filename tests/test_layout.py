"""The shape of the package: its import graph, the chunk-task protocol, the storage seam."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_import_graph_has_no_cycle_and_runs_from_the_cli_down_by_layer():
    res = subprocess.run([sys.executable, "tools/imports.py", "pipeline"], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout  # no cycle, no import against the layers
    lines = res.stdout.splitlines()
    assert lines[0].startswith("cli.entry ") and lines[1].startswith("cli.parser ")
    order = [line.split()[0] for line in lines]
    assert order.index("cli.commands") < order.index("api") < order.index("ops.kernels")
    assert order.index("cli.jobs") < order.index("cli.commands")  # jobs run commands
    assert order.index("io.writer") > order.index("run.chunks")  # the writer takes tables
    layers = {name.split(".")[0] for name in order}
    assert layers == {"cli", "api", "model", "run", "ops", "config", "io", "errors"}


def test_the_import_rule_fails_on_an_import_against_the_layers_and_on_a_cycle(tmp_path):
    def package(files):
        root = tmp_path / f"p{len(list(tmp_path.iterdir()))}"
        for name, text in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
        return subprocess.run([sys.executable, str(ROOT / "tools" / "imports.py"), str(root)],
                              capture_output=True, text=True)

    inits = {"__init__.py": "", "io/__init__.py": '"""io"""', "run/__init__.py": '"""run"""'}
    ok = package({**inits, "io/storage.py": "", "run/chunks.py": "from ..io import storage\n"})
    assert ok.returncode == 0 and "run.chunks" in ok.stdout and "io.storage" in ok.stdout
    up = package({**inits, "io/storage.py": "from ..run.chunks import x\n", "run/chunks.py": ""})
    assert up.returncode == 1 and "io.storage -> run.chunks (io may not import run)" in up.stdout
    loop = package({**inits, "run/a.py": "from .b import x\n", "run/b.py": "from . import a\n"})
    assert loop.returncode == 1 and "import cycle" in loop.stdout


def test_no_module_is_over_400_lines_and_no_class_over_250():
    import ast

    found = []
    for path in sorted((ROOT / "pipeline").rglob("*.py")):
        text = path.read_text()
        lines = text.count("\n")
        if lines > 400:
            found.append(f"{path.relative_to(ROOT)}: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > 250:
                found.append(f"{path.relative_to(ROOT)}: class {node.name} "
                             f"{node.end_lineno - node.lineno + 1} lines")
    assert not found, found


def test_every_chunk_task_kind_implements_the_protocol(tmp_path):
    import dask.dataframe as dd
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.api import TrainChunk
    from pipeline.io.sources import plan
    from pipeline.model.dask_frames import _PartitionLoader
    from pipeline.run.chunks import ChunkTask
    from pipeline.run.synthetic import GenerateTask
    from pipeline.run.tasks import FileChunkTask, PartitionTask, file_tasks

    pq.write_table(pa.table({"x": [0.5, -1.0], "label": [1, 0]}), tmp_path / "a.parquet")
    file_task = file_tasks(plan(str(tmp_path / "a.parquet")), columns=("x", "label"))[0]
    kinds = {
        FileChunkTask: file_task,
        PartitionTask: PartitionTask(0, None, 2),
        TrainChunk: TrainChunk(file_task, ("x",), "label"),
        GenerateTask: GenerateTask(0, 0, 10, 2, "float64", 1),
        _PartitionLoader: _PartitionLoader(
            0, dd.from_pandas(pd.DataFrame({"x": [0.5, -1.0], "label": [1, 0]}),
                              npartitions=1).to_delayed()[0], ("x",), "label"),
    }
    for kind, task in kinds.items():
        assert isinstance(task, ChunkTask), kind.__name__
        assert isinstance(task.index, int) and isinstance(task.source_path, str)
        assert json.dumps(task.plan_key, default=str)
    for task in (file_task, kinds[TrainChunk], kinds[GenerateTask], kinds[_PartitionLoader]):
        data = task.produce()
        tables = [data] if isinstance(data, pa.Table) else list(data)
        assert sum(t.num_rows for t in tables) == (10 if task is kinds[GenerateTask] else 2)


def test_the_writer_takes_tables_not_tasks(tmp_path):
    import ast

    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.io.parts import PartTarget, commit_part, write_part

    for name in ("writer", "parts", "resume", "commit_local", "commit_store"):
        tree = ast.parse((ROOT / "pipeline" / "io" / f"{name}.py").read_text())
        imported = {part for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                    for part in (n.module or "").split(".")}
        assert not imported & {"run", "tasks", "chunks", "api", "synthetic", "monitor"}, name
    target = PartTarget(str(tmp_path))
    tables = iter([pa.table({"x": [1.0, 2.0]}), pa.table({"x": [3.0]})])
    rows, tmp, uploaded = write_part(tables, target, 7)
    commit_part(tmp, str(tmp_path), 7)
    assert rows == 3 and uploaded == {}
    assert pq.read_table(tmp_path / "part-00007.parquet").column("x").to_pylist() == [1, 2, 3]


# What reads, writes, lists, renames or deletes files; only the storage seam may call these
# (storage.py, local_storage.py, object_storage.py).
FILE_CALLS = {"os": {"replace", "rename", "remove", "unlink", "fsync", "open", "walk",
                     "listdir", "scandir", "makedirs", "mkdir", "rmdir", "stat"},
              "os.path": {"exists", "isdir", "isfile", "getsize"},
              "shutil": None, "glob": {"glob", "iglob"}}


def test_only_the_storage_module_touches_files():
    import ast

    found = []
    for path in sorted((ROOT / "pipeline").rglob("*.py")):
        if path.name in ("storage.py", "local_storage.py", "object_storage.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            fn = node.func
            if isinstance(fn, ast.Name) and fn.id == "open":
                found.append(f"{path.name}:{node.lineno} open")
            elif isinstance(fn, ast.Attribute):
                owner = ast.unparse(fn.value)
                names = FILE_CALLS.get(owner, set())
                if owner in FILE_CALLS and (names is None or fn.attr in names):
                    found.append(f"{path.name}:{node.lineno} {owner}.{fn.attr}")
    assert not found, found


def test_public_functions_take_options_by_keyword_with_type_hints():
    import inspect

    import pipeline

    data_args = {"read": 1, "write": 2, "transform_files": 2, "score_files": 3,
                 "evaluate_files": 2, "train_files": 2, "generate": 1, "sigmoid_columns": 1}
    for name, n in data_args.items():
        params = list(inspect.signature(getattr(pipeline, name)).parameters.values())
        assert all(p.kind == p.POSITIONAL_OR_KEYWORD for p in params[:n]), name
        assert all(p.kind == p.KEYWORD_ONLY for p in params[n:]), name
        assert all(p.annotation is not p.empty for p in params), name
