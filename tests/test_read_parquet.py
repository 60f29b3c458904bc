"""lakevec.read_table against pyarrow.parquet.read_table on every real Parquet file and folder
in ../shared/data: same rows, schema and values; filter and columns as pyarrow computes."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import lakevec

from conftest import DATA, require_shared


def _plain(t: pa.Table) -> pa.Table:
    """pyarrow reads hive partition columns as dictionaries; lakevec returns the value type."""
    cols = []
    for f, c in zip(t.schema, t.columns):
        if pa.types.is_dictionary(f.type):
            c = c.cast(f.type.value_type)
        cols.append(c)
    return pa.table(cols, names=t.column_names)


def _data_files(folder: Path) -> list[Path]:
    out = []
    for p in sorted(folder.rglob("*.parquet")):
        rel = p.relative_to(folder).parts
        if not any(part.startswith(("_", ".")) for part in rel):
            out.append(p)
    return out


def _pyarrow_reference(path: Path) -> pa.Table:
    """pyarrow's read of the same data files lakevec reads (*.parquet, hidden parts skipped)."""
    if path.is_file():
        return pq.read_table(path)
    files = _data_files(path)
    dataset = ds.dataset(
        [str(f) for f in files],
        format="parquet",
        partitioning=ds.HivePartitioning.discover(infer_dictionary=True),
        partition_base_dir=str(path),
    )
    return dataset.to_table()


def _cases() -> list[Path]:
    if not DATA.is_dir():
        return []
    cases = sorted((DATA / "text").glob("*.parquet")) + sorted((DATA / "ann").glob("*.parquet"))
    for group in ("delta", "delta-golden"):
        for table in sorted((DATA / "tables" / group).iterdir()):
            if _data_files(table):
                cases.append(table)
    return cases


CASES = _cases()


def test_cases_found():
    require_shared()
    assert len(CASES) >= 20, CASES
    assert any(p.name == "COVID-19_NYT" for p in CASES)


@pytest.mark.parametrize("path", CASES, ids=[p.name for p in CASES])
def test_same_as_pyarrow(path: Path):
    ref = _plain(_pyarrow_reference(path))
    fmt = None if path.is_file() else "parquet"  # Delta folders: their data files as Parquet
    got = lakevec.read_table(str(path), format=fmt)
    assert got.num_rows == ref.num_rows
    # lakevec merges all file schemas; pyarrow's dataset takes the first file's. Columns
    # that pyarrow returns must be identical in type and values.
    for name in ref.column_names:
        assert name in got.column_names, name
        assert got.schema.field(name).type == ref.schema.field(name).type, name
    # Nullability may differ (pyarrow's multi-file dataset marks every field nullable).
    assert got.select(ref.column_names).cast(ref.schema).equals(ref), path
    t = lakevec.Table.open(str(path), format=fmt)
    assert t.num_rows == ref.num_rows
    files = t.files()
    assert sum(files["num_records"].to_pylist()) == ref.num_rows
    assert files.num_rows == (1 if path.is_file() else len(_data_files(path)))


def test_file_sizes_and_paths(shared_data):
    folder = shared_data / "tables" / "delta" / "COVID-19_NYT"
    t = lakevec.Table.open(str(folder), format="parquet")
    files = t.files()
    expected = {f.relative_to(folder).as_posix(): f.stat().st_size for f in _data_files(folder)}
    assert dict(zip(files["path"].to_pylist(), files["size"].to_pylist())) == expected
    assert t.num_rows == 1_111_930


def test_columns_and_filter_text(shared_data):
    path = shared_data / "text" / "debian_descriptions.parquet"
    ref = pq.read_table(path)
    got = lakevec.read_table(str(path), columns=["section", "package"], filter="section = 'games'")
    expected = ref.filter(pc.equal(ref["section"], "games")).select(["section", "package"])
    assert got.num_rows > 100
    assert got.equals(expected)

    flt = "section IN ('python', 'science') AND length(description) > 500"
    got = lakevec.read_table(str(path), filter=flt)
    mask = pc.and_(
        pc.is_in(ref["section"], pa.array(["python", "science"])),
        pc.greater(pc.utf8_length(ref["description"]), 500),
    )
    assert got.equals(ref.filter(mask))


def test_filter_on_partitions_and_null(shared_data):
    path = shared_data / "tables" / "delta" / "delta-0.8.0-partitioned"
    ref = _plain(_pyarrow_reference(path))
    got = lakevec.read_table(str(path), format="parquet", filter="year = 2021 AND month >= 4")
    mask = pc.and_(pc.equal(ref["year"], 2021), pc.greater_equal(ref["month"], 4))
    assert got.equals(ref.filter(mask))
    assert got.num_rows > 0
    none = lakevec.read_table(str(path), format="parquet", filter="year = 1999")
    assert none.num_rows == 0
    assert none.schema == got.schema


def test_filter_on_vectors_table(shared_data):
    path = shared_data / "ann" / "minilm_base.parquet"
    ref_ids = pq.read_table(path, columns=["id"])["id"].to_pylist()
    got = lakevec.read_table(str(path), columns=["id"], filter="id % 3 = 0 AND id < 9000")
    assert got["id"].to_pylist() == [i for i in ref_ids if i % 3 == 0 and i < 9000]


def test_scan_streams_in_order(shared_data):
    path = shared_data / "ann" / "minilm_base.parquet"
    ref = pq.read_table(path, columns=["id"])
    t = lakevec.Table.open(str(path))
    reader = t.scan(columns=["id", "vector"], batch_size=1000)
    assert isinstance(reader, pa.RecordBatchReader)
    sizes, ids = [], []
    for b in reader:
        sizes.append(b.num_rows)
        ids.extend(b["id"].to_pylist())
    assert max(sizes) <= 1000
    assert ids == ref["id"].to_pylist()


def test_limit_and_threads(shared_data):
    path = shared_data / "text" / "debian_descriptions.parquet"
    t = lakevec.Table.open(str(path))
    assert t.to_arrow(limit=10).num_rows == 10
    one = t.to_arrow(num_threads=1)
    two = t.to_arrow(num_threads=2)
    assert one.equals(two)


def test_to_pandas_and_polars(shared_data):
    pd = pytest.importorskip("pandas")
    pl = pytest.importorskip("polars")
    path = shared_data / "text" / "debian_descriptions.parquet"
    t = lakevec.Table.open(str(path))
    df = t.to_pandas(columns=["package", "section"], filter="section = 'games'")
    assert isinstance(df, pd.DataFrame) and list(df.columns) == ["package", "section"]
    pdf = t.to_polars(columns=["package"])
    assert isinstance(pdf, pl.DataFrame) and pdf.height == t.num_rows


def test_glob(tmp_path):
    from conftest import make_vector_table

    for i in range(3):
        (tmp_path / f"d{i}").mkdir()
        make_vector_table(tmp_path / f"d{i}" / "part.parquet", rows=100, seed=i)
    (tmp_path / "d0" / "notes.txt").write_text("not parquet")
    t = lakevec.Table.open(str(tmp_path / "d*" / "*.parquet"))
    assert t.num_rows == 300
    assert t.files()["path"].to_pylist() == [f"d{i}/part.parquet" for i in range(3)]


def test_percent_encoded_and_null_partitions(tmp_path):
    import pyarrow as pa

    for folder, x in (("s=a%20b", 1), ("s=plain", 2), ("s=__HIVE_DEFAULT_PARTITION__", 3)):
        (tmp_path / folder).mkdir()
        pq.write_table(pa.table({"x": [x]}), tmp_path / folder / "x.parquet")
    got = lakevec.read_table(str(tmp_path))
    assert got.to_pylist() == [
        {"x": 3, "s": None},
        {"x": 1, "s": "a b"},
        {"x": 2, "s": "plain"},
    ]
    ref = _plain(pq.read_table(tmp_path))
    assert sorted(ref["s"].to_pylist(), key=str) == sorted(got["s"].to_pylist(), key=str)
