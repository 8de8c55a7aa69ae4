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
