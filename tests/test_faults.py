"""Storage faults through the S3 fault proxy (5xx/429/409 bursts, outages, connection resets,
truncated bodies, delays, PUTs whose response is lost) on every request kind of ``read_table``,
``build_index``, ``refresh`` and ``compact``: each call either recovers with the no-fault
result (exact search == brute force) or raises ``StorageError``, never ``CorruptIndexError``,
a conflict with itself, a wrong answer or a crash; after an error the index opens at the
version before or after the call, and still answers exactly."""

from __future__ import annotations

import pytest
from _faultkit import (
    STAGES,
    FaultyS3,
    K,
    attempt,
    brute,
    build,
    hit_ids,
    index_problem,
    outcome_of,
    parts,
    queries,
    stage,
    stage_table,
)

import lakevec

pytestmark = pytest.mark.s3

TABLE = "work/t"
# what each request kind looks like in the proxy (LIST prefixes are URL-encoded, objects not)
PATHS = {
    "data": "/t/part-",
    "list": "list-type=2",
    "segment": "/segments/",
    "tombstone": "/tombstones/",
    "manifest": "/manifests/",
}
# the requests each call makes (GET targets, PUT targets)
TARGETS = {
    "read_table": (("data", "list"), ()),
    "build": (("data", "list"), ("segment", "manifest")),
    "refresh": (("data", "list", "segment", "tombstone", "manifest"), ("segment", "tombstone", "manifest")),
    "compact": (("list", "segment", "tombstone", "manifest"), ("segment", "manifest")),
}
FAULTS = {
    "GET": ("5xx", "429", "reset", "truncate", "delay"),
    "PUT": ("5xx", "429", "409", "reset", "ack_then_drop", "delay", "outage"),
}
# slower faults (a request failing until its retries run out: ~5-15 s each) on fewer targets
EXTRA = {("GET", "list"): ("outage",), ("PUT", "manifest"): ("ack_then_lost_readback",)}


def _rules(method: str, target: str, fault: str, op: str) -> list[dict]:
    at = {"method": method, "path_substr": PATHS[target]}
    new_manifest = f"/manifests/{STAGES[op][1] + 1:020}.json"  # the version the call commits
    return {
        "5xx": [dict(at, action="500", times=2), dict(at, action="503_slowdown", times=2)],
        "429": [dict(at, action="429", times=3)],
        # S3's answer to concurrent conditional writes ("try again"); a conflict without a winner
        "409": [dict(at, action="status:409:ConditionalRequestConflict", times=2)],
        "reset": [dict(at, action="reset", times=2)],
        "truncate": [dict(at, action="truncate_body", times=2)],
        "delay": [dict(at, action="delay:1", times=1)],
        "ack_then_drop": [dict(at, action="ack_then_drop", times=1)],
        "outage": [dict(at, action="503_slowdown", times=1000)],
        # the manifest lands, its response is lost, and reading it back fails until retries run out
        "ack_then_lost_readback": [
            dict(at, action="ack_then_drop", times=1),
            {"method": "GET", "path_substr": new_manifest, "action": "503_slowdown", "times": 1000},
        ],
    }[fault]


CASES = [
    pytest.param(op, method, target, fault, id=f"{op}-{method}-{target}-{fault}")
    for op, targets in TARGETS.items()
    for method, kinds in zip(("GET", "PUT"), targets)
    for target in kinds
    for fault in FAULTS[method] + EXTRA.get((method, target), ())
]


class World:
    """The stored state each call starts from (snapshots), the queries and the no-fault read."""

    def __init__(self, s3: FaultyS3) -> None:
        self.s3 = s3
        self.uri, self.index_uri = s3.uri(TABLE), s3.uri(f"{TABLE}/_lakevec_index/default")
        self.files = parts()
        self.q = queries(self.files)
        self.states = {}
        for op in ("build", "compact", "refresh"):
            s3.restore(TABLE, {})
            stage(s3, TABLE, self.files, op)
            self.states[op] = s3.snapshot(TABLE)
        self.states["read_table"] = self.states["build"]
        s3.restore(TABLE, self.states["read_table"])
        self.read_ref = lakevec.read_table(self.uri, format="parquet", storage_options=s3.direct)


@pytest.fixture(autouse=True)
def fresh_segment_cache(tmp_path, monkeypatch):
    """Each case starts with an empty segment cache (an object-store index caches its segment
    files), so the segment GETs it makes reach the store and meet its faults."""
    monkeypatch.setenv("LAKEVEC_CACHE_DIR", str(tmp_path / "segment-cache"))


@pytest.fixture(scope="module")
def world(s3):
    return World(s3)


def _call(op: str, w: World, opts: dict):
    if op == "read_table":
        return lakevec.read_table(w.uri, format="parquet", storage_options=opts)
    if op == "build":
        return build(w.uri, opts)
    idx = lakevec.open_index(w.index_uri, storage_options=opts)
    return idx, getattr(idx, op)()


def _result_problem(op: str, w: World, out) -> str | None:
    """Why a call that returned gave a wrong result (``None``: it is the no-fault one)."""
    table, before = stage_table(w.files, op), STAGES[op][1]
    if op == "read_table":
        return None if out.equals(w.read_ref) else f"read {out.num_rows} rows, not the no-fault table"
    idx = out if op == "build" else out[0]
    if op != "build" and out[1] is not True:
        return f"{op} returned {out[1]}: nothing committed"
    if idx.version != before + 1:
        return f"the returned index is at version {idx.version}, not {before + 1}"
    got = hit_ids(idx.search(w.q, k=K, exact=True), len(w.q))
    if got != brute(table, w.q):
        return f"the returned index's exact search != brute force: {got}"
    return index_problem(w.index_uri, w.s3.direct, table, w.q, {before + 1}, covered=True)


@pytest.mark.parametrize(("op", "method", "target", "fault"), CASES)
def test_fault(s3, world, tally, op, method, target, fault):
    s3.restore(TABLE, world.states[op])
    s3.arm(_rules(method, target, fault, op))
    out, exc = attempt(lambda: _call(op, world, s3.faulty))
    hits = s3.disarm()
    s3.quiesce()
    outcome = outcome_of(exc)
    problem = None
    if exc is None:
        problem = _result_problem(op, world, out)
    elif op != "read_table" and outcome == "clear_errors":
        before = STAGES[op][1]
        problem = index_problem(world.index_uri, s3.direct, stage_table(world.files, op), world.q, {before, before + 1})
        # a commit whose answer was lost may have landed: a plain error would be a wrong answer
        landed = any(a == "ack_then_drop" for _, _, a in hits)
        if not problem and landed and target == "manifest" and "unknown" not in str(exc).lower():
            problem = f"an ambiguous commit must say its state is unknown, got {type(exc).__name__}: {exc}"
    if problem:
        outcome = "wrong_answers"
    tally.add(outcome, faults=len(hits))
    assert hits, f"no {method} {target} request met the fault: the case tests nothing"
    assert outcome in ("recovered", "clear_errors"), f"{type(exc).__name__}: {exc}" if problem is None else problem
