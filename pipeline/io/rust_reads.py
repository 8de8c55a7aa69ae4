"""S3 reads through obstore (Rust's object_store, the client Polars uses) where installed.

s3fs makes each request in Python (botocore's signing, event hooks and response parsing),
about 2.6 ms of CPU per GET here, all of it under the GIL on one event-loop thread; with
many small files at a store's latency the client becomes the bound. obstore makes the same
GET in Rust with the GIL released, about 0.45 ms of CPU (``benchmarks/s3_clients.py``).
Ranged and whole-object reads move (a large Parquet file's through :class:`RangeFile`), and
listings; writes and the commit's conditional requests stay with s3fs. And only where the
s3fs client's settings map onto obstore exactly: credentials that do not refresh (given,
from the environment, a credentials or config file) or none (anonymous), its own endpoint
and region, no requester-pays, versions or extra request arguments, TLS verified or not as
s3fs does. Otherwise s3fs reads, as before.
"""

from __future__ import annotations

import functools
import os
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import timedelta

from .local_storage import LocalStorage

# AWS's public S3 endpoints, which obstore derives from the region itself
_PUBLIC_S3 = re.compile(r"s3([.-][a-z0-9-]+)?\.amazonaws\.com")
# variables obstore's S3 store reads (what it is not given) that botocore's client does
# not, or reads otherwise: where one is set, s3fs makes the requests
_OBSTORE_ENV = (
    "AWS_ENDPOINT", "AWS_BUCKET", "AWS_BUCKET_NAME", "AWS_CHECKSUM_ALGORITHM",
    "AWS_CONDITIONAL_PUT", "AWS_COPY_IF_NOT_EXISTS", "AWS_DISABLE_BULK_DELETE",
    "AWS_DISABLE_TAGGING", "AWS_IMDSV1_FALLBACK", "AWS_METADATA_ENDPOINT",
    "AWS_REQUESTER_PAYS", "AWS_REQUEST_PAYER", "AWS_S3_EXPRESS", "AWS_SERVER_SIDE_ENCRYPTION",
    "AWS_SKIP_SIGNATURE", "AWS_SSE_BUCKET_KEY_ENABLED", "AWS_SSE_CUSTOMER_KEY_BASE64",
    "AWS_SSE_KMS_KEY_ID", "AWS_UNSIGNED_PAYLOAD", "AWS_VIRTUAL_HOSTED_STYLE_REQUEST",
    "AWS_ALLOW_HTTP", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME", "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_STS_ENDPOINT")
# botocore's credential sources whose keys do not change while a run lasts
_STATIC = {"env", "explicit", "shared-credentials-file", "config-file"}
# how long a listing started ahead stands for the folder's listing
_AHEAD_FOR = 10.0


def s3_reader(fs) -> Callable[[str, int, int], bytes] | None:
    """A function ``(path, start, stop) -> bytes`` reading through obstore what ``fs`` (an
    s3fs file system) would read, or None where obstore is not installed or the settings do
    not map. Its ``find(folder)`` lists as ``fs.find`` does (None: ask s3fs)."""
    settings = s3_settings(fs)
    return None if settings is None else reader_for(settings)


def s3_settings(fs) -> tuple | None:
    """The obstore settings that read what ``fs`` (an s3fs file system) reads; None where
    obstore is not installed or they do not map."""
    if not _has_obstore() or type(fs).__name__ != "S3FileSystem":
        return None
    if (getattr(fs, "requester_pays", False) or getattr(fs, "version_aware", False)
            or getattr(fs, "req_kw", None) or getattr(fs, "s3_additional_kwargs", None)):
        return None
    client_kwargs = dict(getattr(fs, "client_kwargs", None) or {})
    verify = client_kwargs.get("verify", True)
    if verify not in (True, False):  # a CA bundle of its own
        return None
    config_kwargs = dict(getattr(fs, "config_kwargs", None) or {})
    config_kwargs.pop("max_pool_connections", None)  # ours (storage.open_storage)
    if config_kwargs:  # addressing style, proxies, timeouts...: botocore's to honour
        return None
    try:
        fs.connect()
        client = fs.s3
        creds = client._request_signer._credentials
    except Exception:  # noqa: BLE001 - any doubt: s3fs reads
        return None
    return _settings(creds, client.meta.region_name, client.meta.endpoint_url or "", verify)


def botocore_settings() -> tuple | None:
    """The settings :func:`s3_settings` finds for an s3fs file system made with no options,
    found by botocore alone (its credential chain, region and configured endpoint, as the
    client s3fs makes would find them), without importing s3fs and aiohttp or making its
    client: what lets a run list and plan its input while s3fs is made on a thread
    (:mod:`pipeline.io.obstore_s3`). None where obstore is not installed or they do not map."""
    if not _has_obstore():
        return None
    try:
        import botocore.session
        from botocore.configprovider import ConfiguredEndpointProvider

        session = botocore.session.Session()
        creds = session.get_credentials()
        region = session.get_config_variable("region")
        s3_config = session.get_config_variable("s3") or {}
        if (session.get_config_variable("use_fips_endpoint")
                or session.get_config_variable("use_dualstack_endpoint")
                or s3_config.get("use_dualstack_endpoint")):
            return None  # an endpoint botocore derives its own way: s3fs's client decides
        endpoint = None
        if not session.get_config_variable("ignore_configured_endpoint_urls"):
            endpoint = ConfiguredEndpointProvider(
                full_config=session.full_config, scoped_config=session.get_scoped_config(),
                client_name="s3").provide()
    except Exception:  # noqa: BLE001 - any doubt: s3fs's client decides
        return None
    if endpoint is None:  # botocore's own: the region's public endpoint
        endpoint = "https://s3.amazonaws.com"
    return _settings(creds, region or "us-east-1", endpoint, True)


def env_settings() -> tuple | None:
    """:func:`botocore_settings`' answer where the environment alone decides it, found
    without importing botocore (0.15-0.2 s of a run's start): keys in ``AWS_ACCESS_KEY_ID``
    and ``AWS_SECRET_ACCESS_KEY`` (the first place botocore's chain looks; no expiry), no
    config file and no profile named (nothing else to read), the region and endpoint from
    their variables as botocore reads them. None where botocore must look."""
    env = os.environ
    key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if not (key and secret) or not _has_obstore() or env.get("AWS_DEFAULT_REGION") == "" \
            or any(name in env for name in (
                "AWS_CREDENTIAL_EXPIRATION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
                "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "AWS_USE_FIPS_ENDPOINT",
                "AWS_USE_DUALSTACK_ENDPOINT")):
        return None
    # botocore reads both files' profiles (a region or endpoint may be in either)
    for name, default in (("AWS_CONFIG_FILE", "~/.aws/config"),
                          ("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials")):
        path = env.get(name, default)
        if path and LocalStorage().exists(os.path.expanduser(os.path.expandvars(path))):
            return None
    # botocore's order: S3's own variable, then the general one; an empty one is skipped
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    token = next((env[name] for name in ("AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN")
                  if env.get(name)), None)  # botocore skips an empty one
    creds = _EnvKeys("env", key, secret, token)
    return _settings(creds, env.get("AWS_DEFAULT_REGION"),
                     endpoint or "https://s3.amazonaws.com", True)


@dataclass(frozen=True)
class _EnvKeys:
    """Keys from the environment, as botocore's ``Credentials`` has them."""

    method: str
    access_key: str
    secret_key: str
    token: str | None


def _has_obstore() -> bool:
    try:
        import obstore  # noqa: F401
    except ImportError:
        return False
    return True


def _settings(creds, region: str | None, endpoint: str, verify: bool) -> tuple | None:
    """obstore's ``(config, client options)`` for a botocore client's credentials, region,
    endpoint and TLS verification, as a hashable tuple (compared: :mod:`obstore_s3`); None
    where they do not map, or where obstore would read from the environment a setting
    botocore's client would not (``_OBSTORE_ENV``)."""
    env = os.environ
    if any(env.get(name) for name in _OBSTORE_ENV) or (
            getattr(creds, "method", None) != "env" and any(
                env.get(name) for name in ("AWS_SESSION_TOKEN", "AWS_TOKEN"))):
        return None
    config: dict = {"region": region or "us-east-1"}
    if endpoint.startswith("https://") and os.environ.get("AWS_CA_BUNDLE"):
        return None  # TLS verified against a bundle botocore reads: s3fs's to honour
    host = endpoint.split("://", 1)[-1].split("/", 1)[0]
    if not _PUBLIC_S3.fullmatch(host):  # a VPC, FIPS or other store's endpoint: as given
        config["endpoint"] = endpoint
    if creds is None:
        config["skip_signature"] = True
    elif getattr(creds, "method", None) in _STATIC and not hasattr(creds, "refresh_needed"):
        config["access_key_id"] = creds.access_key
        config["secret_access_key"] = creds.secret_key
        if creds.token:
            config["session_token"] = creds.token
    else:  # roles, SSO, assumed roles: keys that refresh are s3fs's to manage
        return None
    options = {"allow_http": endpoint.startswith("http://"), "pool_max_idle_per_host": "64"}
    if verify is False:
        options["allow_invalid_certificates"] = True
    return tuple(sorted(config.items())), tuple(sorted(options.items()))


@functools.lru_cache(maxsize=8)
def reader_for(settings: tuple) -> Callable[[str, int, int], bytes]:
    """The reader (and its ``find``, and ``store(bucket)``: obstore's store) of obstore
    ``settings`` (:func:`s3_settings`); one per settings in a process, its connections
    kept between the storages opened with them (a cluster's tasks)."""
    import obstore
    from obstore.exceptions import NotFoundError
    from obstore.store import S3Store

    config, options = dict(settings[0]), dict(settings[1])
    # about botocore's own retries (5 attempts), not object_store's default of 3 minutes
    retry = {"max_retries": 4, "retry_timeout": timedelta(seconds=30),
             "backoff": {"init_backoff": timedelta(milliseconds=100),
                         "max_backoff": timedelta(seconds=5), "base": 2}}
    stores: dict[str, object] = {}
    lock = threading.Lock()
    ahead: dict[str, tuple[float, Future]] = {}  # listings started ahead (find_ahead)

    def store(bucket: str):
        with lock:
            if bucket not in stores:
                stores[bucket] = S3Store(bucket, client_options=options, retry_config=retry,
                                         **config)
            return stores[bucket]

    def read(path: str, start: int, stop: int, *, copy: bool = True):
        """The bytes; with ``copy=False`` obstore's own buffer (no copy into a Python
        ``bytes``: what pyarrow reads through the buffer protocol)."""
        bucket, _, key = path.split("://", 1)[-1].partition("/")
        if stop <= start:
            return b""
        try:
            got = obstore.get_range(store(bucket), key, start=start, end=stop)
        except (NotFoundError, FileNotFoundError):
            raise FileNotFoundError(path) from None
        return got.to_bytes() if copy else got

    def find_ahead(folder: str) -> None:
        """Start ``find(folder)`` on a thread of its own; the next ``find(folder)`` within
        :data:`_AHEAD_FOR` seconds answers with it (a command's input listed while the
        process imports what it plans with). A daemon thread: a command that ends before it
        lists (``--help``, a refused option) does not wait for the listing to end."""
        with lock:
            ahead[folder] = (time.monotonic(), _on_daemon("pipeline-list-ahead", listing, folder))

    def find(folder: str) -> dict[str, dict] | None:
        """What ``fs.find(folder, detail=True)`` answers (each object under ``folder``, or
        ``folder`` itself when it is an object), one LIST request per 1,000 keys parsed in
        Rust; None where s3fs must answer: object_store drops a key's trailing ``/``, which
        only a zero-byte directory marker has, so a listing with a zero-byte object is left
        to s3fs (as are keys that are not valid object_store paths)."""
        with lock:
            started, listed = ahead.pop(folder, (0.0, None))
        if listed is not None and time.monotonic() - started < _AHEAD_FOR:
            try:
                return listed.result()
            except Exception:  # noqa: BLE001, S110 - listed again: its error raised from there
                pass
        return listing(folder)

    def listing(folder: str) -> dict[str, dict] | None:
        bucket, _, key = folder.split("://", 1)[-1].rstrip("/").partition("/")
        # is ``folder`` itself an object? Asked while listing (one round trip for both), and
        # answered before the listing returns, so that no request of it is in flight beside
        # the run's own (--io-concurrency); on a daemon thread (see find_ahead)
        itself = _on_daemon("pipeline-head", _head, obstore, store(bucket), key) if key else None
        try:
            found = {}
            for batch in obstore.list(store(bucket), key or None, chunk_size=1000):
                for obj in batch:
                    if not obj["size"]:
                        return None
                    found[f"{bucket}/{obj['path']}"] = _info(bucket, obj)
            obj = itself.result() if itself is not None and not found else None
            if obj is not None:
                return {f"{bucket}/{key}": _info(bucket, obj)} if obj["size"] else None
            return found
        except (NotFoundError, FileNotFoundError):  # no such bucket
            raise FileNotFoundError(folder) from None
        except Exception:  # noqa: BLE001 - an odd key or answer: s3fs lists as before
            return None
        finally:
            if itself is not None:
                itself.exception()  # (waited for; its error, if any, is not this answer's)

    read.find = find
    read.find_ahead = find_ahead
    read.store = store
    return read


def _on_daemon(name: str, fn: Callable, *args) -> Future:
    """``fn(*args)`` on a daemon thread of its own: a process that ends meanwhile (a
    command refused, a listing whose answer was not needed) does not wait for it."""
    answer: Future = Future()

    def run() -> None:
        try:
            answer.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - raised where it is taken
            answer.set_exception(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return answer


def _head(obstore, store, key: str) -> dict | None:
    from obstore.exceptions import NotFoundError

    try:
        return obstore.head(store, key)
    except (NotFoundError, FileNotFoundError):  # obstore raises either, by version and call
        return None


def _info(bucket: str, obj: dict) -> dict:
    """An obstore listing entry as s3fs's ``info`` has it (the keys the storage seam reads)."""
    return {"name": f"{bucket}/{obj['path']}", "type": "file", "size": obj["size"],
            "ETag": obj.get("e_tag"), "LastModified": obj.get("last_modified")}


class RangeFile:
    """A read-only file of known ``size`` whose reads are ranged GETs, ``read(start, stop)``
    each: what pyarrow's Parquet reader reads a large object through (its pre-buffered,
    coalesced ranges become one GET each; a read returns the client's buffer, not a copy)."""

    def __init__(self, read: Callable[[int, int], object], size: int) -> None:
        self._read, self._size, self._pos, self.closed = read, size, 0, False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._pos

    def size(self) -> int:
        return self._size

    def seek(self, offset: int, whence: int = 0) -> int:
        base = (0, self._pos, self._size)[whence]
        self._pos = max(0, min(base + offset, self._size))
        return self._pos

    def read(self, n: int = -1):
        stop = self._size if n is None or n < 0 else min(self._pos + n, self._size)
        start, self._pos = self._pos, max(self._pos, stop)
        return self._read(start, stop) if stop > start else b""

    def close(self) -> None:
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
