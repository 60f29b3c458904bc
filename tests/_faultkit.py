"""Helpers of the fault suite (tests/test_faults.py, tests/test_commit_kill.py): a moto S3
server behind the fault proxy of ``../shared/tools``, a writer subprocess that waits for a
go signal, brute-force checks, and the tally that ``benchmarks/reliability.py`` sums."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pyarrow as pa
import pytest

import lakevec
from lakevec import exceptions as E

from conftest import SHARED

DIM = 16
K = 5
TALLY_ENV = "LAKEVEC_FAULT_TALLY"
FIELDS = ("cases", "faults", "recovered", "clear_errors", "wrong_answers", "crashes")


# ----------------------------------------------------------------------------- tally
class Tally:
    """Counts of one test, appended as a JSON line to ``$LAKEVEC_FAULT_TALLY`` (if set).
    ``recovered``: calls that met their faults and gave the right answer; ``clear_errors``:
    a :class:`StorageError` (or the expected conflict) leaving the index correct;
    ``wrong_answers``: a wrong result, a false ``CorruptIndexError``, a self-conflict, or an
    index left wrong; ``crashes``: any other exception, a dead or hung process."""

    def __init__(self, test_id: str) -> None:
        self.test_id = test_id
        self.counts = dict.fromkeys(FIELDS, 0)

    def add(self, outcome: str | None = None, faults: int = 0, cases: int = 1) -> None:
        self.counts["cases"] += cases
        self.counts["faults"] += faults
        if outcome is not None:
            self.counts[outcome] += 1

    def add_counts(self, **counts: int) -> None:
        for k, v in counts.items():
            self.counts[k] += v

    def flush(self) -> None:
        path = os.environ.get(TALLY_ENV)
        if path:
            with open(path, "a") as f:
                f.write(json.dumps({"test": self.test_id, **self.counts}) + "\n")


def outcome_of(exc: BaseException | None) -> str:
    """The tally column of a call that raised ``exc`` (``None``: it returned)."""
    if exc is None:
        return "recovered"
    if isinstance(exc, (E.CorruptIndexError, E.CommitConflictError)):
        return "wrong_answers"
    if isinstance(exc, E.StorageError):
        return "clear_errors"
    return "crashes"


def attempt(fn):
    """(result, None) or (None, the exception) of ``fn()``; a pyo3 PanicException is a
    BaseException, so everything but Ctrl-C and exit is caught."""
    try:
        return fn(), None
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # noqa: BLE001
        return None, e


# ------------------------------------------------------------------------- S3 + proxy
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FaultyS3:
    """A moto S3 server and the fault proxy in front of it. moto runs without credential
    checks here: the proxy rewrites the Host header, which SigV4 signs. ``direct`` options
    reach moto, ``faulty`` ones the proxy; ``arm(rules)`` sets the proxy's rules."""

    BUCKET = "faults"

    def __init__(self) -> None:
        import boto3

        tools = SHARED / "tools"
        if not (tools / "s3_fault_proxy.py").is_file():
            pytest.skip(f"fault proxy not found in {tools} (CI always has it)")
        sys.path.insert(0, str(tools))
        from s3_fault_proxy import FaultProxy

        port = _free_port()
        env = {k: v for k, v in os.environ.items() if k != "INITIAL_NO_AUTH_ACTION_COUNT"}
        cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        self.moto = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.time() > deadline or self.moto.poll() is not None:
                    self.moto.kill()
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        self.proxy = FaultProxy(port, 0).start()
        self.inflight = 0
        self._cv = threading.Condition()
        self._track_requests()
        self.direct = self._options(port)
        self.faulty = self._options(self.proxy.server.server_address[1])
        self.s3 = boto3.client(
            "s3",
            endpoint_url=self.direct["aws_endpoint"],
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        self.s3.create_bucket(Bucket=self.BUCKET)

    @staticmethod
    def _options(port: int) -> dict:
        return {
            "aws_access_key_id": "test",
            "aws_secret_access_key": "test",
            "aws_endpoint": f"http://127.0.0.1:{port}",
            "aws_region": "us-east-1",
            "aws_allow_http": "true",
        }

    def _track_requests(self) -> None:
        """Count requests in the proxy (a delayed one stays counted until it is answered or
        its client is gone) and keep the noise of killed clients off stderr."""
        kit, base = self, self.proxy.server.RequestHandlerClass

        class Tracked(base):
            def _handle(self):
                with kit._cv:
                    kit.inflight += 1
                try:
                    return super()._handle()
                finally:
                    with kit._cv:
                        kit.inflight -= 1
                        kit._cv.notify_all()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.proxy.server.RequestHandlerClass = Tracked
        self.proxy.server.handle_error = lambda *a: None

    def arm(self, rules: list[dict]) -> None:
        with self.proxy.lock:
            self.proxy.rules[:] = [dict(r) for r in rules]
            self.proxy.log.clear()

    def disarm(self) -> list[tuple]:
        """Clear the rules; return the requests they hit (method, path, action)."""
        with self.proxy.lock:
            self.proxy.rules.clear()
            return list(self.proxy.log)

    def wait_hit(self, action: str, timeout: float = 120) -> None:
        """Block until a rule with ``action`` has matched a request."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.proxy.lock:
                if any(a == action for _, _, a in self.proxy.log):
                    return
            time.sleep(0.01)
        raise AssertionError(f"the proxy saw no request for rule {action!r} within {timeout} s")

    def quiesce(self, timeout: float = 60) -> None:
        """Wait until the proxy answers no request (delayed ones forwarded or dropped)."""
        with self._cv:
            assert self._cv.wait_for(lambda: self.inflight == 0, timeout), "proxy requests still open"

    def uri(self, key: str) -> str:
        return f"s3://{self.BUCKET}/{key}"

    def put_table(self, key: str, t: pa.Table) -> None:
        import io

        import pyarrow.parquet as pq

        buf = io.BytesIO()
        pq.write_table(t, buf)
        self.s3.put_object(Bucket=self.BUCKET, Key=key, Body=buf.getvalue())

    def snapshot(self, prefix: str) -> dict[str, bytes]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.BUCKET, Prefix=prefix)
        keys = [o["Key"] for p in pages for o in p.get("Contents", [])]
        return {k: self.s3.get_object(Bucket=self.BUCKET, Key=k)["Body"].read() for k in keys}

    def restore(self, prefix: str, objects: dict[str, bytes]) -> None:
        """Make ``prefix`` hold exactly ``objects``."""
        for k in self.snapshot(prefix):
            self.s3.delete_object(Bucket=self.BUCKET, Key=k)
        for k, b in objects.items():
            self.s3.put_object(Bucket=self.BUCKET, Key=k, Body=b)

    def close(self) -> None:
        self.proxy.stop()
        self.moto.terminate()
        try:
            self.moto.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.moto.kill()


# ------------------------------------------------------------------------------ data
def batch(ids, seed: int) -> tuple[pa.Table, np.ndarray]:
    v = np.random.default_rng(seed).standard_normal((len(ids), DIM)).astype(np.float32)
    t = pa.table(
        {"id": pa.array(ids, pa.int64()), "vector": pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), DIM)}
    )
    return t, v


ROWS = 300
# (data files of the table, index version) in the state each call starts from; see `stage`
STAGES = {"read_table": ((0, 1, 2), 0), "build": ((0, 1, 2), 0), "compact": ((0, 2, 3), 2), "refresh": ((0, 3, 4), 2)}


def parts() -> list[tuple[pa.Table, np.ndarray]]:
    """The five data files a table is made of (300 rows each, unique ids)."""
    return [batch(range(i * ROWS, (i + 1) * ROWS), i) for i in range(5)]


def queries(files) -> np.ndarray:
    """Near a row of every file (rows of removed files must not come back) + two random."""
    near = [files[i][1][7] + 0.01 for i in range(len(files))]
    return np.vstack(near + [np.random.default_rng(9).standard_normal((2, DIM)).astype(np.float32)])


def build(uri: str, opts: dict | None, fmt: str | None = "parquet"):
    t = lakevec.Table.open(uri, opts, format=fmt)
    return lakevec.build_index(t, "vector", key="id", progress=False, m=8, ef_construction=40)


def stage(s3: FaultyS3, key: str, files, op: str) -> None:
    """Put the Parquet table at ``key`` in the state ``op`` starts from (direct to moto):
    files 0-2 (read_table, build); then indexed, file 3 added and 1 removed, refreshed (index
    version 2: two segments and a tombstone file; compact); then file 4 added and 2 removed
    (refresh)."""

    def change(add: int, remove: int | None) -> None:
        s3.put_table(f"{key}/part-{add}.parquet", files[add][0])
        if remove is not None:
            s3.s3.delete_object(Bucket=s3.BUCKET, Key=f"{key}/part-{remove}.parquet")

    for i in (0, 1, 2):
        change(i, None)
    if op in ("read_table", "build"):
        return
    build(s3.uri(key), s3.direct)
    change(3, 1)
    assert lakevec.open_index(s3.uri(f"{key}/_lakevec_index/default"), storage_options=s3.direct).refresh()
    if op == "refresh":
        change(4, 2)


def stage_table(files, op: str) -> pa.Table:
    """The table (``id``, ``vector``) ``op`` ends at."""
    return pa.concat_tables([files[i][0] for i in STAGES[op][0]])


def brute(t: pa.Table, q: np.ndarray, k: int = K) -> list[list[int]]:
    """Exact top-``k`` ids (squared L2) over the rows of ``t`` (``id``, ``vector``)."""
    if t.num_rows == 0:
        return [[] for _ in q]
    ids = t.column("id").to_numpy()
    v = np.stack(t.column("vector").to_numpy(zero_copy_only=False))
    return [list(ids[np.argsort(((v - x) ** 2).sum(1), kind="stable")[:k]]) for x in q]


def hit_ids(res: pa.Table, n: int) -> list[list[int]]:
    got = [[] for _ in range(n)]
    for a, b in zip(res.column("query").to_pylist(), res.column("id").to_pylist()):
        got[a].append(b)
    return got


def index_problem(index_uri: str, opts: dict | None, table: pa.Table, q, versions, covered=False) -> str | None:
    """Why the index at ``index_uri`` is wrong (``None``: it is right): it must open at one of
    ``versions`` (``0``: no index yet) and its exact search (stale files searched exactly)
    must equal brute force over ``table``; ``covered``: the index itself covers the table."""
    try:
        idx = lakevec.open_index(index_uri, storage_options=opts)
    except E.TableNotFoundError as e:
        return None if 0 in versions else f"no index: {e}"
    if idx.version not in versions:
        return f"index opened at version {idx.version}, expected one of {sorted(versions)}"
    want = brute(table, q)
    got = hit_ids(idx.search(q, k=K, exact=True), len(q))
    if got != want:
        return f"exact search at version {idx.version} != brute force: {got} vs {want}"
    if covered:
        got = hit_ids(idx.search(q, k=K, exact=True, stale="error"), len(q))
        if got != want or idx.stats()["rows"] != table.num_rows:
            return f"version {idx.version} does not hold the table's rows: {got} vs {want}"
    return None


# ---------------------------------------------------------------------------- writer
WRITER = """
import json, sys
import lakevec
from lakevec import exceptions as E
op, uri, index_uri, fmt, opts = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] or None, json.loads(sys.argv[5])
if op == "build":
    t = lakevec.Table.open(uri, opts, format=fmt)
else:
    idx = lakevec.open_index(index_uri, storage_options=opts)
print("ready", flush=True)
sys.stdin.readline()
try:
    if op == "build":
        r = lakevec.build_index(t, "vector", key="id", progress=False, num_threads=1, m=8, ef_construction=40).version
    else:
        r = getattr(idx, op)(num_threads=1)
    print(json.dumps({"ok": r}), flush=True)
except E.LakevecError as e:
    print(json.dumps({"error": type(e).__name__, "message": str(e)}), flush=True)
    sys.exit(3)
"""


class Writer:
    """A writer subprocess: it opens the table (build) or index, prints ``ready``, runs
    ``op`` when :meth:`go` is called and prints ``{"ok": ...}`` or ``{"error": ...}``."""

    def __init__(self, op: str, uri: str, index_uri: str, fmt: str | None, opts: dict | None) -> None:
        args = [sys.executable, "-c", WRITER, op, uri, index_uri, fmt or "", json.dumps(opts)]
        self.proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.proc.kill()
            raise AssertionError(f"writer did not start: {line!r} {self.proc.stderr.read()[-2000:]}")

    def go(self) -> None:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def result(self, timeout: float = 300) -> tuple[dict | None, str]:
        """(the JSON the writer printed or None, its stderr tail); kills it on a hang."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            return None, f"hung; {err[-2000:]}"
        lines = [x for x in out.splitlines() if x.startswith("{")]
        return (json.loads(lines[-1]) if lines else None), f"exit {self.proc.returncode}: {err[-2000:]}"

    def kill(self) -> None:
        self.proc.kill()
        self.proc.communicate()
