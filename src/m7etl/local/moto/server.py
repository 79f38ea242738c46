"""The local stack's moto server: moto, taught to create the real template and run its code.

    python -m m7etl.local.moto.server --port P --work-dir D --warehouse-dir W \\
        [--mwaa-endpoint URL] [--verbose]

In this process only, before anything is served: :func:`m7etl.local.moto.cfn_models.install`
(the CloudFormation models moto lacks, the MWAA environment registered with the MWAA
stand-in at ``--mwaa-endpoint``; an update that changes nothing is "no changes") and
:func:`m7etl.local.moto.executors.install` (Lambda
``Invoke`` and Glue runs really executed, S3 notifications delivered; the code reaches this
server as ``AWS_ENDPOINT_URL`` and MWAA at ``--mwaa-endpoint``). Then moto's own threaded
server on 127.0.0.1 answers every service at one endpoint, as ``moto_server`` does.

It prints ``moto server on http://127.0.0.1:<port>`` once it answers, and stops on SIGTERM or
SIGINT (the running invocations and job runs are killed first). ``make local-up``
(m7etl.local.stack) starts it detached with its log in ``.work/local/moto.log``.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path

READY = "moto server on "  # the line m7etl.local.stack waits for
QUIET = ("werkzeug",)  # moto's server logs every request at INFO


def port_problem(port: int) -> str | None:
    """Why 127.0.0.1:``port`` cannot be listened on (taken...), or None."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def serve(port: int, work_dir: Path, warehouse_dir: Path, mwaa_endpoint: str | None,
          stopped: threading.Event) -> int:
    """Install the models and executors, serve until ``stopped`` is set."""
    from moto.server import ThreadedMotoServer

    from m7etl.local.moto import cfn_models, executors

    if mwaa_endpoint:
        os.environ[executors.MWAA_VARIABLE] = mwaa_endpoint
    problem = port_problem(port)
    if problem:  # ThreadedMotoServer.start() would wait forever for a server that failed
        print(f"moto server: cannot listen on 127.0.0.1:{port}: {problem}", file=sys.stderr,
              flush=True)
        return 1
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, bound = server.get_host_and_port()
    endpoint = f"http://{host}:{bound}"
    os.environ[executors.ENDPOINT_VARIABLE] = endpoint
    cfn_models.install(mwaa=mwaa_endpoint)
    executors.install(warehouse_dir=warehouse_dir, mwaa_endpoint=mwaa_endpoint,
                      work_dir=work_dir, endpoint=endpoint)
    print(f"{READY}{endpoint} (work {work_dir}, warehouse {warehouse_dir}, MWAA "
          f"{mwaa_endpoint or 'none'})", flush=True)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # local-down's "where is it stuck"
    with contextlib.suppress(KeyboardInterrupt):
        # A timeout, not one long wait: the kernel may deliver SIGTERM to another thread, and
        # Python runs its handler only when the main thread wakes up.
        while not stopped.wait(0.5):
            pass
    logging.getLogger(__name__).info("stopping")
    executors.shutdown()
    server.stop()
    logging.getLogger(__name__).info("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m m7etl.local.moto.server",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=5000, help="port on 127.0.0.1 (0: any)")
    parser.add_argument("--work-dir", type=Path, required=True,
                        help="unpacked function zips, Glue run folders, their logs")
    parser.add_argument("--warehouse-dir", type=Path, required=True,
                        help="the fakesnow warehouse the Glue job loads into")
    parser.add_argument("--mwaa-endpoint", help="the MWAA stand-in (http://127.0.0.1:PORT)")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        for name in QUIET:
            logging.getLogger(name).setLevel(logging.WARNING)
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    args.work_dir.mkdir(parents=True, exist_ok=True)
    args.warehouse_dir.mkdir(parents=True, exist_ok=True)
    return serve(args.port, args.work_dir.resolve(), args.warehouse_dir.resolve(),
                 args.mwaa_endpoint.rstrip("/") if args.mwaa_endpoint else None, stopped)


if __name__ == "__main__":
    sys.exit(main())
