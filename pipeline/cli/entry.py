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
    modules are imported (see :func:`pipeline.io.obstore_s3.list_ahead`); not where the
    command is given storage options (other keys, anonymous access: nothing is asked of the
    store with the environment's keys then)."""
    if len(args) < 2 or not args[1].startswith(("s3://", "s3a://")):
        return
    try:
        from ..config.options import ARGS, STORAGE_ARG
        from ..io.obstore_s3 import list_ahead

        first = next((a.name for a in ARGS.get(args[0], ()) if a.positional), None)
        if first == "input" and not any(_abbreviates(arg, STORAGE_ARG.option)
                                        for arg in args[2:]):
            list_ahead(args[1])
    except Exception:  # noqa: BLE001, S110 - only a head start: the command lists anyway
        pass


def _abbreviates(arg: str, option: str) -> bool:
    """Whether ``arg`` is ``option`` (``--name`` or ``--name=value``) or a prefix of it
    that argparse takes for it."""
    flag = arg.split("=", 1)[0]
    return len(flag) > 3 and option.startswith(flag)


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
