"""m7etl: the M7 ETL pipeline core and the CLI that deploys and operates it."""

__version__ = "0.1.0"
