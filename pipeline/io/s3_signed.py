"""S3's multipart-upload requests, signed here (AWS Signature Version 4) and sent by urllib.

obstore makes every other request of a run on S3 (:mod:`pipeline.io.obstore_s3`), but it has
no call for an upload left open until the commit (:mod:`pipeline.io.multipart`). Importing
and making a client for these five requests would cost more CPU than all of a small run's
reads (s3fs about 0.4 s, botocore's own client about 0.3 s); signing costs well under a
millisecond a request. The answers are shaped as botocore's (what ``s3fs.call_s3`` returns),
and failures raised as s3fs raises them: ``FileNotFoundError`` for a missing upload or
bucket, ``OSError`` naming S3's error code otherwise, after retries of the store's
transient failures.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import http.client
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

# botocore's standard retries: 5 attempts, backing off from 0.1 s
ATTEMPTS = 5
_TRANSIENT = {"SlowDown", "InternalError", "RequestTimeout", "ServiceUnavailable"}


def _quote(text: str, safe: str = "-_.~") -> str:
    return urllib.parse.quote(text, safe=safe)


def _is_error(body: bytes) -> bool:
    """Whether an answer's body is S3's ``<Error>`` document (whitespace may precede it)."""
    text = body.lstrip()
    if text.startswith(b"<?xml"):
        text = text.split(b"?>", 1)[-1].lstrip()
    return text.startswith(b"<Error>")


def _text(node, tag: str) -> str | None:
    found = node.find(f"{{*}}{tag}")
    if found is None:
        found = node.find(tag)
    return None if found is None else (found.text or "")


def _tls_context(options: dict) -> ssl.SSLContext:
    if options.get("allow_invalid_certificates"):  # as the reads' client is told
        return ssl._create_unverified_context()
    try:  # botocore's certificate authorities (certifi's), where installed
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:
        return ssl.create_default_context()


class S3Requests:
    """The multipart requests of one store's obstore ``settings`` (rust_reads)."""

    def __init__(self, settings: tuple) -> None:
        config, options = dict(settings[0]), dict(settings[1])
        self.region = config["region"]
        self.endpoint = (config.get("endpoint")
                         or f"https://s3.{self.region}.amazonaws.com").rstrip("/")
        parts = urllib.parse.urlsplit(self.endpoint)
        # an endpoint's own path (a gateway's prefix) is part of what is signed
        self._origin, self._prefix = f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/")
        self.keys = (None if config.get("skip_signature") else
                     (config["access_key_id"], config["secret_access_key"],
                      config.get("session_token")))
        # (the environment's proxies honoured: urllib's default handlers); a TLS context
        # only for an https endpoint (making one: 34 ms of CPU, measured)
        self._opener = urllib.request.build_opener(*(
            [urllib.request.HTTPSHandler(context=_tls_context(options))]
            if parts.scheme == "https" else []))

    def call(self, name: str, **kw) -> dict:
        """``s3fs.call_s3(name, **kw)``'s answer for the five multipart requests."""
        bucket, key = kw["Bucket"], kw.get("Key", "")
        if name == "create_multipart_upload":
            root = self._xml(self._send("POST", bucket, key, {"uploads": ""})[1])
            if not _text(root, "UploadId"):
                raise OSError(f"{bucket}/{key}: the store gave no upload id")
            return {"UploadId": _text(root, "UploadId")}
        if name == "upload_part":
            headers, _ = self._send("PUT", bucket, key, {
                "partNumber": str(kw["PartNumber"]), "uploadId": kw["UploadId"]}, kw["Body"])
            if not headers.get("etag"):
                raise OSError(f"{bucket}/{key}: the store gave no ETag for part "
                              f"{kw['PartNumber']}")
            return {"ETag": headers["etag"]}
        if name == "complete_multipart_upload":
            parts = "".join(f"<Part><PartNumber>{p['PartNumber']}</PartNumber>"
                            f"<ETag>{p['ETag']}</ETag></Part>"
                            for p in kw["MultipartUpload"]["Parts"])
            body = f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()
            root = self._xml(self._send("POST", bucket, key, {"uploadId": kw["UploadId"]},
                                        body)[1])
            if not root.tag.endswith("CompleteMultipartUploadResult") or not _text(root, "ETag"):
                raise OSError(f"{bucket}/{key}: the store's answer to completing its upload "
                              f"is not a completion ({root.tag})")
            return {"ETag": _text(root, "ETag")}
        if name == "abort_multipart_upload":
            self._send("DELETE", bucket, key, {"uploadId": kw["UploadId"]})
            return {}
        if name == "list_multipart_uploads":
            query = {"uploads": "", "prefix": kw.get("Prefix", "")}
            if kw.get("KeyMarker"):
                query["key-marker"] = kw["KeyMarker"]
            if kw.get("UploadIdMarker"):
                query["upload-id-marker"] = kw["UploadIdMarker"]
            root = self._xml(self._send("GET", bucket, "", query)[1])
            return {"Uploads": [{"Key": _text(u, "Key"), "UploadId": _text(u, "UploadId")}
                                for u in root.findall("{*}Upload") + root.findall("Upload")],
                    "IsTruncated": _text(root, "IsTruncated") == "true",
                    "NextKeyMarker": _text(root, "NextKeyMarker") or "",
                    "NextUploadIdMarker": _text(root, "NextUploadIdMarker") or ""}
        raise ValueError(f"no such S3 request here: {name}")

    @staticmethod
    def _xml(body: bytes):
        return ET.fromstring(body.lstrip())  # (a completion's answer may be padded)

    def _send(self, method: str, bucket: str, key: str, query: dict[str, str],
              body: bytes = b"") -> tuple[dict, bytes]:
        """One request, retried on the store's transient failures; (headers, body)."""
        path = self._prefix + "/" + _quote(bucket) + ("/" + _quote(key, "-_.~/") if key else "")
        canonical_query = "&".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(query.items()))
        url = f"{self._origin}{path}?{canonical_query}"
        for attempt in range(ATTEMPTS):
            last = attempt + 1 == ATTEMPTS
            if attempt:
                time.sleep(min(0.1 * 2 ** (attempt - 1), 5.0))
            headers = self._signed(method, url, path, canonical_query, body)
            if method in ("PUT", "POST"):  # (urllib's default is a form's)
                headers["Content-Type"] = "binary/octet-stream"
            request = urllib.request.Request(
                url, data=body if method in ("PUT", "POST") else None, method=method,
                headers=headers)
            try:
                with self._opener.open(request, timeout=120) as response:
                    answer = response.read()
                    got = {k.lower(): v for k, v in response.headers.items()}
                # S3 may answer 200 with an error in the body (after whitespace it sends
                # while a completion runs)
                error = self._error(200, answer) if _is_error(answer) else None
            except urllib.error.HTTPError as exc:
                try:
                    error = self._error(exc.code, exc.read())
                except OSError as lost:  # the error's body itself cut short
                    error = _Transient(f"{exc.code}: {lost}")
            except ssl.SSLCertVerificationError as exc:  # another attempt meets it again
                raise OSError(f"{method} {url.split('?')[0]}: {exc}") from None
            except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
                error = _Transient(f"{method} {url.split('?')[0]}: {exc}")
            if error is None:
                return got, answer
            if not isinstance(error, _Transient) or last:
                raise OSError(str(error)) if type(error) is _Transient else error
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _error(status: int, body: bytes) -> OSError:
        try:
            root = ET.fromstring(body.lstrip())
            code, message = _text(root, "Code") or "", _text(root, "Message") or ""
        except ET.ParseError:
            code, message = "", body[:200].decode(errors="replace")
        text = f"{code or status}: {message}".strip()
        if status >= 500 or code in _TRANSIENT:
            return _Transient(text)
        if code in ("NoSuchUpload", "NoSuchBucket", "NoSuchKey") or status == 404:
            return FileNotFoundError(text)
        if status == 412 or code == "PreconditionFailed":
            return OSError(f"pre-condition failed: {text}")
        return OSError(text)

    def _signed(self, method: str, url: str, path: str, query: str, body: bytes,
                now: str | None = None) -> dict:
        """The request's headers, signed with Signature Version 4 (none: anonymous) at
        ``now`` (``YYYYMMDDTHHMMSSZ``; the clock's time)."""
        host = urllib.parse.urlsplit(url).netloc
        now = now or datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
        payload = hashlib.sha256(body).hexdigest()
        headers = {"host": host, "x-amz-content-sha256": payload, "x-amz-date": now}
        if self.keys is None:
            return headers
        key, secret, token = self.keys
        if token:
            headers["x-amz-security-token"] = token
        names = sorted(headers)
        canonical = "\n".join([method, path, query,
                               "".join(f"{n}:{headers[n].strip()}\n" for n in names),
                               ";".join(names), payload])
        scope = f"{now[:8]}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", now, scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        signing = ("AWS4" + secret).encode()
        for part in (now[:8], self.region, "s3", "aws4_request"):
            signing = hmac.new(signing, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(signing, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={key}/{scope}, "
                                    f"SignedHeaders={';'.join(names)}, Signature={signature}")
        return headers


class _Transient(OSError):
    """A failure of the store's that a later attempt may not meet (5xx, SlowDown)."""
