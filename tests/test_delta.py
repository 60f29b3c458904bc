"""Delta Lake tables: every shared table reads right or is refused clearly; time travel,
deletion vectors, history, files, pinned pickles."""

from __future__ import annotations

import datetime as dt
import pickle
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import lakevec
from lakevec import exceptions as E

from conftest import DATA, require_shared

deltalake = pytest.importorskip("deltalake")

KNOWN_ROWS = {  # from ../shared/README.md
    "COVID-19_NYT": 1_111_930,
    "table-with-dv-small": 8,
    "table_with_deletion_logs": 98,
    "checkpoint-v2-table": 44,
    "table_with_column_mapping": 5,
    "simple_table_with_checkpoint": 11,
    "delta-0.8.0-partitioned": 7,
}


def _tables() -> list[Path]:
    if not DATA.is_dir():
        return []
    return [
        p
        for group in ("delta", "delta-golden")
        for p in sorted((DATA / "tables" / group).iterdir())
        if (p / "_delta_log").is_dir()
    ]


TABLES = _tables()


def _rows(t: pa.Table) -> list[str]:
    """Order-free, type-tolerant row fingerprints (dictionaries decoded, views as plain)."""
    cols = {}
    for name in sorted(t.column_names):
        c = t[name]
        if pa.types.is_dictionary(c.type):
            c = c.cast(c.type.value_type)
        cols[name] = c.to_pylist()
    n = t.num_rows
    return sorted(repr(tuple(cols[k][i] for k in cols)) for i in range(n))


def _reference(path: Path) -> pa.Table:
    dtable = deltalake.DeltaTable(str(path))
    qb = deltalake.QueryBuilder().register("t", dtable)
    return pa.table(qb.execute("SELECT * FROM t").read_all())


def test_tables_found():
    require_shared()
    assert len(TABLES) >= 20


@pytest.mark.parametrize("path", TABLES, ids=[p.name for p in TABLES])
def test_reads_right_or_refuses_clearly(path: Path):
    try:
        got = lakevec.read_table(str(path))
    except E.LakevecError as e:
        # Refused: the message must say why and name the table.
        assert path.name in str(e), e
        assert path.name not in KNOWN_ROWS, f"{path.name} should be readable: {e}"
        return
    t = lakevec.Table.open(str(path))
    assert t.format == "delta" and t.version is not None
    assert got.num_rows == t.num_rows
    if path.name in KNOWN_ROWS:
        assert got.num_rows == KNOWN_ROWS[path.name]
    try:
        ref = _reference(path)
    except Exception as e:  # the reference engine cannot read it either
        pytest.skip(f"deltalake cannot read {path.name}: {e}")
    assert got.num_rows == ref.num_rows
    if got.num_rows <= 100_000:
        assert _rows(got) == _rows(ref)


V2_CHECKPOINT = {
    "delta/checkpoint-v2-table": 44,
    "delta-golden/v2-checkpoint-json": 10,
    "delta-golden/v2-checkpoint-parquet": 10,
}


@pytest.mark.parametrize("rel", sorted(V2_CHECKPOINT))
def test_v2_checkpoint_tables_read_like_deltalake(shared_data, rel):
    """Tables with the v2Checkpoint feature (current Databricks runtimes) were refused; they
    are read through delta-kernel's scan, equal to the deltalake package's."""
    p = shared_data / "tables" / rel
    got = lakevec.read_table(str(p))
    ref = _reference(p)
    assert got.num_rows == ref.num_rows == V2_CHECKPOINT[rel]
    assert _rows(got) == _rows(ref)
    t = lakevec.Table.open(str(p))
    assert t.num_rows == V2_CHECKPOINT[rel] and t.files().num_rows >= 1
    first = got.column_names[0]
    assert lakevec.sql(f"SELECT count(*) AS n FROM t WHERE {first} IS NOT NULL", tables={"t": t})["n"][0].as_py() == (
        got[first].drop_null().__len__()
    )


def test_deletion_vector_rows_never_return(shared_data):
    path = shared_data / "tables" / "delta" / "table-with-dv-small"
    t = lakevec.Table.open(str(path))
    got = t.to_arrow()
    assert got.num_rows == 8
    plain = lakevec.read_table(str(path), format="parquet")  # the data files, no log
    assert plain.num_rows == 10
    files = t.files()
    assert sum(files["num_records"].to_pylist()) - sum(files["num_deleted"].to_pylist()) == 8
    assert sum(files["num_deleted"].to_pylist()) == 2
    deleted = set(map(repr, plain.to_pylist())) - set(map(repr, got.to_pylist()))
    assert len(deleted) == 2


def test_vacuumed_old_version_fails_cleanly(shared_data):
    path = shared_data / "tables" / "delta" / "checkpoints_vacuumed"
    with pytest.raises(E.LakevecError):
        lakevec.read_table(str(path), version=0)


def test_version_on_parquet_is_an_error(shared_data):
    with pytest.raises(E.InvalidArgumentError):
        lakevec.Table.open(str(shared_data / "text" / "debian_descriptions.parquet"), version=1)


@pytest.fixture()
def five_versions(lake_table):
    """v0 create, v1 append, v2 delete, v3 overwrite, v4 schema change (new column)."""
    from deltalake import write_deltalake

    t = lake_table(
        pa.table({"id": pa.array(range(10), pa.int64()), "s": [f"a{i}" for i in range(10)]}),
        "delta",
        name="tt",
        appends=[pa.table({"id": pa.array(range(10, 15), pa.int64()), "s": [f"b{i}" for i in range(5)]})],
        deletes=["id % 3 = 0"],
    )
    assert t.version == 2
    uri = t.uri
    time.sleep(0.05)
    write_deltalake(uri, pa.table({"id": pa.array([100, 101], pa.int64()), "s": ["x", "y"]}), mode="overwrite")
    time.sleep(0.05)
    write_deltalake(
        uri,
        pa.table({"id": pa.array([102], pa.int64()), "s": ["z"], "extra": [1.5]}),
        mode="append",
        schema_mode="merge",
    )
    return uri


def test_time_travel_matches_deltalake(five_versions):
    from deltalake import DeltaTable

    uri = five_versions
    assert lakevec.Table.open(uri).version == 4
    for v in range(5):
        ref = DeltaTable(uri, version=v).to_pyarrow_table()
        got = lakevec.read_table(uri, version=v)
        assert _rows(got) == _rows(ref), v
        assert set(got.column_names) == set(ref.column_names), v
    with pytest.raises(E.LakevecError):
        lakevec.Table.open(uri, version=9)


def test_timestamp_picks_the_version(five_versions):
    t = lakevec.Table.open(five_versions)
    hist = t.history().to_pylist()
    assert [h["version"] for h in hist] == [4, 3, 2, 1, 0]
    assert hist[2]["operation"] == "DELETE"
    for h in hist:
        ts = dt.datetime.fromtimestamp(h["timestamp"] / 1000, tz=dt.timezone.utc)
        pinned = lakevec.Table.open(five_versions, timestamp=ts.isoformat())
        assert pinned.version == h["version"]


def test_pickle_pins_the_version(five_versions):
    t = lakevec.Table.open(five_versions, version=1)
    back = pickle.loads(pickle.dumps(t))
    assert back.version == 1 and back.num_rows == 15


def test_reads_reuse_the_opened_snapshot(five_versions, tmp_path):
    """A Table replays the log once, at open: later reads (whole, filtered, SQL) use that
    snapshot, so they neither see newer commits nor need the log any more."""
    from deltalake import write_deltalake

    t = lakevec.Table.open(five_versions, version=3)
    first = t.to_arrow()
    newer = pa.table({"id": pa.array([500], pa.int64()), "s": ["n"], "extra": [2.5]})
    write_deltalake(five_versions, newer, mode="append")
    log = Path(five_versions) / "_delta_log"
    log.rename(tmp_path / "moved_log")
    assert sorted(first["id"].to_pylist()) == [100, 101]
    assert _rows(t.to_arrow()) == _rows(first)
    assert t.to_arrow(["id"], "id > 100")["id"].to_pylist() == [101]
    assert lakevec.sql("SELECT count(*) AS n FROM t", {"t": t})["n"].to_pylist() == [2]
    with pytest.raises(E.LakevecError):
        lakevec.Table.open(five_versions, format="delta")


def test_filter_and_sql_on_delta(shared_data):
    path = shared_data / "tables" / "delta" / "COVID-19_NYT"
    t = lakevec.Table.open(str(path))
    ohio = t.to_arrow(columns=["county", "cases"], filter="state = 'Ohio'")
    plain = lakevec.read_table(str(path), format="parquet", columns=["state"], filter="state = 'Ohio'")
    assert ohio.num_rows == plain.num_rows > 0  # this table has no removed files
    n = lakevec.sql("SELECT count(*) AS n FROM c WHERE state = 'Ohio'", tables={"c": t})
    assert n["n"][0].as_py() == ohio.num_rows


@pytest.mark.parametrize("name", ["table-with-dv-small", "table_with_deletion_logs"])
def test_deletion_vectors_through_a_symlinked_folder(shared_data, tmp_path, name):
    """A table reached through a symbolic link (e.g. a symlinked ../shared) lists its files
    with their deletion vectors and reads the same rows as through its real path."""
    real = shared_data / "tables" / "delta"
    link = tmp_path / "lake"
    link.symlink_to(real, target_is_directory=True)
    direct = lakevec.Table.open(str(real / name))
    linked = lakevec.Table.open(str(link / name))
    cols = ["path", "num_deleted", "deleted_rows"]
    want = direct.files().select(cols).sort_by("path")
    assert linked.files().select(cols).sort_by("path").equals(want)
    assert pc.sum(want.column("num_deleted")).as_py() > 0
    assert linked.num_rows == direct.num_rows == KNOWN_ROWS[name]
    assert _rows(linked.to_arrow()) == _rows(direct.to_arrow())
    # and through a file:// URL of the link
    assert lakevec.Table.open(f"file://{link / name}").files().num_rows == want.num_rows
