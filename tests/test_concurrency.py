"""The GIL is released during reads, Ctrl-C interrupts them, and lakevec works after fork
and under spawn (each child guarded by a timeout)."""

from __future__ import annotations

import _thread
import multiprocessing as mp
import subprocess
import sys
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lakevec


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """~200 MB of float columns plus strings: a read takes a noticeable time."""
    d = tmp_path_factory.mktemp("big")
    rng = np.random.default_rng(1)
    n = 1_500_000
    t = pa.table(
        {f"f{i}": rng.random(n) for i in range(12)} | {"s": pa.array(np.char.add("row", np.arange(n).astype(str)))}
    )
    p = d / "big.parquet"
    pq.write_table(t, p, row_group_size=100_000, compression="zstd")
    return p


def test_gil_released_during_read(big):
    t = lakevec.Table.open(str(big))
    ticks = 0
    stop = threading.Event()

    def counter():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0.001)

    th = threading.Thread(target=counter)
    th.start()
    try:
        start = time.perf_counter()
        for _ in range(3):
            t.to_arrow(num_threads=1)
        elapsed = time.perf_counter() - start
    finally:
        stop.set()
        th.join()
    # A thread blocked on the GIL could not tick at all while Rust ran. Sleeping 1 ms per
    # tick, a free thread ticks at least a few hundred times a second.
    assert elapsed > 0.2, "read too fast to measure; grow the fixture"
    assert ticks > 100 * elapsed, (ticks, elapsed)


def test_ctrl_c_interrupts_a_long_call(tmp_path, sigint_raises):
    n = 30_000
    pq.write_table(pa.table({"x": np.arange(n, dtype=np.int64)}), tmp_path / "n.parquet")
    t = lakevec.Table.open(str(tmp_path / "n.parquet"))
    # A cross join of 900M pairs runs far longer than the test allows.
    query = "SELECT count(*) FROM a, a AS b WHERE (a.x * 7 + b.x * 13) % 1000003 = 5"
    timer = threading.Timer(0.5, _thread.interrupt_main)
    start = time.perf_counter()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        lakevec.sql(query, tables={"a": t}, num_threads=1)
    took = time.perf_counter() - start
    timer.cancel()
    assert took < 0.5 + 1.5, took
    # lakevec still works afterwards.
    assert t.to_arrow().num_rows == n


def _child_read(path: str, q) -> None:
    import lakevec as lv

    t = lv.Table.open(path)
    a = t.to_arrow(num_threads=2)
    b = lv.sql("SELECT count(*) AS n FROM t", tables={"t": t})
    reader_rows = sum(batch.num_rows for batch in t.scan(batch_size=10_000))
    q.put((a.num_rows, b["n"][0].as_py(), reader_rows))


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_child_processes_can_read(big, method):
    if method not in mp.get_all_start_methods():
        pytest.skip(f"{method} not available")
    t = lakevec.Table.open(str(big))
    n = t.to_arrow(num_threads=2).num_rows  # parent has started its runtime and pools
    # Several children in a row: a fork-safety bug (parked runtime threads left in a
    # process-wide park table) crashed about one forked child in three.
    _run_children(
        method, _child_read, (str(big),), (n, n, n), 6 if method == "fork" else 1, lambda: t.to_arrow(num_threads=2)
    )  # the parent keeps working between forks


def _run_children(method, target, args, want, repeats, between) -> None:
    """Start ``repeats`` children one after another with ``method``; each must put ``want``
    on its queue and exit 0 within 120 s; ``between()`` runs in the parent after each."""
    ctx = mp.get_context(method)
    for _ in range(repeats):
        q = ctx.Queue()
        p = ctx.Process(target=target, args=(*args, q))
        p.start()
        p.join(timeout=120)
        if p.is_alive():
            p.kill()
            pytest.fail(f"child started with {method} hung")
        assert p.exitcode == 0, f"child started with {method} died: {p.exitcode}"
        assert q.get(timeout=5) == want
        between()


def _child_kernels(args, q) -> None:
    """Every kind of lakevec work in one child: rayon kernels (MinHash, rules, hashing
    vectors), an index build and search (hnsw_rs in lakevec's pool), and a lake read."""
    import lakevec as lv

    texts, index_uri, table_uri, vec = args
    t = pa.table({"text": texts})
    clusters = lv.dedup.minhash(t, "text", threshold=0.5, num_threads=2)
    tags = lv.tag.rules(t, "text", {"x": r"\bfox\b"}, num_threads=2)
    emb = lv.embed.hashing(t.column("text"), dim=16, num_threads=2)
    hits = lv.open_index(index_uri).search(vec, k=3, num_threads=2)
    n = lv.read_table(table_uri, num_threads=2).num_rows
    q.put(
        (
            clusters.column("cluster_id").to_pylist(),
            tags.column("tags").to_pylist(),
            len(emb),
            hits.column("_row").to_pylist(),
            n,
        )
    )


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_child_processes_run_every_kernel(tmp_path, method):
    if method not in mp.get_all_start_methods():
        pytest.skip(f"{method} not available")
    rng = np.random.default_rng(3)
    vecs = rng.random((500, 8), dtype=np.float32)
    pq.write_table(
        pa.table({"v": pa.FixedSizeListArray.from_arrays(pa.array(vecs.ravel()), 8)}), tmp_path / "v.parquet"
    )
    idx = lakevec.build_index(str(tmp_path / "v.parquet"), "v", progress=False, num_threads=2)
    texts = ["the quick brown fox jumps", "the quick brown fox jumps!", "a lazy dog sleeps all day", None] * 20
    args = (texts, idx.uri, str(tmp_path / "v.parquet"), vecs[0])
    q0 = mp.get_context("spawn").Queue()
    _child_kernels(args, q0)  # the parent runs everything first: its pools and runtime exist
    want = q0.get(timeout=5)
    _run_children(
        method,
        _child_kernels,
        (args,),
        want,
        3 if method == "fork" else 1,
        lambda: lakevec.dedup.minhash(pa.table({"text": texts}), "text", num_threads=2),
    )


FORK_WHILE_BUSY = """
import os, sys, threading, time
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
import lakevec
p, mode, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
idx = lakevec.open_index(lakevec.Table.open(p))
q = np.random.default_rng(1).standard_normal((2000, 16)).astype(np.float32)
if mode == "search":
    def busy():
        while True:
            idx.search(q, k=10, exact=True)
    threading.Thread(target=busy, daemon=True).start()
    time.sleep(0.3)
else:
    stream = iter(lakevec.Table.open(p).scan(batch_size=1000))
    next(stream)
ok = 0
for _ in range(rounds):
    pid = os.fork()
    if pid == 0:
        n = lakevec.read_table(p, columns=["id"]).num_rows
        hits = lakevec.open_index(lakevec.Table.open(p)).search(q[:4], k=3, exact=True)
        os._exit(0 if n == 100_000 and hits.num_rows == 12 else 3)
    deadline = time.time() + 60
    while time.time() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.02)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        status = "hung"
    ok += status == 0
if mode == "stream":
    assert sum(b.num_rows for b in stream) == 100_000 - 1000  # the parent's stream goes on
print("ok", ok)
"""


@pytest.fixture(scope="module")
def flat_index(tmp_path_factory):
    d = tmp_path_factory.mktemp("flat")
    v = np.random.default_rng(0).standard_normal((100_000, 16)).astype(np.float32)
    t = pa.table({"id": np.arange(len(v)), "vector": pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), 16)})
    pq.write_table(t, d / "t.parquet", row_group_size=5000)
    lakevec.build_index(str(d / "t.parquet"), "vector", progress=False, index_type="flat")
    return d / "t.parquet"


def test_fork_while_another_thread_searches(flat_index):
    """os.fork() while another thread searched left children hung in locks the parent's busy
    workers held at the fork (6 of 8 here) or killed them with SIGSEGV; every child now reads
    and searches (the fork waits for the call in flight, then the runtime is shut down)."""
    rounds = 12
    r = subprocess.run(
        [sys.executable, "-c", FORK_WHILE_BUSY, str(flat_index), "search", str(rounds)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split()[-2:] == ["ok", str(rounds)], r.stdout + r.stderr[-2000:]


EXIT_WHILE_SEARCHING = """
import sys, threading, time
import numpy as np
import lakevec
idx = lakevec.open_index(lakevec.Table.open(sys.argv[1]))
q = np.random.default_rng(1).standard_normal((20000, 16)).astype(np.float32)
def busy():
    while True:
        idx.search(q, k=10, exact=True)
threading.Thread(target=busy, daemon=True).start()
time.sleep(0.3)
"""


def test_interpreter_exit_while_a_daemon_thread_searches(flat_index):
    """The interpreter exiting while a daemon thread was inside search() aborted the process
    (SIGABRT, "FATAL: exception not rethrown"); it now exits 0."""
    for _ in range(3):
        r = subprocess.run(
            [sys.executable, "-c", EXIT_WHILE_SEARCHING, str(flat_index)], capture_output=True, text=True, timeout=300
        )
        assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
