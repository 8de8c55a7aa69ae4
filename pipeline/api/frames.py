"""Dask DataFrames in and out: ``read`` an input lazily, ``write`` one as an output folder."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..config.params import STORAGE_OPTIONS, check, parse_size
from ..io.sources import plan
from ..io.writer import job_identity
from ..ops.transform import default_columns
from ..run.chunks import write_parts
from ..run.execution import open_executor
from ..run.tasks import PartitionTask
from ._inputs import (
    Path,
)

if TYPE_CHECKING:
    import dask.dataframe as dd
    from distributed import Client



def read(input_path: Path, *, columns: Sequence[str] | None = None,
         blocksize: str | int | None = None, storage_options: dict | None = None,
         null_values: str | Sequence[str] | None = None) -> dd.DataFrame:
    """A lazy dask DataFrame over INPUT (file, folder, glob or URL), one partition per chunk.

    ``storage_options`` go to the file system of a URL (``{"endpoint_url": ...}``);
    ``null_values`` are CSV texts read as null besides the empty cell.
    """
    import dask.dataframe as dd

    if storage_options is not None:
        check("storage_options", storage_options, STORAGE_OPTIONS)
    source = plan(input_path, blocksize=parse_size(blocksize, name="blocksize"),
                  storage_options=storage_options, null_values=null_values)
    names = list(columns) if columns is not None else list(source.schema.names)
    source.require_columns(names, numeric=False)
    meta = source.schema.empty_table().select(names).to_pandas()
    numeric = tuple(n for n in names if n in default_columns(source.schema))
    fn = functools.partial(_read_frame, source.reader(), tuple(names), numeric)
    return dd.from_map(fn, source.chunks, meta=meta, enforce_metadata=False)


def _read_frame(reader, columns, numeric, chunk):
    return reader.read(chunk, list(columns), numeric).to_pandas()


def write(df: dd.DataFrame, out: Path, *, overwrite: bool = False, resume: bool = False,
          client: Client | None = None, device: str = "cpu", progress: bool = False,
          storage_options: dict | None = None) -> dict:
    """Write a dask DataFrame to an output folder (one part per partition), atomically.

    OUT may be a URL; ``storage_options`` go to its file system and are recorded redacted.
    """
    from dask.base import tokenize

    if storage_options is not None:
        check("storage_options", storage_options, STORAGE_OPTIONS)
    tasks = [PartitionTask(i, d) for i, d in enumerate(df.to_delayed())]
    job = job_identity("write", {}, tokenize(df))
    with open_executor(client=client) as ex:
        return write_parts(tasks, out, executor=ex, job=job, overwrite=overwrite,
                           resume=resume, device=device, progress=progress,
                           storage_options=storage_options)
