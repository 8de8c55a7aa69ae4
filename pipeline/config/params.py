"""Parameter constraints, declared as data and checked by one function.

In the style of scikit-learn's ``_parameter_constraints``: a parameter's rule is an object
(``Interval(Integral, 1, None)``, ``Size()``, ...) that says whether a value satisfies it and
describes itself, so every bad value, from the CLI, a job file or a library call, becomes the
same sentence: ``NAME must be DESCRIPTION; got VALUE``. The CLI names the option
(``--workers``), a job file its key, the library the parameter (``workers``).

Examples
--------
>>> check("workers", 2, Interval(Integral, 1, None))
2
>>> check("workers", -1, Interval(Integral, 1, None))
Traceback (most recent call last):
...
pipeline.errors.PipelineError: workers must be an integer >= 1; got -1
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

from ..errors import PipelineError

__all__ = ["Constraint", "Interval", "Size", "IncreasingPair", "Options", "InstanceOf",
           "Nullable", "ListOf", "StorageOptions", "check", "COUNT", "NON_NEGATIVE", "FINITE",
           "POSITIVE", "PROBABILITY", "SIZE", "INCREASING_PAIR", "STORAGE_OPTIONS", "Integral",
           "Real", "DEVICES", "OUTPUTS", "FORMATS", "FLOAT_DTYPES", "MISSING", "MISSING_NO_KEEP",
           "choice", "parse_size"]


class Constraint:
    """A rule a value must satisfy; ``str()`` is what the error says it must be."""

    def is_satisfied_by(self, value: Any) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def __str__(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def show(self, value: Any) -> str:
        """The value as an error message shows it."""
        return " ".join(map(repr, value)) if isinstance(value, list | tuple) else repr(value)


def _is_number(value: Any, kind: type) -> bool:
    # a bool is an Integral to Python, never a count or a size here (JSON true is not 1)
    return isinstance(value, kind) and not isinstance(value, bool)


class Interval(Constraint):
    """A number of type ``kind`` (``Integral`` or ``Real``) between ``left`` and ``right``.

    ``None`` is an open end. Reals must also be finite (no NaN or infinity), whatever the
    bounds. ``closed`` is ``"left"``, ``"right"``, ``"both"`` or ``"neither"``.
    """

    def __init__(self, kind: type, left: float | None, right: float | None, *,
                 closed: str = "both") -> None:
        if closed not in ("left", "right", "both", "neither"):  # pragma: no cover
            raise ValueError(f"closed must be left, right, both or neither; got {closed!r}")
        self.kind, self.left, self.right, self.closed = kind, left, right, closed

    def is_satisfied_by(self, value: Any) -> bool:
        if not _is_number(value, self.kind):
            return False
        if not math.isfinite(value):
            return False
        lo_closed = self.closed in ("left", "both")
        hi_closed = self.closed in ("right", "both")
        if self.left is not None and not (value >= self.left if lo_closed else
                                          value > self.left):
            return False
        return self.right is None or (value <= self.right if hi_closed else value < self.right)

    def __str__(self) -> str:
        noun = "an integer" if self.kind is Integral else "a finite number"
        lo = None if self.left is None else \
            (">=" if self.closed in ("left", "both") else ">") + f" {self.left:g}"
        hi = None if self.right is None else \
            ("<=" if self.closed in ("right", "both") else "<") + f" {self.right:g}"
        if lo and hi:
            brackets = ("[" if self.closed in ("left", "both") else "(",
                        "]" if self.closed in ("right", "both") else ")")
            return f"{noun} in {brackets[0]}{self.left:g}, {self.right:g}{brackets[1]}"
        return " ".join(x for x in (noun, lo or hi) if x)


class Size(Constraint):
    """A byte count > 0: an integer, or text such as ``64MiB``, ``1GB``, ``1e6``."""

    UNITS = {
        "": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
        "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "k": 2**10, "m": 2**20,
        "g": 2**30,
    }

    def to_bytes(self, value: Any) -> int | None:
        """The byte count, or None when ``value`` is not a size > 0."""
        if _is_number(value, Integral):
            return int(value) if value >= 1 else None
        if not isinstance(value, str):
            return None
        s = value.strip().lower().replace(" ", "")
        i = len(s)
        while i > 0 and s[i - 1].isalpha():
            i -= 1
        number, unit = s[:i], s[i:]
        try:
            x = float(number)
        except ValueError:
            return None
        if unit not in self.UNITS or not math.isfinite(x):
            return None
        n = int(x * self.UNITS[unit])
        return n if n >= 1 else None

    def is_satisfied_by(self, value: Any) -> bool:
        return self.to_bytes(value) is not None

    def __str__(self) -> str:
        return "a size > 0 (e.g. 64MiB, 1GiB, 1000000)"


class IncreasingPair(Constraint):
    """Two finite numbers ``LO HI`` with ``LO < HI``."""

    def is_satisfied_by(self, value: Any) -> bool:
        try:
            lo, hi = value
        except (TypeError, ValueError):
            return False
        return (_is_number(lo, Real) and _is_number(hi, Real) and math.isfinite(lo)
                and math.isfinite(hi) and lo < hi)

    def __str__(self) -> str:
        return "two finite numbers LO HI with LO < HI"


class Options(Constraint):
    """One of a few exact values (``'logistic'``; ``1``, not ``1.0`` or ``true``)."""

    def __init__(self, *values: Any) -> None:
        self.values = values

    def is_satisfied_by(self, value: Any) -> bool:
        return any(type(value) is type(v) and value == v for v in self.values)

    def __str__(self) -> str:
        shown = [repr(v) for v in self.values]
        return shown[0] if len(shown) == 1 else "one of " + ", ".join(shown)


class InstanceOf(Constraint):
    """A value of one Python type (``bool``: exactly True or False), described in words."""

    def __init__(self, kind: type, text: str) -> None:
        self.kind, self.text = kind, text

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, self.kind)

    def __str__(self) -> str:
        return self.text


class Nullable(Constraint):
    """``None`` (JSON null) or a value obeying ``rule``."""

    def __init__(self, rule: Constraint) -> None:
        self.rule = rule

    def is_satisfied_by(self, value: Any) -> bool:
        return value is None or self.rule.is_satisfied_by(value)

    def __str__(self) -> str:
        return f"{self.rule} or null"


class ListOf(Constraint):
    """A list whose items each obey ``item``; optionally non-empty and without repeats."""

    def __init__(self, item: Constraint, text: str, *, non_empty: bool = False,
                 unique: bool = False) -> None:
        self.item, self.text, self.non_empty, self.unique = item, text, non_empty, unique

    def is_satisfied_by(self, value: Any) -> bool:
        if not isinstance(value, list) or (self.non_empty and not value):
            return False
        if not all(self.item.is_satisfied_by(v) for v in value):
            return False
        return not self.unique or len(set(value)) == len(value)

    def __str__(self) -> str:
        return self.text


class StorageOptions(Constraint):
    """Options for the file system of a URL: option names (text) to text, numbers or booleans.

    Flat on purpose: every value that may be recorded is redacted by its option's name
    (:func:`pipeline.io.storage.redact`), which a nested table would hide. An error shows the
    options redacted, and a nested value only as its type, so a secret never reaches it.
    """

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, dict) and all(
            isinstance(k, str) and k and isinstance(v, str | int | float | bool)
            for k, v in value.items())

    def __str__(self) -> str:
        return "a table of option names to strings, numbers or booleans"

    def show(self, value: Any) -> str:
        from ..io.urls import redact

        if not isinstance(value, dict):
            return f"a {type(value).__name__}"
        items = (f"{k!r}: " + (repr(v) if isinstance(v, str | int | float | bool) else
                               f"<{type(v).__name__}>") for k, v in redact(value).items())
        return "{" + ", ".join(items) + "}"


# the rules this package uses, each declared once
COUNT = Interval(Integral, 1, None, closed="left")
NON_NEGATIVE = Interval(Integral, 0, None, closed="left")
FINITE = Interval(Real, None, None)
POSITIVE = Interval(Real, 0, None, closed="neither")
PROBABILITY = Interval(Real, 0, 1, closed="both")
SIZE = Size()
INCREASING_PAIR = IncreasingPair()
STORAGE_OPTIONS = StorageOptions()

# the choices of the options that take one of a few words, each declared once
DEVICES = ("cpu", "gpu", "auto")
OUTPUTS = ("value", "derivative", "log")      # what transform writes
FORMATS = ("parquet", "csv")                  # the file formats generate writes
FLOAT_DTYPES = ("float64", "float32")
MISSING = ("error", "drop", "keep")           # what a null or NaN in a used column does
MISSING_NO_KEEP = ("error", "drop")           # train, evaluate: a row without a value has no loss


def check(name: str, value: Any, constraint: Constraint, *, path: str | None = None) -> Any:
    """``value`` if it satisfies ``constraint``, else a :class:`PipelineError` naming ``name``.

    Parameters
    ----------
    name : str
        What the user wrote: ``--workers`` on the CLI, ``workers`` in the library.
    value : object
        The value as given.
    constraint : Constraint
        The rule.
    path : str, optional
        The file the value came from (a job file), named first in the message.
    """
    if not constraint.is_satisfied_by(value):
        raise PipelineError(f"{name} must be {constraint}; got {constraint.show(value)}",
                            path=path, params=(name,))
    return value


def choice(name: str, value: Any, choices: tuple[str, ...], *, path: str | None = None) -> Any:
    """``value`` if it is one of ``choices``, else the one sentence of :func:`check`.

    >>> choice("device", "tpu", DEVICES)
    Traceback (most recent call last):
    ...
    pipeline.errors.PipelineError: device must be one of 'cpu', 'gpu', 'auto'; got 'tpu'
    """
    return check(name, value, Options(*choices), path=path)


def parse_size(text: str | int | None, *, name: str = "size") -> int | None:
    """Parse ``64MiB``, ``1GB``, ``1e6`` or a plain byte count (> 0; None stays None)."""
    if text is None:
        return None
    return SIZE.to_bytes(check(name, text, SIZE))
