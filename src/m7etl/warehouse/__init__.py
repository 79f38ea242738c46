"""gold -> Snowflake: the warehouse loader shared by the Glue job and the local runner.

- ``sql``: pure functions building the DDL and DML text, and the contract -> Snowflake types.
- ``loader``: ``load_day`` replaces one day of each dataset's table in one transaction.
- ``secrets``: the Snowflake password, read at run time from AWS Secrets Manager.
- ``connect``: a real Snowflake connection, or the local fakesnow one.
- ``job``: the Glue job (arguments -> settings -> loads); ``glue_src/gold_to_snowflake.py``
  is its thin entry point.
- ``local``: the ``m7etl run --local`` load step (fakesnow, a ``file://`` stage).
- ``bundle``: the zip of the modules the Glue job imports (``--extra-py-files``).

Every module the Glue job imports runs on Python 3.9 (AWS Glue Python shell): no
``match``, no ``zip(strict=)``, no ``datetime.UTC``; ``tests/warehouse`` checks it.
"""
