"""User-facing errors: raised where the fact is known, turned into ``error: …`` by the CLI."""

from __future__ import annotations

from collections.abc import Callable


class PipelineError(ValueError):
    """Bad input or usage (exit status 2). The message names the file, column and row.

    A ``ValueError``, as scikit-learn's ``InvalidParameterError`` is, so library callers may
    catch either; the CLI maps it to ``error: …`` and exit status 2. ``params`` are the
    parameters the message names, in the library's words (``threshold``, ``overwrite=True``);
    the CLI says them as its options (``--threshold``, ``--overwrite``), see :meth:`worded`.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        column: str | None = None,
        row: int | None = None,
        params: tuple[str, ...] = (),
    ) -> None:
        self.path = path
        self.column = column
        self.row = row
        self.detail = message
        self.params = tuple(params)
        super().__init__(self._compose(message))

    def _compose(self, message: str) -> str:
        parts = []
        if self.path is not None:
            parts.append(str(self.path))
        if self.column is not None:
            parts.append(f"column {self.column!r}")
        if self.row is not None:
            parts.append(f"row {self.row}")
        parts.append(message)
        return ": ".join(parts)

    def worded(self, word: Callable[[str], str]) -> str:
        """The message with each of its ``params`` as ``word(name)`` calls it.

        A mention ``name=VALUE`` (``overwrite=True``, ``missing="drop"``, ``columns=NAMES``)
        is taken first, else the first bare ``name``; a name listed twice, two mentions.

        >>> err = PipelineError("pass overwrite=True to replace it", params=("overwrite",))
        >>> err.worded(lambda name: "--" + name)
        'pass --overwrite to replace it'
        >>> PipelineError('a missing value; pass missing="drop" to skip it',
        ...               params=("missing",)).worded(lambda name: "--" + name)
        'a missing value; pass --missing drop to skip it'
        """
        import re

        def say(match, name):
            value = match.group(2) if match.group(2) is not None else match.group(3)
            return word(name) + (f" {value}" if value not in (None, "True") else "")

        text = self.detail
        for name in self.params:
            bare = rf"(?<![\w-]){re.escape(name)}"
            text, n = re.subn(bare + r"""=(?:(['"])(.*?)\1|(\w+))""",
                              lambda m, name=name: say(m, name), text, count=1)
            if not n:
                text = re.sub(bare + r"(?![\w-])", lambda _, name=name: word(name), text,
                              count=1)
        return self._compose(text)

    def __reduce__(self):  # survive pickling between Dask workers and the client
        return (_rebuild, (self.detail, self.path, self.column, self.row, self.params))


class StorageError(Exception):
    """A file system or object store kept failing after its own retries (exit status 1, one
    ``error:`` line): not bad input, and whatever the run wrote is left for ``--resume``."""


class RangeNotSatisfiable(OSError):
    """A read past an object's end: the object is shorter than its plan says (it changed
    since it was planned). Bad input where it is read (exit 2, "cannot read"), not a
    store's failure."""

    def __init__(self, path: str) -> None:
        super().__init__(f"the bytes asked for are past the object's end: {path} changed "
                         "since it was planned")


def _rebuild(message, path, column, row, params=()):
    return PipelineError(message, path=path, column=column, row=row, params=params)


def nearest_columns(name: str, names) -> str:
    """What to add to "no such column": ``; did you mean 'label'?`` (the nearest names, by
    :mod:`difflib`, case ignored), else ``; the columns are: ...``."""
    import difflib

    names = [str(n) for n in names]
    lower = {}
    for n in names:
        lower.setdefault(n.lower(), n)
    close = [lower[n] for n in difflib.get_close_matches(str(name).lower(), list(lower), n=3,
                                                         cutoff=0.6)]
    if close:
        said = [repr(n) for n in close]
        return "; did you mean " + (said[0] if len(said) == 1 else
                                    ", ".join(said[:-1]) + " or " + said[-1]) + "?"
    shown = ", ".join(repr(n) for n in names[:12])
    return f"; the columns are: {shown}" + (f" (and {len(names) - 12} more)"
                                           if len(names) > 12 else "")


def located_error(message: str, source, *, column: str | None = None,
                  index: int | None = None, params: tuple[str, ...] = ()) -> PipelineError:
    """An error at row ``index`` of a block read from ``source``: an object that locates its
    rows (``locate(index) -> (path, row)``, as :class:`pipeline.io.sources.RowOrigin`), or just a
    name (then the row is the block's own index)."""
    if hasattr(source, "locate"):
        path, row = source.locate(index) if index is not None else (str(source), None)
    else:
        path, row = (str(source) if source else None), index
    return PipelineError(message, path=path, column=column, row=row, params=params)


class LockHeld(Exception):
    """Another process holds the lock; the text it wrote there is the argument."""


class PreconditionFailed(OSError):
    """A conditional write or delete found another version of the object than it named."""
