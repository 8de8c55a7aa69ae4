"""``pipeline generate``: a seeded synthetic binary-classification data set.

Rows are drawn from a known logistic model (written beside the data as ``_truth.json``),
file by file and row group by row group, so memory is bounded whatever the size; each file has
its own seeded stream, so the same seed gives the same bytes however the files are scheduled.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from ..config.exec_options import ExecOptions, with_storage_options
from ..config.params import FLOAT_DTYPES, FORMATS, check, choice
from ..errors import PipelineError
from ..io.writer import job_identity
from ..ops import kernels
from .chunks import write_parts
from .execution import open_executor

if TYPE_CHECKING:
    from distributed import Client

ROW_GROUP = 131072


def truth(features: int, seed: int) -> tuple[np.ndarray, float]:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xC0EF]))
    coef = rng.normal(0.0, 2.0 / np.sqrt(features), size=features)
    return coef, float(rng.normal(0.0, 0.5))


@dataclass(frozen=True)
class GenerateTask:
    index: int
    first_row: int
    rows: int
    features: int
    dtype: str
    seed: int

    @property
    def source_path(self) -> str:
        return f"generated rows {self.first_row}..{self.first_row + self.rows - 1}"

    @property
    def plan_key(self) -> list[int]:
        return [self.first_row, self.rows]

    def produce(self):
        coef, intercept = truth(self.features, self.seed)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.index]))
        names = ["id", *(f"f{j}" for j in range(self.features)), "label"]
        done = 0
        while done < self.rows or (self.rows == 0 and done == 0):
            n = min(ROW_GROUP, self.rows - done)
            X = rng.standard_normal((n, self.features)).astype(self.dtype)
            z = X.astype(np.float64) @ coef + intercept
            label = (rng.random(n) < kernels.sigmoid(z)).astype(np.int64)
            ids = np.arange(self.first_row + done, self.first_row + done + n, dtype=np.int64)
            cols = [pa.array(ids), *(pa.array(X[:, j]) for j in range(self.features)),
                    pa.array(label)]
            yield pa.Table.from_arrays(cols, names=names)
            done += n
            if n == 0:
                break


def generate(out: str | os.PathLike, *, rows: int, features: int, files: int = 1,
             fmt: str = "parquet", dtype: str = "float64", seed: int = 0,
             options: ExecOptions | None = None, client: Client | None = None,
             storage_options: dict | None = None) -> dict:
    """Write ``rows`` x ``features`` synthetic rows in ``files`` files under ``out``.

    OUT may be a URL; ``storage_options`` (or ``options.storage_options``) go to its file
    system.
    """
    from ..config.options import constraint

    options = with_storage_options(options, storage_options)
    for name, value in (("rows", rows), ("features", features), ("files", files)):
        check(name, value, constraint("generate", name))
    if files > rows:
        raise PipelineError(f"files must be at most rows ({rows}); got {files}",
                            params=("files",))
    choice("fmt", fmt, FORMATS)
    choice("dtype", dtype, FLOAT_DTYPES)
    base, extra = divmod(rows, files)
    tasks, first = [], 0
    for i in range(files):
        n = base + (1 if i < extra else 0)
        tasks.append(GenerateTask(i, first, n, features, dtype, int(seed)))
        first += n
    params = {"rows": rows, "features": features, "files": files, "format": fmt,
              "dtype": dtype, "seed": int(seed)}
    job = job_identity("generate", params, None)
    coef, intercept = truth(features, int(seed))
    extras = {"_truth.json": {"features": [f"f{j}" for j in range(features)],
                              "coef": coef.tolist(), "intercept": intercept, "label": "label",
                              "seed": int(seed)}}
    with open_executor(options, client) as ex:
        return write_parts(tasks, out, executor=ex, job=job, overwrite=options.overwrite,
                           resume=options.resume, progress=not options.quiet,
                           total_rows=rows, fmt=fmt, extras=extras,
                           storage_options=options.storage_options)
