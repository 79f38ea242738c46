"""Execute one queued DAG run of the MWAA stand-in's Airflow, as MWAA's workers would.

The run was created by ``airflow dags trigger`` (the CLI-token route) or by the stand-in for
``InvokeRestApi``: it is ``queued`` in the stand-in's metadata database with its own id and
conf. Airflow's scheduler would start it; here ``DAG.test``'s in-process loop runs it (tasks
in this process, deferred triggers inline, the XComs and states in the same database), with
two seams: the loop takes *this* run instead of creating a ``manual__`` one, and it does not
clear other runs' task instances (``DAG.test`` clears by logical date, and a null one would
clear every run). Everything else is Airflow's own code path.

Run by path, not as ``-m``: it imports Airflow only, so the DAG's ``m7etl`` modules are the
ones the upload put under ``dags/m7etl/`` (the stand-in's sitecustomize hides any other), as on
MWAA, where m7etl is not installed.

    python mwaa_dagrun.py DAG_ID RUN_ID    (the Airflow settings in the environment)

Exit 0: the run succeeded; 1: it failed; 3: it could not run (no such run, the DAG does not
parse); a line ``m7etl-run: <state>`` on stdout says which.
"""

from __future__ import annotations

import sys

EXIT_SUCCESS, EXIT_FAILED, EXIT_CANNOT_RUN = 0, 1, 3


def run(dag_id: str, run_id: str) -> int:
    from airflow.models import dag as scheduler_dag
    from airflow.models.dagrun import DagRun
    from airflow.utils import timezone
    from airflow.utils.cli import get_dag
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from sqlalchemy import select

    with create_session() as session:
        found = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id,
                                                    DagRun.run_id == run_id))
        if found is None:
            print(f"m7etl-run: missing (no run {run_id} of {dag_id})", flush=True)
            return EXIT_CANNOT_RUN
        logical_date = found.logical_date

    def this_run(*, dag, session, **_ignored):
        """``_get_or_create_dagrun``, replaced: the queued run, started as the scheduler does."""
        dag_run = session.scalar(select(DagRun).where(DagRun.dag_id == dag.dag_id,
                                                      DagRun.run_id == run_id))
        dag_run.state = DagRunState.RUNNING
        dag_run.start_date = timezone.utcnow()
        session.commit()
        return dag_run

    scheduler_dag._get_or_create_dagrun = this_run
    scheduler_dag.DAG.clear_dags = classmethod(lambda cls, *args, **kwargs: 0)
    try:
        dag = get_dag(None, dag_id)
    except Exception as exc:  # Airflow's own "could not be found; ... failed to parse"
        print(f"m7etl-run: unparsed ({exc})", flush=True)
        _fail(dag_id, run_id)
        return EXIT_CANNOT_RUN
    dag_run = dag.test(logical_date=logical_date)
    state = str(dag_run.state.value if hasattr(dag_run.state, "value") else dag_run.state)
    print(f"m7etl-run: {state}", flush=True)
    return EXIT_SUCCESS if state == "success" else EXIT_FAILED


def _fail(dag_id: str, run_id: str) -> None:
    """A run whose DAG cannot be loaded ends failed, as the scheduler fails it."""
    from airflow.models.dagrun import DagRun
    from airflow.utils import timezone
    from airflow.utils.session import create_session
    from sqlalchemy import update

    with create_session() as session:
        session.execute(update(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
                        .values(state="failed", end_date=timezone.utcnow()))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__.split("\n\n")[3], file=sys.stderr)
        sys.exit(2)
    sys.exit(run(sys.argv[1], sys.argv[2]))
