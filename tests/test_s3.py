"""Reads from a real S3 endpoint: a moto server on 127.0.0.1 that checks credentials (the
s3_lake fixture of lakevec.testing)."""

from __future__ import annotations

import pickle

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import lakevec
from lakevec import exceptions as E

pytestmark = pytest.mark.s3


@pytest.fixture(scope="module")
def s3(s3_lake, shared_data):
    """The session's moto server with the shared files and tables uploaded under s3_test/."""
    s3_lake.s3.upload_file(
        str(shared_data / "text" / "debian_descriptions.parquet"), s3_lake.bucket, "s3_test/text/debian.parquet"
    )
    delta = shared_data / "tables" / "delta"
    s3_lake.upload_dir(delta / "delta-0.8.0-partitioned", "s3_test/partitioned")
    s3_lake.upload_dir(delta / "COVID-19_NYT", "s3_test/covid")
    s3_lake.upload_dir(delta / "table-with-dv-small", "s3_test/dv")
    s3_lake.upload_dir(delta / "simple_table", "s3_test/simple")
    return s3_lake


def _uri(s3, name: str) -> str:
    return s3.uri(f"s3_test/{name}")


def test_file_read_equals_local(s3, shared_data):
    local = pq.read_table(shared_data / "text" / "debian_descriptions.parquet")
    got = lakevec.read_table(_uri(s3, "text/debian.parquet"), storage_options=s3.options())
    assert got.equals(local)
    flt = lakevec.read_table(
        _uri(s3, "text/debian.parquet"),
        columns=["package"],
        filter="section = 'games'",
        storage_options=s3.options(),
    )
    assert flt["package"].equals(local.filter(pc.equal(local["section"], "games"))["package"])


def test_partitioned_folder_equals_local(s3, shared_data):
    local = lakevec.read_table(str(shared_data / "tables" / "delta" / "delta-0.8.0-partitioned"), format="parquet")
    got = lakevec.read_table(_uri(s3, "partitioned"), format="parquet", storage_options=s3.options())
    assert got.equals(local)
    assert got.num_rows == 7


def test_multi_file_table_and_sql(s3, shared_data):
    t = lakevec.Table.open(_uri(s3, "covid"), s3.options(), format="parquet")
    assert t.num_rows == 1_111_930
    local = lakevec.Table.open(str(shared_data / "tables" / "delta" / "COVID-19_NYT"), format="parquet")
    assert t.files()["path"].to_pylist() == local.files()["path"].to_pylist()
    q = "SELECT count(*) AS n, sum(deaths) AS d FROM c WHERE state = 'Ohio'"
    assert lakevec.sql(q, tables={"c": t}).equals(lakevec.sql(q, tables={"c": local}))


def test_wrong_credentials_never_leak(s3):
    bad_key, bad_secret = "AKIAWRONGKEY1234567", "wrongSecretValue/abcdef0123456789"
    with pytest.raises((PermissionError, E.StorageError)) as ei:
        lakevec.read_table(
            _uri(s3, "text/debian.parquet"),
            storage_options=s3.options(key_id=bad_key, secret=bad_secret),
        )
    text = str(ei.value) + repr(ei.value)
    assert bad_key not in text and bad_secret not in text
    assert s3.secret not in text
    # The real secret never shows in repr or pickles either.
    t = lakevec.Table.open(_uri(s3, "text/debian.parquet"), s3.options())
    assert s3.secret not in repr(t)
    blob = pickle.dumps(t)
    assert s3.secret.encode() not in blob and s3.key_id.encode() not in blob


def test_missing_object_is_not_found(s3):
    with pytest.raises(FileNotFoundError):
        lakevec.read_table(_uri(s3, "no/such/table"), storage_options=s3.options())


def test_delta_tables_on_s3(s3, shared_data):
    local_dv = lakevec.read_table(str(shared_data / "tables" / "delta" / "table-with-dv-small"))
    dv = lakevec.Table.open(_uri(s3, "dv"), s3.options())
    assert dv.format == "delta" and dv.num_rows == 8
    assert sorted(map(repr, dv.to_arrow().to_pylist())) == sorted(map(repr, local_dv.to_pylist()))
    files = dv.files().to_pylist()
    assert files[0]["num_deleted"] == 2 and len(files[0]["deleted_rows"]) == 2
    a = dv.to_arrow(with_row_address=True)
    assert a.num_rows == 8 and set(a["_row"].to_pylist()).isdisjoint(files[0]["deleted_rows"])
    assert dv.take(a.take([5, 1]))["value"].to_pylist() == a.take([5, 1])["value"].to_pylist()
    simple = str(shared_data / "tables" / "delta" / "simple_table")
    for v in (0, 2, 4):
        got = lakevec.read_table(_uri(s3, "simple"), version=v, storage_options=s3.options())
        ref = lakevec.read_table(simple, version=v)
        assert sorted(got["id"].to_pylist()) == sorted(ref["id"].to_pylist()), v
