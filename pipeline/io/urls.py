"""Paths and URLs: which are local, which scheme needs which extra, and secrets: storage
options redacted wherever they are recorded, URLs that carry credentials refused."""

from __future__ import annotations

import json
import os
from typing import Any

from ..errors import PipelineError

# URL schemes and the extra that brings their file system.


EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "abfs": "azure", "az": "azure",
          "abfss": "azure"}


# Option names whose values are secrets (by word of the name: ``key``, ``aws_secret_access_key``,
# ``sas_token``, ``account_key``, ``connection_string``, ``credentials``): never written.
_SECRET_WORDS = ("key", "secret", "token", "password", "passwd", "sas", "credential",
                 "credentials", "connection", "signature")


def opening_error(exc: BaseException, text: str) -> PipelineError | None:
    """The one error for a URL whose fsspec file system could not be made (``exc``, raised
    while making it): no package for its scheme (the extra to install), or options it does
    not take; None for any other failure."""
    scheme = text.split("://", 1)[0].lower()
    if isinstance(exc, ImportError):
        extra = EXTRAS.get(scheme)
        hint = f"pip install 'pipeline[{extra}]'" if extra else "install its fsspec package"
        return PipelineError(f"no file system for {scheme}:// is installed ({hint})", path=text)
    if isinstance(exc, (ValueError, TypeError)):
        return PipelineError(f"cannot open this URL ({exc})", path=text)
    return None


def is_url(path: str | os.PathLike) -> bool:
    text = os.fspath(path)
    return "://" in text and text.split("://", 1)[0].isidentifier()


def is_local(path: str | os.PathLike) -> bool:
    """A local path or a ``file://`` URL: the local disk, with rename and fsync."""
    text = os.fspath(path)
    return not is_url(text) or text.split("://", 1)[0].lower() == "file"


def redact(options: dict | None) -> dict:
    """Storage options as they may be recorded: secret-looking values replaced."""
    out = {}
    for key, value in (options or {}).items():
        out[key] = "<redacted>" if is_secret_option(key) else _without_userinfo(value)
    return out


def _without_userinfo(value):
    """A URL value (``endpoint_url``) without the secrets it may carry (see redact_url)."""
    return redact_url(value) if isinstance(value, str) else value


# The one rule for secrets in a URL (INPUT, OUT, MODEL, a job file, an option's URL value):
# user-info with a password (``http://user:pw@host``, ``s3://key:secret@bucket``), or a query
# parameter named as a credential (a pre-signed URL's ``X-Amz-Signature``, Azure's ``sig``).
# A user name alone, or abfs's ``container@account``, is no secret. A path with a secret is
# refused (:func:`refuse_secret_url`) before anything is written; where one must be shown,
# it is shown as :func:`redact_url` writes it (``s3://***@bucket/...``).
_QUERY_SECRET_WORDS = ("sig",)


def _split_url(text: str):
    """(scheme, userinfo or None, host and the rest, query or None) of a URL, else None."""
    if not is_url(text):
        return None
    scheme, rest = text.split("://", 1)
    authority, slash, path = rest.partition("/")
    user, at, host = authority.rpartition("@")
    path, q, query = f"{host}{slash}{path}".partition("?")
    return scheme, (user if at else None), path, (query if q else None)


def _secret_query_item(item: str) -> bool:
    name = item.split("=", 1)[0]
    return is_secret_option(name) or name.lower() in _QUERY_SECRET_WORDS


def url_has_secret(text) -> bool:
    """Whether a path is a URL that carries a secret (the rule above)."""
    parts = _split_url(os.fspath(text)) if isinstance(text, str | os.PathLike) else None
    if parts is None:
        return False
    _, user, _, query = parts
    return bool((user is not None and ":" in user) or
                (query and any(_secret_query_item(i) for i in query.split("&"))))


def redact_url(text: str) -> str:
    """``text`` with the secrets of the rule above shown as ``***`` (the path as messages
    may show it); any other text unchanged."""
    if not url_has_secret(text):
        return text
    scheme, user, path, query = _split_url(text)
    shown = f"{scheme}://{'***@' if user is not None and ':' in user else ''}{path}"
    if query is not None:
        shown += "?" + "&".join(i.split("=", 1)[0] + "=***" if _secret_query_item(i) else i
                                for i in query.split("&"))
    return shown


def refuse_secret_url(text, *, what: str | None = None) -> None:
    """A :class:`PipelineError` (naming the path redacted) for a path that carries a secret:
    it would be recorded in the output and shown in messages."""
    if url_has_secret(text):
        raise PipelineError(
            "a password or credential in a URL is refused (it would be written into the "
            "output and shown in messages): give it with storage_options (a job file: its "
            "[storage] table; e.g. "
            "key=...,secret=... for s3://, username=/password= for http) or the provider's "
            "environment", path=redact_url(os.fspath(text)) + (f" ({what})" if what else ""),
            params=("storage_options",))


def is_secret_option(name) -> bool:
    """Whether an option's value is a secret: a word of its name (split at ``_``, ``-``,
    ``.``) is one of the secret words (so ``aws_secret_access_key`` is, ``max_keys`` not)."""
    import re

    words = re.split(r"[_\-.]+", str(name).lower())
    return any(w in _SECRET_WORDS for w in words) or any(
        w in str(name).lower() for w in ("secret", "password", "credential", "token"))


def parse_storage_options(items) -> dict:
    """``KEY=VALUE`` strings (``--storage-option``) to a dict; values parsed as JSON where
    they are JSON (``true``, ``3``), else kept as text."""
    options: dict[str, Any] = {}
    for item in items or ():
        if isinstance(item, dict):
            options.update(item)
            continue
        key, sep, value = str(item).partition("=")
        if not sep or not key:
            raise PipelineError("--storage-option must be KEY=VALUE; an item is not (its "
                                "text is not shown, as it may hold a secret)")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return options
