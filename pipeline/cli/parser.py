"""The ``pipeline`` command: parses arguments, calls the library, maps errors to exit codes.

0 done; 2 bad input or usage (one ``error:`` line, no traceback); 1 an unexpected failure;
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import sys
import warnings

from ..config.exec_options import validate_exec_options
from ..errors import PipelineError, StorageError
from . import commands
from .commands import execute
from .jobs import RUN

# Every command the CLI knows: the library's, and ``run`` (the steps of a job file).
COMMANDS = {**commands.COMMANDS, RUN.name: RUN}


# Library parameters whose option has another name.
_OPTION_NAMES = {"feature_range": "range", "fmt": "format"}


def option(name: str) -> str:
    """A library parameter as the CLI calls it (``threshold``: ``--threshold``); a name that
    is no option's stays as it is."""
    name = _OPTION_NAMES.get(name, name)
    for cmd in COMMANDS.values():
        for a in cmd.all_args():
            if a.name == name and not a.positional:
                return a.option
    return name


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like every other bad input
        raise PipelineError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pipeline", description="Out-of-core sigmoid transforms and logistic "
                     "regression over Parquet/CSV, with atomic, resumable output.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for cmd in COMMANDS.values():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        for a in cmd.all_args():
            if a.positional:
                p.add_argument(a.name, help=a.help)
            elif a.type is bool:
                p.add_argument(a.option, dest=a.name, help=a.help,
                               action=argparse.BooleanOptionalAction if a.negatable
                               else "store_true")
            elif a.repeat:
                p.add_argument(a.option, dest=a.name, action="append", help=a.help)
            else:
                # a checked option is converted leniently and checked after parsing, so a
                # bad value, a number or not, gets its rule's one sentence
                typ = (a.convert if a.check else str if a.type in ("path", "value")
                       else a.type)
                p.add_argument(a.option, dest=a.name, type=typ, nargs=a.nargs,
                               default=a.default, choices=a.choices, required=a.required,
                               help=a.help)
        if cmd.name == "train":
            p.epilog = "--C and --no-penalty exclude each other."
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    warnings.showwarning = _show_warning
    try:
        args = build_parser().parse_args(argv)
        values = vars(args)
        cmd = COMMANDS[values["command"]]
        for a in cmd.all_args():
            if a.parse is not None and values.get(a.name) is not None:
                values[a.name] = a.parse(values[a.name])
            a.validate(values.get(a.name))
        if cmd.data:
            validate_exec_options(values, named=lambda a: a.option)
        if values["command"] == "train" and values.get("no_penalty") and \
                "--C" in (argv if argv is not None else sys.argv):
            raise PipelineError("--C and --no-penalty exclude each other")
        values.pop("command")
        return execute(cmd, values)
    except PipelineError as exc:  # the library's words for parameters, as options
        print(f"error: {exc.worded(option)}", file=sys.stderr)
        return 2
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; rerun with --resume to continue", file=sys.stderr)
        return 130
    except SystemExit:
        raise
    except BaseException:  # noqa: BLE001 - an unexpected failure: show it all
        import traceback

        traceback.print_exc()
        print("error: unexpected failure (see the traceback above)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
