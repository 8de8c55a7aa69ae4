"""An S3 store opened with no options is served by obstore, its multipart uploads signed
here (pipeline.io.obstore_s3, pipeline.io.s3_signed): a run never imports s3fs; s3fs is made
only for what obstore has no call for, and only when its settings are the ones obstore uses."""

import hashlib
import io
import json
import math
import os
import pickle
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import s3fs_client

from pipeline.errors import PreconditionFailed, StorageError
from pipeline.io import obstore_s3, rust_reads
from pipeline.io.storage import open_storage


@pytest.fixture
def stored(bucket, moto_server):
    fs = s3fs_client(moto_server)
    fs.pipe(f"{bucket}/d/a.csv", b"x,y\n1,2\n")
    fs.pipe(f"{bucket}/d/sub/b.csv", b"x,y\n3,4\n5,6\n")
    return f"{bucket}/d"


def test_a_whole_run_on_s3_never_imports_s3fs(bucket, moto_server, tmp_path):
    """Listing, reading, the lease, the parts' multipart uploads and the commit: obstore and
    the signed requests only (a process of its own: the tests' fixtures import s3fs)."""
    fs = s3fs_client(moto_server)
    fs.pipe(f"{bucket}/run/a.csv", b"x,y\n0.5,-1.5\n2.0,3.0\n")
    fs.pipe(f"{bucket}/run/b.csv", b"x,y\n-0.25,4.5\n")
    stored = f"{bucket}/run"
    code = ("import sys; from pipeline.cli.parser import main; "
            f"rc = main(['transform', '{stored}', '{stored}-out', '--quiet']); "
            "print(rc, sorted(m for m in ('s3fs', 'aiobotocore', 'aiohttp', 'botocore', "
            "'fsspec') if m in sys.modules))")
    env = {**os.environ, "FSSPEC_CONFIG_DIR": str(tmp_path / "no-fsspec-configuration")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.stdout.split() == ["0", "[]"], out.stderr
    names = sorted(p.rsplit("/", 1)[1] for p in fs.find(f"{stored}-out"))
    assert "_SUCCESS" in names and any(n.startswith("part-") for n in names)
    assert not any(n.startswith("_pending") or n.endswith(".pipeline-lock") for n in names)
    fs.invalidate_cache()
    manifest = json.loads(fs.cat_file(f"{stored}-out/_SUCCESS"))
    out = pa.concat_tables([pq.read_table(io.BytesIO(fs.cat_file(f"{stored}-out/{p['part']}")))
                            for p in manifest["parts"]])
    assert out.column("x").to_pylist() == pytest.approx(
        [1 / (1 + math.exp(-v)) for v in (0.5, 2.0, -0.25)])


def test_listing_sizes_reads_and_conditional_writes_need_no_s3fs(stored, moto_server):
    storage, inner = open_storage(stored + "/")
    assert isinstance(storage, obstore_s3.ObstoreS3Storage)
    assert inner == stored.removeprefix("s3://")
    listed = storage.find(inner)
    assert listed == [f"{inner}/a.csv", f"{inner}/sub/b.csv"]
    assert [storage.url(p) for p in listed] == [f"{stored}/a.csv", f"{stored}/sub/b.csv"]
    assert storage.size(f"{stored}/sub/b.csv") == 12  # from the listing, as a URL or a key
    assert storage.read_range(f"{inner}/sub/b.csv", 4, 8) == b"3,4\n"
    assert storage.exists(f"{inner}/sub") and storage.isdir(f"{inner}/sub")
    assert storage.exists(f"{inner}/a.csv") and not storage.isdir(f"{inner}/a.csv")
    assert not storage.exists(f"{inner}/none")
    fs = s3fs_client(moto_server)
    # If-None-Match: created once
    etag = storage.create_text(f"{inner}/lock", "first")
    assert etag == hashlib.md5(b"first").hexdigest()
    with pytest.raises(FileExistsError):
        storage.create_text(f"{inner}/lock", "second")
    # If-Match: replaced only over the version read
    assert storage.read_versioned(f"{inner}/lock") == ("first", etag)
    new = storage.replace_if(f"{inner}/lock", "third", etag)
    with pytest.raises(PreconditionFailed):
        storage.replace_if(f"{inner}/lock", "stale", etag)
    with pytest.raises(PreconditionFailed):
        storage.replace_if(f"{inner}/gone", "never", etag)
    with pytest.raises(PreconditionFailed):
        storage.remove_if(f"{inner}/lock", etag)
    assert fs.cat(f"{inner}/lock") == b"third"
    storage.remove_if(f"{inner}/lock", new)
    assert storage.read_versioned(f"{inner}/lock") is None and storage.head(f"{inner}/lock") is None
    storage.write_text(f"{inner}/c.txt", "written")
    assert storage.read_text(f"{inner}/c.txt") == "written" == fs.cat(f"{inner}/c.txt").decode()
    storage.rm_many([f"{inner}/c.txt", f"{inner}/never-there"])
    storage.rm(f"{inner}/sub/b.csv")
    storage.rm(f"{inner}/never-there")
    fs.invalidate_cache()
    assert sorted(fs.find(inner)) == [f"{inner}/a.csv"]
    assert storage.__dict__.get("_fs") is None  # none of it made s3fs


def test_pending_uploads_are_invisible_until_completed_and_aborted_when_asked(stored,
                                                                             moto_server,
                                                                             tmp_path):
    from pipeline.io import multipart

    storage, inner = open_storage(stored)
    local = tmp_path / "part.bin"
    local.write_bytes(os.urandom(multipart.PART_BYTES // 8))
    rec = multipart.put_pending(storage, f"{inner}/out/part-0.bin", str(local))
    other = multipart.put_pending(storage, f"{inner}/out/part-1.bin", str(local))
    fs = s3fs_client(moto_server)
    assert not fs.exists(f"{inner}/out/part-0.bin")
    found = multipart.list_pending(storage, f"{inner}/out")
    assert found == {f"{inner}/out/part-0.bin": {rec["upload"]},
                     f"{inner}/out/part-1.bin": {other["upload"]}}
    assert multipart.abort_pending(storage, f"{inner}/out", keep={rec["upload"]}) == 1
    [etag] = multipart.complete_pending(storage, [f"{inner}/out/part-0.bin"], [rec])
    fs.invalidate_cache()
    assert fs.cat(f"{inner}/out/part-0.bin") == local.read_bytes()
    assert etag == fs.info(f"{inner}/out/part-0.bin")["ETag"].strip('"')
    assert not fs.exists(f"{inner}/out/part-1.bin")
    assert multipart.list_pending(storage, f"{inner}/out") == {}
    # S3 answers NoSuchUpload ("its pending upload is gone"), moto's server a 500: one error
    with pytest.raises(StorageError, match="part-1.bin: (its pending upload is gone|completing)"):
        multipart.complete_pending(storage, [f"{inner}/out/part-1.bin"], [other])


@pytest.mark.parametrize("case", ["create", "part", "complete", "list"])
def test_the_signed_requests_sign_as_botocore_signs(case):
    """Signature Version 4, byte for byte botocore's, for each kind of request made here."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from pipeline.io.s3_signed import S3Requests, _quote

    settings = ((("access_key_id", "AKID"), ("endpoint", "http://127.0.0.1:9"),
                 ("region", "eu-west-2"), ("secret_access_key", "SECRET"),
                 ("session_token", "TOKEN")), (("allow_http", True),))
    method, key, query, body = {
        "create": ("POST", "d/a b+c~=.parquet", {"uploads": ""}, b""),
        "part": ("PUT", "out/part-00001.parquet", {"partNumber": "3", "uploadId": "a/b+c=="},
                 b"data" * 10),
        "complete": ("POST", "out/p", {"uploadId": "x"}, b"<CompleteMultipartUpload/>"),
        "list": ("GET", "", {"uploads": "", "prefix": "out dir/", "key-marker": "k&1"}, b""),
    }[case]
    path = "/bkt" + ("/" + _quote(key, "-_.~/") if key else "")
    canonical_query = "&".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(query.items()))
    url = f"http://127.0.0.1:9{path}?{canonical_query}"
    theirs = AWSRequest(method=method, url=url, data=body)
    theirs.headers["x-amz-content-sha256"] = hashlib.sha256(body).hexdigest()
    theirs.context["payload_signing_enabled"] = True
    S3SigV4Auth(Credentials("AKID", "SECRET", "TOKEN"), "s3", "eu-west-2").add_auth(theirs)
    ours = S3Requests(settings)._signed(method, url, path, canonical_query, body,
                                        now=theirs.headers["X-Amz-Date"])
    assert ours["Authorization"] == theirs.headers["Authorization"]
    assert ours["x-amz-security-token"] == "TOKEN"


def test_s3fs_is_made_only_where_needed_and_with_obstore_s_settings(stored, moto_server):
    """A glob (no obstore call) makes s3fs, from the configuration botocore reads now."""
    storage, inner = open_storage(stored)
    assert storage.glob(f"{inner}/*.csv") == [f"{inner}/a.csv"]
    assert type(storage.fs).__name__ == "S3FileSystem"
    assert rust_reads.s3_settings(storage.fs) == storage._settings


def test_an_s3fs_with_other_settings_is_refused_before_it_is_used(stored, moto_server):
    storage, inner = open_storage(stored)
    config = dict(storage._settings[0])
    config["access_key_id"] = "another-key"
    other = obstore_s3.ObstoreS3Storage((tuple(sorted(config.items())), storage._settings[1]),
                                        storage._text, storage._kwargs)
    with pytest.raises(StorageError, match="disagree"):
        other.glob(f"{inner}/*.csv")


def test_a_task_carries_no_keys_and_opens_the_store_again_where_it_runs(stored):
    storage, inner = open_storage(stored)
    from conftest import S3_ENV

    text = pickle.dumps(storage)
    assert S3_ENV["AWS_SECRET_ACCESS_KEY"].encode() not in text
    assert S3_ENV["AWS_ACCESS_KEY_ID"].encode() not in text
    copy = pickle.loads(pickle.loads(pickle.dumps(text)))  # a scheduler passes it on as it came
    assert isinstance(copy, obstore_s3.ObstoreS3Storage) and copy._settings == storage._settings
    assert copy.read_range(f"{inner}/a.csv", 0, 4) == b"x,y\n"


@pytest.mark.parametrize("where", ["environment", "config file", "service's variable"])
def test_botocore_alone_finds_the_settings_s3fs_s_client_has(moto_server, tmp_path,
                                                           monkeypatch, where):
    import s3fs

    if where == "config file":  # region and endpoint from the profile, not the environment
        config = tmp_path / "config"
        config.write_text(f"[default]\nregion = eu-west-2\nendpoint_url = {moto_server.endpoint}\n")
        monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
        monkeypatch.delenv("AWS_DEFAULT_REGION")
        monkeypatch.delenv("AWS_ENDPOINT_URL")
    elif where == "service's variable":  # S3's own endpoint variable wins over the general
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_server.endpoint)
        monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        monkeypatch.setenv("AWS_SESSION_TOKEN", "a-session-token")
    found = rust_reads.botocore_settings()
    made = rust_reads.s3_settings(s3fs.S3FileSystem(skip_instance_cache=True))
    assert found is not None and found == made
    # the environment's answer without botocore: the same, or None where a file decides
    assert rust_reads.env_settings() == (None if where == "config file" else found)
    config = dict(found[0])
    assert config["endpoint"] == moto_server.endpoint
    assert config["region"] == ("eu-west-2" if where == "config file" else "us-east-1")
    assert config["access_key_id"] == "testing-access-key"


def test_fsspec_s_own_s3_configuration_makes_s3fs_first(moto_server, bucket, monkeypatch):
    """Options fsspec's configuration gives S3 are s3fs's to honour: no obstore storage."""
    import fsspec.config

    assert isinstance(open_storage(f"{bucket}/d")[0], obstore_s3.ObstoreS3Storage)
    monkeypatch.setitem(fsspec.config.conf, "s3", {"anon": False})
    assert not isinstance(open_storage(f"{bucket}/d")[0], obstore_s3.ObstoreS3Storage)


def test_options_or_a_chained_url_make_s3fs_first(moto_server, bucket):
    plain, _ = open_storage(bucket, {"anon": False})
    assert not isinstance(plain, obstore_s3.ObstoreS3Storage)
    chained, _ = open_storage(f"simplecache::{bucket}/d")
    assert not isinstance(chained, obstore_s3.ObstoreS3Storage)
    assert isinstance(open_storage(f"{bucket}/d")[0], obstore_s3.ObstoreS3Storage)


@pytest.mark.parametrize("extra", [
    {"AWS_USE_FIPS_ENDPOINT": "true"}, {"AWS_USE_DUALSTACK_ENDPOINT": "true"},
    {"AWS_DEFAULT_REGION": ""}, {"AWS_SHARED_CREDENTIALS_FILE": "{creds}"}])
def test_the_environment_is_not_read_alone_where_botocore_would_read_more(
        moto_server, tmp_path, monkeypatch, extra):
    creds = tmp_path / "credentials"
    creds.write_text("[default]\nregion = eu-west-2\n")
    for name, value in extra.items():
        monkeypatch.setenv(name, value.format(creds=creds))
    assert rust_reads.env_settings() is None


def test_an_empty_token_variable_is_skipped_as_botocore_skips_it(moto_server, monkeypatch):
    monkeypatch.setenv("AWS_SECURITY_TOKEN", "")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "a-session-token")
    assert dict(rust_reads.env_settings()[0])["session_token"] == "a-session-token"
    assert rust_reads.env_settings() == rust_reads.botocore_settings()


def test_an_s3fs_that_cannot_be_made_is_the_one_error_open_storage_gives(stored,
                                                                         monkeypatch):
    """Where s3fs is needed but cannot be made, the error is worded as opening the URL."""
    import fsspec.core

    from pipeline.errors import PipelineError

    storage, inner = open_storage(stored)

    def missing(*args, **kwargs):
        raise ImportError("No module named 'aiobotocore'")

    monkeypatch.setattr(fsspec.core, "url_to_fs", missing)
    with pytest.raises(PipelineError) as err:
        storage.glob(f"{inner}/*.csv")
    assert str(err.value) == (f"{stored}: no file system for s3:// is installed "
                              "(pip install 'pipeline[s3]')")


@pytest.mark.parametrize("name", ["AWS_SERVER_SIDE_ENCRYPTION", "AWS_REQUEST_PAYER",
                                  "AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "AWS_ENDPOINT"])
def test_a_variable_obstore_would_read_and_botocore_not_leaves_s3_to_s3fs(
        moto_server, bucket, monkeypatch, name):
    """obstore's store reads settings from the environment it is not given; where one
    botocore's client would not read is set, s3fs makes every request."""
    assert rust_reads.env_settings() is not None
    monkeypatch.setenv(name, "true")
    assert rust_reads.env_settings() is None and rust_reads.botocore_settings() is None
    assert not isinstance(open_storage(f"{bucket}/d")[0], obstore_s3.ObstoreS3Storage)


def test_a_session_token_in_the_environment_beside_keys_from_a_file_is_not_mixed(
        moto_server, monkeypatch, tmp_path):
    creds = tmp_path / "credentials"
    creds.write_text("[default]\naws_access_key_id = AKFILE\naws_secret_access_key = x\n")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    assert dict(rust_reads.botocore_settings()[0])["access_key_id"] == "AKFILE"
    monkeypatch.setenv("AWS_SESSION_TOKEN", "a-stray-token")  # botocore: not with file keys
    assert rust_reads.botocore_settings() is None
