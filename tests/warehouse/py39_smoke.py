"""Run the Glue job's code under a real Python 3.9 with the job's pinned modules.

Not a pytest module: ``test_py39.py`` runs it with ``.work/py39/bin/python`` (made by
``make py39-venv``) and the unzipped Glue bundle first on ``sys.path``. fakesnow does not
run on 3.9, so a recording connection stands in for Snowflake; everything else is real:
snowflake-connector-python 3.12.4 imports, pyarrow reads the gold file, botocore (stubbed)
answers the secret read, the SQL is built and the transaction steps run in order.

Usage: python py39_smoke.py <bundle folder> <work folder>
"""

import datetime
import sys

BUNDLE, WORK = sys.argv[1], sys.argv[2]
sys.path.insert(0, BUNDLE)

import boto3  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import snowflake.connector.pandas_tools as pandas_tools  # noqa: E402
from botocore.stub import Stubber  # noqa: E402

import m7etl.warehouse.job as job  # noqa: E402
from m7etl.core.contracts import load_registry  # noqa: E402
from m7etl.storage import LocalStorage  # noqa: E402
from m7etl.warehouse import sql  # noqa: E402
from m7etl.warehouse.loader import LOADED, load_day  # noqa: E402
from m7etl.warehouse.secrets import read_password  # noqa: E402

assert sys.version_info[:2] == (3, 9), sys.version
assert job.__file__.startswith(BUNDLE), job.__file__

ARROW = {"string": pa.string(), "integer": pa.int64(), "float": pa.float64(),
         "boolean": pa.bool_(), "date": pa.date32(), "timestamp": pa.timestamp("us")}
SAMPLE = {"string": "x", "integer": 7, "float": 1.5, "boolean": True,
          "date": datetime.date(2025, 5, 1), "timestamp": datetime.datetime(2025, 5, 1, 8)}
DAY = "20250501"
ROWS = 3


class Cursor:
    def __init__(self, log, rows):
        self.log, self.rows, self.result = log, rows, []

    def execute(self, statement):
        self.log.append(statement)
        if statement.startswith("SELECT COUNT(*)"):
            self.result = [(self.rows,)]
        elif statement.startswith("COPY INTO"):
            self.result = [("f", "LOADED", self.rows, self.rows, 1, 0, None, None, None, None)]
        else:
            self.result = []
        return self

    def fetchone(self):
        return self.result[0] if self.result else None

    def fetchall(self):
        return self.result


class Connection:
    def __init__(self, rows):
        self.log, self.rows, self.closed = [], rows, False

    def cursor(self):
        return Cursor(self.log, self.rows)

    def close(self):
        self.closed = True


registry = load_registry()
device = registry["Device"]
storage = LocalStorage(WORK)
columns = sql.gold_columns(device)
types = {"business_date": "date"}
types.update({c.name: c.type for c in device.columns})
table = pa.table({c.name: pa.array([SAMPLE[types[c.name]]] * ROWS, ARROW[types[c.name]])
                  for c in columns})
storage.write_bytes(f"gold/Device_{DAY}.parquet", b"")
pq.write_table(table, storage.describe(f"gold/Device_{DAY}.parquet"))

# COPY path.
conn = Connection(ROWS)
[result] = load_day(conn, registry, DAY, source=storage, stage="M7_GOLD_STAGE", run_id="r",
                    datasets=["Device"])
assert result.status == LOADED and result.rows_loaded == ROWS, result
steps = [s.split(" ")[0] for s in conn.log]
assert steps[-6:] == ["BEGIN", "DELETE", "COPY", "SELECT", "INSERT", "COMMIT"], steps

# write_pandas path (the connector's function replaced: no Snowflake here).
seen = {}


def fake_write_pandas(conn, df, table_name, **kwargs):
    seen["dtypes"] = {k: str(v) for k, v in df.dtypes.items()}
    seen["table"] = table_name
    return True, 1, len(df), []


pandas_tools.write_pandas = fake_write_pandas
conn = Connection(ROWS)
[result] = load_day(conn, registry, DAY, source=storage, run_id="r", datasets=["Device"])
assert result.status == LOADED and result.path == "write_pandas", result
assert seen["table"] == "M7_LOAD_DEVICE"

# Count mismatch: rolled back.
conn = Connection(ROWS - 1)
[result] = load_day(conn, registry, DAY, source=storage, stage="S", run_id="r",
                    datasets=["Device"])
assert result.status == "failed" and conn.log[-1] == "ROLLBACK", conn.log[-2:]

# Arguments and the secret.
argv = ["x", "--environment", "test", "--data_bucket", "b", "--snowflake_account", "a",
        "--snowflake_user", "u", "--snowflake_role", "r", "--snowflake_warehouse", "W",
        "--snowflake_database", "D", "--snowflake_schema", "S", "--snowflake_secret_id", "s",
        "--days", "20250501,20250502"]
config = job.config_from_args(job.parse_args(argv))
assert config.days == ("20250501", "20250502")
client = boto3.client("secretsmanager", region_name="eu-west-1", aws_access_key_id="x",
                      aws_secret_access_key="x")
with Stubber(client) as stub:
    stub.add_response("get_secret_value", {"SecretString": '{"password": "p"}'},
                      {"SecretId": "s"})
    assert read_password("s", client=client) == "p"
print("py39 smoke ok", sys.version.split()[0], seen["dtypes"]["business_date"])
