"""The persisted dedup index on the Debian corpus: clusters after build + refreshes (appends,
deletes, overwrite; Delta and Iceberg) equal one `dedup.minhash` run over the final version,
`check()` flags exactly what such a run would join to stored rows, and the index survives
corruption, other parameters and writers killed mid-commit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lakevec
from lakevec import exceptions as E

deltalake = pytest.importorskip("deltalake")
KW = dict(threshold=0.8, ngram=3)


@pytest.fixture(scope="module")
def debian(shared_data):
    t = pq.read_table(shared_data / "text" / "debian_descriptions.parquet", columns=["package", "description"])
    # 12,000 rows: the first ones and a random sample (the corpus's copies are spread out)
    idx = np.sort(np.random.default_rng(7).choice(t.num_rows, 12_000, replace=False))
    return t.take(idx).append_column("id", pa.array(np.arange(12_000, dtype=np.int64)))


def partition(tab: pa.Table, key: str = "id") -> list[list]:
    """Clusters as sorted lists of row keys, sorted: equal partitions compare equal whatever
    the cluster ids."""
    groups: dict = {}
    for k, c in zip(tab.column(key).to_pylist(), tab.column("cluster_id").to_pylist()):
        groups.setdefault(c, []).append(k)
    return sorted(sorted(g) for g in groups.values())


def with_ids(uri: str, clusters: pa.Table) -> pa.Table:
    """The index's cluster table with each row's `id` (read back by address)."""
    t = lakevec.Table.open(uri).to_arrow(columns=["id"], with_row_address=True)
    ids = {(f, r): i for f, r, i in zip(*(t.column(c).to_pylist() for c in ("_file", "_row", "id")))}
    keys = zip(clusters.column("_file").to_pylist(), clusters.column("_row").to_pylist())
    return clusters.append_column("id", pa.array([ids[k] for k in keys], pa.int64()))


def run_partition(t: pa.Table, **kw) -> list[list]:
    """The clusters of one `dedup.minhash` run over `t` (with `id`, `description`), by id."""
    res = lakevec.dedup.minhash(t, "description", **kw)
    return partition(res.append_column("id", t.column("id").take(res.column("row"))))


def single_run(uri: str, **kw) -> list[list]:
    return run_partition(lakevec.Table.open(uri).to_arrow(columns=["id", "description"]), **kw)


@pytest.mark.parametrize(("seed", "sketch"), [(0, "oph"), (1, "classic"), (2, "oph")])
def test_refreshes_equal_one_run_over_the_final_version(tmp_path, debian, seed, sketch):
    rng = np.random.default_rng(seed)
    parts = int(rng.integers(2, 6))
    cuts = np.sort(rng.choice(np.arange(1000, debian.num_rows - 1000), parts - 1, replace=False))
    bounds = [0, *cuts.tolist(), debian.num_rows]
    uri = str(tmp_path / "deb")
    kw = dict(KW, sketch=sketch)
    deltalake.write_deltalake(uri, debian.slice(0, bounds[1]))
    seen = []
    idx = lakevec.dedup.build_index(uri, "description", progress=lambda *a: seen.append(a), **kw)
    assert partition(with_ids(uri, idx.clusters())) == single_run(uri, **kw)
    # the progress callback (called every 100 ms while the build runs: a fast build may end
    # before the first call) sees the phases in order and the rows signed out of those read
    phases = [p for p, _, _ in seen]
    assert set(phases) <= {"read", "build", "write"} and phases == sorted(phases, key=["read", "build", "write"].index)
    assert all(done <= total for p, done, total in seen if p == "read" and total)
    delete_at = int(rng.integers(1, parts))
    for p in range(1, parts):
        deltalake.write_deltalake(uri, debian.slice(bounds[p], bounds[p + 1] - bounds[p]), mode="append")
        if p == delete_at:
            lo = int(rng.integers(0, bounds[p]))
            deltalake.DeltaTable(uri).delete(f"id >= {lo} AND id < {lo + 700}")
        new = idx.refresh()
        assert new.column_names == [
            "_file",
            "_row",
            "cluster_id",
            "is_representative",
            "matched_file",
            "matched_row",
            "jaccard_estimate",
        ]
        assert new.num_rows > 0
        got = partition(with_ids(uri, idx.clusters()))
        assert got == single_run(uri, **kw), f"version {p}"
    # reopened from disk: the same clusters, and nothing to do
    again = lakevec.dedup.open_index(lakevec.Table.open(uri))
    assert again.clusters().equals(idx.clusters())
    assert again.refresh().num_rows == 0 and again.version == idx.version


def test_check_flags_exactly_what_a_single_run_joins_to_stored_rows(tmp_path, debian):
    uri = str(tmp_path / "deb")
    stored, held = debian.slice(0, 9000), debian.slice(9000)
    deltalake.write_deltalake(uri, stored)
    idx = lakevec.dedup.build_index(uri, "description", **KW)
    version = idx.version
    chk = idx.check(held.to_pandas(), "description")
    assert chk.num_rows == held.num_rows and chk.column("row").to_pylist() == list(range(held.num_rows))
    # the truth: one run over stored + held rows; a held row is a duplicate of an existing row
    # when its cluster holds a stored row
    both = lakevec.dedup.minhash(pa.concat_tables([stored, held]), "description", **KW)
    cid = both.column("cluster_id").to_numpy()
    stored_clusters = set(cid[: stored.num_rows].tolist())
    want = [c in stored_clusters for c in cid[stored.num_rows :].tolist()]
    got = chk.column("duplicate_of_existing").to_pylist()
    assert got == want
    assert sum(got) > 20
    # rows sharing a new cluster share a negative id; stored ids are index cluster ids
    clusters = idx.clusters().column("cluster_id").to_pylist()
    for d, c in zip(got, chk.column("cluster_id").to_pylist()):
        assert (c in clusters) if d else c < 0
    matched = chk.filter(chk.column("matched_row").is_valid())
    assert all(j >= 0.8 - 1e-6 for j in matched.column("jaccard_estimate").to_pylist())
    assert idx.version == version and lakevec.dedup.open_index(uri + "/_lakevec_index/dedup-default").version == version
    # pickles as a handle that reopens the index (for Ray/Spark workers)
    import pickle

    blob = pickle.dumps(idx)
    assert len(blob) < 500 and pickle.loads(blob).check(held.slice(0, 50), "description").equals(chk.slice(0, 50))


def test_overwrite_and_iceberg_append_delete(tmp_path, debian, lake_table):
    uri = str(tmp_path / "deb")
    deltalake.write_deltalake(uri, debian.slice(0, 4000))
    idx = lakevec.dedup.build_index(uri, "description", **KW)
    deltalake.write_deltalake(uri, debian.slice(4000, 3000), mode="overwrite")
    new = idx.refresh()
    assert new.num_rows == 3000 and idx.manifest["live_rows"] == 3000
    assert partition(with_ids(uri, idx.clusters())) == single_run(uri, **KW)

    lake_table(debian.slice(0, 5000), "iceberg", name="deb")
    cat = lake_table.iceberg_catalog
    it = cat.load_table("db.deb")
    table = lakevec.Table.open(it.metadata_location)
    ix = lakevec.dedup.build_index(table, "description", **KW)
    it.append(debian.slice(5000, 3000))
    it = cat.load_table("db.deb")
    it.delete("id < 1500")
    latest = lakevec.Table.open(cat.load_table("db.deb").metadata_location)
    ix.refresh(latest)
    assert ix.table_version == latest.version
    want = run_partition(latest.to_arrow(columns=["id", "description"]), **KW)
    rows = latest.to_arrow(columns=["id"], with_row_address=True)
    ids = {(f, r): i for f, r, i in zip(*(rows.column(c).to_pylist() for c in ("_file", "_row", "id")))}
    cl = ix.clusters()
    keyed = cl.append_column(
        "id", pa.array([ids[k] for k in zip(cl.column("_file").to_pylist(), cl.column("_row").to_pylist())])
    )
    assert partition(keyed) == want


def test_corrupt_sidecar_and_other_parameters_are_refused(tmp_path, debian):
    uri = str(tmp_path / "deb")
    deltalake.write_deltalake(uri, debian.slice(0, 2000))
    idx = lakevec.dedup.build_index(uri, "description", **KW)
    with pytest.raises(E.InvalidArgumentError, match="cannot be refreshed with these parameters.*ngram: 3.*ngram: 5"):
        lakevec.dedup.build_index(uri, "description", threshold=0.8, ngram=5)
    with pytest.raises(E.InvalidArgumentError, match="indexes column 'description', not 'package'"):
        lakevec.dedup.build_index(uri, "package", **KW)
    with pytest.raises(E.InvalidArgumentError, match="2000 rows holds about .* more than memory_limit=16 MiB"):
        lakevec.dedup.build_index(uri, "description", name="other", num_perm=4096, threshold=0.8, memory_limit="16MiB")
    # the same parameters: a refresh (nothing new)
    assert lakevec.dedup.build_index(uri, "description", **KW).version == idx.version
    seg = next((Path(uri) / "_lakevec_index" / "dedup-default" / "segments").iterdir())
    data = bytearray(seg.read_bytes())
    data[len(data) // 2] ^= 0x01
    seg.write_bytes(bytes(data))
    with pytest.raises(E.CorruptIndexError, match="segments/"):
        lakevec.dedup.open_index(idx.uri)
    with pytest.raises(E.TableNotFoundError, match="no lakevec dedup index"):
        lakevec.dedup.open_index(str(tmp_path / "nothing"))


WRITER = """
import sys, lakevec, deltalake, pyarrow.parquet as pq
uri, op = sys.argv[1], sys.argv[2]
if op == "build":
    lakevec.dedup.build_index(uri, "description", threshold=0.8, ngram=3)
else:
    lakevec.dedup.open_index(lakevec.Table.open(uri)).refresh()
print("done", flush=True)
"""


@pytest.mark.parametrize("op", ["build", "refresh"])
def test_sigkill_mid_write_leaves_a_readable_version(tmp_path, debian, op):
    """Writers killed at several moments: the index opens at a whole version (or is absent,
    for a first build), its clusters equal a single run over the table version it covers, and
    the next refresh completes."""
    uri = str(tmp_path / "deb")
    deltalake.write_deltalake(uri, debian.slice(0, 6000))
    if op == "refresh":
        lakevec.dedup.build_index(uri, "description", **KW)
        deltalake.write_deltalake(uri, debian.slice(6000), mode="append")
    script = tmp_path / "w.py"
    script.write_text(WRITER)
    killed = 0
    # the writer imports lakevec in ~0.15 s and writes in ~0.25 s more on the test machine
    for delay in (0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5):
        proc = subprocess.Popen([sys.executable, str(script), uri, op], stdout=subprocess.PIPE, env=os.environ.copy())
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        killed += b"done" not in out
        try:
            idx = lakevec.dedup.open_index(lakevec.Table.open(uri))
        except E.TableNotFoundError:
            assert op == "build"
            continue
        at = lakevec.Table.open(uri, version=idx.table_version)
        want = run_partition(at.to_arrow(columns=["id", "description"]), **KW)
        rows = at.to_arrow(columns=["id"], with_row_address=True)
        ids = {(f, r): i for f, r, i in zip(*(rows.column(c).to_pylist() for c in ("_file", "_row", "id")))}
        cl = idx.clusters()
        keys = zip(cl.column("_file").to_pylist(), cl.column("_row").to_pylist())
        assert partition(cl.append_column("id", pa.array([ids[k] for k in keys]))) == want, delay
    assert killed >= 1, "no writer was killed before it finished"
    idx = lakevec.dedup.build_index(uri, "description", **KW)
    assert idx.table_version == lakevec.Table.open(uri).version
    assert partition(with_ids(uri, idx.clusters())) == single_run(uri, **KW)
    # vacuum(retain=0) removes the killed writers' files and superseded versions, and the
    # newest version still opens and answers the same
    folder = Path(uri) / "_lakevec_index" / "dedup-default"
    listed = idx.vacuum(retain=0, dry_run=True)
    assert set(listed.column("kind").to_pylist()) <= {"manifest", "segment", "clusters"}
    assert not any(listed.column("deleted").to_pylist())
    gone = idx.vacuum(retain=0)
    assert gone.num_rows == listed.num_rows and all(gone.column("deleted").to_pylist())
    left = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    m = idx.manifest
    assert left == {f"manifests/{m['version']:020d}.json", m["clusters"]["path"]} | {
        s["file"]["path"] for s in m["segments"]
    }
    again = lakevec.dedup.open_index(idx.uri)
    assert again.clusters().equals(idx.clusters())


def test_exact_method_follows_the_table_like_dedup_exact(tmp_path, debian):
    """method="exact": the clusters of `dedup.exact` (normalised equality; nulls equal),
    after a build and a refresh with an append and a delete."""
    uri = str(tmp_path / "deb")
    rows = debian.slice(0, 6000)
    texts = rows.column("description").to_pylist()
    texts[10] = texts[20] = None  # nulls are one cluster, as in dedup.exact
    texts[30] = "  " + texts[40].upper() + " "  # equal to row 40 after normalisation
    rows = rows.set_column(rows.column_names.index("description"), "description", pa.array(texts))
    deltalake.write_deltalake(uri, rows.slice(0, 4000))
    idx = lakevec.dedup.build_index(uri, "description", method="exact", normalize=True)
    deltalake.write_deltalake(uri, rows.slice(4000), mode="append")
    deltalake.DeltaTable(uri).delete("id >= 100 AND id < 300")
    new = idx.refresh()
    assert new.num_rows > 0 and idx.manifest["params"]["method"] == "exact"
    final = lakevec.Table.open(uri).to_arrow(columns=["id", "description"])
    res = lakevec.dedup.exact(final, "description", normalize=True)
    want = partition(res.append_column("id", final.column("id").take(res.column("row"))))
    got = partition(with_ids(uri, idx.clusters()))
    assert got == want
    assert any(10 in g and 20 in g for g in got) and any(30 in g and 40 in g for g in got)
    held = pa.table({"description": [texts[40].lower(), "a text nobody wrote before, surely", None]})
    assert idx.check(held, "description").column("duplicate_of_existing").to_pylist() == [True, False, True]
    with pytest.raises(E.InvalidArgumentError, match="method must be 'minhash', 'exact' or 'semantic'"):
        lakevec.dedup.build_index(uri, "description", method="fuzzy", name="x")
