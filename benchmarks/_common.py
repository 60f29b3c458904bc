"""Helpers shared by the benchmark scripts (imported as `_common`: the scripts run as
`python benchmarks/<name>.py`, which puts this folder on `sys.path`)."""

from __future__ import annotations

import time


def best_of(repeat: int, fn):
    """(result of the last run, best seconds) of ``repeat`` runs of ``fn()``."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best
