"""AWS Glue Python shell job ``gold_to_snowflake``: load gold files into Snowflake.

Thin entry point: the logic lives in ``m7etl.warehouse`` (shipped to the job as
``--extra-py-files s3://<code bucket>/glue/m7etl_glue.zip``), shared with the local runner.
Arguments are described in ``m7etl.warehouse.job`` and docs/warehouse.md. Runs on
Python 3.9 (Glue Python shell) and on the project's Python.

    python glue_src/gold_to_snowflake.py --environment test --data_bucket ... --days 20250501
"""

import sys

from m7etl.warehouse.job import main

if __name__ == "__main__":
    sys.exit(main(sys.argv))
