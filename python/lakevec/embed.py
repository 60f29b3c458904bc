"""Text vectors without a model download."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from lakevec import _inputs, _lakevec

__all__ = ["hashing"]


def hashing(
    texts: Any,
    dim: int = 256,
    ngram: tuple[int, int] = (1, 2),
    analyzer: str = "word",
    norm: str | None = "l2",
    *,
    lowercase: bool = True,
    alternate_sign: bool = True,
    num_threads: int | None = None,
) -> pa.FixedSizeListArray:
    """Feature-hashing vectors of texts: scikit-learn's ``HashingVectorizer(n_features=dim,
    ngram_range=ngram, analyzer=analyzer, norm=norm, alternate_sign=True)`` computed in Rust
    (Weinberger et al., ICML 2009).

    Tokens: words of 2+ word characters (scikit-learn's ``token_pattern``) joined into word
    n-grams, or character n-grams after collapsing whitespace runs; lower-cased first. Each
    token is hashed with MurmurHash3 x86_32 (seed 0) to a signed 32-bit ``h`` and adds
    ``+1`` (``h >= 0``) or ``-1`` to column ``|h| mod dim``; rows are then L2/L1-normalised.

    Args:
        texts: a string/binary Arrow array or chunked array, a one-column table, a list of
            strings, or a pandas/polars Series.
        dim: vector length (``n_features``).

    Returns:
        ``pyarrow.FixedSizeListArray`` of float32, one row per text (zeros for a null or
        token-less text): a vector column to index, dedup or tag.
    """
    arr = _to_array(texts)
    return _lakevec.hashing_embed(
        arr, "texts", int(dim), int(ngram[0]), int(ngram[1]), analyzer, norm, lowercase, alternate_sign, num_threads
    )


def _to_array(texts: Any) -> pa.Array:
    if isinstance(texts, pa.ChunkedArray):
        return texts.combine_chunks()
    if isinstance(texts, pa.Array):
        return texts
    if isinstance(texts, (pa.Table, pa.RecordBatch)):
        return _inputs.array(pa.table(texts), texts.column_names[0])
    if hasattr(texts, "to_arrow"):  # polars Series
        return pa.array(texts.to_arrow())
    if type(texts).__module__.startswith("pandas"):
        return pa.array(texts, from_pandas=True)
    return pa.array(list(texts), pa.string())
