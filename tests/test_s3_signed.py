"""The multipart requests signed here (pipeline.io.s3_signed) against a scripted HTTP
server: S3's ways of failing (an error in a 200 answer after padding, a 503 then success, a
404 NoSuchUpload, a header's case) each give what s3fs's client would."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipeline.io.s3_signed import S3Requests

OK_COMPLETE = (b"<?xml version='1.0' encoding='UTF-8'?><CompleteMultipartUploadResult>"
               b"<Key>k</Key><ETag>\"abc-2\"</ETag></CompleteMultipartUploadResult>")


def _error(code: str) -> bytes:
    return (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
            f"<Message>scripted</Message></Error>").encode()


@pytest.fixture
def scripted():
    """A server answering each request with the next (status, headers, body) of ``answers``;
    what it was asked is in ``asked``."""
    answers, asked = [], []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *args):
            pass

        def _answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            asked.append((self.command, self.path, dict(self.headers)))
            status, headers, body = answers.pop(0)
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PUT = do_POST = do_DELETE = _answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings = ((("access_key_id", "AK"), ("endpoint",
                 f"http://127.0.0.1:{server.server_address[1]}/gateway"),
                 ("region", "us-east-1"), ("secret_access_key", "SK")), (("allow_http", True),))
    yield S3Requests(settings), answers, asked
    server.shutdown()
    server.server_close()


def test_an_error_in_a_200_answer_after_padding_is_retried_then_the_completion_taken(scripted):
    requests, answers, asked = scripted
    answers += [(200, {}, b"   \n  " + _error("InternalError")), (200, {}, OK_COMPLETE)]
    out = requests.call("complete_multipart_upload", Bucket="b", Key="d/k",
                        UploadId="u", MultipartUpload={"Parts": [
                            {"PartNumber": 1, "ETag": '"e1"'}, {"PartNumber": 2, "ETag": '"e2"'}]})
    assert out == {"ETag": '"abc-2"'} and len(asked) == 2
    # the endpoint's own path is kept (and signed): a gateway's prefix
    assert asked[0][1] == "/gateway/b/d/k?uploadId=u"


def test_an_error_in_a_200_answer_that_persists_is_one_error(scripted, monkeypatch):
    import pipeline.io.s3_signed as signed

    monkeypatch.setattr(signed, "ATTEMPTS", 2)
    requests, answers, _ = scripted
    answers += [(200, {}, _error("AccessDenied"))]
    with pytest.raises(OSError, match="AccessDenied"):
        requests.call("complete_multipart_upload", Bucket="b", Key="k", UploadId="u",
                      MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"e"'}]})


def test_a_503_is_retried_and_a_lowercase_etag_header_read(scripted):
    requests, answers, asked = scripted
    answers += [(503, {}, _error("SlowDown")), (200, {"etag": '"part-etag"'}, b"")]
    out = requests.call("upload_part", Bucket="b", Key="k", UploadId="u", PartNumber=1,
                        Body=b"data")
    assert out == {"ETag": '"part-etag"'} and len(asked) == 2


def test_a_part_without_an_etag_is_an_error_not_an_empty_etag(scripted):
    requests, answers, _ = scripted
    answers += [(200, {}, b"")]
    with pytest.raises(OSError, match="no ETag"):
        requests.call("upload_part", Bucket="b", Key="k", UploadId="u", PartNumber=1,
                      Body=b"data")


def test_no_such_upload_is_file_not_found_and_not_retried(scripted):
    requests, answers, asked = scripted
    answers += [(404, {}, _error("NoSuchUpload"))]
    with pytest.raises(FileNotFoundError, match="NoSuchUpload"):
        requests.call("abort_multipart_upload", Bucket="b", Key="k", UploadId="gone")
    assert len(asked) == 1


def test_tls_is_set_up_for_an_https_endpoint_only_with_the_reads_certificate_setting():
    """An http endpoint (a local server) makes no TLS context; an https one verifies
    certificates unless the reads' client is told not to (``allow_invalid_certificates``)."""
    import ssl
    import urllib.request

    def contexts(endpoint, **options):
        requests = S3Requests(({"region": "us-east-1", "endpoint": endpoint,
                                "skip_signature": True}, options))
        return [h._context for h in requests._opener.handlers
                if isinstance(h, urllib.request.HTTPSHandler)]

    assert all(c is None for c in contexts("http://127.0.0.1:9"))  # urllib's own, unused
    (verified,) = contexts("https://s3.example.com")
    assert verified.verify_mode == ssl.CERT_REQUIRED and verified.check_hostname
    (loose,) = contexts("https://s3.example.com", allow_invalid_certificates=True)
    assert loose.verify_mode == ssl.CERT_NONE
