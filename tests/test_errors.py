"""Bad input gets a clear lakevec error naming what is wrong, never a crash or a hang."""

from __future__ import annotations

import pickle

import pytest

import lakevec
from lakevec import exceptions as E

from conftest import make_vector_table


@pytest.fixture()
def good(tmp_path):
    p = tmp_path / "good.parquet"
    make_vector_table(p, rows=500)
    return p


def test_missing_path(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(E.TableNotFoundError) as ei:
        lakevec.read_table(str(missing))
    assert isinstance(ei.value, FileNotFoundError)
    assert "nope" in str(ei.value)


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty"):
        lakevec.Table.open(str(tmp_path / "empty"))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(E.TableNotFoundError, match="no Parquet files"):
        lakevec.Table.open(str(tmp_path / "other"))


def test_truncated_parquet(tmp_path, good):
    data = good.read_bytes()
    bad = tmp_path / "folder"
    bad.mkdir()
    (bad / "a.parquet").write_bytes(data)
    (bad / "b.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(E.CorruptFileError) as ei:
        lakevec.Table.open(str(bad))
    assert "b.parquet" in str(ei.value)
    tiny = tmp_path / "tiny.parquet"
    tiny.write_bytes(b"PAR1")
    with pytest.raises(E.CorruptFileError, match="tiny.parquet"):
        lakevec.read_table(str(tiny))


def test_not_parquet(tmp_path):
    p = tmp_path / "table.csv"
    p.write_text("a,b\n" + "1,2\n" * 1000)
    with pytest.raises(E.CorruptFileError, match="table.csv"):
        lakevec.read_table(str(p))


def test_filter_unknown_column(good):
    with pytest.raises(E.FilterError) as ei:
        lakevec.read_table(str(good), filter="no_such_col > 3")
    assert "no_such_col" in str(ei.value)
    assert isinstance(ei.value, ValueError)


@pytest.mark.parametrize("flt", ["id >", "id = = 3", "(id > 1", "id + 1", ""])
def test_filter_syntax(good, flt):
    with pytest.raises(E.FilterError) as ei:
        lakevec.read_table(str(good), filter=flt)
    assert "invalid filter" in str(ei.value)


def test_missing_column(good):
    with pytest.raises(E.SchemaError) as ei:
        lakevec.read_table(str(good), columns=["id", "vectr"])
    msg = str(ei.value)
    assert "'vectr'" in msg and "vector" in msg  # names the bad column and lists the real ones


def test_bad_arguments(good):
    with pytest.raises(E.InvalidArgumentError):
        lakevec.Table.open(str(good)).to_arrow(num_threads=0)
    with pytest.raises(E.InvalidArgumentError, match="scheme"):
        lakevec.Table.open("ftp://host/x.parquet")
    with pytest.raises(E.InvalidArgumentError, match="format"):
        lakevec.Table.open(str(good), format="orc")
    with pytest.raises(E.InvalidArgumentError, match="no_such_option"):
        lakevec.Table.open("s3://bucket/x", {"no_such_option": "1"})


def test_iceberg_folder_without_metadata_file(tmp_path):
    (tmp_path / "t" / "metadata").mkdir(parents=True)
    (tmp_path / "t" / "metadata" / "version-hint.text").write_text("3")
    with pytest.raises(E.TableNotFoundError, match="metadata"):
        lakevec.Table.open(str(tmp_path / "t"))
    (tmp_path / "t" / "metadata" / "v3.metadata.json").write_text("{not json")
    with pytest.raises(E.CorruptFileError, match="v3.metadata.json"):
        lakevec.Table.open(str(tmp_path / "t"))


def test_sql_errors(good):
    with pytest.raises(E.SqlError):
        lakevec.sql("SELEC * FROM t", tables={"t": str(good)})
    with pytest.raises(E.SqlError, match="nope"):
        lakevec.sql("SELECT nope FROM t", tables={"t": str(good)})
    with pytest.raises(TypeError):
        lakevec.sql("SELECT 1", tables={"t": 42})


@pytest.mark.parametrize("cls", [getattr(E, n) for n in E.__all__])
def test_exceptions_pickle(cls):
    err = cls("column 'v' not found in table 's3://b/t'")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls and str(back) == str(err)
    assert issubclass(cls, E.LakevecError) and issubclass(cls, Exception)
    assert cls.__module__ == "lakevec.exceptions"


@pytest.mark.parametrize("uri", ["s3://AKIAKEY:se/cr@et@bucket/t", "s3://AKIAKEY:se cret@bu cket/t"])
def test_a_uri_that_does_not_parse_is_named_without_its_credentials(uri):
    with pytest.raises(E.LakevecError) as e:
        lakevec.Table.open(uri)
    assert "AKIAKEY" not in str(e.value) and "se/cr" not in str(e.value) and "se cret" not in str(e.value)


def test_proxy_credentials_stay_out_of_pickles_and_flag_values_out_of_redaction(tmp_path):
    """`proxy_url` with user info is a credential (never pickled, redacted); the value of a
    flag such as `aws_skip_signature="true"` is not (the word "true" stays in messages)."""
    path = tmp_path / "t.parquet"
    make_vector_table(path, 10)
    opts = {"proxy_url": "http://puser:ppass-9@127.0.0.1:9", "aws_skip_signature": "true"}
    t = lakevec.Table.open(str(path), storage_options=opts)
    blob = pickle.dumps(t)
    assert b"ppass-9" not in blob and b"puser" not in blob
    assert pickle.loads(blob).num_rows == 10
    with pytest.raises(E.FilterError) as e:
        t.to_arrow(filter="true AND no_such_column > 1")
    assert "true AND" in str(e.value)
