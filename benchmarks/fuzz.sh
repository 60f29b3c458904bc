#!/usr/bin/env bash
# Run lakevec's cargo-fuzz (libFuzzer) targets and print executions and findings per target.
#
#   benchmarks/fuzz.sh [SECONDS_PER_TARGET=600] [TARGET...]
#
# Targets (fuzz/fuzz_targets): container, segment, tombstones, manifest, deletion_vector, dedup.
# The seed corpus is made from real sidecars: a small index (HNSW and flat, with a key column
# and tombstones) built by the installed lakevec wheel, and the deletion vector of the shared
# Delta table `table-with-dv-small`. Needs the nightly toolchain (libFuzzer's coverage flags)
# and cargo-fuzz (installed here when missing). Its target dir is ~/.cache/lakevec/fuzz-target:
# the first build compiles every dependency with coverage instrumentation (~30 min on 2
# cores). Limits per input: 2 GiB RSS (an OOM is a finding), 10 s (a timeout is a finding).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-600}"
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(container segment tombstones manifest deletion_vector dedup)
export CARGO_TARGET_DIR="${LAKEVEC_FUZZ_TARGET:-$HOME/.cache/lakevec/fuzz-target}"
WORK="${LAKEVEC_FUZZ_WORK:-$HOME/.cache/lakevec/fuzz-work}"
mkdir -p "$WORK"

command -v cargo-fuzz >/dev/null || cargo +nightly install cargo-fuzz --locked
cp Cargo.lock fuzz/Cargo.lock  # the wheel's dependency versions

# Seed corpus from real sidecars.
PY="${PYTHON:-python}"
"$PY" - "$WORK/corpus" <<'PYEOF'
import shutil, struct, sys, tempfile
from pathlib import Path
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
import lakevec

out = Path(sys.argv[1])
for t in ("container", "segment", "tombstones", "manifest", "deletion_vector"):
    (out / t).mkdir(parents=True, exist_ok=True)
with tempfile.TemporaryDirectory() as d:
    rng = np.random.default_rng(0)
    for kind in ("hnsw", "flat"):
        p = Path(d) / kind
        p.mkdir()
        for i in range(2):
            v = rng.standard_normal((200, 8)).astype(np.float32)
            ids = np.arange(i * 200, (i + 1) * 200)
            t = pa.table({"id": ids, "vector": pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), 8)})
            pq.write_table(t, p / f"part-{i}.parquet")
        idx = lakevec.build_index(str(p), "vector", key="id", progress=False, index_type=kind)
        (p / "part-1.parquet").unlink()
        idx.refresh()
        root = p / "_lakevec_index" / "default"
        for f in (root / "segments").glob("*.lkv"):
            shutil.copy(f, out / "segment" / f"{kind}-{f.name}")
            shutil.copy(f, out / "container" / f"{kind}-{f.name}")
        for f in (root / "tombstones").glob("*.lkv"):
            (out / "tombstones" / f"{kind}-{f.name}").write_bytes(struct.pack("<Q", 200) + f.read_bytes())
        for f in (root / "manifests").glob("*.json"):
            shutil.copy(f, out / "manifest" / f"{kind}-{f.name}")
shared = Path("../shared/data/tables/delta/table-with-dv-small")
for f in shared.glob("deletion_vector_*.bin"):
    raw = f.read_bytes()
    size = struct.unpack(">I", raw[1:5])[0]
    body = raw[5 : 5 + size]  # magic + bitmap
    head = struct.pack("<QQ", 10, 2)
    (out / "deletion_vector" / "file").write_bytes(b"\x01" + head + body)
    (out / "deletion_vector" / "inline").write_bytes(b"\x00" + head + body)
print("seed corpus:", {t.name: len(list(t.iterdir())) for t in out.iterdir()})
PYEOF

cd fuzz
cargo +nightly fuzz build -O -s none 2>&1 | grep -vE "^\s+Compiling" | tail -5
JOBS="${FUZZ_JOBS:-2}"  # targets fuzzed at once (one core each)
for t in "${TARGETS[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do sleep 5; done
  mkdir -p "$WORK/artifacts/$t"
  cargo +nightly fuzz run -O -s none "$t" "$WORK/corpus/$t" -- \
    -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$WORK/artifacts/$t/" >"$WORK/$t.log" 2>&1 &
done
wait
printf '\n%-16s %10s %12s %10s %8s %6s %9s %s\n' target seconds execs exec/s crashes ooms timeouts corpus
for t in "${TARGETS[@]}"; do
  log="$WORK/$t.log"
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  crashes=$(find "$WORK/artifacts/$t" -name 'crash-*' | wc -l)
  ooms=$(find "$WORK/artifacts/$t" -name 'oom-*' | wc -l)
  timeouts=$(find "$WORK/artifacts/$t" -name 'timeout-*' | wc -l)
  corpus=$(find "$WORK/corpus/$t" -type f | wc -l)
  printf '%-16s %10s %12s %10s %8s %6s %9s %s\n' "$t" "$SECONDS_PER_TARGET" "${execs:-0}" "${rate:-0}" \
    "$crashes" "$ooms" "$timeouts" "$corpus"
done
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; artifacts in $WORK/artifacts"
