"""Writers killed (SIGKILL) at each commit step, held there by a proxy delay on the step's
request: the index opens at the version before or after and answers exactly. Two writers
racing from one version: exactly one commits, the other gets CommitConflictError. Readers
searching while 20 refresh/compact cycles commit see whole versions only.
(Ray's driver-side commit is left out: a Ray cluster per killed driver is too costly here.)"""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow as pa
import pytest
from _faultkit import (
    DIM,
    STAGES,
    FaultyS3,
    K,
    Writer,
    batch,
    build,
    index_problem,
    parts,
    queries,
    stage,
    stage_table,
)

import lakevec

HOLD = "delay:3"  # long enough to see the request and kill its writer; it is forwarded after


def _hold_rules(step: str, version: int) -> list[dict]:
    """Rules holding a writer at ``step`` of committing index ``version``."""
    manifest = f"/manifests/{version:020d}.json"
    return {
        "segment_put": [{"method": "PUT", "path_substr": "/segments/", "action": HOLD}],
        "tombstone_put": [{"method": "PUT", "path_substr": "/tombstones/", "action": HOLD}],
        "manifest_put": [{"method": "PUT", "path_substr": manifest, "action": HOLD}],
        # the manifest lands but its answer is lost: the writer reads it back, and is held there
        "readback_get": [
            {"method": "PUT", "path_substr": manifest, "action": "ack_then_drop"},
            {"method": "GET", "path_substr": manifest, "action": HOLD},
        ],
    }[step]


STEPS = {
    "build": ("segment_put", "manifest_put", "readback_get"),
    "refresh": ("segment_put", "tombstone_put", "manifest_put", "readback_get"),
    "compact": ("segment_put", "manifest_put", "readback_get"),
}


@pytest.mark.s3
@pytest.mark.parametrize(("op", "step"), [(op, step) for op, steps in STEPS.items() for step in steps])
def test_sigkill_at_commit_step(s3, tally, op, step):
    key = f"kill/{op}-{step}/t"
    files = parts()
    q = queries(files)
    stage(s3, key, files, op)
    before = STAGES[op][1]
    index_uri = s3.uri(f"{key}/_lakevec_index/default")
    w = Writer(op, s3.uri(key), index_uri, "parquet", s3.faulty)
    problems = []
    try:
        s3.arm(_hold_rules(step, before + 1))
        w.go()
        s3.wait_hit(HOLD)
        assert w.proc.poll() is None, f"the writer ended while held: {w.result()}"
    finally:
        w.kill()
    assert w.proc.returncode == -9
    table = stage_table(files, op)
    # while the held request is still open, and after the proxy forwarded it
    problems.append(index_problem(index_uri, s3.direct, table, q, {before, before + 1}))
    s3.quiesce()
    hits = s3.disarm()
    problems.append(index_problem(index_uri, s3.direct, table, q, {before, before + 1}))
    tally.add("wrong_answers" if any(problems) else "recovered", faults=1 + len(hits))
    assert problems == [None, None]


def _race_stage(s3: FaultyS3 | None, tmp_path):
    """(table uri, index uri, format, options, the table's rows, queries) of a table whose
    index (version 2, two segments) lacks a file: refresh and compact both have work."""
    files = parts()
    if s3 is not None:
        key = f"race/{tmp_path.name}/t"
        stage(s3, key, files, "refresh")
        index_uri = s3.uri(f"{key}/_lakevec_index/default")
        return s3.uri(key), index_uri, "parquet", s3.direct, stage_table(files, "refresh"), queries(files)
    deltalake = pytest.importorskip("deltalake")
    p = str(tmp_path / "t")
    deltalake.write_deltalake(p, files[0][0])
    build(p, None, None)
    deltalake.write_deltalake(p, files[1][0], mode="append")
    assert lakevec.open_index(p + "/_lakevec_index/default").refresh()
    deltalake.write_deltalake(p, files[2][0], mode="append")
    table = pa.concat_tables([f[0] for f in files[:3]])
    return p, p + "/_lakevec_index/default", None, None, table, queries(files[:3])


@pytest.mark.parametrize("where", ["local", pytest.param("s3", marks=pytest.mark.s3)])
def test_refresh_and_compact_race(request, tmp_path, tally, where):
    s3 = request.getfixturevalue("s3") if where == "s3" else None
    uri, index_uri, fmt, opts, table, q = _race_stage(s3, tmp_path)
    writers = {op: Writer(op, uri, index_uri, fmt, opts) for op in ("refresh", "compact")}  # both at version 2
    for w in writers.values():
        w.go()
    results = {op: w.result() for op, w in writers.items()}
    outs = {op: r[0] for op, r in results.items()}
    problem = index_problem(index_uri, opts, table, q, {3})
    won = [op for op, o in outs.items() if o == {"ok": True}]
    lost = [op for op, o in outs.items() if o is not None and o.get("error") == "CommitConflictError"]
    if len(won) == 1 and len(lost) == 1 and problem is None:
        tally.add_counts(cases=2, faults=1, recovered=1, clear_errors=1)
    else:
        tally.add_counts(cases=2, faults=1, wrong_answers=2)
    assert len(won) == 1 and len(lost) == 1, results
    assert "another writer" in outs[lost[0]]["message"], outs
    assert problem is None, problem


READER = """
import json, os, sys
import numpy as np
import lakevec
from lakevec import exceptions as E
p, index_uri, stop, seed, k = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
q = np.random.default_rng(seed).standard_normal((3, int(sys.argv[6]))).astype(np.float32)

def ids(res):
    got = [[] for _ in q]
    for a, b in zip(res.column("query").to_pylist(), res.column("id").to_pylist()):
        got[a].append(b)
    return got

truth, n, bad, errors, seen = {}, 0, [], [], set()
held = lakevec.open_index(index_uri)
print("ready", flush=True)
while not os.path.exists(stop):
    try:
        # a fresh open and a reloaded handle, in turn
        idx = lakevec.open_index(index_uri) if n % 2 else held.reload()
        tv = idx.table_version
        got = ids(idx.search(q, k=k, exact=True, stale="ignore"))
        if tv not in truth:
            t = lakevec.read_table(p, version=tv, columns=["id", "vector"])
            v = np.stack(t.column("vector").to_numpy(zero_copy_only=False))
            truth[tv] = [list(map(int, t.column("id").to_numpy()[np.argsort(((v - x) ** 2).sum(1), kind="stable")[:k]]))
                         for x in q]
        if got != truth[tv]:
            bad.append([idx.version, tv, got, truth[tv]])
        assert idx.search(q, k=k).num_rows == k * len(q)
        seen.add(idx.version)
        n += 1
    except (E.LakevecError, AssertionError) as e:
        errors.append(f"{type(e).__name__}: {e}")
print(json.dumps({"searches": n, "bad": bad[:5], "n_bad": len(bad), "errors": errors[:5], "n_errors": len(errors),
                  "versions": sorted(seen)}), flush=True)
"""


def test_readers_see_whole_versions(tmp_path, tally):
    deltalake = pytest.importorskip("deltalake")
    p = str(tmp_path / "t")
    deltalake.write_deltalake(p, batch(range(0, 1500), 0)[0])
    idx = build(p, None, None)
    stop = tmp_path / "stop"
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", READER, p, idx.uri, str(stop), str(i), str(K), str(DIM)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    try:
        for r in readers:
            assert r.stdout.readline().strip() == "ready", r.stderr.read()[-2000:]
        commits = []
        for c in range(20):
            deltalake.write_deltalake(p, batch(range(10_000 + c * 100, 10_100 + c * 100), 100 + c)[0], mode="append")
            if c % 3 == 2:
                deltalake.DeltaTable(p).delete(f"id % 13 = {c % 13}")
            commits += [idx.refresh(num_threads=1), idx.compact(num_threads=1)]
    finally:
        stop.touch()
        outs = [r.communicate(timeout=300) for r in readers]
    reports = [json.loads(o.strip().splitlines()[-1]) if o.strip() else {"died": e[-2000:]} for o, e in outs]
    searches = sum(r.get("searches", 0) for r in reports)
    n_bad = sum(r.get("n_bad", 0) for r in reports)
    died = sum("died" in r or rc.returncode != 0 for r, rc in zip(reports, readers))
    errs = sum(r.get("n_errors", 0) for r in reports)
    versions = set().union(*(r.get("versions", []) for r in reports))
    tally.add_counts(
        cases=searches, faults=sum(commits), recovered=searches - n_bad, wrong_answers=n_bad, crashes=died + errs
    )
    assert all(commits[::2]), commits  # every refresh has a new file (a compaction may have nothing to merge)
    assert died == 0 and errs == 0, reports
    assert n_bad == 0, [r["bad"] for r in reports if r.get("n_bad")]
    # the readers really ran across the commits
    assert len(versions) >= 10 and searches >= 100, (len(versions), searches)
    print(f"{searches} searches over {len(versions)} of {1 + sum(commits)} index versions")
