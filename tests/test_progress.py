"""Progress of long dedup and tagging calls: a callback sees the phase and rows done of the
Rust work while it runs; the default draws a tqdm bar only when a person is watching."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

import lakevec
from lakevec import _progress


@pytest.fixture(scope="module")
def debian(shared_data):
    return pq.read_table(shared_data / "text" / "debian_descriptions.parquet", columns=["description"])


def test_callbacks_see_the_rust_work_advance(debian, shared_data):
    seen: list = []
    lakevec.dedup.minhash(debian, "description", num_perm=256, progress=lambda *a: seen.append(a))
    assert seen, "no progress reported during a ~1 s call"
    assert {p for p, _, _ in seen} == {"sign"} and {t for _, _, t in seen} == {debian.num_rows}
    done = [d for _, d, _ in seen]
    assert done == sorted(done) and 0 <= done[0] and done[-1] <= debian.num_rows
    base = pq.read_table(shared_data / "ann" / "minilm_base.parquet", columns=["vector"])
    seen.clear()
    lakevec.dedup.semantic(base, 0.9, column="vector", progress=lambda *a: seen.append(a))
    assert seen and {(p, t) for p, _, t in seen} == {("search", base.num_rows)}


def test_default_is_quiet_unless_watched(debian, capsys, monkeypatch):
    t = debian.slice(0, 20000)
    assert _progress.resolve(None) is False  # pytest captures stderr: nobody watching
    lakevec.tag.rules(t, "description", regex={"py": r"\bpython\b"})
    assert "tag.rules" not in capsys.readouterr().err
    monkeypatch.setattr(_progress, "interactive", lambda: True)
    lakevec.dedup.minhash(debian, "description", num_perm=256)
    assert "dedup.minhash: sign" in capsys.readouterr().err
