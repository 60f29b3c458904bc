"""Rust log records reach Python's logging: quiet by default, `LAKEVEC_LOG=debug` shows the
table opens, index files written and manifest commits."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
import logging, sys
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
import lakevec
v = np.random.default_rng(0).standard_normal((200, 8)).astype(np.float32)
t = pa.table({"id": np.arange(200), "v": pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), 8)})
pq.write_table(t, sys.argv[1] + "/t.parquet")
if len(sys.argv) > 2:  # records also reach a handler the user configured
    seen = []
    class Keep(logging.Handler):
        def emit(self, r):
            seen.append(r.name)
    logging.getLogger("lakevec").addHandler(Keep())
lakevec.build_index(sys.argv[1] + "/t.parquet", "v", progress=False)
if len(sys.argv) > 2:
    print("seen:", sorted(set(seen)))
"""


def run(tmp_path, env_level, *extra):
    env = {k: v for k, v in os.environ.items() if k != "LAKEVEC_LOG"}
    if env_level is not None:
        env["LAKEVEC_LOG"] = env_level
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), *extra], env=env, capture_output=True, text=True, timeout=120
    )


def test_debug_log_shows_io_and_commit_steps(tmp_path):
    quiet = run(tmp_path / "a", None) if (tmp_path / "a").mkdir() is None else None
    assert quiet.returncode == 0, quiet.stderr
    assert "lakevec" not in quiet.stderr
    (tmp_path / "b").mkdir()
    loud = run(tmp_path / "b", "debug", "keep")
    assert loud.returncode == 0, loud.stderr
    err = loud.stderr
    assert "lakevec.lake.table DEBUG: opened parquet table" in err
    assert "lakevec.index.store DEBUG: wrote index file" in err
    assert "lakevec.index.publish INFO: committed" in err and "writer id matches" in err
    assert "'lakevec.index.publish'" in loud.stdout
