"""Crafted sidecar files that pass their checksums but lie, and data that would silently
break distances: the checks behind the CRC (and at ingest) turn them into clear errors (or
ignore them), never a panic, a wrong answer or a lost commit."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import lakevec
from lakevec import exceptions as E

from conftest import index_dir, read_manifest, write_manifest

deltalake = pytest.importorskip("deltalake")


def _table(path, ids, seed=0, dim=8, mode="error"):
    v = np.random.default_rng(seed).standard_normal((len(ids), dim)).astype(np.float32)
    t = pa.table(
        {"id": np.asarray(ids, np.int64), "vector": pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), dim)}
    )
    deltalake.write_deltalake(str(path), t, mode=mode)


@pytest.mark.parametrize("dim", [0, 2**40])
def test_a_manifest_with_an_implausible_dimension_is_corrupt(tmp_path, dim):
    """dim 0 made search divide by zero, 2^40 made it allocate without bound (both panics)."""
    _table(tmp_path / "t", range(100))
    idx = lakevec.build_index(str(tmp_path / "t"), "vector", progress=False)
    m = read_manifest(idx)
    m["dim"], m["segments"] = dim, []
    write_manifest(index_dir(idx), idx.version, m)
    with pytest.raises(E.CorruptIndexError, match="dimension"):
        lakevec.open_index(idx.uri)


@pytest.mark.parametrize("stray", ["18446744073709551615.json", "5.json", "+00000000000000000009.json"])
def test_stray_manifest_names_neither_shadow_nor_wrap_the_version(tmp_path, stray):
    """A checksum-valid manifest under a name that is not a version file is ignored: the next
    refresh commits version N+1 (a stray u64::MAX made it commit version 0, which no reader
    ever opened, and report success)."""
    path = tmp_path / "t"
    _table(path, range(200))
    idx = lakevec.build_index(str(path), "vector", key="id", progress=False)
    m = read_manifest(idx)
    write_manifest(index_dir(idx), stray, {**m, "version": 2**64 - 1 if stray.startswith("1844") else 9})
    _table(path, range(200, 300), seed=1, mode="append")
    assert idx.refresh(progress=False)
    again = lakevec.open_index(idx.uri)
    assert again.version == 2
    assert again.stats()["rows"] == 300
    q = np.random.default_rng(5).standard_normal((3, 8)).astype(np.float32)
    assert (
        again.search(q, k=5, exact=True).column("id").to_pylist()
        == idx.search(q, k=5, exact=True).column("id").to_pylist()
    )


def test_vectors_whose_distances_would_overflow_are_invalid(tmp_path):
    """Finite but huge vectors (~1e20) made every distance inf: recall 0.01 with no error."""
    v = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    v[7] *= np.float32(1e20)
    t = pa.table({"id": np.arange(50), "vector": pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), 8)})
    deltalake.write_deltalake(str(tmp_path / "t"), t)
    with pytest.raises(E.VectorError, match="row 7.*too large"):
        lakevec.build_index(str(tmp_path / "t"), "vector", metric="l2", progress=False)
    idx = lakevec.build_index(str(tmp_path / "t"), "vector", metric="l2", key="id", on_invalid="skip", progress=False)
    assert idx.stats()["rows"] == 49
    with pytest.raises(E.VectorError, match="too large"):
        idx.search(v[7:8], k=3)
