"""Crafted lake metadata: Delta deletion vectors that name rows far past their file's end, data
files named outside the table's store, and calls whose result could not be held. Each case
runs where a regression would take the process down (a child process with a 4 GiB address
space for the allocation cases), and must end in a clear error instead."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

import lakevec
from lakevec import exceptions as E

DV_TABLE = "table-with-dv-small"
MAGIC = 1681511377
Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"


def z85(raw: bytes) -> str:
    """Z85 (ZeroMQ RFC 32) encoding of `raw` (length a multiple of 4), as Delta inlines vectors."""
    out = []
    for i in range(0, len(raw), 4):
        v = struct.unpack(">I", raw[i : i + 4])[0]
        out.append("".join(Z85[(v // 85**p) % 85] for p in range(4, -1, -1)))
    return "".join(out)


def treemap(rows: list[int]) -> bytes:
    """The portable RoaringTreemap serialisation of `rows` (one array container per 2^16
    block), as the Delta protocol's deletion vector format stores it."""
    by_high: dict[int, list[int]] = {}
    for r in sorted(rows):
        by_high.setdefault(r >> 32, []).append(r & 0xFFFFFFFF)
    out = struct.pack("<Q", len(by_high))
    for high, lows in by_high.items():
        blocks: dict[int, list[int]] = {}
        for lo in lows:
            blocks.setdefault(lo >> 16, []).append(lo & 0xFFFF)
        bm = struct.pack("<II", 12346, len(blocks))
        bm += b"".join(struct.pack("<HH", k, len(v) - 1) for k, v in blocks.items())
        offset = len(bm) + 4 * len(blocks)
        for v in blocks.values():
            bm += struct.pack("<I", offset)
            offset += 2 * len(v)
        bm += b"".join(struct.pack(f"<{len(v)}H", *v) for v in blocks.values())
        out += struct.pack("<I", high) + bm
    return out


def _dv_table(tmp_path, shared_data, rows: list[int], inline: bool, cardinality: int | None = None):
    """A copy of the 10-row deletion-vector table whose vector deletes `rows` (CRCs valid)."""
    dst = tmp_path / "dv"
    shutil.copytree(shared_data / "tables" / "delta" / DV_TABLE, dst)
    body = struct.pack("<I", MAGIC) + treemap(rows)
    commit = dst / "_delta_log" / "00000000000000000001.json"
    lines = commit.read_text().splitlines()
    for i, line in enumerate(lines):
        action = json.loads(line)
        dv = action.get("add", {}).get("deletionVector")
        if dv is None:
            continue
        if inline:
            body += b"\0" * (-len(body) % 4)
            dv.update(storageType="i", pathOrInlineDv=z85(body), sizeInBytes=len(body))
            dv.pop("offset", None)
        else:
            (bin_file,) = dst.glob("deletion_vector_*.bin")
            crc = zlib.crc32(body)
            bin_file.write_bytes(b"\x01" + struct.pack(">I", len(body)) + body + struct.pack(">I", crc))
            dv.update(sizeInBytes=len(body), offset=1)
        dv["cardinality"] = len(rows) if cardinality is None else cardinality
        lines[i] = json.dumps(action)
    commit.write_text("\n".join(lines) + "\n")
    return dst


# Every kind of call that reaches a Delta table's data files. Table.open only replays the
# log; each of these must run the per-file checks (data paths, deletion vectors) first.
CALLS = """
def _call(lakevec, p, call):
    t = lakevec.Table.open(p)
    if call == "files":
        return t.files()
    if call == "read":
        return t.to_arrow()
    if call == "num_rows":
        return t.num_rows
    if call == "scan":
        return sum(b.num_rows for b in t.scan())
    if call == "sql":
        return lakevec.sql("select count(*) as n from t", {"t": t})
    raise ValueError(call)
"""
exec(CALLS)
CALL_KINDS = ["files", "read", "num_rows", "scan", "sql"]

CHILD = (
    """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
import lakevec
from lakevec import exceptions as E
p, call = sys.argv[1], sys.argv[2]
"""
    + CALLS
    + """
try:
    _call(lakevec, p, call)
    print("OK")
except E.LakevecError as e:
    print(type(e).__name__, e)
"""
)


def _in_child(path, call: str) -> str:
    r = subprocess.run([sys.executable, "-c", CHILD, str(path), call], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"child died ({r.returncode}): {r.stderr[-1500:]}"
    return r.stdout.strip()


@pytest.mark.parametrize("inline", [False, True], ids=["file", "inline"])
@pytest.mark.parametrize("call", CALL_KINDS)
def test_a_deletion_vector_past_the_file_end_is_corrupt(tmp_path, shared_data, inline, call):
    """A vector deleting row 2^40 of a 10-row file made delta-rs size a bitmap by that row
    (a terabyte) until the process died; now it is a CorruptFileError naming the file."""
    p = _dv_table(tmp_path, shared_data, [0, 1 << 40], inline)
    out = _in_child(p, call)
    assert out.startswith("CorruptFileError"), out
    assert "deletes row 1099511627776 of a file with 10 rows" in out and "part-00000" in out


def test_crafted_vectors_within_the_file_are_read_and_counts_checked(tmp_path, shared_data):
    """The same crafted encoding, inline, with rows that exist: read as written (so the
    encoder above is right); a cardinality that disagrees with the bitmap is corrupt."""
    p = _dv_table(tmp_path, shared_data, [0, 3, 9], inline=True)
    f = lakevec.Table.open(str(p)).files()
    assert f["deleted_rows"].to_pylist() == [[0, 3, 9]]
    assert lakevec.read_table(str(p)).num_rows == 7
    bad = _dv_table(tmp_path / "b", shared_data, [0, 3, 9], inline=False, cardinality=2)
    with pytest.raises(E.CorruptFileError, match="3 rows deleted, the log says 2"):
        lakevec.Table.open(str(bad)).files()


def test_a_deletion_vector_on_a_file_read_by_many_threads(tmp_path, shared_data):
    """A 2 MB file of 500,000 rows in 25 row groups with an inline vector deleting every 17th
    row: read on 4 threads (the file is past the size at which scans split tables into
    byte ranges), exactly the other rows come back, in order. delta-rs applies a file's
    vector in the order its batches arrive, so byte ranges of one file read by two
    partitions would delete the wrong rows; lakevec keeps such files whole."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 500_000
    deleted = list(range(0, n, 17))
    p = _dv_table(tmp_path, shared_data, deleted, inline=True)
    (data,) = p.glob("part-*.parquet")
    values = np.random.default_rng(7).permutation(n).astype(np.int32)
    pq.write_table(pa.table({"value": values}), data, row_group_size=20_000, compression="none")
    size = data.stat().st_size
    assert size > 1 << 20
    for commit in sorted((p / "_delta_log").glob("*.json")):
        actions = [json.loads(x) for x in commit.read_text().splitlines()]
        for a in actions:
            for kind in ("add", "remove"):
                if kind in a:
                    a[kind]["size"] = size
                    if "stats" in a[kind]:
                        a[kind]["stats"] = json.dumps({"numRecords": n})
        commit.write_text("\n".join(json.dumps(a) for a in actions) + "\n")
    t = lakevec.Table.open(str(p))
    assert t.num_rows == n - len(deleted)
    keep = np.ones(n, dtype=bool)
    keep[deleted] = False
    for threads in (1, 4):
        got = t.to_arrow(num_threads=threads)["value"].to_numpy()
        np.testing.assert_array_equal(got, values[keep], err_msg=f"num_threads={threads}")


def test_a_data_file_outside_the_table_store_is_refused(tmp_path, shared_data):
    """An absolute data-file path in the log may not open another store."""
    dst = tmp_path / "t"
    shutil.copytree(shared_data / "tables" / "delta" / "simple_table", dst)
    commit = sorted((dst / "_delta_log").glob("*.json"))[-1]
    text = commit.read_text()
    i = text.index('"add":{"path":"') + len('"add":{"path":"')
    commit.write_text(text[:i] + "s3://someone-else/x/" + text[i:])
    t = lakevec.Table.open(str(dst))  # the log alone is read
    assert t.version is not None and t.schema.names == ["id"]
    for call in CALL_KINDS:
        with pytest.raises(E.StoragePermissionError, match="outside the table's store") as ei:
            _call(lakevec, str(dst), call)  # noqa: F821 (defined by exec(CALLS))
        assert "s3://someone-else/x/" in str(ei.value), call


def test_results_that_cannot_be_held_are_refused_before_searching(tmp_path):
    """knn_graph(k=100000) and many queries x k=100000 allocated k x rows and were killed."""
    dim, n = 8, 20_000
    import pyarrow as pa

    v = np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)
    t = pa.table({"id": np.arange(n), "vector": pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), dim)})
    import pyarrow.parquet as pq

    pq.write_table(t, tmp_path / "t.parquet")
    idx = lakevec.build_index(str(tmp_path / "t.parquet"), "vector", progress=False, index_type="flat")
    with pytest.raises(E.InvalidArgumentError, match="knn_graph would return 399980000 rows"):
        idx.knn_graph(k=100_000)
    q = np.repeat(v[:1], 60_000, axis=0)
    with pytest.raises(E.InvalidArgumentError, match="search would return 1200000000 rows"):
        idx.search(q, k=100_000)
    # Within the bound the same calls answer.
    assert idx.knn_graph(k=2).num_rows == 2 * n
    assert idx.search(q[:10], k=100_000).num_rows == 10 * n
