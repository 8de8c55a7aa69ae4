"""User-facing errors: raised where the fact is known, turned into ``error: …`` by the CLI."""

from __future__ import annotations


class PipelineError(Exception):
    """Bad input or usage (exit status 2). The message names the file, column and row."""

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


def _rebuild(message, path, column, row):
    return PipelineError(message, path=path, column=column, row=row)


def parse_size(text: str | int | None, *, name: str = "size") -> int | None:
    """Parse ``64MiB``, ``1GB``, ``1e6`` or a plain byte count."""
    if text is None or isinstance(text, int):
        return text
    units = {
        "": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
        "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "k": 2**10, "m": 2**20,
        "g": 2**30,
    }
    s = str(text).strip().lower().replace(" ", "")
    i = len(s)
    while i > 0 and s[i - 1].isalpha():
        i -= 1
    number, unit = s[:i], s[i:]
    try:
        value = float(number)
    except ValueError:
        value = None
    if value is None or unit not in units or not value > 0 or value != value:
        raise PipelineError(f"cannot parse {name} {text!r} (examples: 64MiB, 1GiB, 1000000)")
    return int(value * units[unit])


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
