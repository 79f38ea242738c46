"""Benchmark m7etl against DuckDB and pyarrow on every dataset (``make bench``).

The bench lives in :mod:`m7etl.devtools.bench`; this script only runs it, e.g.
``python scripts/bench.py --size 20 --dataset Device,EPG --repeat 3``. See ``--help``.
"""

from __future__ import annotations

import sys

from m7etl.devtools.bench.runner import main

if __name__ == "__main__":
    sys.exit(main())
