"""Progress reporting of long calls: a tqdm bar per phase (Jupyter and terminal), a user
callback ``(phase, done, total)``, or nothing. The Rust side calls the callback about every
100 ms while it works (``python::call::cpu_progress``, the index builders' ticker)."""

from __future__ import annotations

import sys
from typing import Any


def interactive() -> bool:
    """Whether a person is likely watching: a Jupyter/IPython kernel, or stderr is a
    terminal. False in Ray and Spark workers and CI logs (stderr redirected)."""
    if "ipykernel" in sys.modules or "IPython" in sys.modules:
        try:
            from IPython import get_ipython

            if get_ipython() is not None:
                return True
        except Exception:  # noqa: BLE001 - any failure means "not a kernel"
            pass
    err = sys.stderr
    return err is not None and hasattr(err, "isatty") and err.isatty()


def resolve(progress: Any) -> Any:
    """``progress=None`` (the default of dedup and tagging calls): ``True`` when
    :func:`interactive`, else ``False``; other values as given."""
    return interactive() if progress is None else progress


def callback(progress: Any, desc: str):
    """``(cb, close)`` for ``progress``: ``True``/``None``-when-interactive a tqdm bar per
    phase (nothing without tqdm), a callable as it is, ``False`` none (``cb`` None)."""
    progress = resolve(progress)
    if progress is True:
        return tqdm_progress(desc)
    if callable(progress):
        return progress, (lambda: None)
    return None, (lambda: None)


def tqdm_progress(desc: str):
    """A progress callback drawing a tqdm bar, or None when tqdm is not installed."""
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - optional extra
        return None, lambda: None
    bars: dict[str, Any] = {}

    def cb(phase: str, done: int, total: int) -> None:
        bar = bars.get(phase)
        if bar is None:
            for b in bars.values():
                b.close()
            bar = bars[phase] = tqdm(total=total or None, desc=f"{desc}: {phase}", unit="rows", leave=False)
        if total and bar.total != total:
            bar.total = total
        bar.n = done
        bar.refresh()

    def close() -> None:
        for b in bars.values():
            b.close()

    return cb, close


def run_with_progress(progress: Any, desc: str, fn):
    """``fn(cb)`` with the progress callback of ``progress`` (see :func:`callback`); the bars
    are closed when it returns or raises."""
    cb, close = callback(progress, desc)
    try:
        return fn(cb)
    finally:
        close()
