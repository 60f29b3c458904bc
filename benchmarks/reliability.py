"""Reliability tally, one command: runs the fault suite (storage faults through the S3 fault
proxy, writers killed at each commit step, racing writers, readers during commits) with
LAKEVEC_FAULT_TALLY set and prints what its tests recorded (cases, faults injected, calls that
recovered, clear errors, wrong answers, crashes), per test file and in total; then the fuzz
totals per cargo-fuzz target (executions, crashes, OOMs, timeouts), running
``benchmarks/fuzz.sh SECONDS`` first when ``--fuzz SECONDS`` is given, else from the last run's
logs (``~/.cache/lakevec/fuzz-work``).

    python benchmarks/reliability.py [--fuzz SECONDS] [extra pytest arguments]

Exits non-zero when pytest fails or a fuzz target has a finding.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILES = ["tests/test_faults.py", "tests/test_commit_kill.py"]
COLUMNS = [
    ("cases", "cases"),
    ("faults", "faults injected"),
    ("recovered", "recovered"),
    ("clear_errors", "clear errors"),
    ("wrong_answers", "wrong answers"),
    ("crashes", "crashes"),
]


FUZZ_WORK = Path(os.environ.get("LAKEVEC_FUZZ_WORK", Path.home() / ".cache/lakevec/fuzz-work"))
TARGETS = ["container", "segment", "tombstones", "manifest", "deletion_vector"]


def print_table(head: list[str], table: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in [head, *table]) for i in range(len(head))]
    for row in [head, *table]:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))


def stat(log: str, name: str) -> int:
    m = re.findall(rf"stat::{name}:\s*(\d+)", log)
    return int(m[-1]) if m else 0


def fuzz_report() -> int:
    """Print the fuzz totals of the last run; return the number of findings."""
    rows, findings = [], 0
    for t in TARGETS:
        log_file = FUZZ_WORK / f"{t}.log"
        if not log_file.exists():
            continue
        log = log_file.read_text(errors="replace")
        art = FUZZ_WORK / "artifacts" / t
        found = {k: len(list(art.glob(f"{k}-*"))) if art.exists() else 0 for k in ("crash", "oom", "timeout")}
        findings += sum(found.values())
        secs = re.findall(r"Done \d+ runs in (\d+) second", log)
        rows.append(
            [t, secs[-1] if secs else "?", str(stat(log, "number_of_executed_units"))]
            + [str(found[k]) for k in ("crash", "oom", "timeout")]
        )
    print("\nfuzz (cargo-fuzz / libFuzzer, structure-aware; benchmarks/fuzz.sh):")
    if not rows:
        print("  no fuzz run on record: python benchmarks/reliability.py --fuzz 600")
        return 0
    total = ["total", "", str(sum(int(r[2]) for r in rows))] + [str(sum(int(r[i]) for r in rows)) for i in (3, 4, 5)]
    print_table(["target", "seconds", "execs", "crashes", "ooms", "timeouts"], [*rows, total])
    return findings


def main() -> int:
    args = sys.argv[1:]
    if args[:1] == ["--fuzz"]:
        subprocess.check_call(["bash", str(ROOT / "benchmarks" / "fuzz.sh"), args[1]], cwd=ROOT)
        args = args[2:]
    with tempfile.TemporaryDirectory() as d:
        tally = Path(d) / "tally.jsonl"
        env = dict(os.environ, LAKEVEC_FAULT_TALLY=str(tally))
        cmd = [sys.executable, "-m", "pytest", *FILES, "-q", "-p", "no:cacheprovider", *args]
        status = subprocess.call(cmd, cwd=ROOT, env=env)
        rows = [json.loads(line) for line in tally.read_text().splitlines()] if tally.exists() else []
    by_file: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    tests: dict[str, int] = defaultdict(int)
    for r in rows:
        name = r["test"].split("::")[0]
        tests[name] += 1
        for key, _ in COLUMNS:
            by_file[name][key] += r[key]
            by_file["total"][key] += r[key]
    tests["total"] = sum(tests.values())
    head = ["", "tests"] + [title for _, title in COLUMNS]
    table = [[name, str(tests[name])] + [str(by_file[name][k]) for k, _ in COLUMNS] for name in [*FILES, "total"]]
    print("\nfault suite (S3 fault proxy, kill -9 at commit steps, racing writers and readers):")
    print_table(head, table)
    print(f"pytest exit status: {status}")
    findings = fuzz_report()
    print(f"\nmachine: {os.cpu_count()} cores")
    return status or int(findings > 0)


if __name__ == "__main__":
    sys.exit(main())
