"""Shared fixtures: paths to ../shared/data, generated data, fault-test servers. Tables and the
moto S3 server come from lakevec's pytest plugin, lakevec.testing (lake_table, s3_lake)."""

from __future__ import annotations

import json
import os
import signal
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakevec.testing import write_parquet

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


def vector_data(rows: int, dim: int = 16, seed: int = 0) -> pa.Table:
    """``rows`` rows of id (int64), label, x (float64), text and vector
    (fixed_size_list<float32>[dim], standard normal), the same for the same arguments."""
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((rows, dim)).astype(np.float32)
    return pa.table(
        {
            "id": np.arange(rows, dtype=np.int64),
            "label": pa.array([f"l{i % 10}" for i in range(rows)]),
            "x": rng.random(rows),
            "text": pa.array([f"row {i} " + "w" * (i % 13) for i in range(rows)]),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vecs.ravel()), dim),
        }
    )


def make_vector_table(
    path: Path, rows: int, dim: int = 16, seed: int = 0, row_group_size: int | None = None
) -> pa.Table:
    """Write :func:`vector_data` as the Parquet file ``path`` (lakevec.testing writes it)."""
    return write_parquet(vector_data(rows, dim, seed), path, row_group_size=row_group_size)


def pytest_configure(config):
    # lakevec.testing (lake_table, s3_lake) is loaded through its pytest11 entry point; an
    # install older than that entry point gets it registered here, under the same name
    if not config.pluginmanager.has_plugin("lakevec"):
        import lakevec.testing

        config.pluginmanager.register(lakevec.testing, "lakevec")


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
def moto_s3(s3_lake):
    """lakevec.testing's ``s3_lake`` under its former name (tests/test_ray.py uses it)."""
    return s3_lake


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
