"""Every command's arguments, declared once as data, and the call each one makes.

The CLI builds its parser from these declarations and job files are validated against them,
so a job step's keys are exactly the command's options.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import PipelineError
from .params import (
    COUNT,
    INCREASING_PAIR,
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
    :func:`~pipeline.storage.redact` hides) is always text: ``secret=12345`` stays a string.
    A bad item is not echoed: it may hold a secret."""
    from .storage import parse_storage_options, redact

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
    Arg("device", choices=("cpu", "gpu", "auto"), default="cpu", help="where chunks compute"),
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
]


def missing_arg(choices: tuple[str, ...], default: str) -> Arg:
    return Arg("missing", choices=choices, default=default,
               help="a null or NaN in a used column: error (names file, column and row), "
                    "drop (skip the row, count it), keep (null results)")


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    args: list[Arg]
    data: bool = True               # takes the execution options
    outputs: tuple[str, ...] = ()   # args naming what the step writes
    inputs: tuple[str, ...] = ()    # args naming what the step reads

    def all_args(self) -> list[Arg]:
        return self.args + (EXEC_ARGS if self.data else [])


COMMANDS: dict[str, Command] = {c.name: c for c in [
    Command("generate", "write a synthetic logistic data set", [
        Arg("out", "path", positional=True, help="output folder"),
        Arg("rows", int, required=True, check=COUNT),
        Arg("features", int, required=True, check=COUNT),
        Arg("files", int, default=1, check=COUNT),
        Arg("format", choices=("parquet", "csv"), default="parquet"),
        Arg("dtype", choices=("float64", "float32"), default="float64"),
        Arg("seed", int, default=0)], outputs=("out",)),
    Command("transform", "stable sigmoid of columns, streamed to an output folder", [
        Arg("input", "path", positional=True), Arg("out", "path", positional=True),
        Arg("columns", nargs="+", help="columns to transform (default: every float column)"),
        Arg("temperature", float, default=1.0, check=POSITIVE),
        Arg("range", float, nargs=2, default=(0.0, 1.0), check=INCREASING_PAIR),
        Arg("output", choices=("value", "derivative", "log"), default="value"),
        missing_arg(("keep", "drop", "error"), "keep"), *READ_ARGS],
        outputs=("out",), inputs=("input",)),
    Command("train", "fit a logistic regression out of core", [
        Arg("input", "path", positional=True), Arg("model", "path", positional=True),
        Arg("label", required=True), Arg("features", nargs="+"),
        Arg("C", float, default=1.0, flag="--C", check=POSITIVE), Arg("no_penalty", bool),
        Arg("tol", float, default=1e-10, check=POSITIVE),
        Arg("max_iter", int, default=50, check=COUNT),
        Arg("positive", "value", help="the label's positive class (default: the larger "
            "value)"),
        missing_arg(("error", "drop"), "error"),
        Arg("weight", help="a column of sample weights (finite, non-negative)"),
        Arg("class_weight", help='"balanced" or JSON per class, e.g. {"0": 1, "1": 5}'),
        Arg("categorical", nargs="+", help="string, integer or bool columns to one-hot "
            "encode"),
        Arg("max_categories", int, default=1000, check=COUNT,
            help="at most this many values per categorical column"),
        *READ_ARGS],
        outputs=("model",), inputs=("input",)),
    Command("score", "probability and prediction per row", [
        Arg("input", "path", positional=True), Arg("model", "path", positional=True),
        Arg("out", "path", positional=True), Arg("keep", nargs="+"),
        Arg("threshold", float, default=0.5, check=PROBABILITY),
        missing_arg(("error", "drop", "keep"), "error"), *READ_ARGS],
        outputs=("out",), inputs=("input", "model")),
    Command("evaluate", "log loss, accuracy and AUC as JSON on stdout", [
        Arg("input", "path", positional=True), Arg("model", "path", positional=True),
        Arg("label", required=True), missing_arg(("error", "drop"), "error"),
        Arg("weight", help="a column of sample weights: weighted metrics"),
        Arg("out", "path", help="FILE.json: also keep the ROC curve, calibration, score "
            "histograms and confusion matrix"), *READ_ARGS],
        inputs=("input", "model")),
    Command("run", "run the steps of a TOML job file", [
        Arg("job", "path", positional=True), STORAGE_ARG], data=False),
    Command("report", "write OUT/_report.html with per-chunk plots", [
        Arg("out", "path", positional=True), STORAGE_ARG], data=False, inputs=("out",)),
    Command("bench", "the activation benchmark", [
        Arg("json", bool, help="print JSON instead of a table"),
        Arg("sizes", int, nargs="+", default=(1_000_000, 10_000_000), check=COUNT),
        Arg("repeat", int, default=5, check=COUNT)], data=False),
]}


def constraint(command: str, name: str) -> Constraint | None:
    """The rule declared for one option of a command (or of the execution options)."""
    return next(a.check for a in COMMANDS[command].all_args() if a.name == name)


def exec_options(values: dict):
    from .execution import ExecOptions

    return ExecOptions(**{a.name: values.get(a.name, a.default) for a in EXEC_ARGS})


def execute(name: str, values: dict, *, client=None, out=None) -> int:
    """Run one command with parsed values; returns the exit status."""
    out = out or sys.stdout
    v = values
    quiet = bool(v.get("quiet"))

    def note(text: str) -> None:
        if not quiet:
            print(f"note: {text}", file=sys.stderr)

    def dropped(count) -> None:
        if count is not None and not quiet:
            print(f"dropped {count:,} rows with missing values", file=sys.stderr)

    if name == "generate":
        from .synthetic import generate

        generate(v["out"], v["rows"], v["features"], files=v["files"], fmt=v["format"],
                 dtype=v["dtype"], seed=v["seed"], options=exec_options(v), client=client)
    elif name == "transform":
        from .api import transform_files

        res = transform_files(v["input"], v["out"], columns=v.get("columns"),
                              temperature=v["temperature"], feature_range=tuple(v["range"]),
                              output=v["output"], missing=v["missing"], dtype=v.get("dtype"),
                              options=exec_options(v), client=client, note=note)
        dropped(res.get("rows_dropped"))
    elif name == "train":
        from .api import train_files

        def log(entry):
            if not quiet:
                print(f"pass {entry['pass']}: loss {entry['loss']:.12g}  gradient "
                      f"{entry['grad_norm']:.3g}  {entry['seconds']:.2f}s  "
                      f"rss {entry['rss_bytes'] / 2**20:.0f} MiB", file=sys.stderr)

        m = train_files(v["input"], v["model"], label=v["label"], features=v.get("features"),
                        C=v["C"], penalty=None if v.get("no_penalty") else "l2", tol=v["tol"],
                        max_iter=v["max_iter"], positive=v.get("positive"),
                        missing=v["missing"], weight=v.get("weight"),
                        class_weight=v.get("class_weight"),
                        categorical=v.get("categorical"),
                        max_categories=v.get("max_categories", 1000), dtype=v.get("dtype"),
                        options=exec_options(v), client=client, log=log, note=note)
        if v["missing"] == "drop":
            dropped(m.rows_dropped_)
        if not quiet:
            print(f"trained on {m.rows_:,} rows in {m.passes_} passes "
                  f"({m.iterations_} iterations, converged={m.converged_}): {v['model']}",
                  file=sys.stderr)
    elif name == "score":
        from .api import score_files

        res = score_files(v["input"], v["model"], v["out"], keep=v.get("keep"),
                          threshold=v["threshold"], missing=v["missing"], dtype=v.get("dtype"),
                          options=exec_options(v), client=client)
        dropped(res.get("rows_dropped"))
    elif name == "evaluate":
        from .api import evaluate_files

        res = evaluate_files(v["input"], v["model"], label=v["label"], missing=v["missing"],
                             weight=v.get("weight"), out=v.get("out"),
                             dtype=v.get("dtype"), options=exec_options(v), client=client)
        dropped(res.get("rows_dropped"))
        from .score import evaluation_summary

        print(json.dumps(evaluation_summary(res)), file=out)
    elif name == "run":
        from .jobs import run_job

        run_job(v["job"], storage_options=v.get("storage_options"))
    elif name == "report":
        from .report import write_report

        print(write_report(v["out"], storage_options=v.get("storage_options")), file=out)
    elif name == "bench":
        from .bench import run_bench

        run_bench(sizes=list(v["sizes"]), repeat=v["repeat"], as_json=v["json"], out=out)
    else:  # pragma: no cover - names come from COMMANDS
        raise PipelineError(f"unknown command {name!r}")
    return 0
