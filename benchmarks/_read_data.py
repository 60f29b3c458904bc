"""Data for benchmarks/read.py, generated once under its --data-dir (each is written under a
``.tmp`` name and renamed when complete, so an interrupted run regenerates it)."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

SHARED = Path(os.environ.get("LAKEVEC_SHARED", Path(__file__).resolve().parents[2] / "shared"))
DEBIAN = SHARED / "data" / "text" / "debian_descriptions.parquet"
COVID = SHARED / "data" / "tables" / "delta" / "COVID-19_NYT"


def _fresh(path: Path) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    if tmp.is_dir():
        shutil.rmtree(tmp)
    elif tmp.exists():
        tmp.unlink()
    return tmp


def vector_file(path: Path, rows: int) -> None:
    """`id` int64, `text` (~150 chars of words), `vector` fixed_size_list<float32, 384>,
    snappy, 32,768 rows per row group (~50 MB row groups, typical of lake writers)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    words = np.array("lake vector arrow parquet table index search river data row".split())
    chunk = 32_768
    schema = pa.schema([("id", pa.int64()), ("text", pa.string()), ("vector", pa.list_(pa.float32(), 384))])
    tmp = _fresh(path)
    with pq.ParquetWriter(tmp, schema, compression="snappy") as w:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            text = [" ".join(rng.choice(words, 25)) for _ in range(n)]
            vec = rng.standard_normal((n, 384)).astype(np.float32)
            t = pa.table(
                {
                    "id": np.arange(start, start + n, dtype=np.int64),
                    "text": text,
                    "vector": pa.FixedSizeListArray.from_arrays(pa.array(vec.ravel()), 384),
                },
                schema=schema,
            )
            w.write_table(t, row_group_size=chunk)
    tmp.rename(path)


def debian_x10(path: Path, copies: int = 10) -> None:
    """The shared Debian descriptions repeated `copies` times plus a `copy` int32 column; one
    Parquet file (snappy), one row group per copy (63,905 rows)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = pq.read_table(DEBIAN)
    schema = src.schema.append(pa.field("copy", pa.int32()))
    tmp = _fresh(path)
    with pq.ParquetWriter(tmp, schema, compression="snappy") as w:
        for i in range(copies):
            w.write_table(src.append_column("copy", pa.array([i] * src.num_rows, pa.int32())), row_group_size=1 << 20)
    tmp.rename(path)


def debian_delta(path: Path, source: Path, files: int = 4) -> None:
    """The rows of `source` (the x10 file) as a Delta table of `files` Parquet files, in
    order, 65,536 rows per row group, committed in one version by deltalake's
    convert_to_deltalake (which records per-file statistics)."""
    import pyarrow.parquet as pq
    from deltalake import convert_to_deltalake

    t = pq.read_table(source)
    tmp = _fresh(path)
    tmp.mkdir()
    per = -(-t.num_rows // files)
    for i in range(files):
        pq.write_table(t.slice(i * per, per), tmp / f"part-{i:05d}.snappy.parquet", row_group_size=65_536)
    convert_to_deltalake(str(tmp))
    tmp.rename(path)


def delta_log(path: Path, commits: int = 10_000, rows_per_file: int = 10) -> int:
    """A Delta table of `commits` log entries and a checkpoint at the last one; returns its
    row count (checked with both lakevec and deltalake).

    deltalake writes version 0 (protocol, metaData, one add of a `rows_per_file`-row file);
    versions 1.. are JSON commit files written directly as the Delta protocol describes them
    (one `add` of a byte copy of that file under a new name, with the same stats, plus
    `commitInfo`): 10,000 appends through deltalake would take many minutes. The checkpoint
    is deltalake's create_checkpoint()."""
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    import lakevec

    tmp = _fresh(path)
    tiny = pa.table({"id": pa.array(range(rows_per_file), pa.int64()), "name": [f"r{i}" for i in range(rows_per_file)]})
    write_deltalake(str(tmp), tiny)
    log = tmp / "_delta_log"
    first = [json.loads(line) for line in (log / f"{0:020d}.json").read_text().splitlines() if line.strip()]
    add0 = next(a["add"] for a in first if "add" in a)
    src = tmp / add0["path"]
    now = int(time.time() * 1000)
    for v in range(1, commits):
        name = f"part-{v:05d}-bench.parquet"
        shutil.copyfile(src, tmp / name)
        add = {
            "add": {
                "path": name,
                "partitionValues": {},
                "size": add0["size"],
                "modificationTime": now,
                "dataChange": True,
                "stats": add0.get("stats"),
            }
        }
        info = {
            "commitInfo": {
                "timestamp": now + v,
                "operation": "WRITE",
                "operationParameters": {"mode": "Append"},
                "clientVersion": "lakevec-benchmark",
            }
        }
        (log / f"{v:020d}.json").write_text(json.dumps(add) + "\n" + json.dumps(info) + "\n")
    DeltaTable(str(tmp)).create_checkpoint()
    assert (log / "_last_checkpoint").exists(), "deltalake wrote no checkpoint"
    want = commits * rows_per_file
    by_deltalake = DeltaTable(str(tmp)).to_pyarrow_table().num_rows
    by_lakevec = lakevec.Table.open(str(tmp)).to_arrow().num_rows
    assert by_deltalake == by_lakevec == want, (by_deltalake, by_lakevec, want)
    tmp.rename(path)
    return want
