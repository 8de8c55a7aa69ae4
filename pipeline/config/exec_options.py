"""The execution options every data command takes (``--workers``, ``--scheduler``,
``--blocksize``, ``--overwrite``, ...): their values as one object, and the rules between them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from ..errors import PipelineError
from .params import parse_size


@dataclass
class ExecOptions:
    """The execution options every data command takes, checked when made.

    Each option's rule is declared once, on its ``Arg`` in :mod:`pipeline.config.options`; a bad
    value raises :class:`PipelineError` naming the parameter (``workers must be an integer
    >= 1; got -1``).
    """

    scheduler: str | None = None
    workers: int | None = None
    threads_per_worker: int | None = None
    memory_limit: str | int | None = None
    blocksize: str | int | None = None
    io_concurrency: int | None = None  # requests in flight per process on an object store
    device: str = "cpu"
    overwrite: bool = False
    resume: bool = False
    quiet: bool = False
    storage_options: dict | None = None  # for URLs (s3://...): passed to the file system
    performance_report: str | None = None  # FILE.html: Dask's report of a run on a cluster

    def __post_init__(self) -> None:
        validate_exec_options(vars(self))

    def blocksize_bytes(self) -> int | None:
        return parse_size(self.blocksize, name="blocksize")

    def memory_limit_bytes(self) -> int | None:
        return parse_size(self.memory_limit, name="memory_limit")


def with_storage_options(options: ExecOptions | None, storage_options: dict | None
                         ) -> ExecOptions:
    """``options`` (default: the defaults) with a library call's ``storage_options=`` in
    them; the same options given twice, differently, are an error."""
    options = options or ExecOptions()
    if storage_options is None or storage_options == options.storage_options:
        return options
    if options.storage_options is not None:
        raise PipelineError("storage_options given twice, differently: as storage_options= "
                            "and in options=ExecOptions(storage_options=...); give them once")
    return replace(options, storage_options=storage_options)


LOCAL_CLUSTER_KEYS = ("workers", "threads_per_worker", "memory_limit")


def validate_exec_options(values: dict, *, named: Callable = lambda arg: arg.name) -> None:
    """Check every execution option against its declared rule, and their combination.

    ``named(arg)`` is what the message calls an option: the parameter (``workers``), the
    CLI's flag (``--workers``) or a job file's key.
    """
    from .options import EXEC_ARGS

    args = {a.name: a for a in EXEC_ARGS}
    for a in EXEC_ARGS:
        a.validate(values.get(a.name), named(a))
    if values.get("overwrite") and values.get("resume"):
        raise PipelineError(f"{named(args['overwrite'])} and {named(args['resume'])} cannot "
                            "be used together")
    if values.get("scheduler"):
        local = [k for k in LOCAL_CLUSTER_KEYS if values.get(k) is not None]
        if local:  # would be silently ignored: an existing cluster has its own size
            raise PipelineError(f"{named(args['scheduler'])} (an existing cluster) cannot be "
                                f"combined with {named(args[local[0]])}, which sizes a local "
                                "cluster")
