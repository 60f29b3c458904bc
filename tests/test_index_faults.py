"""Index faults: processes killed (SIGKILL) during build and refresh leave the last committed
index readable; flipped or truncated bytes in any sidecar file raise CorruptIndexError."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import lakevec
from lakevec import exceptions as E

deltalake = pytest.importorskip("deltalake")
DIM = 32


def _batch(ids, seed):
    v = np.random.default_rng(seed).standard_normal((len(ids), DIM)).astype(np.float32)
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), DIM),
        }
    )


CHILD = """
import sys, lakevec
p, op = sys.argv[1], sys.argv[2]
if op == "build":
    lakevec.build_index(p, "vector", key="id", progress=False, num_threads=1)
else:
    lakevec.open_index(lakevec.Table.open(p)).refresh(num_threads=1)
print("done", flush=True)
"""


def _exact_ok(p: str, q: np.ndarray) -> int:
    """Open the index, check exact search equals brute force over the latest table; return
    the index version."""
    idx = lakevec.open_index(lakevec.Table.open(p))
    t = lakevec.Table.open(p).to_arrow(columns=["id", "vector"])
    ids = t.column("id").to_numpy()
    v = np.stack(t.column("vector").to_numpy(zero_copy_only=False))
    want = [list(ids[np.argsort(((v - x) ** 2).sum(1), kind="stable")[:5]]) for x in q]
    res = idx.search(q, k=5, exact=True)
    got = [[] for _ in q]
    for a, b in zip(res.column("query").to_pylist(), res.column("id").to_pylist()):
        got[a].append(b)
    assert got == want
    # the graph answers too (no error, k results each)
    assert idx.search(q, k=5, stale="ignore").num_rows == 5 * len(q)
    return idx.version


def _run_killed(p: str, op: str, delay: float) -> bool:
    """Run the child and SIGKILL it after `delay` s; True when it finished first."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, p, op], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        proc.wait(timeout=delay)
        out = proc.stdout.read()
        assert proc.returncode == 0, proc.stderr.read().decode()[-2000:]
        return b"done" in out
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        return False


@pytest.mark.slow
def test_sigkill_during_build_and_refresh(tmp_path):
    p = str(tmp_path / "t")
    deltalake.write_deltalake(p, _batch(range(0, 6000), 0))
    q = np.random.default_rng(1).standard_normal((5, DIM)).astype(np.float32)
    # a first, complete build; time it to place the kills
    t0 = time.time()
    assert _run_killed(p, "build", 300)
    span = time.time() - t0
    version = _exact_ok(p, q)
    rng = random.Random(7)
    completed = 0
    for _ in range(20):
        finished = _run_killed(p, "build", rng.uniform(0.05, span * 1.1))
        v = _exact_ok(p, q)
        assert v in (version, version + 1)
        if finished:
            assert v == version + 1
        completed += finished
        version = v
    for i in range(20):
        deltalake.write_deltalake(p, _batch(range(10_000 + i * 50, 10_000 + (i + 1) * 50), 100 + i), mode="append")
        finished = _run_killed(p, "refresh", rng.uniform(0.05, span * 0.8))
        v = _exact_ok(p, q)  # stale files are searched exactly: still correct
        assert v >= version
        version = v
    # every pending file is indexed by a last, uninterrupted refresh
    assert _run_killed(p, "refresh", 300)
    idx = lakevec.open_index(lakevec.Table.open(p))
    cov = idx.coverage()
    assert set(cov.column("status").to_pylist()) == {"indexed"}
    print(f"build runs completed before the kill: {completed}/20")


def _sidecar_files(root: Path) -> list[Path]:
    return sorted(f for f in root.rglob("*") if f.is_file())


def test_flipped_or_truncated_sidecar_bytes(tmp_path):
    import pyarrow.parquet as pq

    p = str(tmp_path / "t")
    Path(p).mkdir()
    for i in range(2):
        pq.write_table(_batch(range(i * 300, (i + 1) * 300), i), f"{p}/part-{i}.parquet")
    idx = lakevec.build_index(p, "vector", key="id", progress=False)
    # one indexed file goes (tombstones), one arrives (a second segment)
    Path(f"{p}/part-1.parquet").unlink()
    pq.write_table(_batch(range(600, 700), 2), f"{p}/part-2.parquet")
    idx.refresh()
    q = np.zeros((1, DIM), np.float32)
    root = Path(p) / "_lakevec_index" / "default"
    live = {str(x) for x in [root / "manifests" / f"{idx.version:020}.json"]}
    st = idx.stats()
    assert st["segments"] >= 2 and st["tombstones"] > 0
    files = [f for f in _sidecar_files(root) if "manifests" not in f.parts or str(f) in live]
    # only files of the current version matter (older manifests are not read)
    m = (root / "manifests" / f"{idx.version:020}.json").read_text()
    files = [f for f in files if "manifests" in f.parts or f.name in m]
    assert any("tombstones" in f.parts for f in files) and any("segments" in f.parts for f in files)
    rng = random.Random(3)
    for f in files:
        orig = f.read_bytes()
        positions = {0, len(orig) - 1, len(orig) // 2} | {rng.randrange(len(orig)) for _ in range(6)}
        cases = [("flip", i) for i in positions] + [("cut", n) for n in (0, 7, len(orig) // 3, len(orig) - 1)]
        for kind, i in cases:
            if kind == "flip":
                b = bytearray(orig)
                b[i] ^= 0x5A
                f.write_bytes(bytes(b))
            else:
                f.write_bytes(orig[:i])
            try:
                if "manifests" in f.parts:
                    # A damaged newest manifest is skipped: readers get the version before it.
                    older = lakevec.open_index(lakevec.Table.open(p))
                    assert older.version == idx.version - 1
                    assert older.search(q, k=3).num_rows == 3
                else:
                    with pytest.raises(E.CorruptIndexError, match="corrupt|missing|format version|magic"):
                        lakevec.open_index(lakevec.Table.open(p)).search(q, k=3)
            finally:
                f.write_bytes(orig)
        assert lakevec.open_index(lakevec.Table.open(p)).search(q, k=3).num_rows == 3
    # a missing segment file is a clear error too, from the first call that needs it (opening
    # reads manifests only)
    seg = next(f for f in files if "segments" in f.parts)
    seg.rename(seg.with_suffix(".gone"))
    opened = lakevec.open_index(lakevec.Table.open(p))
    with pytest.raises(E.CorruptIndexError, match="missing"):
        opened.search(q, k=3)


def test_ctrl_c_interrupts_build_and_search(tmp_path, sigint_raises):
    """KeyboardInterrupt reaches a running build within ~1 s (the graph build polls a cancel
    flag between chunks); the index is left as it was and lakevec keeps working."""
    import _thread
    import threading

    p = str(tmp_path / "t")
    rng = np.random.default_rng(0)
    v = rng.standard_normal((60_000, 64)).astype(np.float32)
    deltalake.write_deltalake(
        p,
        pa.table(
            {
                "id": np.arange(len(v)),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), 64),
            }
        ),
    )
    timer = threading.Timer(1.0, _thread.interrupt_main)
    start = time.perf_counter()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        lakevec.build_index(p, "vector", progress=False, num_threads=1, ef_construction=400)
    took = time.perf_counter() - start
    timer.cancel()
    assert took < 1.0 + 2.5, took
    with pytest.raises(E.TableNotFoundError):
        lakevec.open_index(lakevec.Table.open(p))  # nothing was committed
    small = str(tmp_path / "small")
    deltalake.write_deltalake(
        small,
        pa.table(
            {
                "id": np.arange(500),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(v[:500].ravel()), 64),
            }
        ),
    )
    idx = lakevec.build_index(small, "vector", key="id", progress=False)
    assert idx.search(v[:3], k=1).column("id").to_pylist() == [0, 1, 2]
