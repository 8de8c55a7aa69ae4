"""Chunk tasks: what one worker does for one chunk, before the writer takes the table.

A task is small and picklable: it names its chunk and how to produce its table, and runs the
same in a thread of this process or on a Dask worker.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from .sources import Chunk, ChunkReader


@dataclass(frozen=True)
class FileChunkTask:
    """Read one chunk of files and apply ``op`` (a function of a ``pyarrow.Table``)."""

    reader: ChunkReader
    chunk: Chunk
    op: object = None
    columns: tuple[str, ...] | None = None
    numeric: tuple[str, ...] = ()

    @property
    def index(self) -> int:
        return self.chunk.index

    @property
    def source_path(self) -> str:
        return self.chunk.source

    @property
    def rows(self) -> int | None:
        return self.chunk.rows

    @property
    def plan_key(self) -> list:
        """What this chunk reads: part of the resume identity."""
        return [[p.path, list(p.row_groups), p.byte_range] for p in self.chunk.pieces]

    def read(self) -> pa.Table:
        cols = list(self.columns) if self.columns is not None else None
        return self.reader.read(self.chunk, cols, self.numeric)

    def produce(self) -> pa.Table:
        table = self.read()
        if self.op is None:
            return table
        batches = table.to_batches()
        if len(batches) <= 1:
            return self.op(table, self.chunk.path)
        # batch by batch: each column is one contiguous buffer there (no combining copy)
        return pa.concat_tables([self.op(pa.Table.from_batches([b]), self.chunk.path)
                                 for b in batches])


@dataclass(frozen=True)
class PartitionTask:
    """One partition of a dask DataFrame, computed on the worker that runs the task."""

    index: int
    partition: object  # a dask Delayed of one partition
    rows: int | None = None

    @property
    def source_path(self) -> str:
        return f"partition {self.index}"

    @property
    def plan_key(self) -> int:
        return self.index  # the frame's graph, in the job identity, decides the rest

    def produce(self) -> pa.Table:
        frame = self.partition.compute(scheduler="sync")
        return pa.Table.from_pandas(frame, preserve_index=False)


def file_tasks(source, op=None, columns=None, numeric=()) -> list[FileChunkTask]:
    reader = source.reader()
    cols = tuple(columns) if columns is not None else None
    return [FileChunkTask(reader, c, op, cols, tuple(numeric)) for c in source.chunks]


def run_reduce_task(task) -> object:
    """Read one chunk and return what its op computes (a reduction, not a table)."""
    return task.op(task.read(), task.source_path)
