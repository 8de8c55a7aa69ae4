"""An S3 store opened with no options lists and reads through obstore while its s3fs client
is made on a thread (pipeline.io.early_s3); writes wait for that client, and only use it
when its settings are the ones obstore read with."""

import pickle
from concurrent.futures import Future

import pytest
from conftest import s3fs_client

from pipeline.errors import StorageError
from pipeline.io import early_s3, rust_reads
from pipeline.io.storage import open_storage


@pytest.fixture
def stored(bucket, moto_server):
    fs = s3fs_client(moto_server)
    fs.pipe(f"{bucket}/d/a.csv", b"x,y\n1,2\n")
    fs.pipe(f"{bucket}/d/sub/b.csv", b"x,y\n3,4\n5,6\n")
    return f"{bucket}/d"


def test_listing_sizes_and_reads_need_no_s3fs_client(stored, moto_server):
    storage, inner = open_storage(stored + "/")
    assert isinstance(storage, early_s3.EarlyS3Storage)
    assert inner == stored.removeprefix("s3://")
    storage._making = Future()  # a client that never comes: nothing below may wait for it
    listed = storage.find(inner)
    assert listed == [f"{inner}/a.csv", f"{inner}/sub/b.csv"]
    assert [storage.url(p) for p in listed] == [f"{stored}/a.csv", f"{stored}/sub/b.csv"]
    assert storage.size(f"{stored}/sub/b.csv") == 12  # from the listing, as a URL or a key
    assert storage.read_range(f"{inner}/sub/b.csv", 4, 8) == b"3,4\n"
    assert storage.__dict__["_fs"] is None
    # the writes take the client once it is made (one whose settings are obstore's)
    storage._making.set_result(s3fs_client(moto_server))
    storage.write_text(f"{inner}/c.txt", "written")
    assert s3fs_client(moto_server).cat(f"{inner}/c.txt") == b"written"


def test_a_client_with_other_settings_is_refused_before_any_write(stored, moto_server):
    import s3fs

    storage, inner = open_storage(stored)
    other = s3fs.S3FileSystem(key="another-key", secret="another-secret",
                              client_kwargs={"endpoint_url": moto_server.endpoint},
                              skip_instance_cache=True)
    storage._making = Future()
    storage._making.set_result(other)
    with pytest.raises(StorageError, match="disagree"):
        storage.write_text(f"{inner}/c.txt", "never")
    assert not s3fs_client(moto_server).exists(f"{inner}/c.txt")


def test_the_client_made_on_the_thread_is_the_one_writes_use(stored, moto_server):
    storage, inner = open_storage(stored)
    storage.write_text(f"{inner}/c.txt", "made on a thread")
    assert type(storage.fs).__name__ == "S3FileSystem"
    assert rust_reads.s3_settings(storage.fs) == storage._settings
    assert s3fs_client(moto_server).cat(f"{inner}/c.txt") == b"made on a thread"


def test_a_task_carries_the_client_and_reads_without_the_thread(stored):
    storage, inner = open_storage(stored)
    copy = pickle.loads(pickle.dumps(storage))
    assert "_making" not in copy.__dict__ and copy.__dict__["_fs"] is not None
    copy = pickle.loads(pickle.dumps(copy))  # a scheduler passes it on as it came
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


def test_options_or_a_chained_url_make_s3fs_first(moto_server, bucket):
    plain, _ = open_storage(bucket, {"anon": False})
    assert not isinstance(plain, early_s3.EarlyS3Storage)
    chained, _ = open_storage(f"simplecache::{bucket}/d")
    assert not isinstance(chained, early_s3.EarlyS3Storage)
    assert isinstance(open_storage(f"{bucket}/d")[0], early_s3.EarlyS3Storage)


def test_a_planned_input_is_checked_against_its_client_before_any_chunk(stored, moto_server,
                                                                         monkeypatch):
    """An input read through obstore alone (its output elsewhere) is checked at the end of
    planning too: a client with other settings stops the run there, as one error."""
    import s3fs

    from pipeline.io import sources, storage

    other = s3fs.S3FileSystem(key="another-key", secret="another-secret",
                              client_kwargs={"endpoint_url": moto_server.endpoint},
                              skip_instance_cache=True)

    def with_other_client(text, kwargs):
        opened = early_s3.open_early(text, kwargs)
        opened[0]._making = Future()
        opened[0]._making.set_result(other)
        return opened

    monkeypatch.setattr(storage, "open_early", with_other_client)
    with pytest.raises(StorageError, match="disagree"):
        sources.plan(stored)


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


def test_a_client_that_cannot_be_made_is_the_one_error_open_storage_gives(stored):
    """The thread's failure to make s3fs is worded as opening the URL would word it."""
    from pipeline.errors import PipelineError

    storage, inner = open_storage(stored)
    storage._making = Future()
    storage._making.set_exception(ImportError("No module named 'aiobotocore'"))
    with pytest.raises(PipelineError) as err:
        storage.write_text(f"{inner}/c.txt", "never")
    assert str(err.value) == (f"{stored}: no file system for s3:// is installed "
                              "(pip install 'pipeline[s3]')")
