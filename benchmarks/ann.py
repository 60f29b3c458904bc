"""ANN search: lakevec vs hnswlib vs faiss (IndexHNSWFlat, IndexHNSWSQ), same HNSW parameters,
real data.

Two sets from ../shared/data/ann: MiniLM sentence embeddings (12,052 x 384, cosine) and MNIST
(9,000 x 784, L2), each with 1,000 held-out queries and exact top-100 ground truth. For each:

* the base is written as a Delta table in a temp folder and lakevec indexes it from the lake
  (key="id"); hnswlib and faiss get the same vectors in memory; all three build with
  M=16, ef_construction=200 on all threads: build time (s);
* for ef in 10, 16, 24, 32, 48, 64, 128: recall@10 against the ground truth's first 10 ids,
  QPS with one query thread (one batch call of all queries) and QPS of the same batch on all
  threads; best of --repeat runs. lakevec searches with stale="ignore" (the index as built,
  no table access);
* the same for lakevec's ``index_type="hnsw_sq8"`` (with its default re-ranking from the
  sidecar's floats, without re-ranking: ``rerank=0``, and stored without floats, re-ranked
  from the lake: ``rerank_source="lake"``) and faiss ``IndexHNSWSQ`` (QT_8bit, codes only);
* lakevec's ``index_type="hnsw_rabitq"`` at 1, 4 and 8 bits (re-ranked where the error
  bound requires, and without re-ranking); faiss has no HNSW over RaBitQ codes to compare
  with (its RaBitQ indexes are flat or IVF), so these rows are compared with hnswlib;
* each lakevec sidecar's size vs the raw vector bytes (rows * dim * 4); exact=True recall;
* "lakevec QPS at recall>=0.95 / hnswlib QPS at recall>=0.95" (and hnsw_sq8 against hnswlib
  and faiss HNSWSQ), each at the lowest ef of the sweep reaching recall@10 >= 0.95, 1-thread
  QPS;
* single-query latency at that ef: ``idx.search(one_vector)`` (stale="ignore"; and the
  default stale="exact" on an index opened with consistency_interval=60 and 0) against
  hnswlib's ``knn_query`` of one vector, and the same query's share of a batch call (the
  one-vector calls take turns in rounds, after every build, so all are timed in the same
  minutes).

hnswlib and faiss are optional (pip install hnswlib faiss-cpu); a missing one is skipped with
a note.

    python benchmarks/ann.py [--repeat 3] [--data ../shared/data/ann]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from _common import best_of

import lakevec

ROOT = Path(__file__).resolve().parent.parent
EFS = [10, 16, 24, 32, 48, 64, 128]
K, M, EFC = 10, 16, 200
SETS = [("minilm", "cosine"), ("mnist", "l2")]

try:
    import hnswlib
except ImportError:  # pragma: no cover - optional
    hnswlib = None
    print("note: hnswlib not installed (pip install hnswlib): skipped")
try:
    import faiss
except ImportError:  # pragma: no cover - optional
    faiss = None
    print("note: faiss not installed (pip install faiss-cpu): skipped")


def load(data: Path, name: str):
    base = pq.read_table(data / f"{name}_base.parquet")
    query = pq.read_table(data / f"{name}_query.parquet")
    gt = pq.read_table(data / f"{name}_groundtruth.parquet")

    def mat(t):
        v = t.column("vector").combine_chunks()
        return v.values.to_numpy().reshape(len(v), v.type.list_size).astype(np.float32)

    qids = query.column("id").to_numpy()
    truth = dict(zip(gt.column("query_id").to_pylist(), gt.column("neighbors").to_pylist()))
    gt10 = np.array([truth[int(q)][:K] for q in qids], dtype=np.int64)
    return base, mat(base), base.column("id").to_numpy(), mat(query), gt10


def recall(found: np.ndarray, gt10: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(g)) / K for f, g in zip(found.tolist(), gt10.tolist())]))


def lakevec_ids(res, nq: int) -> np.ndarray:
    ids = np.full((nq, K), -1, dtype=np.int64)
    ids[res.column("query").to_numpy(), res.column("rank").to_numpy() - 1] = res.column("id").to_numpy()
    return ids


class Lakevec:
    name = "lakevec"

    def __init__(self, table_uri, metric, *_):
        self.idx = lakevec.build_index(
            table_uri, "vector", metric=metric, key="id", m=M, ef_construction=EFC, num_threads=None, progress=False
        )

    def search(self, q, ef, threads):
        res = self.idx.search(q, k=K, ef=ef, stale="ignore", num_threads=threads)
        return lakevec_ids(res, len(q))


class LakevecSq8:
    """lakevec's hnsw_sq8 kind (graph walked on 8-bit codes, the best ef candidates re-ranked
    with the float vectors); its variant searches the same index without re-ranking."""

    name = "lakevec hnsw_sq8"
    rerank_source = "sidecar"

    def kind(self) -> dict:
        """The build_index arguments of this kind (the index is named after them)."""
        return dict(name=f"sq8_{self.rerank_source}", index_type="hnsw_sq8", rerank_source=self.rerank_source)

    def __init__(self, table_uri, metric, *_):
        self.idx = lakevec.build_index(
            table_uri,
            "vector",
            metric=metric,
            key="id",
            m=M,
            ef_construction=EFC,
            num_threads=None,
            progress=False,
            **self.kind(),
        )
        self.rerank = None

    def search(self, q, ef, threads):
        res = self.idx.search(q, k=K, ef=ef, stale="ignore", num_threads=threads, rerank=self.rerank)
        return lakevec_ids(res, len(q))

    def variants(self):
        plain = LakevecSq8.__new__(LakevecSq8)
        plain.idx, plain.rerank = self.idx, 0
        return [("lakevec hnsw_sq8, no re-ranking", plain)]


class LakevecSq8Lake(LakevecSq8):
    """hnsw_sq8 stored without floats (graph + codes): each search call reads its candidates'
    vectors back from the Delta table by row address to re-rank them."""

    name = "lakevec hnsw_sq8, re-ranked from the lake"
    rerank_source = "lake"

    def variants(self):
        return []


class LakevecRabitq(LakevecSq8):
    """lakevec's hnsw_rabitq kind at ``bits`` (re-ranked where the error bound requires it, from
    the sidecar's floats); its variant searches without re-ranking."""

    bits = 1

    def kind(self) -> dict:
        return dict(name=f"rabitq{self.bits}", index_type="hnsw_rabitq", bits=self.bits)

    def variants(self):
        plain = type(self).__new__(type(self))
        plain.idx, plain.rerank = self.idx, 0
        return [(f"{self.name}, no re-ranking", plain)]


class LakevecRabitq1(LakevecRabitq):
    name, bits = "lakevec hnsw_rabitq 1-bit", 1


class LakevecRabitq4(LakevecRabitq):
    name, bits = "lakevec hnsw_rabitq 4-bit", 4


class LakevecRabitq8(LakevecRabitq):
    name, bits = "lakevec hnsw_rabitq 8-bit", 8


class Hnswlib:
    name = "hnswlib"

    def __init__(self, _uri, metric, X, ids):
        self.p = hnswlib.Index(space=metric, dim=X.shape[1])
        self.p.init_index(max_elements=len(X), M=M, ef_construction=EFC)
        self.p.set_num_threads(os.cpu_count() or 1)
        self.p.add_items(X, ids)

    def search(self, q, ef, threads):
        self.p.set_ef(max(ef, K))
        self.p.set_num_threads(threads or os.cpu_count() or 1)
        labels, _ = self.p.knn_query(q, k=K)
        return labels.astype(np.int64)


class Faiss:
    name = "faiss"

    def __init__(self, _uri, metric, X, ids):
        self.cos = metric == "cosine"
        X = self._prep(X)
        mt = faiss.METRIC_INNER_PRODUCT if self.cos else faiss.METRIC_L2
        self.ix = faiss.IndexHNSWFlat(X.shape[1], M, mt)
        self.ix.hnsw.efConstruction = EFC
        self.ix.add(X)
        self.ids = ids

    def _prep(self, X):
        X = np.ascontiguousarray(X, dtype=np.float32)
        return X / np.linalg.norm(X, axis=1, keepdims=True) if self.cos else X

    def search(self, q, ef, threads):
        faiss.omp_set_num_threads(threads or FAISS_THREADS)
        self.ix.hnsw.efSearch = ef
        _, labels = self.ix.search(self._prep(q), K)
        return self.ids[labels]


class FaissSq8(Faiss):
    """faiss ``IndexHNSWSQ`` with 8-bit scalar codes (``QT_8bit``), searched on codes only."""

    name = "faiss HNSWSQ"

    def __init__(self, _uri, metric, X, ids):
        self.cos = metric == "cosine"
        X = self._prep(X)
        mt = faiss.METRIC_INNER_PRODUCT if self.cos else faiss.METRIC_L2
        self.ix = faiss.IndexHNSWSQ(X.shape[1], faiss.ScalarQuantizer.QT_8bit, M, mt)
        self.ix.hnsw.efConstruction = EFC
        self.ix.train(X)
        self.ix.add(X)
        self.ids = ids


FAISS_THREADS = faiss.omp_get_max_threads() if faiss else 1


def single_us(call, Q) -> float:
    """Median microseconds of ``call(q)`` over the queries, one vector per call (after 50
    warm-up calls)."""
    for v in Q[:50]:
        call(v)
    times = []
    for v in Q:
        t0 = time.perf_counter()
        call(v)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e6)


SINGLE_ROUNDS = 7


def single_rounds(calls: dict, Q) -> dict:
    """{call name: (ef, us)}: the median over ``SINGLE_ROUNDS`` rounds of each call's
    :func:`single_us`, the calls taking turns within each round (the starting call rotates),
    so every library is timed in the same minutes: this VM's speed drifts by tens of percent
    over minutes, which skewed ratios of calls timed at different moments."""
    names = list(calls)
    rounds: dict = {n: [] for n in names}
    for r in range(SINGLE_ROUNDS):
        for n in names[r % len(names) :] + names[: r % len(names)]:
            rounds[n].append(single_us(calls[n][1], Q))
    return {n: (calls[n][0], float(np.median(rounds[n]))) for n in names}


def single_calls(lib, ef: int, uri: str) -> dict:
    """{call name: (ef, one-vector call)} of ``lib`` at ``ef`` (timed by :func:`single_rounds`)."""
    if isinstance(lib, Lakevec):
        reopened = lakevec.open_index(lakevec.Table.open(uri), consistency_interval=60)
        strict = lakevec.open_index(lakevec.Table.open(uri))
        return {
            "lakevec": (ef, lambda v: lib.idx.search(v, k=K, ef=ef, stale="ignore", num_threads=1)),
            "lakevec (stale='exact', consistency_interval=60)": (
                ef,
                lambda v: reopened.search(v, k=K, ef=ef, num_threads=1),
            ),
            "lakevec (stale='exact', consistency_interval=0)": (
                ef,
                lambda v: strict.search(v, k=K, ef=ef, num_threads=1),
            ),
        }
    if isinstance(lib, Hnswlib):
        lib.p.set_ef(ef)
        lib.p.set_num_threads(1)
        return {"hnswlib": (ef, lambda v: lib.p.knn_query(v, k=K))}
    return {}


def run_set(data: Path, name: str, metric: str, repeat: int, only: set[str] | None = None) -> None:
    base, X, ids, Q, gt10 = load(data, name)
    print(
        f"\n## {name}: {len(X):,} x {X.shape[1]} base, {len(Q):,} queries, metric {metric}, "
        f"M={M}, ef_construction={EFC}, {os.cpu_count()} cores, load avg {os.getloadavg()[0]:.2f}\n"
    )
    libs = (
        [Lakevec, LakevecSq8, LakevecSq8Lake, LakevecRabitq1, LakevecRabitq4, LakevecRabitq8]
        + ([Hnswlib] if hnswlib else [])
        + ([Faiss, FaissSq8] if faiss else [])
    )
    if only:
        libs = [c for c in libs if c.name in only]
    rows, one_thread, single, batch_share = [], {}, {}, {}
    with tempfile.TemporaryDirectory(prefix=f"ann_{name}_") as tmp:
        from deltalake import write_deltalake

        uri = os.path.join(tmp, name)
        write_deltalake(uri, base)
        for cls in libs:
            try:
                t0 = time.perf_counter()
                lib = cls(uri, metric, X, ids)
                print(f"build {cls.name:8s} {time.perf_counter() - t0:7.2f} s")
            except Exception as e:  # report and go on with the others
                print(f"build {cls.name}: FAILED: {type(e).__name__}: {e}")
                continue
            if issubclass(cls, (Lakevec, LakevecSq8)):
                st = lib.idx.stats()
                raw = len(X) * X.shape[1] * 4
                print(
                    f"{cls.name} sidecar {st['sidecar_bytes']:,} bytes vs vector column "
                    f"{raw:,} bytes (rows*dim*4) = {st['sidecar_bytes'] / raw:.2f}x; "
                    f"stats vector_bytes {st['vector_bytes']:,}; recall_estimate "
                    f"{st['recall_estimate']}"
                )
            if cls is Lakevec:
                res, secs = best_of(repeat, lambda lib=lib: lib.idx.search(Q, k=K, exact=True, stale="ignore"))
                rows.append((cls.name, "exact", recall(lakevec_ids(res, len(Q)), gt10), None, len(Q) / secs))
            for vname, v in [(cls.name, lib)] + (lib.variants() if hasattr(lib, "variants") else []):
                for ef in EFS:
                    found, s1 = best_of(repeat, lambda v=v, ef=ef: v.search(Q, ef, 1))
                    r = recall(found, gt10)
                    _, sn = best_of(repeat, lambda v=v, ef=ef: v.search(Q, ef, None))
                    rows.append((vname, ef, r, len(Q) / s1, len(Q) / sn))
                    one_thread.setdefault(vname, []).append((ef, r, len(Q) / s1))
            ef95 = next((ef for ef, r, _ in one_thread.get(cls.name, []) if r >= 0.95), EFS[-1])
            single.update(single_calls(lib, ef95, uri))
            if cls is Lakevec:
                batch_share[cls.name] = 1e6 / dict((e, q) for e, _, q in one_thread[cls.name])[ef95]
            del lib
        single = single_rounds(single, Q)  # (inside the folder: the strict call reads the table)
    print(f"(1-min load average after the runs: {os.getloadavg()[0]:.2f}; other processes skew QPS)")
    print("\n| library | ef | recall@10 | QPS 1 thread | QPS batch |")
    print("|---|---:|---:|---:|---:|")
    for lib, ef, r, q1, qn in rows:
        q1s = "-" if q1 is None else f"{q1:,.0f}"
        print(f"| {lib} | {ef} | {r:.4f} | {q1s} | {qn:,.0f} |")

    def at95(lib):
        return next(((ef, q) for ef, r, q in one_thread.get(lib, []) if r >= 0.95), None)

    print("\nSingle-query latency (one vector per call, 1 thread, at each library's ef reaching recall@10 >= 0.95;")
    print(f"median over {SINGLE_ROUNDS} rounds, the calls taking turns, of each call's median over 1,000 queries):\n")
    print("| call | ef | median us | vs hnswlib |")
    print("|---|---:|---:|---:|")
    h = single.get("hnswlib", (None, None))[1]
    for lib, (ef, us) in single.items():
        print(f"| {lib} | {ef} | {us:.0f} | {us / h:.2f}x |" if h else f"| {lib} | {ef} | {us:.0f} | - |")
    if "lakevec" in batch_share:
        print(
            f"| lakevec: the same query's share of a 1-thread batch call | {single['lakevec'][0]} | "
            f"{batch_share['lakevec']:.0f} | single - share = {single['lakevec'][1] - batch_share['lakevec']:.0f} us |"
        )

    for mine, peer in [
        ("lakevec", "hnswlib"),
        ("lakevec hnsw_sq8", "hnswlib"),
        ("lakevec hnsw_sq8", "faiss HNSWSQ"),
        ("lakevec hnsw_rabitq 1-bit", "hnswlib"),
        ("lakevec hnsw_rabitq 4-bit", "hnswlib"),
        ("lakevec hnsw_rabitq 8-bit", "hnswlib"),
    ]:
        a, b = at95(mine), at95(peer)
        if a and b:
            print(
                f"{name}: {mine} QPS at recall>=0.95 / {peer} QPS at recall>=0.95 = "
                f"{a[1]:,.0f} (ef={a[0]}) / {b[1]:,.0f} (ef={b[0]}) = {a[1] / b[1]:.2f}"
            )
        else:
            print(f"{name}: {mine}/{peer} ratio at recall>=0.95 not available ({mine}: {a}, {peer}: {b})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "ann")
    ap.add_argument("--sets", nargs="+", help="only these sets (default: all)")
    ap.add_argument("--libs", nargs="+", help='only these libraries, by table name ("lakevec", "hnswlib", ...)')
    args = ap.parse_args()
    from importlib.metadata import version

    print(
        f"lakevec {lakevec.__version__}, hnswlib {version('hnswlib') if hnswlib else '-'}, "
        f"faiss {faiss.__version__ if faiss else '-'}, default threads: lakevec "
        f"{lakevec.default_num_threads()}, faiss {FAISS_THREADS}"
    )
    for name, metric in SETS:
        if not args.sets or name in args.sets:
            run_set(args.data, name, metric, args.repeat, set(args.libs or ()))


if __name__ == "__main__":
    main()
