"""Apache Iceberg tables: pyiceberg-written tables (SQL catalog, local and moto S3) read equal
to pyiceberg's own scan at every snapshot; the shared tables; catalogs; changes."""

from __future__ import annotations

import datetime as dt
import glob
import pickle

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import lakevec
from lakevec import exceptions as E
from lakevec.testing import LakeTables, MotoS3

pyiceberg = pytest.importorskip("pyiceberg")
from pyiceberg.types import DoubleType  # noqa: E402


def _rows(t: pa.Table) -> list[str]:
    cols = sorted(t.column_names)
    return sorted(map(repr, t.select(cols).to_pylist()))


def _batch(ids, section) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "section": pa.array([section(i) for i in ids], pa.string()),
            "score": pa.array([i * 0.5 for i in ids], pa.float64()),
        }
    )


def _history(tables: LakeTables, s3: MotoS3 | None = None):
    """A table with 6 snapshots: append, append, delete, overwrite, schema change + append,
    rename + append (the first three by ``tables``, the factory of lakevec.testing); returns
    (catalog, table, [snapshot ids])."""
    tables(
        _batch(range(0, 20), lambda i: "games" if i % 2 else "news"),
        "iceberg",
        name="events",
        appends=[_batch(range(20, 30), lambda i: "sport")],
        deletes=["id < 5"],
        s3=s3,
    )
    cat = tables.iceberg_catalog
    t = cat.load_table("db.events")
    t.overwrite(_batch(range(100, 110), lambda i: "games"), overwrite_filter="section = 'sport'")
    with t.update_schema() as u:
        u.add_column("weight", DoubleType())
    t = cat.load_table("db.events")
    extra = _batch(range(200, 203), lambda i: "news").append_column("weight", pa.array([1.0, 2.0, None]))
    t.append(extra)
    with t.update_schema() as u:
        u.rename_column("score", "points")
    t = cat.load_table("db.events")
    t.append(
        pa.table(
            {
                "id": pa.array([300], pa.int64()),
                "section": ["games"],
                "points": [9.0],
                "weight": [3.0],
            }
        )
    )
    t = cat.load_table("db.events")
    return cat, t, [s.snapshot_id for s in t.snapshots()]


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    tables = LakeTables(tmp_path_factory.mktemp("ice"))
    cat, t, snaps = _history(tables)
    return {"catalog_uri": tables.catalog_uri, "table": t, "snapshots": snaps, "location": t.location()}


def test_every_snapshot_reads_like_pyiceberg(events):
    t, snaps = events["table"], events["snapshots"]
    assert len(snaps) >= 6
    loc = events["location"]
    opened = lakevec.Table.open(loc)
    assert opened.format == "iceberg"
    assert opened.version == snaps[-1]
    for sid in snaps:
        ref = t.scan(snapshot_id=sid).to_arrow()
        got = lakevec.Table.open(loc, snapshot_id=sid)
        assert got.version == sid
        arrow = got.to_arrow()
        assert arrow.column_names == ref.column_names, sid
        assert _rows(arrow) == _rows(ref), sid
        assert got.num_rows == ref.num_rows


def test_schema_evolution_by_field_id(events):
    got = lakevec.read_table(events["location"])
    # "score" was renamed to "points": old files are still read through the field id.
    assert "points" in got.column_names and "score" not in got.column_names
    by_id = dict(zip(got["id"].to_pylist(), got["points"].to_pylist()))
    assert by_id[7] == 3.5 and by_id[300] == 9.0
    assert dict(zip(got["id"].to_pylist(), got["weight"].to_pylist()))[7] is None


def test_catalog_name_and_metadata_path(events):
    via_catalog = lakevec.Table.open("lake.db.events", catalog={"type": "sql", "uri": events["catalog_uri"]})
    assert via_catalog.version == events["snapshots"][-1]
    meta = events["table"].metadata_location
    via_file = lakevec.Table.open(meta)
    assert _rows(via_file.to_arrow()) == _rows(via_catalog.to_arrow())
    with pytest.raises(E.TableNotFoundError):
        lakevec.Table.open("lake.db.nope", catalog={"type": "sql", "uri": events["catalog_uri"]})
    with pytest.raises(E.UnsupportedFeatureError):
        lakevec.Table.open("lake.db.events", catalog={"type": "rest", "uri": "http://x"})


def test_timestamp_history_and_pickle(events):
    loc, snaps = events["location"], events["snapshots"]
    hist = lakevec.Table.open(loc).history().to_pylist()
    assert [h["version"] for h in hist][::-1] == snaps
    assert hist[-1]["operation"] == "append"
    for h in hist:
        ts = dt.datetime.fromtimestamp(h["timestamp"] / 1000, tz=dt.timezone.utc)
        pinned = lakevec.Table.open(loc, timestamp=ts.isoformat())
        # snapshots committed in the same millisecond resolve to the latest of them
        assert pinned.version in [x["version"] for x in hist if x["timestamp"] == h["timestamp"]]
    old = lakevec.Table.open(loc, snapshot_id=snaps[1])
    back = pickle.loads(pickle.dumps(old))
    assert back.version == snaps[1] and back.num_rows == 30
    with pytest.raises(E.TableNotFoundError):
        lakevec.Table.open(loc, snapshot_id=12345)


def test_partitioned_table_prunes_and_matches(lake_table):
    got = lake_table(_batch(range(60), lambda i: ["a", "b", "c"][i % 3]), "iceberg", name="p", partition_by="section")
    t = lake_table.iceberg_catalog.load_table("db.p")
    assert got.uri == t.location()
    assert _rows(got.to_arrow()) == _rows(t.scan().to_arrow())
    files = got.files()
    assert files.num_rows == 3
    import json

    assert sorted(json.loads(p)["section"] for p in files["partition"].to_pylist()) == ["a", "b", "c"]
    only_b = got.to_arrow(filter="section = 'b'")
    assert only_b.num_rows == 20 and set(only_b["section"].to_pylist()) == {"b"}
    assert _rows(only_b) == _rows(t.scan(row_filter="section == 'b'").to_arrow())


def test_changes_between_snapshots(events):
    loc, snaps = events["location"], events["snapshots"]
    t = lakevec.Table.open(loc)
    # second append: one file added
    ch = t.changes(snaps[0], snaps[1]).to_pylist()
    assert [c["change"] for c in ch] == ["added"] and ch[0]["num_records"] == 10
    # delete "id < 5" rewrote the first file (copy-on-write): one removed, one added
    ch = t.changes(snaps[1], snaps[2]).to_pylist()
    assert sorted(c["change"] for c in ch) == ["added", "removed"]
    # nothing changes between a snapshot and itself
    assert t.changes(snaps[-1]).num_rows == 0
    with pytest.raises(E.TableNotFoundError):
        t.changes(999)


def test_row_addresses_and_take(events):
    t = lakevec.Table.open(events["location"])
    a = t.to_arrow(with_row_address=True)
    assert a.num_rows == t.num_rows
    assert _rows(a.drop_columns(["_file", "_row"])) == _rows(t.to_arrow())
    files = set(t.files()["path"].to_pylist())
    assert set(a["_file"].to_pylist()) <= files
    sample = a.take([0, 5, a.num_rows - 1, 3])
    back = t.take(sample, columns=["id", "points"])
    assert back["id"].to_pylist() == sample["id"].to_pylist()
    assert back["_row"].to_pylist() == sample["_row"].to_pylist()


def test_shared_lineitem(shared_data):
    path = shared_data / "tables" / "iceberg" / "lineitem_iceberg"
    t = lakevec.Table.open(str(path))
    assert t.format == "iceberg" and t.num_rows == 51_793
    got = t.to_arrow(columns=["l_extendedprice"])
    assert got.num_rows == 51_793
    # the table's last operation deleted l_extendedprice < 10000
    assert pc.min(got["l_extendedprice"]).as_py() >= 10_000
    first = lakevec.Table.open(str(path), snapshot_id=t.history()["version"][-1].as_py())
    assert first.num_rows > 51_793


def _eq_deleted_keys(table_dir) -> list[dict]:
    keys = []
    for f in glob.glob(f"{table_dir}/data/**/*delete-*.parquet", recursive=True):
        keys.extend(pq.read_table(f).to_pylist())
    return keys


@pytest.mark.parametrize("name", ["mytable", "mytable_partitioned"])
def test_equality_deletes_never_return_deleted_rows(shared_data, name):
    d = shared_data / "tables" / "iceberg" / "equality_deletes" / "warehouse" / "mydb" / name
    t = lakevec.Table.open(str(d))
    got = t.to_arrow().to_pylist()
    deleted = _eq_deleted_keys(d)
    assert deleted
    for row in got:
        for key in deleted:
            assert not all(row[k] == v for k, v in key.items()), (row, key)
    data = [
        r
        for f in glob.glob(f"{d}/data/**/*.parquet", recursive=True)
        if "delete" not in f.rsplit("/", 1)[-1]
        for r in pq.read_table(f).to_pylist()
    ]
    survivors = [r for r in data if not any(all(r[k] == v for k, v in key.items()) for key in deleted)]
    assert sorted(r["id"] for r in got) == sorted(r["id"] for r in survivors)
    assert t.num_rows == len(survivors)  # counted by a scan: equality deletes give no counts
    assert t.files()["num_deleted"].null_count > 0  # positions unknown under equality deletes
    with pytest.raises(E.UnsupportedFeatureError):
        t.to_arrow(with_row_address=True)


def test_missing_manifest_names_the_file(lake_table):
    lake_table(_batch(range(5), str), "iceberg", name="m")
    t = lake_table.iceberg_catalog.load_table("db.m")
    manifest_list = t.current_snapshot().manifest_list
    path = manifest_list.replace("file://", "")
    import os

    os.remove(path)
    with pytest.raises(E.TableNotFoundError) as ei:
        lakevec.Table.open(t.location())
    assert os.path.basename(path) in str(ei.value)


@pytest.mark.s3
def test_iceberg_on_s3(s3_lake, lake_table):
    cat, t, snaps = _history(lake_table, s3=s3_lake)
    loc = t.location()
    assert loc.startswith(f"s3://{s3_lake.bucket}/")
    for sid in (snaps[0], snaps[2], snaps[-1]):
        got = lakevec.Table.open(loc, s3_lake.options(), snapshot_id=sid)
        assert _rows(got.to_arrow()) == _rows(t.scan(snapshot_id=sid).to_arrow()), sid
    latest = lakevec.Table.open(loc, s3_lake.options())
    a = latest.to_arrow(with_row_address=True)
    assert a.num_rows == latest.num_rows
    assert latest.take(a.take([2, 0]), columns=["id"])["id"].to_pylist() == a.take([2, 0])["id"].to_pylist()
    assert latest.changes(snaps[0], snaps[1]).num_rows == 1
    with pytest.raises(E.StoragePermissionError):
        lakevec.Table.open(loc, s3_lake.options(secret="wrong-secret")).to_arrow()


def test_a_promoted_key_column_keeps_the_index_usable(lake_table):
    """After the key column was promoted int -> long, refresh() committed and then every
    search and compact failed mixing Int32 and Int64 keys; keys now widen to the new type."""
    import numpy as np
    from pyiceberg.types import LongType

    cat = lake_table.iceberg_catalog
    rng = np.random.default_rng(0)

    def rows(ids, dtype):
        v = rng.standard_normal((len(ids), 4)).astype(np.float32)
        return pa.table({"id": pa.array(ids, dtype), "vector": pa.array(list(v), pa.list_(pa.float32()))}), v

    first, v0 = rows(range(0, 60), pa.int32())
    lake_table(first, "iceberg", name="v")
    t = cat.load_table("db.v")
    idx = lakevec.build_index(t.location(), "vector", key="id", progress=False)
    with t.update_schema() as u:
        u.update_column("id", LongType())
    t = cat.load_table("db.v")
    second, v1 = rows(range(3_000_000_000, 3_000_000_040), pa.int64())
    t.append(second)
    assert idx.refresh() is True
    for _ in range(2):  # before and after compaction
        hits = idx.search(np.vstack([v0[5], v1[7]]), k=1, exact=True)
        assert hits.schema.field("id").type == pa.int64()
        assert hits.column("id").to_pylist() == [5, 3_000_000_007]
        assert idx.compact() in (True, False)
