"""Every command's options, declared once as data: names, types, defaults, choices, rules.

The CLI builds its parser from these declarations, job files are validated against them, and
the library checks its parameters with the same rules (:func:`constraint`), so a bad value is
one sentence everywhere; only the name differs (``--workers`` on the CLI, a job file's key,
``workers`` in the library). The commands themselves, with their handlers, are in
:mod:`pipeline.cli.commands`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import PipelineError
from .params import (
    COUNT,
    DEVICES,
    FLOAT_DTYPES,
    FORMATS,
    INCREASING_PAIR,
    MISSING,
    MISSING_NO_KEEP,
    OUTPUTS,
    POSITIVE,
    PROBABILITY,
    SIZE,
    STORAGE_OPTIONS,
    Constraint,
    check,
)


@dataclass(frozen=True)
class Arg:
    name: str                       # python name; the flag is --name with - for _
    type: Any = str                 # str, int, float, bool (a flag), "path", or "value" (text
                                    # on the command line; any TOML scalar in a job file)
    positional: bool = False
    nargs: Any = None               # "+" (a list) or 2 (a pair)
    default: Any = None
    choices: tuple | None = None
    required: bool = False
    help: str = ""
    flag: str | None = None         # a flag other than --name
    check: Constraint | None = None  # the rule its value (each item of a "+" list) obeys
    repeat: bool = False            # may be given several times (a list; job files: a list
                                    # or, for KEY=VALUE options, a table)
    parse: Callable | None = None   # the CLI's texts to the value they stand for (a table)
    negatable: bool = False         # a bool flag that also has --no-NAME (default None)

    @property
    def option(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    def convert(self, text: str) -> Any:
        """CLI text as ``type``; text that is not one is kept, for :meth:`validate` to name."""
        try:
            return self.type(text) if self.type in (int, float) else text
        except ValueError:
            return text

    def validate(self, value: Any, name: str | None = None, *, path: str | None = None) -> Any:
        """``value`` if it obeys ``check`` (None, an absent option, always does), else a
        :class:`PipelineError` naming ``name`` (default: the option, ``--workers``)."""
        if self.is_path and isinstance(value, str):
            from ..io.urls import refuse_secret_url

            refuse_secret_url(value)
        if self.check is None or value is None:
            return value
        name = name or self.option
        items = value if self.nargs == "+" else [value]
        for item in items:
            check(name, item, self.check, path=path)
        return value

    @property
    def is_path(self) -> bool:
        return self.type == "path"


def key_values(items: list[str]) -> dict:
    """``--storage-option KEY=VALUE`` texts as one table; a value that is JSON (``true``,
    ``3``) is parsed as JSON, any other is text, and a secret's value (an option that
    :func:`~pipeline.io.storage.redact` hides) is always text: ``secret=12345`` stays a string.
    A bad item is not echoed: it may hold a secret."""
    from ..io.urls import parse_storage_options, redact

    for i, item in enumerate(items, start=1):
        key, sep, _ = item.partition("=")
        if not (sep and key.strip()):
            raise PipelineError(f"--storage-option must be KEY=VALUE; item {i} is not (its "
                                "text is not shown, as it may hold a secret)")
    options = parse_storage_options(items)
    texts = dict(item.split("=", 1) for item in items)
    hidden = {k for k, v in redact(dict.fromkeys(texts, "")).items() if v != ""}
    return {k: texts[k] if k in hidden else v for k, v in options.items()}


STORAGE_ARG = Arg("storage_options", flag="--storage-option", check=STORAGE_OPTIONS,
                  repeat=True, parse=key_values,
                  help="KEY=VALUE for the file system of URLs (repeatable), e.g. "
                  "endpoint_url=http://127.0.0.1:9000; credentials are best left to the "
                  "environment")

EXEC_ARGS = [
    Arg("scheduler", help="address of an existing Dask scheduler (default: run locally)"),
    Arg("workers", int, check=COUNT, help="start a local Dask cluster of N worker processes"),
    Arg("threads_per_worker", int, check=COUNT,
        help="threads per worker (local threads without --workers)"),
    Arg("memory_limit", check=SIZE,
        help="memory limit per worker, e.g. 1GiB (starts a local cluster)"),
    Arg("blocksize", check=SIZE, help="upper bound of one chunk's input bytes, e.g. 128MiB"),
    Arg("io_concurrency", int, check=COUNT,
        help="requests in flight at once per process on an object store (default 32)"),
    Arg("device", choices=DEVICES, default="cpu", help="where chunks compute"),
    Arg("overwrite", bool, help="replace an existing output once the new one is complete"),
    Arg("resume", bool, help="continue an interrupted run with the same parameters"),
    Arg("quiet", bool, help="no progress bar"),
    STORAGE_ARG,
    Arg("performance_report", "path",
        help="FILE.html: Dask's performance report of the run (on a cluster)"),
]
CLUSTER_KEYS = ("scheduler", "workers", "threads_per_worker", "memory_limit")
# Options of the commands that read data files (not generate).
READ_ARGS = [
    Arg("dtype", repeat=True, help="COL=TYPE: a CSV column's type by hand (int64, float64, "
        "float32, bool, string, ...); repeatable"),
    Arg("null_values", help='CSV texts read as null besides the empty cell, e.g. "NA,N/A" '
        "(default: only empty cells are null)"),
]


# ``--features-from``: which columns the default feature set takes
FEATURE_SETS = ("float", "numeric")
_MISSING_HELP = {"error": "error (names file, column and row)",
                 "drop": "drop (skip the row, count it)", "keep": "keep (null results)"}


def missing_arg(choices: tuple[str, ...], default: str) -> Arg:
    return Arg("missing", choices=choices, default=default,
               help="a null or NaN in a used column: " +
                    ", ".join(_MISSING_HELP[c] for c in choices))


# The commands that read or write data, and so take the execution options.
DATA_COMMANDS = ("generate", "transform", "train", "score", "evaluate")

ARGS: dict[str, list[Arg]] = {
    "generate": [
        Arg("out", "path", positional=True, help="output folder"),
        Arg("rows", int, required=True, check=COUNT),
        Arg("features", int, required=True, check=COUNT),
        Arg("files", int, default=1, check=COUNT),
        Arg("format", choices=FORMATS, default="parquet"),
        Arg("dtype", choices=FLOAT_DTYPES, default="float64"),
        Arg("seed", int, default=0)],
    "transform": [
        Arg("input", "path", positional=True), Arg("out", "path", positional=True),
        Arg("columns", nargs="+", help="columns to transform (default: every float column)"),
        Arg("temperature", float, default=1.0, check=POSITIVE),
        Arg("range", float, nargs=2, default=(0.0, 1.0), check=INCREASING_PAIR),
        Arg("output", choices=OUTPUTS, default="value"),
        missing_arg(MISSING, "keep"), *READ_ARGS],
    "train": [
        Arg("input", "path", positional=True), Arg("model", "path", positional=True),
        Arg("label", required=True),
        Arg("features", nargs="+", help="feature columns: names or shell-style patterns "
            "('f*', 'x[0-9]'); default: the columns --features-from chooses"),
        Arg("exclude", nargs="+", help="columns (or patterns) to leave out of the features"),
        Arg("features_from", choices=FEATURE_SETS, default="float",
            help="the default feature set: float columns, or numeric (float, integer and "
            "bool)"),
        Arg("C", float, default=1.0, flag="--C", check=POSITIVE), Arg("no_penalty", bool),
        Arg("tol", float, default=1e-10, check=POSITIVE),
        Arg("max_iter", int, default=50, check=COUNT),
        Arg("positive", "value", help="the label's positive class (default: the larger "
            "value)"),
        missing_arg(MISSING_NO_KEEP, "error"),
        Arg("weight", help="a column of sample weights (finite, non-negative)"),
        Arg("class_weight", help='"balanced" or JSON per class, e.g. {"0": 1, "1": 5}'),
        Arg("categorical", nargs="+", help="string, integer or bool columns to one-hot "
            "encode"),
        Arg("max_categories", int, default=1000, check=COUNT,
            help="at most this many values per categorical column"),
        Arg("drop_first", bool, negatable=True,
            help="one-hot with a reference level: each categorical column's first value "
            "(sorted) gets coefficient 0 (default: on with --no-penalty, else off)"),
        *READ_ARGS],
    "score": [
        Arg("input", "path", positional=True), Arg("model", "path", positional=True),
        Arg("out", "path", positional=True), Arg("keep", nargs="+"),
        Arg("threshold", float, default=0.5, check=PROBABILITY),
        missing_arg(MISSING, "error"), *READ_ARGS],
    "evaluate": [
        Arg("input", "path", positional=True), Arg("model", "path", positional=True),
        Arg("label", required=True), missing_arg(MISSING_NO_KEEP, "error"),
        Arg("weight", help="a column of sample weights: weighted metrics"),
        Arg("out", "path", help="FILE.json: also keep the ROC curve, calibration, score "
            "histograms and confusion matrix"), *READ_ARGS],
    "run": [
        Arg("job", "path", positional=True), STORAGE_ARG],
    "report": [
        Arg("out", "path", positional=True), STORAGE_ARG],
    "bench": [
        Arg("json", bool, help="print JSON instead of a table"),
        Arg("sizes", int, nargs="+", default=(1_000_000, 10_000_000), check=COUNT),
        Arg("repeat", int, default=5, check=COUNT)],
}


def constraint(command: str, name: str) -> Constraint | None:
    """The rule declared for one option of a command (or of the execution options)."""
    args = ARGS[command] + (EXEC_ARGS if command in DATA_COMMANDS else [])
    return next(a.check for a in args if a.name == name)
