"""What a process pays to start: numpy's BLAS thread pool is not started for m7etl.

Each case runs in a fresh interpreter (the pool is sized when numpy loads, once per
process). Threads are counted in /proc, so these run on Linux only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="threads counted in /proc")

# Threads but pyarrow's jemalloc background thread (OpenBLAS's inherit the process's name).
COUNT = ("import os; print(sum(open(f'/proc/self/task/{t}/comm').read().strip() != 'jemalloc_bg_thd' "
         "for t in os.listdir('/proc/self/task')))")
POOL_SIZES = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")  # what OpenBLAS reads
LAMBDA_SRC = Path(__file__).resolve().parents[1] / "lambda_src"
# OpenBLAS sizes its pool from the CPUs this process may run on, not the machine's.
CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def threads_after(imports: str, **env: str) -> int:
    environ = {k: v for k, v in os.environ.items() if k not in POOL_SIZES}
    out = subprocess.run([sys.executable, "-c", f"{imports}; {COUNT}"], capture_output=True,
                         text=True, check=True, env={**environ, **env})
    return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(CPUS < 2, reason="OpenBLAS starts no pool on one CPU")
def test_numpy_loaded_through_m7etl_starts_no_blas_threads_and_a_value_set_by_the_user_wins():
    assert threads_after("import numpy") > 1  # the pool m7etl avoids (one thread per extra CPU)
    assert threads_after("import m7etl, numpy") == 1
    assert threads_after("import m7etl, numpy", OPENBLAS_NUM_THREADS="") == 1  # empty: unset
    assert threads_after("import m7etl, numpy", OPENBLAS_NUM_THREADS="2") == 2


@pytest.mark.skipif(CPUS < 2, reason="OpenBLAS starts no pool on one CPU")
@pytest.mark.parametrize("handler", ["raw_to_silver", "silver_to_gold"])
def test_the_deployed_handlers_load_numpy_after_m7etl(handler):
    """A handler importing pyarrow (or Powertools importing numpy) before any m7etl module
    would start the pool in every Lambda container."""
    imports = f"import sys; sys.path.insert(0, {str(LAMBDA_SRC)!r}); import {handler}"
    assert threads_after(imports, M7_DATA_BUCKET="m7-test") == 1
