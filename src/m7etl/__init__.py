"""m7etl: the M7 ETL pipeline core and the CLI that deploys and operates it."""

import os

# m7etl does no linear algebra, and numpy's OpenBLAS starts a thread pool when it loads
# (one thread per extra core, which busy-waits for work): 0.11 of the 0.31 CPU-s a process
# pays to import pyarrow on two cores, more on more. Set before pyarrow loads numpy (every
# m7etl module that needs numpy is under this package); a value already set wins (an empty
# one does not: OpenBLAS reads it as unset).
if not os.environ.get("OPENBLAS_NUM_THREADS"):
    os.environ["OPENBLAS_NUM_THREADS"] = "1"

__version__ = "0.1.0"
