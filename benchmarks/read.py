"""Read throughput and peak memory: lakevec vs pyarrow, polars, duckdb and deltalake, one run.

Rows (--only picks some; data is generated once under --data-dir by benchmarks/_read_data.py):

  vector       one Parquet file (~500 MB): --rows rows, `id` int64, `text` (~150 chars) and
               `vector` fixed_size_list<float32, 384>, snappy, 32,768 rows per row group
  debian10     the shared Debian descriptions x10 (639,050 rows, text, a `copy` int32 column),
               one Parquet file, one row group per copy
  delta        the same rows as a Delta table of 4 files (deltalake convert_to_deltalake)
  delta-games  that table, columns=["package"], filter section = 'games'
  covid        the shared COVID-19_NYT Delta table (1,111,930 rows, 8 files), whole read;
               duckdb reads a Parquet glob of its files (no log) as a reference
  open10k      Table.open vs deltalake.DeltaTable() of a Delta table of 10,000 commits (one
               tiny file added each) with a checkpoint at the last one

Below the table: lakevec's streaming scan of the vector file, and "polars as Arrow" (polars'
read followed by `to_arrow()`) on the Debian and COVID rows: polars keeps strings as views
into its buffers, while lakevec and pyarrow return contiguous `string` arrays; that line is
polars' time when its result must be such an Arrow table.

Each reader runs in its own subprocess, so its peak RSS (VmHWM) is its own; imports and
connection setup are not timed; the best of --repeat runs is reported. Readers use --threads
(lakevec num_threads, pyarrow set_cpu_count, POLARS_MAX_THREADS, duckdb SET threads).
The ratio is best peer seconds / lakevec seconds (>= 1.0: lakevec is at least as fast).

    python benchmarks/read.py [--repeat 5] [--threads N] [--only debian10 delta ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import _read_data as gen

HERE = Path(__file__).resolve().parent
COLS = ["lakevec", "pyarrow", "polars", "duckdb", "deltalake"]
ROWS = ["vector", "debian10", "delta", "delta-games", "covid", "open10k"]

SETUP = {
    "lakevec": "import lakevec",
    "pyarrow": "import pyarrow as pa, pyarrow.parquet as pq; pa.set_cpu_count(THREADS)",
    "polars": "import polars as pl",
    "duckdb": "import duckdb; con = duckdb.connect(); con.execute(f'SET threads = {THREADS}')",
    "deltalake": "import pyarrow as pa; from deltalake import DeltaTable",
}

# Runs in a fresh interpreter: argv[1] is {"path", "threads", "repeat"}; `body` sets `t`, whose
# row count `rows` gives after the timed runs.
CHILD = """
import json, resource, sys, time
ARGS = json.loads(sys.argv[1])
PATH, THREADS, REPEAT = ARGS["path"], ARGS["threads"], ARGS["repeat"]
{setup}
best, t = None, None
for _ in range(REPEAT):
    t = None
    start = time.perf_counter()
{body}
    took = time.perf_counter() - start
    best = took if best is None else min(best, took)
n = {rows}
try:  # this process's own high-water mark: ru_maxrss can carry the parent's across vfork + exec
    hwm = next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM:"))
except (OSError, StopIteration):
    hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"seconds": best, "rows": n, "peak_rss_mb": hwm / 1024}}))
"""


@dataclass
class Reader:
    body: str  # timed; sets `t`
    rows: str = "t.num_rows"  # row count of `t`, evaluated after timing
    setup: str = ""  # extra untimed setup after the library's SETUP


@dataclass
class Row:
    name: str
    label: str
    path: Path
    expected: int
    readers: dict[str, Reader]
    notes: dict[str, str] = field(default_factory=dict)  # column -> footnote mark
    extra: dict[str, Reader] = field(default_factory=dict)  # reported below the table


def parquet_readers() -> dict[str, Reader]:
    return {
        "lakevec": Reader("t = lakevec.read_table(PATH, num_threads=THREADS)"),
        "pyarrow": Reader("t = pq.read_table(PATH)"),
        "polars": Reader("t = pl.read_parquet(PATH)", rows="t.height"),
        "duckdb": Reader("t = con.sql(f\"SELECT * FROM read_parquet('{PATH}')\").to_arrow_table()"),
    }


def delta_readers(duck_delta: bool, columns: list[str] | None = None, section: str | None = None) -> dict[str, Reader]:
    cols = f", columns={columns!r}" if columns else ""
    filt = f", filter=\"section = '{section}'\"" if section else ""
    readers = {"lakevec": Reader(f"t = lakevec.read_table(PATH{cols}{filt}, num_threads=THREADS)")}
    if section:
        readers["polars"] = Reader(
            f"t = pl.scan_delta(PATH).filter(pl.col('section') == {section!r}).select({columns!r}).collect()",
            rows="t.height",
        )
        readers["deltalake"] = Reader(
            f"t = DeltaTable(PATH).to_pyarrow_table(columns={columns!r}, filters=[('section', '=', {section!r})])"
        )
    else:
        readers["polars"] = Reader("t = pl.read_delta(PATH)", rows="t.height")
        readers["deltalake"] = Reader("t = DeltaTable(PATH).to_pyarrow_table()")
    if duck_delta:
        select = ", ".join(columns) if columns else "*"
        where = f" WHERE section = '{section}'" if section else ""
        readers["duckdb"] = Reader(
            f"t = con.sql(f\"SELECT {select} FROM delta_scan('{{PATH}}'){where}\").to_arrow_table()",
            setup="con.execute('LOAD delta')",
        )
    return readers


def duckdb_delta() -> str | None:
    """None when duckdb's delta extension loads (installing it if needed), else the reason."""
    code = (
        "import duckdb\nc = duckdb.connect()\ntry:\n    c.execute('LOAD delta')\n"
        "except Exception:\n    c.execute('INSTALL delta'); c.execute('LOAD delta')\n"
    )
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return "INSTALL delta timed out"
    if out.returncode == 0:
        return None
    lines = [x for x in out.stderr.strip().splitlines() if x.strip()]
    err = next((x for x in lines if "Error" in x and "Traceback" not in x), lines[-1] if lines else "?")
    return err.strip().removeprefix("_duckdb.").removeprefix("IOException: ")[:160]


def as_arrow(read: str) -> dict[str, Reader]:
    """polars' read handed over as a pyarrow Table (`to_arrow()`: string columns become
    contiguous `large_string`, as lakevec and pyarrow return `string`), reported below the
    table: what polars costs when the result must be Arrow strings, not its string views."""
    return {"polars as Arrow": Reader(f"t = {read}.to_arrow()")}


def build_rows(args, only: list[str], duck_delta: bool) -> list[Row]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    data = Path(args.data_dir)
    data.mkdir(parents=True, exist_ok=True)

    def mb(path: Path) -> str:
        files = [path] if path.is_file() else [p for p in path.rglob("*.parquet") if "_delta_log" not in p.parts]
        return f"{sum(p.stat().st_size for p in files) / 1e6:.0f} MB"

    def need(path: Path, make, *a) -> Path:
        if not path.exists():
            print(f"generating {path} ...", file=sys.stderr, flush=True)
            make(path, *a)
        return path

    rows = []
    if "vector" in only:
        p = need(data / f"read_{args.rows}.parquet", gen.vector_file, args.rows)
        row = Row(
            "vector",
            f"vector: {args.rows:,} rows, id + text + vector<f32,384>, 1 Parquet file, {mb(p)}",
            p,
            args.rows,
            parquet_readers(),
        )
        row.extra["lakevec scan (streaming batches)"] = Reader(
            "t = 0\nfor b in lakevec.Table.open(PATH).scan(num_threads=THREADS): t += b.num_rows", rows="t"
        )
        rows.append(row)
    if only & {"debian10", "delta", "delta-games"}:
        x10 = need(data / "debian_x10.parquet", gen.debian_x10)
        n10 = pq.ParquetFile(x10).metadata.num_rows
    if "debian10" in only:
        label = f"(1) Debian x10: {n10:,} rows, text, 1 Parquet file, {mb(x10)}"
        rows.append(Row("debian10", label, x10, n10, parquet_readers(), extra=as_arrow("pl.read_parquet(PATH)")))
    if only & {"delta", "delta-games"}:
        delta = need(data / "debian_x10.delta", gen.debian_delta, x10)
    if "delta" in only:
        label = f"(2) Debian x10 as Delta: {n10:,} rows, 4 files, {mb(delta)}"
        rows.append(Row("delta", label, delta, n10, delta_readers(duck_delta), extra=as_arrow("pl.read_delta(PATH)")))
    if "delta-games" in only:
        games = pc.sum(pc.equal(pq.read_table(x10, columns=["section"])["section"], "games")).as_py()
        label = f"(3) Delta, columns=[package], section = 'games' ({games:,} rows)"
        rows.append(Row("delta-games", label, delta, games, delta_readers(duck_delta, ["package"], "games")))
    if "covid" in only:
        files = sorted(gen.COVID.glob("*.parquet"))
        n = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        readers = delta_readers(False)
        readers["duckdb"] = Reader(
            f"t = con.sql(\"SELECT * FROM read_parquet('{gen.COVID}/*.parquet')\").to_arrow_table()"
        )
        label = f"(4) COVID-19_NYT Delta: {n:,} rows, {len(files)} files, {mb(gen.COVID)}"
        extra = as_arrow("pl.read_delta(PATH)")
        rows.append(Row("covid", label, gen.COVID, n, readers, notes={"duckdb": "†"}, extra=extra))
    if "open10k" in only:
        log = data / "log10k.delta"
        if not log.exists():
            print(f"generating {log} (10,000 commits, checkpoint) ...", file=sys.stderr, flush=True)
            gen.delta_log(log)
        want = 10_000 * 10
        readers = {
            "lakevec": Reader("t = lakevec.Table.open(PATH)"),
            "deltalake": Reader(
                "t = DeltaTable(PATH)",
                rows="pa.table(t.get_add_actions(flatten=True)).column('num_records').to_numpy().sum().item()",
            ),
        }
        label = "open: Delta log of 10,000 commits + checkpoint (Table.open vs DeltaTable())"
        rows.append(Row("open10k", label, log, want, readers))
    return rows


def run(reader: str, spec: Reader, path: Path, args) -> dict:
    setup = SETUP[reader.split()[0]] + ("\n" + spec.setup if spec.setup else "")
    body = "\n".join("    " + line for line in spec.body.splitlines())
    code = CHILD.format(setup=setup, body=body, rows=spec.rows)
    argv = json.dumps({"path": str(path), "threads": args.threads, "repeat": args.repeat})
    env = dict(os.environ, POLARS_MAX_THREADS=str(args.threads))
    out = subprocess.run([sys.executable, "-c", code, argv], capture_output=True, text=True, env=env)
    last = out.stdout.strip().splitlines()[-1:]
    err = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else ""
    if not last or not last[0].startswith("{"):
        return {"error": err or f"exit {out.returncode}"}
    r = json.loads(last[0])
    if out.returncode != 0:  # reported its result, then died at interpreter exit (seen once with deltalake)
        r["warning"] = f"exit {out.returncode} after reporting: {err}"
    return r


def secs(s: float) -> str:
    return f"{s:.3f}" if s >= 0.1 else f"{s:.4f}"


def machine() -> str:
    cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    kb = next(int(x.split()[1]) for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal:"))
    return f"{cores} cores (nproc), {kb / 1024**2:.1f} GiB RAM (/proc/meminfo MemTotal)"


def versions() -> str:
    out = []
    for name in COLS:
        try:
            out.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out.append(f"{name} missing")
    return ", ".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=300_000, help="rows of the vector file")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--data-dir", default=os.environ.get("LAKEVEC_BENCH_DIR", HERE / "_data"))
    ap.add_argument("--only", nargs="+", metavar="ROWNAME", help=f"run only these rows: {', '.join(ROWS)}")
    args = ap.parse_args()
    only = {x for item in (args.only or ROWS) for x in item.split(",") if x}
    if unknown := only - set(ROWS):
        ap.error(f"unknown row(s) {sorted(unknown)}; rows: {', '.join(ROWS)}")

    duck_reason = duckdb_delta() if only & {"delta", "delta-games"} else None
    rows = build_rows(args, only, duck_reason is None)

    results: dict[str, dict[str, dict]] = {}
    problems = []
    for row in rows:
        results[row.name] = {}
        for reader, spec in {**row.readers, **row.extra}.items():
            r = run(reader, spec, row.path, args)
            if "error" not in r and r["rows"] != row.expected:
                r = {"error": f"returned {r['rows']:,} rows, expected {row.expected:,}"}
            if "error" in r:
                problems.append(f"FAILED {row.name} / {reader}: {r['error']}")
            elif "warning" in r:
                problems.append(f"warning {row.name} / {reader}: {r['warning']}")
            else:
                print(f"{row.name} / {reader}: {r['seconds']:.3f} s, {r['peak_rss_mb']:.0f} MB", file=sys.stderr)
            results[row.name][reader] = r

    print(f"\nmachine: {machine()}; threads={args.threads}; best of {args.repeat}")
    print(f"versions: {versions()}\n")
    head = ["data"] + [f"{c} s" for c in COLS] + ["lakevec / best peer", f"peak RSS MB ({' / '.join(COLS)})"]
    print("| " + " | ".join(head) + " |")
    print("|---" + "|---:" * (len(head) - 1) + "|")
    for row in rows:
        res = results[row.name]
        ok = {c: r for c, r in res.items() if c in COLS and "error" not in r}
        cells = []
        for c in COLS:
            mark = row.notes.get(c, "")
            if c in ok:
                cells.append(secs(ok[c]["seconds"]) + mark)
            elif c in res:
                cells.append("failed")
            elif c == "duckdb" and row.name in ("delta", "delta-games"):
                cells.append("n/a ‡")
            else:
                cells.append("–")
        peers = [r["seconds"] for c, r in ok.items() if c != "lakevec"]
        ratio = f"{min(peers) / ok['lakevec']['seconds']:.2f}" if peers and "lakevec" in ok else "–"
        rss = " / ".join(f"{ok[c]['peak_rss_mb']:.0f}" if c in ok else "–" for c in COLS)
        print(f"| {row.label} | " + " | ".join(cells) + f" | {ratio} | {rss} |")

    print()
    for row in rows:
        for name, r in results[row.name].items():
            if name in row.extra and "error" not in r:
                mb = r["peak_rss_mb"]
                print(f"{row.name}, {name}: {secs(r['seconds'])} s, peak RSS {mb:.0f} MB")
    if "covid" in results:
        print("† duckdb reads the COVID table's Parquet files by glob, without its Delta log (a 'no log' reference).")
    if "open10k" in results:
        res = results["open10k"]
        times = {c: secs(r["seconds"]) + " s" if "error" not in r else "failed" for c, r in res.items()}
        print(f"open, 10,000-commit Delta log + checkpoint: lakevec Table.open {times.get('lakevec')}, ", end="")
        print(f"deltalake DeltaTable() {times.get('deltalake')}")
    if duck_reason and only & {"delta", "delta-games"}:
        print(f"‡ duckdb skipped on the Delta rows: its delta extension is not installable offline ({duck_reason}).")
    for p in problems:
        print(p)


if __name__ == "__main__":
    main()
