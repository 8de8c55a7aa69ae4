"""What differs between a run's recorded parameters and a rerun's: the words of a refused
``--resume`` (an output folder's ``_job.json``, a model file's fields)."""

from __future__ import annotations

import json


def first_difference(there: dict, now: dict) -> str | None:
    """The first key (in ``now``'s order, then ``there``'s) whose values differ, or None."""
    return next((k for k in [*now, *there] if there.get(k) != now.get(k)), None)


def both_values(there, now, *, limit: int = 120) -> str:
    """`` (X there, Y now)``, or nothing for values too long to read in one line."""
    a, b = (json.dumps(v) if isinstance(v, list | dict) else str(v) for v in (there, now))
    return "" if len(a) + len(b) > limit else f" ({a} there, {b} now)"


def job_difference(old: dict, job: dict, words: dict[str, str]) -> tuple[str, tuple[str, ...]]:
    """What differs first between two job identities (``_job.json``), in words, and the
    parameters those words name. ``words``: each identity key's name (``"params"``:
    ``"parameters"``), in the order they are compared."""
    key = next(k for k in words if old.get(k) != job.get(k))
    what = f"the {words[key]} differ from the interrupted run's"
    if key == "params":
        a, b = old.get("params") or {}, job.get("params") or {}
        name = first_difference(a, b)
        if name == "model":  # a dict of coefficients: its values say nothing
            return ("the model differs from the interrupted run's (another model file, or "
                    "the file changed)", ())
        return (f"{name} differs from the interrupted run's" +
                both_values(a.get(name), b.get(name)), (name,))
    if key == "input":
        a, b = ({str(f.get("path")): f for f in j.get("input") or [] if isinstance(f, dict)}
                for j in (old, job))
        name = first_difference(a, b)
        if name is not None:
            what = f"the input file {name} is new, gone or changed since the interrupted run"
    elif key in ("command", "device"):
        what += both_values(old.get(key), job.get(key))
    return what, ("blocksize",) if key == "plan" else ()
