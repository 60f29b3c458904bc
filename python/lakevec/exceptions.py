"""The exceptions lakevec raises.

Every class derives from :class:`LakevecError` (itself an :class:`Exception`), and where a
builtin fits, from that builtin too, so ``except FileNotFoundError`` and
``except lakevec.exceptions.LakevecError`` both work. They are plain Python classes defined
in this module, so they pickle by reference across processes (Ray, Spark, multiprocessing).
Messages name the file, column or row at fault and never contain credentials.

The Rust core raises them by name (``src/python/errors.rs``); ``Ctrl-C`` during a lakevec
call raises the builtin :class:`KeyboardInterrupt`.
"""

from __future__ import annotations

__all__ = [
    "LakevecError",
    "TableNotFoundError",
    "StorageError",
    "StoragePermissionError",
    "SchemaError",
    "FilterError",
    "SqlError",
    "CorruptFileError",
    "CorruptIndexError",
    "UnsupportedFeatureError",
    "VectorError",
    "InvalidArgumentError",
    "StaleIndexError",
    "CommitConflictError",
    "CommitStateUnknownError",
    "InternalError",
]


class LakevecError(Exception):
    """Base class of every lakevec error."""


class TableNotFoundError(LakevecError, FileNotFoundError):
    """A path, object or table that does not exist (also a :class:`FileNotFoundError`)."""


class StorageError(LakevecError, OSError):
    """A storage failure other than not-found or permission (network, throttling, config)."""


class StoragePermissionError(StorageError, PermissionError):
    """The object store refused the credentials or access (also a :class:`PermissionError`)."""


class SchemaError(LakevecError, ValueError):
    """A column that does not exist, or files whose schemas cannot be merged."""


class FilterError(LakevecError, ValueError):
    """A ``filter`` expression that does not parse, names an unknown column or is not boolean."""


class SqlError(LakevecError, ValueError):
    """A SQL statement that fails to parse, plan or run."""


class CorruptFileError(LakevecError):
    """A data file that is not valid Parquet (truncated, wrong magic, unreadable footer)."""


class CorruptIndexError(LakevecError):
    """An index file that fails verification (magic, version, checksum or bounds)."""


class UnsupportedFeatureError(LakevecError, NotImplementedError):
    """A table or file that needs a feature lakevec does not implement; never read wrongly."""


class VectorError(LakevecError, ValueError):
    """A bad vector: wrong dimension, NaN or infinite values, not a vector column."""


class InvalidArgumentError(LakevecError, ValueError):
    """An argument with a bad value (e.g. ``num_threads=0``, an unknown storage option)."""


class StaleIndexError(LakevecError):
    """A search with ``stale="error"`` on a table version the index does not fully cover
    (files added or rows deleted since the index's table version): call ``refresh()``."""


class CommitConflictError(LakevecError):
    """Another writer published the same index version first; reopen the index and retry."""


class CommitStateUnknownError(StorageError):
    """An index commit whose outcome is unknown: the manifest write may have landed but could
    not be read back (the store kept failing). Reopen the index to see which version it is at;
    the previous version stays readable either way."""


class InternalError(LakevecError):
    """A bug in lakevec (a Rust panic caught at the boundary). Please report it."""
