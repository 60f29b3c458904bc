"""The MinHash-LSH dedup pipeline, written once for every engine.

:mod:`lakevec.dedup` (one process), :mod:`lakevec.ray` and :mod:`lakevec.spark` share:

* the argument checks: :func:`minhash_params` (the one place the public keyword arguments,
  ``normalize`` included, become the named :class:`lakevec._lakevec.MinHashParams` the
  kernels take) and :func:`check_args` (``verify``, the LSH ``(bands, rows)``, the columns
  to read for ``keep``);
* the keep policy (:func:`keep_scores`, :func:`columns_to_read`) and the ``normalize``
  argument (:func:`normalize_steps`), also used by exact dedup;
* the signature stage (:class:`SignatureStage`: positions, signatures, keep scores of one
  batch), the band stage (:func:`band_rows`: one row per (row, band) with its bucket key)
  and the driver side (:class:`DriverComponents`: union-find fed copy and bucket edges,
  keep scores gathered by position, then the cluster columns).

The engines only move these tables around (Ray Data ``map_batches``/``groupby``, Spark
``mapInArrow``/``groupBy``) and adapt encodings (Spark carries signatures as ``binary``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakevec import _inputs, _lakevec
from lakevec.exceptions import InvalidArgumentError

NormalizeArg = bool | str | Sequence[str] | None
NORMALIZE_STEPS = ("nfkc", "lower", "whitespace")
VERIFY = ("estimate", "exact")
SKETCHES = ("oph", "classic")
#: The sketch of every MinHash function unless ``sketch=`` says otherwise.
DEFAULT_SKETCH = "classic"


# ------------------------------------------------------------------ arguments
def normalize_steps(normalize: NormalizeArg) -> tuple[bool, bool, bool]:
    """(nfkc, lowercase, whitespace) from ``True`` (all three), ``False``/``None`` (none), or
    a step name / list of them: ``"nfkc"`` (Unicode NFKC), ``"lower"`` (case-fold),
    ``"whitespace"`` (trim and collapse whitespace runs).

    Raises:
        InvalidArgumentError: an unknown step.
    """
    if normalize is True:
        return True, True, True
    if normalize is False or normalize is None:
        return False, False, False
    steps = [normalize] if isinstance(normalize, str) else list(normalize)
    bad = [s for s in steps if s not in NORMALIZE_STEPS]
    if bad:
        raise InvalidArgumentError(f"unknown normalize step(s) {bad}; use {list(NORMALIZE_STEPS)}")
    return "nfkc" in steps, "lower" in steps, "whitespace" in steps


def minhash_params(
    *, num_perm: int, ngram: int, shingle: str, seed: int, normalize: NormalizeArg, sketch: str = DEFAULT_SKETCH
) -> _lakevec.MinHashParams:
    """The native :class:`~lakevec._lakevec.MinHashParams` of the public keyword arguments
    (``normalize`` as in :func:`normalize_steps`).

    Raises:
        InvalidArgumentError: bad ``num_perm`` (1..4096), ``ngram`` (1..64), ``shingle``
        (``"word"``/``"char"``), ``sketch`` (``"oph"``/``"classic"``) or ``normalize``.
    """
    nfkc, lowercase, whitespace = normalize_steps(normalize)
    return _lakevec.MinHashParams(
        num_perm=int(num_perm),
        ngram=int(ngram),
        shingle=shingle,
        seed=int(seed),
        nfkc=nfkc,
        lowercase=lowercase,
        whitespace=whitespace,
        sketch=sketch,
    )


def lsh_params(
    threshold: float,
    num_perm: int,
    bands: int | None = None,
    rows: int | None = None,
    weights: tuple[float, float] = (0.5, 0.5),
) -> tuple[int, int]:
    """(bands, rows) of the LSH: as given, or datasketch's choice (``_optimal_param``):
    ``bands * rows <= num_perm`` minimising ``weights[0]`` x the false-positive area plus
    ``weights[1]`` x the false-negative area of the S-curve ``1 - (1 - s^rows)^bands``
    around ``threshold``. A larger false-negative weight finds more pairs near the threshold
    at the cost of more candidates to verify.

    Raises:
        InvalidArgumentError: ``threshold`` outside (0, 1], weights not summing to 1, or
        ``bands``/``rows`` that do not fit ``num_perm``.
    """
    return _lakevec.minhash_lsh_params(float(threshold), int(num_perm), bands, rows, tuple(map(float, weights)))


def columns_to_read(columns: Sequence[str], keep: str) -> list[str]:
    """The columns to read: ``columns`` plus the ``keep`` column when keep names one."""
    cols = list(columns)
    if keep not in ("first", "last", "longest") and keep not in cols:
        cols.append(keep)
    return cols


@dataclass(frozen=True)
class MinHashArgs:
    """Checked arguments of a MinHash dedup: what every engine's pipeline needs."""

    column: str
    threshold: float
    bands: int
    rows: int
    params: _lakevec.MinHashParams
    keep: str
    verify: str
    columns: list[str]  # to read: the text column, then the keep column if keep names one


def check_args(
    column: str,
    params: _lakevec.MinHashParams,
    *,
    threshold: float,
    bands: int | None,
    rows: int | None,
    weights: tuple[float, float],
    keep: str,
    verify: str = "estimate",
) -> MinHashArgs:
    """The arguments of :func:`lakevec.dedup.minhash` (and of the Ray and Spark versions)
    checked before any data is read; ``params`` from :func:`minhash_params`.

    Raises:
        InvalidArgumentError: ``verify`` not ``"estimate"``/``"exact"``, or a bad
        ``threshold``/``bands``/``rows``/``weights`` (:func:`lsh_params`).
    """
    if verify not in VERIFY:
        raise InvalidArgumentError(f"verify must be 'estimate' or 'exact', not {verify!r}")
    b, r = lsh_params(threshold, params.num_perm, bands, rows, weights)
    return MinHashArgs(column, float(threshold), b, r, params, keep, verify, columns_to_read([column], keep))


# ------------------------------------------------------------------ keep policy
def keep_scores(t: pa.Table, keep: str, text_columns: Sequence[str], positions: Any = None) -> pa.Array | None:
    """Per-row scores for the keep policy (float64, highest wins, ties to the first row;
    ``None`` for ``"first"``); ``t`` holds the text columns and, when ``keep`` names a
    column, that column. ``positions``: the rows' positions for ``"last"`` (default
    ``0..n-1``; distributed dedup passes global positions)."""
    if keep == "first":
        return None
    if keep == "last":
        return pc.cast(positions if positions is not None else pa.array(range(t.num_rows), pa.int64()), pa.float64())
    if keep == "longest":
        if not text_columns:
            raise InvalidArgumentError("keep='longest' needs the text column; use 'first', 'last' or a column")
        total = None
        for c in text_columns:
            lens = pc.cast(pc.fill_null(pc.utf8_length(pc.cast(t.column(c), pa.string())), 0), pa.float64())
            total = lens if total is None else pc.add(total, lens)
        return total
    return pc.fill_null(pc.cast(t.column(keep), pa.float64()), float("-inf"))


def score_list(t: pa.Table, keep: str, text_columns: Sequence[str]) -> list | None:
    """:func:`keep_scores` as the list the Rust kernels take."""
    s = keep_scores(t, keep, text_columns)
    return None if s is None else s.to_pylist()


# ------------------------------------------------------------------ stages
class SignatureStage:
    """Stage 1 of distributed MinHash dedup, per batch: ``pos`` (the rows' global
    positions, int64), ``signature`` and, unless ``keep="first"``, ``score`` (float64).
    Picklable as its arguments; ``threads`` (a module-level function) sizes the pool in the
    worker."""

    def __init__(self, args: MinHashArgs, threads: Callable[[], int | None]):
        self.column, self.params, self.keep, self.threads = args.column, args.params, args.keep, threads

    def __call__(self, t: pa.Table, pos: pa.Array) -> pa.Table:
        sig = _lakevec.minhash_signatures(_inputs.array(t, self.column), self.column, self.params, self.threads())
        cols = {"pos": pos, "signature": sig}
        score = keep_scores(t, self.keep, [self.column], pos)
        if score is not None:
            cols["score"] = score
        return pa.table(cols)


def band_rows(pos: pa.Array, sig: pa.Array, bands: int, rows: int, carry: pa.Array | None = None) -> pa.Table:
    """Stage 2: one row per (row, band) of rows with a signature: ``band`` (int32), ``key``
    (the band's bucket key, int64), ``pos`` and ``signature`` (``carry`` taken instead of
    ``sig`` when given: an engine's own encoding of the same signatures)."""
    br = _lakevec.minhash_band_rows(sig, bands, rows)
    idx = br.column("row")
    return pa.table(
        {
            "band": br.column("band"),
            "key": br.column("key"),
            "pos": pos.take(idx),
            "signature": (sig if carry is None else carry).take(idx),
        }
    )


def _int64(a: Any) -> pa.Array:
    if isinstance(a, pa.ChunkedArray):
        a = a.combine_chunks()
    return a if isinstance(a, pa.Array) else pa.array(np.asarray(a, np.int64))


class DriverComponents:
    """Stage 3, on the driver: a union-find over ``n`` row positions (4 bytes a row) fed
    edges batch by batch, and the keep scores (8 bytes a row, unless ``keep="first"``)
    gathered by position."""

    def __init__(self, n: int, keep: str):
        self.components = _lakevec.Components(n)
        self.scores = np.zeros(n) if keep != "first" else None

    def add_edges(self, a: Any, b: Any) -> None:
        """Join rows ``a[i]`` and ``b[i]`` (positions; Arrow or numpy)."""
        self.components.add(_int64(a), _int64(b))

    def add_copies(self, rep: Any, pos: Any) -> None:
        """Join each row ``pos[i]`` to ``rep[i]``, the first row with its identical
        signature (rows that are their own representative are skipped)."""
        rep, pos = _int64(rep), _int64(pos)
        dup = pc.not_equal(pos, rep)
        self.add_edges(rep.filter(dup), pos.filter(dup))

    def add_scores(self, pos: Any, score: Any) -> None:
        """Record the keep scores of the rows at ``pos``."""
        self.scores[np.asarray(pos, np.int64)] = np.asarray(score, np.float64)

    def clusters(self) -> pa.Table:
        """``cluster_id``, ``cluster_size``, ``is_representative`` of every position."""
        return self.components.clusters(None if self.scores is None else self.scores.tolist())
