"""The REST route of the local MWAA stand-in on the Airflow database the CLI route uses.

:class:`DatabaseRest` answers the Airflow 3.0.6 REST calls m7etl and the S3-event function
make through ``InvokeRestApi`` from the stand-in's real metadata database (SQLite, read
directly; writes go through the real CLI, which keeps Airflow's own rules), so a run started
on one route is seen on the other: ``POST``/``GET`` dagRuns (one, and the DAG's list),
taskInstances (mapped instances included) and the batch list, ``GET /connections/{id}``
(type and host only: the password and extra are never sent) and variables (through the CLI:
the database encrypts them with its Fernet key). The shapes and ``detail`` texts are those
of ``api_fastapi/core_api`` (``DAGRunResponse``, ``TaskInstanceResponse``...). Not modelled:
``dag_versions`` and ``note`` (empty), ``triggered_by`` of a REST-created run (``cli``: the
CLI creates it), query parameters and paging.

A mixin of :class:`m7etl.local.standins.mwaa_runs.LocalMwaa`: it uses ``airflow_home``,
``cli`` (an :class:`~m7etl.local.standins.airflow_cli.AirflowCli`) and ``sync_dags``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sqlite3
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from m7etl.local.standins.mwaa import DAG_RUN, DAG_RUNS, TASKS, TASKS_BATCH, VARIABLE, _missing

log = logging.getLogger("m7etl.local.standins.mwaa")
CONNECTION = re.compile(r"^/connections/(?P<id>[^/]+)$")


def iso(value: str | None) -> str | None:
    """A datetime as SQLite holds Airflow's (``2025-05-01 10:00:00.123456``, UTC) -> ISO Z."""
    if not value:
        return None
    text = value.replace(" ", "T")
    return text if text.endswith(("Z", "+00:00")) else text + "Z"


def _text(value: Any) -> Any:
    """A UUID column as SQLite returns it (16 bytes) -> its canonical text."""
    if isinstance(value, bytes) and len(value) == 16:
        import uuid

        return str(uuid.UUID(bytes=value))
    return value.decode() if isinstance(value, bytes) else value


def _variable(key: str, value: str) -> dict:
    return {"key": key, "value": value, "description": None, "is_encrypted": True}


class DatabaseRest:
    """The REST routes on the database (see the module)."""

    # -- the REST route, on the same database ------------------------------------------------
    def airflow_rest(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        try:
            return self._airflow_rest(method, path, body if isinstance(body, dict) else {})
        except Exception as exc:  # Airflow's answer to an unhandled error: 500 and a detail
            log.exception("REST %s %s", method, path)
            return 500, {"detail": f"{type(exc).__name__}: {exc}"}

    def _airflow_rest(self, method: str, path: str, body: dict) -> tuple[int, Any]:
        if (match := DAG_RUNS.match(path)) and method == "POST":
            return self._post_run(match.group("dag"), body)
        if (match := DAG_RUNS.match(path)) and method == "GET":
            runs = [self._run_doc(r) for r in self._rows(
                "SELECT * FROM dag_run WHERE dag_id = ? ORDER BY run_after", match.group("dag"))]
            return 200, {"dag_runs": runs, "total_entries": len(runs)}
        if (match := DAG_RUN.match(path)) and method == "GET":
            dag_id, run_id = match.group("dag"), unquote(match.group("run"))
            rows = self._rows("SELECT * FROM dag_run WHERE dag_id = ? AND run_id = ?", dag_id,
                              run_id)
            if not rows:
                return 404, {"detail": f"The DagRun with dag_id: `{dag_id}` and run_id: "
                                       f"`{run_id}` was not found"}
            return 200, self._run_doc(rows[0])
        if (match := TASKS.match(path)) and method == "GET":
            dag_id, run_id = match.group("dag"), unquote(match.group("run"))
            if not self._rows("SELECT dag_id FROM dag WHERE dag_id = ? AND NOT is_stale", dag_id):
                return 404, {"detail": f"DAG with dag_id: `{dag_id}` was not found"}
            if not self._rows("SELECT id FROM dag_run WHERE dag_id = ? AND run_id = ?", dag_id,
                              run_id):
                return 404, {"detail": f"DagRun with run_id: `{run_id}` was not found"}
            return 200, self._tasks_doc([(dag_id, run_id)])
        if path == TASKS_BATCH and method == "POST":
            keys = [(r["dag_id"], r["run_id"]) for r in self._rows(
                "SELECT dag_id, run_id FROM dag_run")
                if (not body.get("dag_ids") or r["dag_id"] in body["dag_ids"])
                and (not body.get("dag_run_ids") or r["run_id"] in body["dag_run_ids"])]
            return 200, self._tasks_doc(keys)
        if (match := CONNECTION.match(path)) and method == "GET":
            return self._connection(unquote(match.group("id")))
        if (match := VARIABLE.match(path)) or path == "/variables":
            return self._variable_db(method, unquote(match.group("key")) if match else None, body)
        return super().airflow_rest(method, path, body)

    def _post_run(self, dag_id: str, body: dict) -> tuple[int, Any]:
        if missing := _missing(body, ("logical_date",), (
                "dag_run_id", "logical_date", "conf", "note", "run_after",
                "data_interval_start", "data_interval_end")):
            return missing
        self.sync_dags(force=True)
        if not self._rows("SELECT dag_id FROM dag WHERE dag_id = ? AND NOT is_stale", dag_id):
            return 404, {"detail": f"DAG with dag_id: '{dag_id}' not found"}
        run_id = body.get("dag_run_id") or f"manual__{datetime.now(UTC).isoformat()}"
        if self._rows("SELECT id FROM dag_run WHERE dag_id = ? AND run_id = ?", dag_id, run_id):
            return 409, {"detail": {
                "reason": "Unique constraint violation", "statement": "INSERT INTO dag_run ...",
                "orig_error": "UNIQUE constraint failed: dag_run.dag_id, dag_run.run_id",
                "message": "Serious error when handling your request. Check logs for more "
                           "details"}}
        args = ["dags", "trigger", dag_id, "--run-id", run_id,
                "--conf", json.dumps(body.get("conf") or {})]
        if body.get("logical_date"):
            args += ["--logical-date", body["logical_date"]]
        done = self.cli.run(args)
        rows = self._rows("SELECT * FROM dag_run WHERE dag_id = ? AND run_id = ?", dag_id, run_id)
        if done.returncode != 0 or not rows:
            last = (done.stderr.strip().splitlines() or ["?"])[-1]
            return 400, {"detail": last}
        return 200, self._run_doc(rows[0])

    def _variable_db(self, method: str, key: str | None, body: dict) -> tuple[int, Any]:
        """Variables through the real CLI (the database encrypts them with its Fernet key)."""
        key = key or body.get("key")
        not_found = 404, {"detail": f"The Variable with key: `{key}` was not found"}
        if method not in ("GET", "PATCH", "POST") or (method == "POST" and key is None):
            return 405, {"detail": "Method Not Allowed"}
        if method != "GET":
            if missing := _missing(body, ("key", "value"), ("key", "value", "description")):
                return missing
            if method == "PATCH" and body["key"] != key:
                return 400, {"detail": "Invalid body, key from request body doesn't match uri "
                                       "parameter"}
        got = self.cli.run(["variables", "get", key])
        exists = got.returncode == 0
        if method == "GET":
            return (200, _variable(key, got.stdout.rstrip("\n"))) if exists else not_found
        if method == "PATCH" and not exists:
            return not_found
        if method == "POST" and exists:
            return 409, {"detail": f"The Variable with key: `{key}` already exists"}
        value = body["value"] if isinstance(body["value"], str) else json.dumps(body["value"])
        done = self.cli.run(["variables", "set", key, value])
        if done.returncode != 0:
            return 500, {"detail": done.stderr.strip()[-300:]}
        return (201 if method == "POST" else 200), _variable(key, value)

    def _connection(self, conn_id: str) -> tuple[int, Any]:
        rows = self._rows("SELECT * FROM connection WHERE conn_id = ?", conn_id)
        if not rows:
            return 404, {"detail": f"The Connection with connection_id: `{conn_id}` was not found"}
        row = rows[0]  # password and extra are never sent (Airflow redacts; they may be secret)
        return 200, {"connection_id": conn_id, "conn_type": row["conn_type"],
                     "description": row["description"], "host": row["host"],
                     "login": row["login"], "schema": row["schema"], "port": row["port"],
                     "password": None, "extra": None}

    def _run_doc(self, row: dict) -> dict:
        """Airflow 3.0.6's ``DAGRunResponse`` from a ``dag_run`` row."""
        conf = row.get("conf")
        if isinstance(conf, (str, bytes)):
            with contextlib.suppress(ValueError):
                conf = json.loads(conf)
        return {"dag_run_id": row["run_id"], "dag_id": row["dag_id"],
                **{k: iso(row.get(k)) for k in (
                    "logical_date", "queued_at", "start_date", "end_date", "data_interval_start",
                    "data_interval_end", "run_after", "last_scheduling_decision")},
                "run_type": row.get("run_type"), "state": row.get("state"),
                "triggered_by": (row.get("triggered_by") or "").lower() or None,
                "conf": conf if isinstance(conf, dict) else None, "note": None,
                "dag_versions": [], "bundle_version": row.get("bundle_version")}

    def _tasks_doc(self, keys: list[tuple[str, str]]) -> dict:
        """``TaskInstanceCollectionResponse`` of these runs (mapped instances included)."""
        rows = []
        for dag_id, run_id in keys:
            run = self._rows("SELECT logical_date, run_after FROM dag_run WHERE dag_id = ? AND "
                             "run_id = ?", dag_id, run_id)
            for ti in self._rows("SELECT * FROM task_instance WHERE dag_id = ? AND run_id = ? "
                                 "ORDER BY priority_weight DESC, task_id, map_index",
                                 dag_id, run_id):
                rows.append({
                    "id": _text(ti["id"]), "task_id": ti["task_id"], "dag_id": dag_id,
                    "dag_run_id": run_id, "map_index": ti["map_index"],
                    "logical_date": iso(run[0]["logical_date"]) if run else None,
                    "run_after": iso(run[0]["run_after"]) if run else None,
                    **{k: iso(ti.get(k)) for k in ("start_date", "end_date")},
                    "queued_when": iso(ti.get("queued_dttm")),
                    "scheduled_when": iso(ti.get("scheduled_dttm")),
                    **{k: ti.get(k) for k in (
                        "duration", "state", "try_number", "max_tries", "hostname", "unixname",
                        "pool", "pool_slots", "queue", "priority_weight", "operator", "pid",
                        "executor", "rendered_map_index")},
                    "executor_config": "{}",  # a pickle in the database; Airflow shows "{}"
                    "task_display_name": ti.get("task_display_name") or ti["task_id"],
                    "note": None, "rendered_fields": {}, "trigger": None, "triggerer_job": None,
                    "dag_version": None})
        return {"task_instances": rows, "total_entries": len(rows)}

    # -- the database ----------------------------------------------------------------------
    def _rows(self, sql: str, *args) -> list[dict]:
        with contextlib.closing(sqlite3.connect(self.airflow_home / "airflow.db",
                                                timeout=30)) as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute(sql, args)]

    def _execute_sql(self, sql: str, *args) -> None:
        with contextlib.closing(sqlite3.connect(self.airflow_home / "airflow.db",
                                                timeout=30)) as db, db:
            db.execute(sql, args)
