"""The command's process: :func:`run` is the ``pipeline`` command (and ``python -m
pipeline``).

It ends the process as the interpreter would, less the teardown of every module and object
that comes last: after an object-store transform that teardown took 40-60 ms of the run
(measured from ``main``'s return to the process's end; 10 ms without it), time a user
waits for with nothing left to do (mypy's ``hard_exit`` skips it likewise). The exit handler
is registered before the parser is imported, so it is the last one called: the interpreter
has joined the run's threads and called every other handler (logging's flush among them);
then the standard streams are flushed and the process ends with the run's status. Where a
handler was registered before (coverage.py's, say, under ``coverage run``), it would not be
called: the process then ends as usual.
"""

from __future__ import annotations

import atexit
import os
import sys

# the status the process ends with: an exception escaping the command (a failed import, an
# error in an error's report) ends it as the interpreter would, 1 (130 for Ctrl-C)
_STATUS = [1]


def _end() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: what the reader left is lost anyway
            pass
    os._exit(_STATUS[0])


def _list_ahead(args: list[str]) -> None:
    """A data command's object-store INPUT (its first argument) listed while the command's
    modules are imported (see :func:`pipeline.io.obstore_s3.list_ahead`)."""
    if len(args) > 1 and args[0] in _INPUT_FIRST and args[1].startswith(("s3://", "s3a://")) \
            and not any(_names_storage_options(arg) for arg in args[2:]):
        try:
            from ..io.obstore_s3 import list_ahead

            list_ahead(args[1])
        except Exception:  # noqa: BLE001, S110 - only a head start: the command lists anyway
            pass


# the commands whose first argument is INPUT
_INPUT_FIRST = ("transform", "score", "evaluate", "train")


def _names_storage_options(arg: str) -> bool:
    """Whether ``arg`` is ``--storage-option`` (or a prefix argparse takes for it): the
    store is then opened with options (other keys, anonymous), not from the environment,
    and nothing is asked of it ahead with the environment's keys."""
    flag = arg.split("=", 1)[0]
    return len(flag) > 3 and "--storage-option".startswith(flag)


def run() -> None:
    if getattr(atexit, "_ncallbacks", lambda: 1)() == 0:
        atexit.register(_end)
    try:
        _list_ahead(sys.argv[1:])
        from .parser import main

        status = main()
    except SystemExit as exc:  # argparse's usage errors (2) and --help (0)
        status = exc.code
    except KeyboardInterrupt:  # (main reports its own: this one came before or after it)
        _STATUS[0] = 130
        raise
    if status is None:
        status = 0
    elif not isinstance(status, int):
        print(status, file=sys.stderr)
        status = 1
    _STATUS[0] = status
    sys.exit(status)
