"""User-facing errors: raised where the fact is known, turned into ``error: …`` by the CLI."""

from __future__ import annotations


class PipelineError(ValueError):
    """Bad input or usage (exit status 2). The message names the file, column and row.

    A ``ValueError``, as scikit-learn's ``InvalidParameterError`` is, so library callers may
    catch either; the CLI maps it to ``error: …`` and exit status 2.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        column: str | None = None,
        row: int | None = None,
    ) -> None:
        self.path = path
        self.column = column
        self.row = row
        self.detail = message
        parts = []
        if path is not None:
            parts.append(str(path))
        if column is not None:
            parts.append(f"column {column!r}")
        if row is not None:
            parts.append(f"row {row}")
        parts.append(message)
        super().__init__(": ".join(parts))

    def __reduce__(self):  # survive pickling between Dask workers and the client
        return (_rebuild, (self.detail, self.path, self.column, self.row))


class StorageError(Exception):
    """A file system or object store kept failing after its own retries (exit status 1, one
    ``error:`` line): not bad input, and whatever the run wrote is left for ``--resume``."""


def _rebuild(message, path, column, row):
    return PipelineError(message, path=path, column=column, row=row)


def parse_size(text: str | int | None, *, name: str = "size") -> int | None:
    """Parse ``64MiB``, ``1GB``, ``1e6`` or a plain byte count (> 0; None stays None)."""
    from .params import SIZE, check

    if text is None:
        return None
    return SIZE.to_bytes(check(name, text, SIZE))


def located_error(message: str, source, *, column: str | None = None,
                  index: int | None = None) -> PipelineError:
    """An error at row ``index`` of a block read from ``source``: an object that locates its
    rows (``locate(index) -> (path, row)``, as :class:`pipeline.sources.RowOrigin`), or just a
    name (then the row is the block's own index)."""
    if hasattr(source, "locate"):
        path, row = source.locate(index) if index is not None else (str(source), None)
    else:
        path, row = (str(source) if source else None), index
    return PipelineError(message, path=path, column=column, row=row)
