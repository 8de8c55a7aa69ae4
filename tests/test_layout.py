"""The shape of the package: its import graph, the chunk-task protocol, the storage seam."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_import_graph_has_no_cycle_and_runs_from_the_cli_down():
    res = subprocess.run([sys.executable, "tools/imports.py", "pipeline"], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout
    lines = res.stdout.splitlines()
    assert lines[0].startswith("cli ")
    order = [line.split()[0] for line in lines]
    assert order.index("commands") < order.index("api") < order.index("kernels")
    assert order.index("jobs") < order.index("commands")  # jobs run commands, not the reverse
