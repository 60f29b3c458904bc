"""lakevec: read lake tables into Arrow, index their vector columns in place, dedup and tag
them in parallel. A Rust core (``lakevec._lakevec``) behind a typed Python API.

Quick start::

    import lakevec
    t = lakevec.Table.open("s3://bucket/lake/events", storage_options={...})
    arrow = t.to_arrow(columns=["id", "text"], filter="year >= 2020")
    counts = lakevec.sql("SELECT section, count(*) FROM t GROUP BY section", tables={"t": t})

Scaling out: ``lakevec.ray`` (Ray Data source, ``map_batches`` UDFs, Ray-task index builds
and dedup) and ``lakevec.spark`` (``mapInArrow`` functions, dedup with Spark's ``groupBy``),
imported on demand (extras ``lakevec[ray]``, ``lakevec[spark]``).

Logging: the Rust core's records go to Python's ``logging`` under the ``lakevec`` logger
(child loggers named after Rust modules, e.g. ``lakevec.index.publish``). Quiet by default
(warnings only); ``LAKEVEC_LOG=debug`` shows I/O and commit steps (table opens, index files
written and mapped, manifest commits) on stderr.
"""

from __future__ import annotations

import logging as _logging

from lakevec import dedup, embed, exceptions, tag
from lakevec._lakevec import _LOG_LEVEL, __version__
from lakevec._lakevec import BUILD_PROFILE as _BUILD_PROFILE
from lakevec._lakevec import default_num_threads as _default_num_threads
from lakevec.exceptions import LakevecError
from lakevec.index import VectorIndex, build_index, open_index
from lakevec.table import Table, read_table, sql


def _configure_logging() -> None:
    """With ``LAKEVEC_LOG`` naming a level: the ``lakevec`` logger at it, with a stderr handler
    if it has none (the variable is parsed once, by the Rust side: ``_LOG_LEVEL``, see
    ``src/python/logging.rs``)."""
    if _LOG_LEVEL is None:
        return
    logger = _logging.getLogger("lakevec")
    logger.setLevel(_LOG_LEVEL)
    if not logger.handlers:
        h = _logging.StreamHandler()
        h.setFormatter(_logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
        logger.addHandler(h)


_configure_logging()

__all__ = [
    "Table",
    "VectorIndex",
    "build_index",
    "open_index",
    "read_table",
    "sql",
    "default_num_threads",
    "exceptions",
    "dedup",
    "embed",
    "tag",
    "LakevecError",
    "__version__",
]


def default_num_threads() -> int:
    """Threads lakevec uses when a call gets no ``num_threads``: ``LAKEVEC_NUM_THREADS``,
    else ``RAYON_NUM_THREADS``, else the CPUs in this process's affinity mask."""
    return _default_num_threads()


if _BUILD_PROFILE == "debug":  # pragma: no cover - depends on how the wheel was built
    import warnings

    warnings.warn(
        "lakevec was built in debug mode and will be slow; reinstall with `pip install .` (release) for real work.",
        stacklevel=2,
    )
