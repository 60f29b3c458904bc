"""Reliability tally: runs the fault suite (storage faults through the S3 fault proxy,
writers killed at each commit step, racing writers, readers during commits) with
LAKEVEC_FAULT_TALLY set, and prints what its tests recorded: cases, faults injected, calls
that recovered, clear errors, wrong answers and crashes, per test file and in total.

    python benchmarks/reliability.py [extra pytest arguments, e.g. -m "not slow"]

Exits with pytest's status (failing tests are listed by pytest above the table).
"""

from __future__ import annotations

import json
import os
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


def main() -> int:
    with tempfile.TemporaryDirectory() as d:
        tally = Path(d) / "tally.jsonl"
        env = dict(os.environ, LAKEVEC_FAULT_TALLY=str(tally))
        cmd = [sys.executable, "-m", "pytest", *FILES, "-q", "-p", "no:cacheprovider", *sys.argv[1:]]
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
    widths = [max(len(row[i]) for row in [head, *table]) for i in range(len(head))]
    print()
    for row in [head, *table]:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    print(f"\npytest exit status: {status}")
    return status


if __name__ == "__main__":
    sys.exit(main())
