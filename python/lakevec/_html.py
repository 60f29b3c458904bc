"""Rich Jupyter displays (``_repr_html_``) of :class:`lakevec.Table` and
:class:`lakevec.VectorIndex`: small tables of what the objects already know (metadata, no
data read), every value HTML-escaped. ``repr()`` stays one line."""

from __future__ import annotations

import html
from typing import Any

_STYLE = "border-collapse:collapse;font-size:12px;text-align:left"
_CELL = "padding:2px 8px;border-bottom:1px solid #ddd;text-align:left"


def _rows(pairs: list[tuple[str, Any]]) -> str:
    return "".join(
        f'<tr><th style="{_CELL}">{html.escape(str(k))}</th><td style="{_CELL}">{v}</td></tr>' for k, v in pairs
    )


def _bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return str(n)


def _bar(done: int, total: int) -> str:
    """A horizontal bar of ``done / total`` with the numbers beside it."""
    frac = 0.0 if total <= 0 else min(1.0, done / total)
    return (
        f'<div style="display:inline-block;width:120px;height:10px;background:#eee;vertical-align:middle">'
        f'<div style="width:{frac * 100:.1f}%;height:10px;background:#4c8bf5"></div></div> '
        f"{done:,} / {total:,} rows ({frac:.1%})"
    )


def _schema(schema) -> str:
    items = "".join(
        f"<li><code>{html.escape(f.name)}</code>: {html.escape(str(f.type))}</li>" for f in list(schema)[:40]
    )
    more = f"<li>... {len(schema) - 40} more</li>" if len(schema) > 40 else ""
    return f'<ul style="margin:0;padding-left:16px">{items}{more}</ul>'


def table_html(t) -> str:
    """``lakevec.Table``: URI, format, version, rows, files (count and bytes), schema."""
    files = t.files()
    size = sum(files.column("size").to_pylist()) if files.num_rows else 0
    pairs = [
        ("uri", html.escape(t.uri)),
        ("format", html.escape(t.format)),
        ("version", html.escape(str(t.version))),
        ("rows", f"{t.num_rows:,}"),
        ("files", f"{files.num_rows:,} ({_bytes(size)})"),
        ("schema", _schema(t.schema)),
    ]
    return f'<div><b>lakevec.Table</b><table style="{_STYLE}">{_rows(pairs)}</table></div>'


def index_html(idx) -> str:
    """``lakevec.VectorIndex``: URI, kind, metric, dim, rows, segments, sidecar bytes, the
    versions, and how much of the table's latest version it covers (a bar; the table's
    metadata is read for it, an error is shown in its place)."""
    st = idx.stats()
    try:
        cov = idx.coverage()
        indexed = sum(cov.column("indexed_rows").to_pylist())
        rows, deleted = cov.column("rows").to_pylist(), cov.column("deleted_rows").to_pylist()
        live = sum((r or 0) - (d or 0) for r, d in zip(rows, deleted))
        coverage = _bar(indexed, live)
    except Exception as e:  # noqa: BLE001 - a display must not raise
        coverage = html.escape(f"unavailable: {type(e).__name__}: {e}")
    pairs = [
        ("uri", html.escape(idx.uri)),
        ("kind", html.escape(str(st["params"].get("index_type", idx.index_type)))),
        ("metric / dim", f"{html.escape(idx.metric)} / {idx.dim}"),
        ("column", html.escape(idx.column)),
        ("rows", f"{st['rows']:,} live ({st['tombstones']:,} tombstones)"),
        ("segments", f"{st['segments']:,} ({_bytes(st['sidecar_bytes'])} on disk)"),
        ("versions", f"index {idx.version}, table {html.escape(str(idx.table_version))}"),
        ("coverage", coverage),
    ]
    return f'<div><b>lakevec.VectorIndex</b><table style="{_STYLE}">{_rows(pairs)}</table></div>'
