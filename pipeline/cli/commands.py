"""The commands: each one's options (declared in :mod:`pipeline.config.options`) and its handler.

A handler takes the parsed values of its command's options and calls the library; the CLI
and job files run a command through :func:`execute`, which only looks the handler up.
``pipeline run`` (a job file's steps, which are commands) is declared in :mod:`pipeline.cli.jobs`,
above this module. Handlers import the library when called, so that the CLI starts fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from ..config.exec_options import ExecOptions
from ..config.options import ARGS, DATA_COMMANDS, EXEC_ARGS, Arg


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    handler: Callable[..., None]    # handler(values, client=..., out=...): the library call
    outputs: tuple[str, ...] = ()   # args naming what the step writes
    inputs: tuple[str, ...] = ()    # args naming what the step reads

    @property
    def args(self) -> list[Arg]:
        return ARGS[self.name]

    @property
    def data(self) -> bool:
        """Whether it takes the execution options (reads or writes data)."""
        return self.name in DATA_COMMANDS

    def all_args(self) -> list[Arg]:
        return self.args + (EXEC_ARGS if self.data else [])


def exec_options(values: dict) -> ExecOptions:
    return ExecOptions(**{a.name: values.get(a.name, a.default) for a in EXEC_ARGS})


def _note(values: dict) -> Callable[[str], None]:
    def note(text: str) -> None:
        if not values.get("quiet"):
            print(f"note: {text}", file=sys.stderr)

    return note


def _dropped(values: dict, count) -> None:
    if count is not None and not values.get("quiet"):
        print(f"dropped {count:,} rows with missing values", file=sys.stderr)


def _generate(v: dict, *, client=None, out: IO) -> None:
    from ..run.synthetic import generate

    generate(v["out"], rows=v["rows"], features=v["features"], files=v["files"],
             fmt=v["format"], dtype=v["dtype"], seed=v["seed"], options=exec_options(v),
             client=client)


def _transform(v: dict, *, client=None, out: IO) -> None:
    from ..api import transform_files

    res = transform_files(v["input"], v["out"], columns=v.get("columns"),
                          temperature=v["temperature"], feature_range=tuple(v["range"]),
                          output=v["output"], missing=v["missing"], dtype=v.get("dtype"),
                          null_values=v.get("null_values"),
                          options=exec_options(v), client=client, note=_note(v))
    _dropped(v, res.get("rows_dropped"))


def _train(v: dict, *, client=None, out: IO) -> None:
    from ..api import train_files

    quiet = bool(v.get("quiet"))

    def log(entry):
        if not quiet:
            print(f"pass {entry['pass']}: loss {entry['loss']:.12g}  gradient "
                  f"{entry['grad_norm']:.3g}  {entry['seconds']:.2f}s  "
                  f"rss {entry['rss_bytes'] / 2**20:.0f} MiB", file=sys.stderr)

    m = train_files(v["input"], v["model"], label=v["label"], features=v.get("features"),
                    exclude=v.get("exclude"), features_from=v.get("features_from", "float"),
                    C=v["C"], penalty=None if v.get("no_penalty") else "l2", tol=v["tol"],
                    max_iter=v["max_iter"], positive=v.get("positive"),
                    missing=v["missing"], weight=v.get("weight"),
                    class_weight=v.get("class_weight"), categorical=v.get("categorical"),
                    max_categories=v.get("max_categories", 1000),
                    drop_first=v.get("drop_first"), dtype=v.get("dtype"),
                    null_values=v.get("null_values"),
                    options=exec_options(v), client=client, log=log, note=_note(v))
    if v["missing"] == "drop":
        _dropped(v, m.rows_dropped_)
    if not quiet:
        print(f"trained on {m.rows_:,} rows in {m.passes_} passes "
              f"({m.iterations_} iterations, converged={m.converged_}): {v['model']}",
              file=sys.stderr)


def _score(v: dict, *, client=None, out: IO) -> None:
    from ..api import score_files

    res = score_files(v["input"], v["model"], v["out"], keep=v.get("keep"),
                      threshold=v["threshold"], missing=v["missing"], dtype=v.get("dtype"),
                      null_values=v.get("null_values"),
                      options=exec_options(v), client=client)
    _dropped(v, res.get("rows_dropped"))


def _evaluate(v: dict, *, client=None, out: IO) -> None:
    from ..api import evaluate_files

    res = evaluate_files(v["input"], v["model"], label=v["label"], missing=v["missing"],
                         weight=v.get("weight"), out=v.get("out"), dtype=v.get("dtype"),
                         null_values=v.get("null_values"),
                         options=exec_options(v), client=client)
    _dropped(v, res.get("rows_dropped"))
    from ..ops.score import evaluation_summary

    print(json.dumps(evaluation_summary(res)), file=out)


def _report(v: dict, *, client=None, out: IO) -> None:
    from .report import write_report

    print(write_report(v["out"], storage_options=v.get("storage_options")), file=out)


def _bench(v: dict, *, client=None, out: IO) -> None:
    from .bench import run_bench

    run_bench(sizes=list(v["sizes"]), repeat=v["repeat"], as_json=v["json"], out=out)


COMMANDS: dict[str, Command] = {c.name: c for c in [
    Command("generate", "write a synthetic logistic data set", _generate, outputs=("out",)),
    Command("transform", "stable sigmoid of columns, streamed to an output folder",
            _transform, outputs=("out",), inputs=("input",)),
    Command("train", "fit a logistic regression out of core", _train, outputs=("model",),
            inputs=("input",)),
    Command("score", "probability and prediction per row", _score, outputs=("out",),
            inputs=("input", "model")),
    Command("evaluate", "log loss, accuracy and AUC as JSON on stdout", _evaluate,
            inputs=("input", "model")),
    Command("report", "write OUT/_report.html with per-chunk plots", _report,
            inputs=("out",)),
    Command("bench", "the activation benchmark", _bench),
]}


def execute(command: Command, values: dict[str, Any], *, client=None,
            out: IO | None = None) -> int:
    """Run one command with parsed values; returns the exit status."""
    command.handler(values, client=client, out=out or sys.stdout)
    return 0
