"""Writes the notebooks in this folder from the cell sources below (run it after editing).

    python notebooks/make_notebooks.py --execute          # write all four, execute, store outputs
    python notebooks/make_notebooks.py --execute 01 03    # only these (by number or name)
    python notebooks/make_notebooks.py                    # write the sources only, no outputs

The notebooks are committed executed, with their outputs (text and PNG plots, kept small: modest
figure sizes at 80 dpi, tables cut with ``.head()``; stderr, where Ray and Spark log, is not
stored), so that they read on GitHub and on the documentation site (mkdocs-jupyter renders the
stored outputs, it does not execute them). ``--execute`` runs each one in place with nbclient
(kernel ``python3``, working directory ``notebooks/``, as a reader's Jupyter would) and writes it
back with its outputs; it needs lakevec installed and ``../shared/data`` beside the repository,
and notebook 04 starts Ray and Spark (Java 17), ~100 s. Writing without ``--execute`` leaves the
notebooks without outputs.

tests/test_notebooks.py executes every notebook again, in memory (the committed outputs do not
change), fails on any error, and checks that the committed notebooks are the ones this script
writes, executed.
"""

import argparse
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent
KERNEL = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}

# The first code cell of each notebook: its imports (with `os` and `Path`), then this.
FIND_SHARED = '''# ../shared/data beside the repository (override with LAKEVEC_SHARED).
SHARED = Path(os.environ.get("LAKEVEC_SHARED", Path.cwd().resolve().parent.parent / "shared"))
DATA = SHARED / "data"
assert DATA.is_dir(), f"shared data not found at {DATA}"'''

nb01 = new_notebook(
    cells=[
        new_markdown_cell(
            "# Reading lake tables into Arrow with lakevec\n\n"
            "Real data from `../shared/data`: every Debian 12 package description (63,905 rows of "
            "text) and 12,052 MiniLM sentence embeddings (384-d vectors). lakevec reads Parquet "
            "files, folders and globs, locally or from object stores, straight into Arrow."
        ),
        new_code_cell(
            "import os\nfrom pathlib import Path\n\nimport lakevec\n\n" + FIND_SHARED + "\nprint(lakevec.__version__)"
        ),
        new_markdown_cell("## Open a table: schema, rows and files come from the footers"),
        new_code_cell(
            'debian = lakevec.Table.open(str(DATA / "text" / "debian_descriptions.parquet"))\n'
            "print(debian)\n"
            "print(debian.schema)\n"
            "debian.files().to_pandas()"
        ),
        new_markdown_cell(
            "## A filtered read\n\n`filter` is a SQL expression: it prunes row groups by "
            "statistics and is evaluated in Rust; `columns` prunes the read."
        ),
        new_code_cell(
            'games = debian.to_arrow(columns=["package", "description"], filter="section = \'games\' AND '
            'length(description) > 400")\n'
            'print(games.num_rows, "long game descriptions")\n'
            "games.slice(0, 5).to_pandas()"
        ),
        new_markdown_cell("## SQL over the lake: rows per section"),
        new_code_cell(
            "per_section = lakevec.sql(\n"
            '    "SELECT section, count(*) AS packages FROM debian "\n'
            '    "WHERE section IS NOT NULL GROUP BY section ORDER BY packages DESC",\n'
            '    tables={"debian": debian},\n'
            ").to_pandas()\n"
            "per_section.head(10)"
        ),
        new_code_cell(
            "import matplotlib.pyplot as plt\n"
            "\n"
            "%matplotlib inline\n"
            'plt.rcParams["figure.dpi"] = 80  # small PNGs in the stored notebook\n'
            "top = per_section.head(15)\n"
            "fig, ax = plt.subplots(figsize=(7, 4))\n"
            "ax.barh(top.section[::-1], top.packages[::-1])\n"
            'ax.set_xlabel("packages (count)")\n'
            'ax.set_ylabel("Debian section")\n'
            'ax.set_title("Debian 12 packages per section (top 15)")\n'
            "plt.tight_layout()\n"
            "plt.show()"
        ),
        new_markdown_cell(
            "## Vectors: a FixedSizeList column, streamed in batches\n\n"
            "`scan()` returns a `pyarrow.RecordBatchReader` with bounded memory; here we "
            "compare every MiniLM embedding with the first one without holding the table."
        ),
        new_code_cell(
            "import numpy as np\n"
            "\n"
            'minilm = lakevec.Table.open(str(DATA / "ann" / "minilm_base.parquet"))\n'
            "print(minilm.schema)\n"
            "query = None\n"
            "sims = []\n"
            'for batch in minilm.scan(columns=["vector"], batch_size=4096):\n'
            "    v = batch.column(0)\n"
            "    m = v.values.to_numpy(zero_copy_only=False).reshape(-1, v.type.list_size)\n"
            "    if query is None:\n"
            "        query = m[0]\n"
            "    sims.append(m @ query)  # unit vectors: dot product = cosine similarity\n"
            "sims = np.concatenate(sims).astype(np.float64)\n"
            'print(f"{len(sims):,} vectors; cosine to the first: median {np.median(sims):.3f}, {(sims > '
            '0.8).sum()} above 0.8")'
        ),
        new_code_cell(
            "fig, ax = plt.subplots(figsize=(6, 3))\n"
            "ax.hist(sims, bins=60)\n"
            'ax.set_xlabel("cosine similarity to the first sentence (unitless, -1 to 1)")\n'
            'ax.set_ylabel("sentences (count)")\n'
            'ax.set_title("MiniLM embeddings streamed with Table.scan()")\n'
            "plt.tight_layout()\n"
            "plt.show()"
        ),
        new_markdown_cell("## Zero-copy hand-off to polars and duckdb"),
        new_code_cell(
            "import duckdb\n"
            "import polars as pl\n"
            "\n"
            "pdf = pl.from_arrow(games)\n"
            "print(pdf.head(3))\n"
            "arrow_result = games\n"
            'duckdb.sql("SELECT count(*) AS n, avg(length(description)) AS mean_len FROM arrow_result").df()'
        ),
        new_markdown_cell(
            "## Delta Lake tables\n\n"
            "A folder with `_delta_log/` is read as a Delta table through delta-rs: the log "
            "decides which files are live, deletion vectors are applied, and any version can be "
            "pinned. Here, the real NYT COVID-19 table (1,111,930 rows in 8 files)."
        ),
        new_code_cell(
            'covid = lakevec.Table.open(str(DATA / "tables" / "delta" / "COVID-19_NYT"))\n'
            "print(covid)\n"
            'covid.files().to_pandas()[["path", "size", "num_records", "num_deleted"]]'
        ),
        new_code_cell(
            "daily = lakevec.sql(\n"
            '    "SELECT date, sum(cases) AS cases, sum(deaths) AS deaths FROM covid "\n'
            "    \"WHERE state IN ('New York', 'California', 'Texas') GROUP BY date ORDER BY date\",\n"
            '    tables={"covid": covid},\n'
            ").to_pandas()\n"
            'daily["date"] = daily["date"].astype("datetime64[ns]")  # the table stores dates as strings\n'
            "fig, ax = plt.subplots(figsize=(8, 3))\n"
            'ax.plot(daily["date"], daily["cases"] / 1e6, label="cases")\n'
            'ax.plot(daily["date"], daily["deaths"] * 50 / 1e6, label="deaths x 50")\n'
            'ax.set_title("Cumulative COVID-19 counts, NY + CA + TX (Delta table, via lakevec.sql)")\n'
            'ax.set_xlabel("date")\n'
            'ax.set_ylabel("cumulative count (millions of people)")\n'
            "ax.legend()\n"
            "plt.tight_layout()\n"
            "plt.show()"
        ),
        new_markdown_cell(
            "### Time travel: pin an old version\n\n"
            "`simple_table` has 5 versions; every version reads as it was committed."
        ),
        new_code_cell(
            'simple = str(DATA / "tables" / "delta" / "simple_table")\n'
            "latest = lakevec.Table.open(simple)\n"
            'print(latest.history().to_pandas()[["version", "operation"]])\n'
            "sizes = {v: lakevec.Table.open(simple, version=v).num_rows for v in range(latest.version + 1)}\n"
            'print("rows per version:", sizes)\n'
            'print("ids at version 0:", sorted(lakevec.read_table(simple, version=0)["id"].to_pylist()))\n'
            'print("ids now:        ", sorted(latest.to_arrow()["id"].to_pylist()))'
        ),
        new_code_cell(
            "fig, ax = plt.subplots(figsize=(5, 2.5))\n"
            "ax.bar(list(sizes), list(sizes.values()))\n"
            "ax.set_xticks(list(sizes))\n"
            'ax.set_xlabel("Delta table version")\n'
            'ax.set_ylabel("live rows (count)")\n'
            'ax.set_title("simple_table: rows at each version")\n'
            "plt.tight_layout()\n"
            "plt.show()"
        ),
        new_markdown_cell(
            "### Deletion vectors\n\n"
            "`table-with-dv-small` has 10 rows in its data file, 2 of them deleted by a "
            "deletion vector: lakevec returns the 8 live rows (reading the file as plain Parquet "
            "shows all 10)."
        ),
        new_code_cell(
            'dv = str(DATA / "tables" / "delta" / "table-with-dv-small")\n'
            'print(lakevec.Table.open(dv).files().to_pandas()[["num_records", "num_deleted"]])\n'
            "print(\n"
            '    "live rows:",\n'
            "    lakevec.read_table(dv).num_rows,\n"
            '    "| data file rows:",\n'
            '    lakevec.read_table(dv, format="parquet").num_rows,\n'
            ")"
        ),
        new_markdown_cell(
            "### Row addresses\n\n"
            "Every row has an address: its data file and its position in that file "
            "(`_file`, `_row`), the same position deletion vectors use. `take()` fetches rows "
            "back by address; a deleted row is an error, never another row."
        ),
        new_code_cell(
            "dvt = lakevec.Table.open(dv)\n"
            "addr = dvt.to_arrow(with_row_address=True)\n"
            "print(addr.to_pandas().head(3))\n"
            'print("deleted positions:", dvt.files()["deleted_rows"][0].as_py())\n'
            "dvt.take(addr.slice(2, 2)).to_pandas()"
        ),
        new_markdown_cell(
            "## Apache Iceberg tables\n\n"
            "A folder with `metadata/` is read as an Iceberg table through iceberg-rust. "
            "`lineitem_iceberg` (TPC-H lineitem, written by Spark) records a *relative* table "
            "location; lakevec reads it under the folder it was opened from. Its second snapshot "
            "deleted every line with `l_extendedprice < 10000`: pin the first snapshot to see "
            "them again."
        ),
        new_code_cell(
            'li_path = str(DATA / "tables" / "iceberg" / "lineitem_iceberg")\n'
            "li = lakevec.Table.open(li_path)\n"
            "print(li)\n"
            'hist = li.history().to_pandas()[["version", "operation"]]\n'
            "print(hist)\n"
            'first = lakevec.Table.open(li_path, snapshot_id=int(hist["version"].iloc[-1]))\n'
            "fig, ax = plt.subplots(figsize=(6, 2.5))\n"
            'for t, name in [(first, "first snapshot"), (li, "current")]:\n'
            "    ax.hist(\n"
            '        t.to_arrow(columns=["l_extendedprice"])["l_extendedprice"].to_numpy(),\n'
            "        bins=60,\n"
            "        alpha=0.6,\n"
            '        label=f"{name} ({t.num_rows:,} rows)",\n'
            "    )\n"
            'ax.set_xlabel("l_extendedprice (TPC-H currency units)")\n'
            'ax.set_ylabel("line items (count)")\n'
            'ax.set_title("lineitem_iceberg: extended price, first snapshot vs current")\n'
            "ax.legend()\n"
            "plt.tight_layout()\n"
            "plt.show()"
        ),
    ],
    metadata=KERNEL,
)

nb02 = new_notebook(
    cells=[
        new_markdown_cell(
            "# A vector index over a lake table\n\n"
            "Real data: 12,052 MiniLM sentence embeddings (384-d, unit length) with 1,000 "
            "held-out queries and their exact top-100 neighbours. We write the embeddings as a "
            "Delta table, build an HNSW index beside it with lakevec, measure recall, run a "
            "filtered search, then append rows and refresh the index incrementally."
        ),
        new_code_cell(
            "import os\n"
            "import tempfile\n"
            "import time\n"
            "from pathlib import Path\n"
            "\n"
            "import numpy as np\n"
            "import pyarrow as pa\n"
            "import pyarrow.parquet as pq\n"
            "from deltalake import write_deltalake\n"
            "\n"
            "import lakevec\n"
            "\n" + FIND_SHARED + "\n"
            'ANN = DATA / "ann"\n'
            "print(lakevec.__version__)"
        ),
        new_markdown_cell(
            "## Write the embeddings as a Delta table\n\n"
            "Besides `id` and `vector` we add a `label` column (`id % 10`) to filter on later. "
            "The table lives in a temporary folder."
        ),
        new_code_cell(
            'base = pq.read_table(ANN / "minilm_base.parquet")\n'
            'base = base.append_column("label", pa.array(base["id"].to_numpy() % 10))\n'
            'tmp = tempfile.TemporaryDirectory(prefix="lakevec_nb02_")\n'
            'uri = str(Path(tmp.name) / "minilm")\n'
            "write_deltalake(uri, base)\n"
            "table = lakevec.Table.open(uri)\n"
            "print(table)\n"
            "print(table.schema)"
        ),
        new_markdown_cell(
            "## Build the index\n\n"
            "`key='id'` stores the id column in the index so every hit carries it; the other "
            "columns stay in the lake. The index is written under `<table>/_lakevec_index/`."
        ),
        new_code_cell(
            "t0 = time.perf_counter()\n"
            'idx = lakevec.build_index(table, "vector", metric="cosine", key="id", m=16, ef_construction=200, '
            "progress=False)\n"
            'print(f"built in {time.perf_counter() - t0:.1f} s:", idx)\n'
            "st = idx.stats()\n"
            'print({k: st[k] for k in ["rows", "sidecar_bytes", "vector_bytes", "recall_estimate", "kernel"]})'
        ),
        new_markdown_cell(
            "## Search with the held-out queries\n\n"
            "Each hit has its query number, rank, distance (`1 - cos`), lake address "
            "(`_file`, `_row`) and the key `id`."
        ),
        new_code_cell(
            'qt = pq.read_table(ANN / "minilm_query.parquet")\n'
            'Q = qt["vector"].combine_chunks().values.to_numpy().reshape(qt.num_rows, -1)\n'
            "hits = idx.search(Q[:3], k=5)\n"
            'hits.drop_columns(["_file"]).to_pandas()'
        ),
        new_markdown_cell(
            "`columns=` fetches table columns for every hit from the lake by address. Here "
            "`id` and `label` are read back from the Delta file: the fetched ids agree with the "
            "index's key and every label is `id % 10`."
        ),
        new_code_cell(
            'fetched = idx.search(Q[:100], k=10, columns=["id", "label"])\n'
            "print(fetched.column_names)\n"
            'lake_ids = table.take(fetched.select(["_file", "_row"]), columns=["id"])["id"]\n'
            'print("ids from the lake == key ids:", lake_ids.equals(fetched["id"]))\n'
            'print("label == id % 10 for every hit:", bool(np.all(fetched["label"].to_numpy() == '
            'fetched["id"].to_numpy() % 10)))\n'
            'fetched.slice(0, 5).drop_columns(["_file"]).to_pandas()'
        ),
        new_markdown_cell(
            "## Recall vs `ef`\n\n"
            "`ef` is the search beam width. We compare the graph search's top 10 against "
            "lakevec's exact search (`exact=True`) and against the dataset's ground truth. Exact "
            "search reproduces the ground truth (recall 1.0), so the two curves coincide."
        ),
        new_code_cell(
            "import pandas as pd\n"
            "\n"
            "K = 10\n"
            'gt = pq.read_table(ANN / "minilm_groundtruth.parquet")\n'
            'truth = dict(zip(gt["query_id"].to_pylist(), gt["neighbors"].to_pylist()))\n'
            'gt10 = np.array([truth[q][:K] for q in qt["id"].to_pylist()])\n'
            "\n"
            "\n"
            "def top_ids(res):\n"
            "    ids = np.full((len(Q), K), -1)\n"
            '    ids[res["query"].to_numpy(), res["rank"].to_numpy() - 1] = res["id"].to_numpy()\n'
            "    return ids\n"
            "\n"
            "\n"
            "def recall(found, truth):\n"
            "    return np.mean([len(set(f) & set(t)) / K for f, t in zip(found.tolist(), truth.tolist())])\n"
            "\n"
            "\n"
            "exact = top_ids(idx.search(Q, k=K, exact=True))\n"
            'print(f"exact search vs ground truth: recall@10 = {recall(exact, gt10):.4f}")\n'
            "efs = [10, 16, 24, 32, 48, 64, 128, 256]\n"
            "rows = []\n"
            "for ef in efs:\n"
            "    t0 = time.perf_counter()\n"
            "    found = top_ids(idx.search(Q, k=K, ef=ef))\n"
            "    qps = len(Q) / (time.perf_counter() - t0)\n"
            "    rows.append((ef, recall(found, exact), recall(found, gt10), qps))\n"
            'curve = pd.DataFrame(rows, columns=["ef", "recall vs exact", "recall vs ground truth", "QPS"])\n'
            'curve.round(4).astype({"QPS": int})'
        ),
        new_code_cell(
            "import matplotlib.pyplot as plt\n"
            "\n"
            "%matplotlib inline\n"
            'plt.rcParams["figure.dpi"] = 80  # small PNGs in the stored notebook\n'
            "fig, ax = plt.subplots(figsize=(6, 3.5))\n"
            'ax.plot(curve.ef, curve["recall vs exact"], "o-", label="vs exact=True")\n'
            'ax.plot(curve.ef, curve["recall vs ground truth"], "s--", label="vs ground truth")\n'
            'ax.set_xscale("log", base=2)\n'
            "ax.set_xticks(efs, [str(e) for e in efs])\n"
            'ax.set_xlabel("ef (search beam width, candidates)")\n'
            'ax.set_ylabel("recall@10 (fraction of the true top 10)")\n'
            'ax.set_title("HNSW recall vs ef: MiniLM, 12,052 vectors, M=16")\n'
            "ax.legend()\n"
            "ax.grid(alpha=0.3)\n"
            "plt.tight_layout()\n"
            "plt.show()"
        ),
        new_markdown_cell(
            "## Filtered search\n\n"
            "`filter` is a SQL predicate over the table's columns, applied *before* the search: "
            "every hit satisfies it and `k` hits come back per query (when enough rows qualify)."
        ),
        new_code_cell(
            'flt = idx.search(Q[:100], k=10, filter="label = 3", columns=["label"])\n'
            'print(flt.num_rows, "hits for 100 queries; labels seen:", sorted(set(flt["label"].to_pylist())))\n'
            'assert all(v == 3 for v in flt["label"].to_pylist())\n'
            'ex = idx.search(Q[:100], k=10, filter="label = 3", exact=True)\n'
            "same = (\n"
            "    len(\n"
            '        set(zip(flt["query"].to_pylist(), flt["id"].to_pylist()))\n'
            '        & set(zip(ex["query"].to_pylist(), ex["id"].to_pylist()))\n'
            "    )\n"
            "    / ex.num_rows\n"
            ")\n"
            'print(f"filtered recall@10 vs exact filtered search: {same:.3f}")\n'
            'flt.slice(0, 5).drop_columns(["_file"]).to_pandas()'
        ),
        new_markdown_cell(
            "## Append rows: the index stays correct, then refreshes incrementally\n\n"
            "We append 500 of the query vectors as new rows (new ids from 1,000,000). The index "
            "still covers the old table version: `coverage()` lists the new file as `missing`."
        ),
        new_code_cell(
            "new_ids = 1_000_000 + np.arange(500)\n"
            "new = pa.table(\n"
            "    {\n"
            '        "id": pa.array(new_ids, pa.int64()),\n'
            '        "vector": qt["vector"].combine_chunks().slice(0, 500),\n'
            '        "label": pa.array(new_ids % 10, pa.int64()),\n'
            "    },\n"
            "    schema=base.schema,\n"
            ")\n"
            'write_deltalake(uri, new, mode="append")\n'
            "cov = idx.coverage()\n"
            'print("table version", cov.schema.metadata[b"table_version"].decode(), "| index covers", '
            "idx.table_version)\n"
            "cov.to_pandas()"
        ),
        new_markdown_cell(
            "Before any refresh, a search with the default `stale='exact'` searches the missing "
            "file exactly and merges: an appended vector finds itself at rank 1 (distance 0). "
            "With `stale='ignore'` (the index as built) it cannot be found."
        ),
        new_code_cell(
            "probe = Q[7]  # appended as id 1_000_007\n"
            'print("stale=exact :", idx.search(probe, k=3)["id"].to_pylist())\n'
            'print("stale=ignore:", idx.search(probe, k=3, stale="ignore")["id"].to_pylist())\n'
            'idx.search(probe, k=3).drop_columns(["_file"]).to_pandas()'
        ),
        new_markdown_cell(
            "`refresh()` indexes only the new file as a new segment; nothing already indexed "
            "is read again. `last_commit` shows what was encoded."
        ),
        new_code_cell(
            "t0 = time.perf_counter()\n"
            'print("committed:", idx.refresh(), f"in {time.perf_counter() - t0:.2f} s")\n'
            "st = idx.stats()\n"
            'print("last_commit:", st["last_commit"])\n'
            'print("rows:", st["rows"], "| segments:", st["segments"], "| index covers table version", '
            "idx.table_version)\n"
            "idx.coverage().to_pandas()"
        ),
        new_code_cell(
            'res = idx.search(probe, k=3, stale="error")  # raises if the index were stale\n'
            'res.drop_columns(["_file"]).to_pandas()'
        ),
        new_code_cell("tmp.cleanup()"),
    ],
    metadata=KERNEL,
)


nb03 = new_notebook(
    cells=[
        new_markdown_cell(
            "# Dedup and tagging on the Debian corpus\n\n"
            "Every Debian 12 package description (63,905 rows). Exact duplicates, MinHash-LSH "
            "near duplicates, rule tags, and kNN section tags from hashing vectors: all Rust "
            "kernels running in parallel with the GIL released, results as Arrow tables that "
            "point back at the input rows."
        ),
        new_code_cell(
            "import os\n"
            "from pathlib import Path\n"
            "\n"
            "import matplotlib.pyplot as plt\n"
            "import numpy as np\n"
            "import pyarrow as pa\n"
            "import pyarrow.compute as pc\n"
            "\n"
            "import lakevec\n"
            "\n" + FIND_SHARED + "\n"
            'debian = lakevec.Table.open(str(DATA / "text" / "debian_descriptions.parquet"))\n'
            "t = debian.to_arrow()\nprint(debian)"
        ),
        new_markdown_cell("## Exact duplicates (after NFKC, case-folding and whitespace normalisation)"),
        new_code_cell(
            'ex = lakevec.dedup.exact(debian, "description", normalize=True)\n'
            'print("duplicate rows:", pc.sum(pc.invert(ex["is_representative"])).as_py())\n'
            'big = ex.filter(pc.greater(ex["cluster_size"], 1)).sort_by([("cluster_size", "descending")])\n'
            'for cid in list(dict.fromkeys(big["cluster_id"].to_pylist()))[:3]:\n'
            '    rows = big.filter(pc.equal(big["cluster_id"], cid))["_row"].to_pylist()\n'
            '    print(f"cluster {cid}: {len(rows)} packages:", t.take(rows[:6])["package"].to_pylist())'
        ),
        new_markdown_cell(
            "## Near duplicates: MinHash-LSH\n\n"
            "Word 5-gram shingles, 128 permutations, Jaccard threshold 0.8; bands/rows chosen "
            "by datasketch's rule. Package families (foo, foo-dev, foo-doc) share most of their text."
        ),
        new_code_cell(
            'near, pairs = lakevec.dedup.minhash(debian, "description", threshold=0.8, pairs=True)\n'
            'print("bands, rows =", lakevec.dedup.lsh_params(0.8, 128))\n'
            'print("near-duplicate rows:", pc.sum(pc.invert(near["is_representative"])).as_py(), "| pairs:", '
            "pairs.num_rows)\n"
            'multi = near.filter(pc.greater(near["cluster_size"], 2))\n'
            'for cid in list(dict.fromkeys(multi["cluster_id"].to_pylist()))[:3]:\n'
            '    rows = multi.filter(pc.equal(multi["cluster_id"], cid))["_row"].to_pylist()\n'
            '    print(t.take(rows[:5])["package"].to_pylist())\n'
            '    print("   ", t["description"][rows[0]].as_py()[:120].replace(chr(10), " "))'
        ),
        new_code_cell(
            "%matplotlib inline\n"
            'plt.rcParams["figure.dpi"] = 80  # small PNGs in the stored notebook\n'
            'sizes = near.filter(near["is_representative"])["cluster_size"].to_numpy()\n'
            "fig, ax = plt.subplots(figsize=(7, 3.5))\n"
            "ax.hist(sizes[sizes > 1], bins=np.arange(2, 40), log=True)\n"
            'ax.set_xlabel("cluster size (rows)")\n'
            'ax.set_ylabel("clusters (count, log scale)")\n'
            'ax.set_title("MinHash near-duplicate clusters of Debian descriptions (Jaccard >= 0.8)")\n'
            "plt.tight_layout()\n"
            "plt.show()"
        ),
        new_markdown_cell("## Rule tags: regexes and keywords in one pass, with provenance"),
        new_code_cell(
            "tags = lakevec.tag.rules(\n"
            "    debian,\n"
            '    "description",\n'
            '    regex={"python": r"\\bpython\\s*[23]?\\b", "library": r"\\blibrar(y|ies)\\b", "game": '
            'r"\\bgames?\\b"},\n'
            '    keywords={"gui": ["gtk", "qt", "gui"], "db": ["sql", "sqlite", "postgresql", "mysql"]},\n'
            ")\n"
            'counts = pc.value_counts(pc.list_flatten(tags["tags"]))\n'
            "print(counts.to_pylist())\n"
            "tags.slice(0, 5).to_pandas()"
        ),
        new_markdown_cell(
            "## kNN section tags from hashing vectors\n\n"
            "No model: `lakevec.embed.hashing` is scikit-learn's HashingVectorizer in Rust. "
            "5,000 labelled descriptions are the exemplars; 2,000 others are tagged by their "
            "10 nearest exemplars (distance-weighted vote)."
        ),
        new_code_cell(
            'lab = t.filter(pc.is_valid(t["section"]))\n'
            "rng = np.random.default_rng(0)\n"
            "pick = rng.choice(lab.num_rows, 7000, replace=False)\n"
            "train, test = lab.take(pick[:5000]), lab.take(pick[5000:])\n"
            'ex = pa.table({"v": lakevec.embed.hashing(train["description"], dim=1024), "section": '
            'train["section"]})\n'
            'q = pa.table({"v": lakevec.embed.hashing(test["description"], dim=1024)})\n'
            'pred = lakevec.tag.knn(q, "v", ex, "section", k=10, weights="distance")\n'
            'truth = np.asarray(test["section"].to_pylist())\n'
            'got = np.asarray(pred["label"].to_pylist())\n'
            'majority = max(set(train["section"].to_pylist()), key=train["section"].to_pylist().count)\n'
            'print(f"accuracy {np.mean(got == truth):.3f} vs majority class ({majority}) {np.mean(truth == '
            'majority):.3f}")'
        ),
        new_code_cell(
            "top = [s for s, _ in sorted(((s, int((truth == s).sum())) for s in set(truth)), key=lambda x: "
            "-x[1])[:12]]\n"
            "m = np.zeros((len(top), len(top)))\n"
            "for a, b in zip(truth, got):\n"
            "    if a in top and b in top:\n"
            "        m[top.index(a), top.index(b)] += 1\n"
            "m = m / np.maximum(m.sum(1, keepdims=True), 1)\n"
            "fig, ax = plt.subplots(figsize=(6, 5))\n"
            'im = ax.imshow(m, cmap="Blues", vmin=0, vmax=1)\n'
            "ax.set_xticks(range(len(top)), top, rotation=90)\n"
            "ax.set_yticks(range(len(top)), top)\n"
            'ax.set_xlabel("predicted section")\n'
            'ax.set_ylabel("true section")\n'
            'ax.set_title("kNN section tags: confusion (12 largest sections)")\n'
            'fig.colorbar(im, ax=ax, label="share of the true section\'s rows (fraction)")\n'
            "plt.tight_layout()\n"
            "plt.show()"
        ),
    ],
    metadata=KERNEL,
)

nb04 = new_notebook(
    cells=[
        new_markdown_cell(
            "# lakevec on Ray and Spark\n\n"
            "The Debian corpus (63,905 package descriptions) processed by a local Ray cluster and "
            "by Spark `local[2]`: lake tables as Ray Datasets, hashing vectors and rule tags as "
            "`map_batches` / `mapInArrow` UDFs, MinHash dedup whose LSH buckets go through the "
            "engine's shuffle, and a vector index built by Ray tasks then searched from UDFs. "
            "Every distributed result is checked against the single-process call."
        ),
        new_code_cell(
            "import os\n"
            "import sys\n"
            "import tempfile\n"
            "from pathlib import Path\n"
            "\n"
            "import deltalake\n"
            "import matplotlib.pyplot as plt\n"
            "import numpy as np\n"
            "import pyarrow.compute as pc\n"
            "import ray\n"
            "\n"
            "import lakevec\n"
            "import lakevec.ray as lray\n"
            "\n"
            "%matplotlib inline\n"
            'plt.rcParams["figure.dpi"] = 80  # small PNGs in the stored notebook\n'
            "\n" + FIND_SHARED + "\n"
            'DEBIAN = str(DATA / "text" / "debian_descriptions.parquet")\n'
            "ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)\n"
            "ray.data.DataContext.get_current().enable_progress_bars = False\n"
            'print("ray", ray.__version__, "| lakevec", lakevec.__version__)'
        ),
        new_markdown_cell(
            "## A lake table as a Ray Dataset\n\n"
            "`lakevec.ray.read_table` pins the table version on the driver and splits the live "
            "data files into read tasks (here one file split into row ranges)."
        ),
        new_code_cell(
            'ds = lray.read_table(DEBIAN, columns=["package", "section", "description"], override_num_blocks=4)\n'
            'print(ds.count(), "rows;", ds.schema())'
        ),
        new_markdown_cell(
            "## Hashing vectors and rule tags in `map_batches`\n\n"
            "The UDFs pickle as their arguments and size lakevec's pool from the CPUs Ray grants "
            "each task."
        ),
        new_code_cell(
            'RULES = {"python": r"\\bpython\\s*[23]?\\b", "library": r"\\blibrar(y|ies)\\b", "game": '
            'r"\\bgames?\\b"}\n'
            "tagged = (\n"
            '    ds.map_batches(lray.HashingEmbed("description", dim=256), batch_format="pyarrow")\n'
            '    .map_batches(lray.TagRules("description", RULES, {"db": ["sql", "sqlite", "postgresql"]}), '
            'batch_format="pyarrow")\n'
            "    .materialize()\n"
            ")\n"
            "t = lray.to_arrow(tagged)\n"
            'print(pc.value_counts(pc.list_flatten(t["tags"])).to_pylist())\n'
            't.select(["package", "tags"]).slice(0, 5).to_pandas()'
        ),
        new_markdown_cell(
            "## Distributed MinHash dedup\n\n"
            "Signatures per batch, one row per (row, band) shuffled by Ray Data's `groupby`, "
            "each bucket verified in Rust, components joined on the driver. Same clusters as "
            "`lakevec.dedup.minhash`."
        ),
        new_code_cell(
            "timings = {}\n"
            'dist = lray.to_arrow(lray.dedup_minhash(DEBIAN, "description", threshold=0.8, timings=timings))\n'
            'single = lakevec.dedup.minhash(DEBIAN, "description", threshold=0.8)\n'
            "same = all(dist[c].equals(single[c]) for c in single.column_names)\n"
            "print(\n"
            '    "near-duplicate rows:",\n'
            '    dist.num_rows - pc.sum(dist["is_representative"]).as_py(),\n'
            '    "| identical to single-process:",\n'
            "    same,\n"
            ")\n"
            "fig, ax = plt.subplots(figsize=(6, 2.5))\n"
            "ax.barh(list(timings), list(timings.values()))\n"
            'ax.set_xlabel("wall time (s)")\n'
            'ax.set_ylabel("stage")\n'
            'ax.set_title("distributed MinHash dedup: time per stage")\n'
            "plt.tight_layout()\n"
            "plt.show()"
        ),
        new_markdown_cell(
            "## An index built by Ray tasks, searched from UDFs\n\n"
            "Hashing vectors of the labelled descriptions, written as a Delta table of 4 files. "
            "`lakevec.ray.build_index` builds one segment per task and the driver publishes them "
            "in one commit. Then `SearchIndex` and `TagKNN` run in `map_batches`, opening the "
            "index once per worker."
        ),
        new_code_cell(
            "tmp = tempfile.TemporaryDirectory()\n"
            'lab = t.filter(pc.is_valid(t["section"])).select(["package", "section", "vector"])\n'
            "rng = np.random.default_rng(0)\n"
            "pick = rng.permutation(lab.num_rows)\n"
            "base, queries = lab.take(pick[:40_000]), lab.take(pick[40_000:41_000])\n"
            'path = tmp.name + "/debian_vectors"\n'
            "for i in range(4):\n"
            '    deltalake.write_deltalake(path, base.slice(i * 10_000, 10_000), mode="append" if i else "error")\n'
            "build = {}\n"
            'idx = lray.build_index(path, "vector", metric="cosine", key="package", files_per_task=1, '
            "timings=build)\n"
            'print(idx, "| segments:", idx.stats()["segments"], "| build seconds:", round(build["segments"] + '
            'build["commit"], 2))'
        ),
        new_code_cell(
            'qds = ray.data.from_arrow(queries.select(["package", "vector"])).repartition(4)\n'
            "hits = lray.to_arrow(\n"
            '    qds.map_batches(lray.SearchIndex(idx, "vector", k=3, passthrough=["package"]), '
            'batch_format="pyarrow")\n'
            ")\n"
            'inproc = idx.search(queries["vector"], k=3)\n'
            "print(\n"
            '    "hits",\n'
            "    hits.num_rows,\n"
            '    "| same neighbours as in-process:",\n'
            '    sorted(zip(hits["_file"].to_pylist(), hits["_row"].to_pylist()))\n'
            '    == sorted(zip(inproc["_file"].to_pylist(), inproc["_row"].to_pylist())),\n'
            ")\n"
            'knn = lray.to_arrow(qds.map_batches(lray.TagKNN(idx, "vector", "section", k=10), '
            'batch_format="pyarrow"))\n'
            "acc = np.mean(\n"
            '    np.asarray(knn["label"].to_pylist())\n'
            '    == np.asarray(queries.take(pc.index_in(knn["package"], '
            'queries["package"]))["section"].to_pylist())\n'
            ")\n"
            'print(f"kNN section tags from a Ray UDF: accuracy {acc:.3f}")\n'
            'hits.slice(0, 6).drop_columns(["_file"]).to_pandas()'
        ),
        new_code_cell("ray.shutdown()"),
        new_markdown_cell(
            "## The same with Spark `mapInArrow`\n\n"
            "Each helper returns `(fn, schema)` for `mapInArrow`; `lakevec.spark.dedup_minhash` "
            "forms the LSH buckets with Spark's own `groupBy`."
        ),
        new_code_cell(
            'os.environ.setdefault("PYSPARK_PYTHON", sys.executable)\n'
            "from pyspark.sql import SparkSession\n"
            "\n"
            "import lakevec.spark as lspark\n"
            "\n"
            "spark = (\n"
            '    SparkSession.builder.master("local[2]")\n'
            '    .config("spark.ui.enabled", "false")\n'
            '    .config("spark.sql.shuffle.partitions", "4")\n'
            "    .getOrCreate()\n"
            ")\n"
            'spark.sparkContext.setLogLevel("ERROR")\n'
            "df = spark.read.parquet(DEBIAN)\n"
            'out = df.mapInArrow(*lspark.hashing_embed(df.schema, "description", dim=256))\n'
            'out = out.mapInArrow(*lspark.tag_rules(out.schema, "description", RULES))\n'
            'out.select("package", "tags").show(5, truncate=60)'
        ),
        new_code_cell(
            'sdist = lspark.dedup_minhash(df, "description", threshold=0.8).toArrow()\n'
            "print(\n"
            '    "Spark clusters identical to single-process:",\n'
            '    all(sdist[c].to_pylist() == single[c].to_pylist() for c in ("cluster_id", "cluster_size", '
            '"is_representative")),\n'
            ")\n"
            'qdf = spark.createDataFrame(queries.select(["package", "vector"]).slice(0, 200))\n'
            'shits = qdf.mapInArrow(*lspark.search_index(qdf.schema, idx.uri, "vector", k=3, columns=["section"]))\n'
            'shits.select("package", "rank", "distance", "hit_package", "section").show(6)'
        ),
        new_code_cell("spark.stop()\ntmp.cleanup()"),
    ],
    metadata=KERNEL,
)


NOTEBOOKS = {
    "01_read_lake_tables": nb01,
    "02_vector_index": nb02,
    "03_dedup_and_tagging": nb03,
    "04_ray_and_spark": nb04,
}


def numbered(nb, name: str):
    """``nb`` with its cell ids numbered (so regenerating changes only what changed)."""
    for i, cell in enumerate(nb.cells):
        cell.id = f"{name[:2]}-{i:02d}"
    return nb


def write(nb, name: str) -> None:
    """Write ``nb`` as ``name``.ipynb."""
    nbformat.write(numbered(nb, name), HERE / f"{name}.ipynb")
    print("wrote", HERE / f"{name}.ipynb")


def execute(name: str, timeout: int = 900) -> None:
    """Execute ``name``.ipynb in place (cwd notebooks/) and store its outputs; raises on a failing cell."""
    from nbclient import NotebookClient

    path = HERE / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    t0 = time.perf_counter()
    # record_timing=False: no per-cell timestamps, so a re-run changes only the outputs
    NotebookClient(
        nb, timeout=timeout, kernel_name="python3", record_timing=False, resources={"metadata": {"path": str(HERE)}}
    ).execute()
    # stderr is not stored: Ray's and Spark's logs and progress bars (an error is an "error" output)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not (o.output_type == "stream" and o.name == "stderr")]
    nbformat.write(nb, path)
    print(f"executed {path} in {time.perf_counter() - t0:.0f} s ({path.stat().st_size / 1024:.0f} KiB)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--execute", action="store_true", help="execute the notebooks written and store their outputs")
    ap.add_argument("only", nargs="*", help="notebooks to write (by number, e.g. 02, or name); default: all")
    args = ap.parse_args(argv)
    names = [n for n in NOTEBOOKS if not args.only or any(n.startswith(o) or n == o for o in args.only)]
    if not names:
        ap.error(f"no notebook matches {args.only}; have {list(NOTEBOOKS)}")
    for name in names:
        write(NOTEBOOKS[name], name)
    if args.execute:
        for name in names:
            execute(name)


if __name__ == "__main__":
    main()
