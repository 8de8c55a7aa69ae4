"""Parts uploaded to their final names but not yet there: S3 multipart uploads completed at
the commit (what Hadoop's S3A "magic" committer does).

An unfinished multipart upload is invisible to LIST and GET; CompleteMultipartUpload makes
the object appear whole, in one request whatever its size, where a server-side copy from a
staging name costs time in proportion to the bytes. Only S3 has them
(:attr:`~pipeline.io.object_storage.FsspecStorage.pending_uploads`); other stores stage and
copy (:mod:`pipeline.io.commit_store`).
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

from ..errors import StorageError
from .object_storage import _first_line, _storage_errors
from .storage import LOCAL

# bytes per UploadPart request, as s3fs uploads (S3: at least 5 MiB but for the last part)
PART_BYTES = 50 * 2**20


# uploads started while their parts are computed (start_pending), by path
_STARTED: dict[str, Future] = {}
_LOCK = threading.Lock()
_STARTER: list[ThreadPoolExecutor] = []


def _create(storage, path: str) -> str:
    bucket, key = storage.split(path)
    return storage.s3_call("create_multipart_upload", Bucket=bucket, Key=key)["UploadId"]


def start_pending(storage, path: str) -> None:
    """Start ``path``'s multipart upload (its first request) while its part is computed:
    :func:`put_pending` takes it; :func:`drop_started` where the part is never written."""
    with _LOCK:
        if path not in _STARTED:
            if not _STARTER:
                _STARTER.append(ThreadPoolExecutor(4, thread_name_prefix="pipeline-start"))
            _STARTED[path] = _STARTER[0].submit(_create, storage, path)


def _take_started(path: str) -> str | None:
    with _LOCK:
        started = _STARTED.pop(path, None)
    try:
        return None if started is None else started.result()
    except Exception:  # noqa: BLE001 - started again by the caller, where it is reported
        return None


def drop_started(storage, naming: str) -> None:
    """Abort the uploads started for parts never uploaded (a part that failed, or parts a
    failed run left on the local disk): those whose paths hold ``naming``."""
    with _LOCK:
        paths = [path for path in _STARTED if naming in path]
    for path in paths:
        upload = _take_started(path)
        if upload is None:
            continue
        bucket, key = storage.split(path)
        try:
            storage.s3_call("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload)
        except Exception:  # noqa: BLE001, S110 - the run's own error is the one to raise
            pass


@_storage_errors
def put_pending(storage, path: str, local: str) -> dict:
    """Upload the local file ``local`` to ``path`` as a multipart upload left unfinished
    (the one :func:`start_pending` started, if any); returns its size, the upload's id and
    its parts' numbers and ETags (what completing it needs). On a failure the upload is
    aborted."""
    bucket, key = storage.split(path)
    upload = _take_started(path) or _create(storage, path)
    parts: list[list] = []
    size = LOCAL.size(local)
    try:
        with LOCAL.open(local, "rb") as fh:
            while True:
                # bytes, not the file: s3fs retries some failures itself, and a file object
                # it sent once would be sent again from where it stopped (a short part)
                body = fh.read(PART_BYTES)
                with storage._slots():
                    out = storage.s3_call("upload_part", Bucket=bucket, Key=key,
                                          UploadId=upload, PartNumber=len(parts) + 1,
                                          Body=body)
                parts.append([len(parts) + 1, out["ETag"].strip('"')])
                if len(body) < PART_BYTES or fh.tell() >= size:
                    break
    except BaseException as exc:
        try:
            storage.s3_call("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload)
        except Exception:  # noqa: BLE001, S110 - the upload's own error is the one to raise
            pass
        if isinstance(exc, FileNotFoundError):  # NoSuchUpload: aborted meanwhile
            raise StorageError(f"{storage.url(path)}: its upload was aborted while it ran "
                               f"({_first_line(exc)})") from None
        raise
    return {"size": size, "upload": upload, "upload_parts": parts}


@_storage_errors
def complete_pending(storage, paths: list[str], records: list[dict]) -> list[str | None]:
    """Complete the pending uploads of ``records`` (what :func:`put_pending` returned) at
    ``paths``, many in flight; returns the objects' ETags, in order."""

    def complete(item) -> str | None:
        path, rec = item
        bucket, key = storage.split(path)
        try:
            with storage._slots():
                out = storage.s3_call(
                    "complete_multipart_upload", Bucket=bucket, Key=key,
                    UploadId=rec["upload"],
                    MultipartUpload={"Parts": [{"PartNumber": int(n), "ETag": f'"{etag}"'}
                                               for n, etag in rec["upload_parts"]]})
        except FileNotFoundError as exc:
            # NoSuchUpload: completed by an attempt whose answer was lost (the object is
            # there, a multipart one of its parts' number), else aborted (a lifecycle rule,
            # another run that took the lease over)
            done = storage.head(path)
            if done is not None and str(done.get("etag") or "").endswith(
                    f"-{len(rec['upload_parts'])}"):
                return done["etag"]
            raise StorageError(
                f"{storage.url(path)}: its pending upload is gone, nothing committed "
                f"({_first_line(exc)}); rerun with --resume to upload it again") from None
        except (OSError, ValueError, RuntimeError) as exc:
            raise StorageError(f"{storage.url(path)}: completing its upload failed "
                               f"({_first_line(exc)})") from None
        etag = out.get("ETag")
        return etag.strip('"') if etag else None

    result = storage.map(complete, list(zip(paths, records, strict=True)))
    storage._forget()
    return result


@_storage_errors
def list_pending(storage, folder: str) -> dict[str, set[str]]:
    """The unfinished multipart uploads under ``folder``: their ids by object path."""
    bucket, key = storage.split(folder)
    prefix = key.rstrip("/") + "/" if key.strip("/") else ""  # "": the whole bucket
    found: dict[str, set[str]] = {}
    markers: dict = {}
    while True:
        page = storage.s3_call("list_multipart_uploads", Bucket=bucket, Prefix=prefix,
                               **markers)
        for upload in page.get("Uploads", []):
            found.setdefault(f"{bucket}/{upload['Key']}", set()).add(upload["UploadId"])
        if not page.get("IsTruncated"):
            return found
        markers = {"KeyMarker": page.get("NextKeyMarker", ""),
                   "UploadIdMarker": page.get("NextUploadIdMarker", "")}


@_storage_errors
def abort_pending(storage, folder: str, keep: set[str] = frozenset(), *,
                  found: dict[str, set[str]] | None = None) -> int:
    """Abort the unfinished multipart uploads under ``folder`` (``found``: as
    :func:`list_pending` listed them) but those whose ids are in ``keep``: a killed upload's
    parts are invisible but kept, and billed, until aborted. Returns how many."""
    if found is None:
        found = list_pending(storage, folder)
    dead = [(path, upload) for path, ids in found.items() for upload in ids
            if upload not in keep]

    def abort(item) -> None:
        path, upload = item
        bucket, key = storage.split(path)
        try:
            with storage._slots():
                storage.s3_call("abort_multipart_upload", Bucket=bucket, Key=key,
                                UploadId=upload)
        except FileNotFoundError:  # aborted or completed meanwhile: nothing to do
            pass

    storage.map(abort, dead)
    return len(dead)
