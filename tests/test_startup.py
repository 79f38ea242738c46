"""What a process pays to start: numpy's BLAS thread pool is not started for m7etl.

Each case runs in a fresh interpreter (the pool is sized when numpy loads, once per
process). Threads are counted in /proc, so these run on Linux only."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="threads counted in /proc")

COUNT = "import os; print(len(os.listdir('/proc/self/task')))"


def threads_after(imports: str, **env: str) -> int:
    environ = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", f"{imports}; {COUNT}"], capture_output=True,
                         text=True, check=True, env={**environ, **env})
    return int(out.stdout.strip())


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="OpenBLAS starts no pool on one core")
def test_numpy_loaded_through_m7etl_starts_no_blas_threads_and_a_value_set_by_the_user_wins():
    assert threads_after("import numpy") > 1  # the pool m7etl avoids (one thread per extra core)
    assert threads_after("import m7etl, numpy") == 1
    assert threads_after("import m7etl, numpy", OPENBLAS_NUM_THREADS="2") == 2
