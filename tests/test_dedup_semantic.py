"""The semantic dedup index (`dedup.build_index(vector_index, method="semantic")`) on the
shared MiniLM embeddings (Abt-Buy and MRPC texts, all-MiniLM-L6-v2): after appends and a
delete, its clusters equal one `dedup.semantic` run over the vector index's final version."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import lakevec
from lakevec import exceptions as E

deltalake = pytest.importorskip("deltalake")


@pytest.fixture(scope="module")
def minilm(shared_data) -> pa.Table:
    """The MiniLM base rows in a seeded random order (near-duplicates spread over versions)."""
    base = pq.read_table(shared_data / "ann" / "minilm_base.parquet", columns=["id", "vector"])
    return base.take(np.random.default_rng(7).permutation(base.num_rows))


def partition(tab: pa.Table) -> list[list]:
    """Clusters as sorted lists of row addresses (cluster ids are names only)."""
    groups: dict = {}
    for f, r, c in zip(*(tab.column(x).to_pylist() for x in ("_file", "_row", "cluster_id"))):
        groups.setdefault(c, []).append((f, r))
    return sorted(sorted(g) for g in groups.values())


def test_flat_index_refreshes_equal_one_semantic_run(tmp_path, minilm):
    """Build on 5,000 rows, refresh after two appends and after a delete (k=2: neighbour lists
    fill up, so new rows push stored rows' neighbours out; k=10): the clusters equal
    `dedup.semantic` over the vector index's version each time, and the refresh reports the new
    rows with the stored row each matched."""
    uri = str(tmp_path / "t")
    deltalake.write_deltalake(uri, minilm.slice(0, 5000))
    vidx = lakevec.build_index(uri, "vector", metric="cosine", index_type="flat", progress=False)
    kw = [dict(threshold=0.9, k=2), dict(threshold=0.85, k=10)]
    idxs = [
        lakevec.dedup.build_index(vidx, method="semantic", name=f"s{i}", progress=False, **a) for i, a in enumerate(kw)
    ]

    def same_as_one_run():
        for d, a in zip(idxs, kw):
            want = lakevec.dedup.semantic(vidx, a["threshold"], k=a["k"])
            got = d.clusters()
            assert got.num_rows == want.num_rows == vidx.table().num_rows
            assert partition(got) == partition(want)
            assert sum(s > 1 for s in got.column("cluster_size").to_pylist()) > 50

    same_as_one_run()
    matched = 0
    for start, n in ((5000, 4000), (9000, 3052)):
        deltalake.write_deltalake(uri, minilm.slice(start, n), mode="append")
        assert vidx.refresh()
        for d in idxs:
            new = d.refresh()
            assert new.num_rows == n and new.column_names[-1] == "similarity"
            m = new.filter(pc.is_valid(new.column("matched_row")))
            assert pc.min(m.column("similarity")).as_py() >= 0.85
            matched += m.num_rows
        same_as_one_run()
    assert matched > 100
    # a delete (Delta rewrites the files holding the rows): they leave their clusters
    deltalake.DeltaTable(uri).delete("id % 5 = 0")
    assert vidx.refresh()
    for d in idxs:
        assert d.refresh().num_rows > 0
    same_as_one_run()
    assert all(r % 5 for r in vidx.table().take(idxs[0].clusters(), ["id"]).column("id").to_pylist())
    # reopened: the same clusters; nothing new: no commit
    again = lakevec.dedup.open_index(lakevec.Table.open(uri), name="s0")
    assert partition(again.clusters()) == partition(idxs[0].clusters())
    version = again.version
    assert again.refresh().num_rows == 0 and again.version == version
    assert again.manifest["params"]["method"] == "semantic" and again.vector_index().uri == vidx.uri


def test_graph_index_matches_one_run_and_errors(tmp_path, minilm):
    """On an HNSW index the refreshed clusters agree with one `dedup.semantic` run (both
    approximate); wrong uses are clear errors; a corrupted neighbour list is CorruptIndexError."""
    uri = str(tmp_path / "t")
    deltalake.write_deltalake(uri, minilm.slice(0, 8000))
    vidx = lakevec.build_index(uri, "vector", metric="cosine", progress=False)
    d = lakevec.dedup.build_index(vidx, "vector", method="semantic", threshold=0.9, progress=False)
    deltalake.write_deltalake(uri, minilm.slice(8000), mode="append")
    vidx.refresh()
    d.refresh()
    got, want = partition(d.clusters()), partition(lakevec.dedup.semantic(vidx, 0.9, k=10))

    def pairs(p):
        return {(a, b) for g in p for i, a in enumerate(g) for b in g[i + 1 :]}

    g, w = pairs(got), pairs(want)
    assert len(w) > 100 and len(g & w) / len(g | w) >= 0.98
    with pytest.raises(E.InvalidArgumentError, match="cannot be refreshed"):
        lakevec.dedup.build_index(vidx, method="semantic", threshold=0.9, k=5, progress=False)
    with pytest.raises(E.InvalidArgumentError, match="column"):
        lakevec.dedup.build_index(vidx, "id", method="semantic", progress=False)
    with pytest.raises(E.InvalidArgumentError, match="VectorIndex"):
        lakevec.dedup.build_index(uri, "vector", method="semantic", progress=False)
    with pytest.raises(E.UnsupportedFeatureError, match="search the vector index"):
        d.check(minilm.slice(0, 3), "vector")
    with pytest.raises(E.InvalidArgumentError, match="no table"):
        d.refresh(lakevec.Table.open(uri))
    l2 = lakevec.build_index(uri, "vector", metric="l2", name="l2", progress=False)
    with pytest.raises(E.InvalidArgumentError, match="cosine or dot"):
        lakevec.dedup.build_index(l2, method="semantic", progress=False)
    cl = Path(d.uri.removeprefix("file://")) / d.manifest["clusters"]["path"]
    raw = bytearray(cl.read_bytes())
    raw[-9] ^= 0x40
    cl.write_bytes(bytes(raw))
    with pytest.raises(E.CorruptIndexError):
        lakevec.dedup.open_index(d.uri)
