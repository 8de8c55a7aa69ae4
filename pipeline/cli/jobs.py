"""``pipeline run JOB.toml``: the steps of a job file, validated whole, then run in order.

A job file has an optional ``[cluster]`` table (``scheduler``, or ``workers``,
``threads_per_worker`` and ``memory_limit`` for a local cluster) and an array of
``[[steps]]``, each with a ``command`` and that command's options under their CLI names
(``max-iter`` or ``max_iter``), and an optional ``[storage]`` table of options for the file
systems of URLs, applied to every step. The job file may itself be a URL. Relative paths are
relative to the job file's folder (a URL's folder for a job file on a URL). All steps share
one cluster.
"""

from __future__ import annotations

import glob
import os
import posixpath
import sys
import tomllib

from ..config.exec_options import ExecOptions, validate_exec_options
from ..config.options import CLUSTER_KEYS, EXEC_ARGS
from ..config.params import STORAGE_OPTIONS, check
from ..errors import PipelineError
from ..io.storage import open_storage
from ..io.urls import is_url
from ..run.execution import open_executor
from .commands import COMMANDS, Command, execute

STEP_COMMANDS = ("generate", "transform", "train", "score", "evaluate", "report")


def load_job(path: str | os.PathLike, *, storage_options: dict | None = None
             ) -> tuple[dict, list[tuple[str, dict]]]:
    """Parse and validate a job file completely; returns (cluster, [(command, values)]).

    ``storage_options`` (``pipeline run --storage-option``) read a job file on a URL and go
    to every step, over the job's own ``[storage]`` table (a key given in both: this one).
    """
    path = os.fspath(path)
    storage, key = open_storage(path, storage_options)
    try:
        with storage.open(key, "rb") as fh:
            doc = tomllib.loads(fh.read().decode("utf-8"))
    except FileNotFoundError:
        raise PipelineError("no such job file", path=path) from None
    except OSError as exc:
        raise PipelineError(f"cannot read the job file ({exc.strerror or type(exc).__name__})",
                            path=path) from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PipelineError(f"not valid TOML ({exc})", path=path) from None
    if is_url(path):
        base = storage.url(storage.parent(key))
    else:
        base = os.path.dirname(os.path.abspath(path))
    unknown = set(doc) - {"cluster", "steps", "storage"}
    if unknown:
        raise PipelineError(f"unknown top-level key {sorted(unknown)[0]!r} (expected "
                            "[cluster], [storage] and [[steps]])", path=path)
    table = doc.get("storage", {})
    check("[storage]", table, STORAGE_OPTIONS, path=path)
    shared_storage = {**table, **(storage_options or {})} or None
    cluster = {}
    for key, value in (doc.get("cluster") or {}).items():
        k = key.replace("-", "_")
        if k not in CLUSTER_KEYS:
            raise PipelineError(f"[cluster]: unknown key {key!r} (expected one of "
                                f"{', '.join(CLUSTER_KEYS)})", path=path)
        arg = next(a for a in EXEC_ARGS if a.name == k)
        cluster[k] = _check_value(arg, value, path, "[cluster]", key, base)
    try:
        validate_exec_options(cluster, named=lambda a: f"key {a.name!r}")
    except PipelineError as exc:
        raise PipelineError(f"[cluster]: {exc.detail}", path=path) from None
    steps_doc = doc.get("steps")
    if not isinstance(steps_doc, list) or not steps_doc:
        raise PipelineError("a job needs at least one [[steps]] table", path=path)
    steps: list[tuple[str, dict]] = []
    produced: list[str] = []
    for i, step in enumerate(steps_doc, start=1):
        where = f"step {i}"
        if not isinstance(step, dict) or "command" not in step:
            raise PipelineError(f"{where}: missing key 'command'", path=path)
        name = step["command"]
        if name not in STEP_COMMANDS:
            raise PipelineError(f"{where}: unknown command {name!r} (one of "
                                f"{', '.join(STEP_COMMANDS)})", path=path)
        cmd = COMMANDS[name]
        args = {a.name: a for a in cmd.all_args()}
        values = {a.name: a.default for a in cmd.all_args()}
        values.update({k: v for k, v in cluster.items() if k in args})
        if "storage_options" in args:
            values["storage_options"] = shared_storage
        for key, value in step.items():
            if key == "command":
                continue
            k = key.replace("-", "_")
            if k in ("storage_option", "storage_options"):
                raise PipelineError(f"{where} ({name}): key {key!r} belongs in [storage], "
                                    "shared by all steps", path=path)
            if k not in args:
                raise PipelineError(f"{where} ({name}): unknown key {key!r}", path=path)
            if k in CLUSTER_KEYS:
                raise PipelineError(f"{where} ({name}): key {key!r} belongs in [cluster], "
                                    "shared by all steps", path=path)
            values[k] = _check_value(args[k], value, path, f"{where} ({name})", key, base)
        for a in cmd.all_args():
            if (a.required or a.positional) and values.get(a.name) is None:
                raise PipelineError(f"{where} ({name}): missing key {a.option.lstrip('-')!r}",
                                    path=path)
        for key in cmd.inputs:
            p = values[key]
            if any(_under(p, q) for q in produced):
                continue
            try:
                found = _exists(p, shared_storage)
            except PipelineError as exc:  # a URL whose file system is not installed, say
                raise PipelineError(f"{where} ({name}): {key}: {exc}", path=path,
                                    params=exc.params) from None
            if not found:
                raise PipelineError(f"{where} ({name}): {key} {p!r} does not exist and no "
                                    "earlier step writes it", path=path)
        produced.extend(values[k] for k in cmd.outputs)
        steps.append((name, values))
    return cluster, steps


def _exists(p: str, storage_options: dict | None) -> bool:
    """Whether an input is there: a file or folder, or a glob that matches."""
    storage, key = open_storage(p, storage_options)
    if glob.has_magic(key):
        return bool(storage.glob(key))
    return storage.exists(key)


def _under(p: str, q: str) -> bool:
    """Whether ``p`` is ``q`` or inside it (paths or URLs, as a job file resolves them)."""
    if is_url(p) or is_url(q):
        p, q = p.rstrip("/"), q.rstrip("/")
        return p == q or p.startswith(q + "/")
    p, q = os.path.normpath(p), os.path.normpath(q)
    return p == q or p.startswith(q + os.sep)


def _resolve(value: str, base: str) -> str:
    """A path of the job file: URLs and absolute paths as written; a relative path under the
    job file's folder, which is a URL's folder for a job file on a URL."""
    if is_url(value):
        return value
    value = os.path.expanduser(value)
    if os.path.isabs(value):
        return os.path.normpath(value)
    if is_url(base):
        scheme, rest = base.split("://", 1)
        return f"{scheme}://{posixpath.normpath(posixpath.join(rest, value))}"
    return os.path.normpath(os.path.join(base, value))


def _check_value(arg, value, path, where, key, base):
    def bad(expected):
        return PipelineError(f"{where}: key {key!r} must be {expected}; got {value!r}", path=path)

    if arg.check is not None:  # the option's declared rule: the CLI's sentence, here
        if arg.nargs == "+" and not isinstance(value, list):
            value = [value]
        arg.validate(value, f"{where}: key {key!r}", path=path)
        if arg.type is float:
            return [float(v) for v in value] if arg.nargs else float(value)
        return value
    if arg.type == "value":  # parsed later to the column's type
        if not isinstance(value, bool | int | float | str):
            raise bad("a value (true, a number or a string)")
        return value
    if arg.repeat:  # a list of KEY=VALUE strings, or a table {KEY: VALUE}
        if isinstance(value, str):
            value = [value]
        if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
            return [f"{k}={v}" for k, v in value.items()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad("a table of COL = \"TYPE\" or a list of \"COL=TYPE\" strings")
        return value
    if arg.nargs == "+":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad("a list of names")
        return value
    if arg.nargs == 2:
        if not (isinstance(value, list) and len(value) == 2 and
                all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)):
            raise bad("a list of two numbers")
        return [float(v) for v in value]
    if arg.type is bool:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if arg.type is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise bad("a whole number")
        return value
    if arg.type is float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise bad("a number")
        return float(value)
    if not isinstance(value, str):
        raise bad("a string")
    if arg.choices and value not in arg.choices:
        raise bad(f"one of {', '.join(arg.choices)}")
    if arg.is_path:
        return _resolve(value, base)
    return value


def run_job(path: str | os.PathLike, *, storage_options: dict | None = None) -> None:
    """Validate the whole job, then run its steps in order on one shared cluster."""
    cluster, steps = load_job(path, storage_options=storage_options)
    # every [cluster] key is honoured: the shared cluster is started with all of them
    with open_executor(ExecOptions(**cluster) if cluster else None) as ex:
        client = getattr(ex, "client", None)
        for i, (name, values) in enumerate(steps, start=1):
            print(f"step {i}/{len(steps)}: {name}", file=sys.stderr)
            execute(COMMANDS[name], values, client=client)


def _run(values: dict, *, client=None, out=None) -> None:
    run_job(values["job"], storage_options=values.get("storage_options"))


# The one command that runs other commands, so declared here, above them.
RUN = Command("run", "run the steps of a TOML job file", _run)
