"""Shared fixtures: paths to ../shared/data, generated tables and a moto S3 server."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("LAKEVEC_SHARED", ROOT.parent / "shared")).resolve()
DATA = SHARED / "data"


def require_shared() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"shared data not found at {DATA} (CI always has it)")
    return DATA


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return require_shared()


def load_ann(data: Path, name: str):
    """(base table, queries as float32 (n, dim), true top-10 id sets) of a shared ANN set."""
    ann = data / "ann"
    base = pq.read_table(ann / f"{name}_base.parquet")
    q = pq.read_table(ann / f"{name}_query.parquet")
    gt = pq.read_table(ann / f"{name}_groundtruth.parquet")
    queries = np.stack(q.column("vector").to_numpy(zero_copy_only=False)).astype(np.float32)
    truth = [set(n[:10]) for n in gt.column("neighbors").to_pylist()]
    return base, queries, truth


def index_dir(idx) -> Path:
    """The local folder of a :class:`lakevec.VectorIndex`."""
    return Path(idx.uri.removeprefix("file://"))


def read_manifest(idx, version: int | None = None) -> dict:
    """The manifest body of ``idx``'s version (or ``version``), as lakevec wrote it."""
    v = idx.version if version is None else version
    return json.loads((index_dir(idx) / "manifests" / f"{v:020d}.json").read_text())["manifest"]


def write_manifest(folder: Path, name: str | int, body: dict) -> None:
    """Write a checksum-valid manifest ``body`` as ``manifests/<name>`` (an int: that
    version's file name), with lakevec's envelope: CRC-32 of the body with sorted keys."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    env = {"crc32": zlib.crc32(text.encode()), "manifest": body}
    fname = f"{name:020d}.json" if isinstance(name, int) else name
    (folder / "manifests" / fname).write_text(json.dumps(env, indent=2))


def make_vector_table(
    path: Path, rows: int, dim: int = 16, seed: int = 0, row_group_size: int | None = None
) -> pa.Table:
    """Write a Parquet file with id, label, text and a fixed_size_list<float32> vector."""
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((rows, dim)).astype(np.float32)
    t = pa.table(
        {
            "id": np.arange(rows, dtype=np.int64),
            "label": pa.array([f"l{i % 10}" for i in range(rows)]),
            "x": rng.random(rows),
            "text": pa.array([f"row {i} " + "w" * (i % 13) for i in range(rows)]),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vecs.ravel()), dim),
        }
    )
    pq.write_table(t, path, row_group_size=row_group_size)
    return t


@pytest.fixture
def sigint_raises():
    """SIGINT raises ``KeyboardInterrupt`` in the main thread during the test (Python's
    default handler), also when pytest runs as a background job, where SIGINT is ignored and
    ``_thread.interrupt_main()`` would do nothing. The previous handler is restored after."""
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoS3:
    """A moto S3 server on 127.0.0.1 that checks credentials (INITIAL_NO_AUTH_ACTION_COUNT)."""

    def __init__(self) -> None:
        import boto3

        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        deadline = time.time() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        # The first 3 actions run unauthenticated: make a user with S3 rights and a key.
        iam = boto3.client(
            "iam",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",
        )
        iam.create_user(UserName="lakevec")
        iam.put_user_policy(
            UserName="lakevec",
            PolicyName="s3all",
            PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}',
        )
        key = iam.create_access_key(UserName="lakevec")["AccessKey"]
        self.key_id = key["AccessKeyId"]
        self.secret = key["SecretAccessKey"]
        self.s3 = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.key_id,
            aws_secret_access_key=self.secret,
        )

    def options(self, key_id: str | None = None, secret: str | None = None) -> dict:
        return {
            "aws_access_key_id": key_id or self.key_id,
            "aws_secret_access_key": secret or self.secret,
            "aws_endpoint": self.endpoint,
            "aws_region": "us-east-1",
            "aws_allow_http": "true",
        }

    def upload_dir(self, bucket: str, local: Path, prefix: str) -> None:
        for p in sorted(local.rglob("*")):
            if p.is_file():
                rel = p.relative_to(local).as_posix()
                self.s3.upload_file(str(p), bucket, f"{prefix}/{rel}".strip("/"))

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="session", autouse=True)
def segment_cache_dir(tmp_path_factory):
    """Object-store segments the tests open are cached under the test session's temporary
    folder (``LAKEVEC_CACHE_DIR``, inherited by worker processes), not the user's cache."""
    d = tmp_path_factory.mktemp("segment-cache")
    previous = os.environ.get("LAKEVEC_CACHE_DIR")
    os.environ["LAKEVEC_CACHE_DIR"] = str(d)
    yield d
    if previous is None:
        os.environ.pop("LAKEVEC_CACHE_DIR", None)
    else:
        os.environ["LAKEVEC_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def moto_s3():
    pytest.importorskip("moto")
    server = MotoS3()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def tally(request):
    """Fault tests: records the test's outcome counts into LAKEVEC_FAULT_TALLY when set."""
    from _faultkit import Tally

    t = Tally(request.node.nodeid)
    yield t
    t.flush()


@pytest.fixture(scope="module")
def s3():
    """Fault tests: a moto S3 server behind the fault proxy, for one test module (test_s3.py
    has its own)."""
    pytest.importorskip("moto")
    from _faultkit import FaultyS3

    server = FaultyS3()
    yield server
    server.close()
