"""A local stand-in for MWAA, for tests (moto has no MWAA).

It speaks the two protocols the trigger code uses, on one threaded HTTP server bound to
127.0.0.1:

* MWAA's control plane, as boto3 calls it (rest-json, service model
  ``botocore/data/mwaa/2020-07-01/service-2.json``): ``POST /restapi/{Name}``
  (InvokeRestApi) and ``POST /clitoken/{Name}`` (CreateCliToken). Errors carry the
  ``x-amzn-ErrorType`` header and the modeled body (``message``/``Message``, or
  ``RestApiStatusCode`` + ``RestApiResponse`` for Airflow's own answers).
* The environment's web server CLI endpoint ``POST /aws_mwaa/cli`` (a bearer CLI token, a
  text body holding the Airflow command, a JSON answer with base64 ``stdout``/``stderr``).

Point boto3 at it with ``endpoint_url=standin.endpoint`` (and host-prefix injection off:
the real calls go to ``env.airflow.<region>.amazonaws.com``). ``WebServerHostname`` is
``127.0.0.1:<port>``, as real MWAA gives a bare host name; :meth:`MwaaStandin.http` is an
``HttpPost`` that reaches it over plain HTTP where the real code uses HTTPS (a TLS
terminator, in effect), and records the URL the code built.

Behaviour is set per test: ``rest_mode`` (accept, unsupported, denied, refuse),
``token_mode`` (accept, denied), ``cli_mode`` (accept, forbidden, fail). Runs are shared
between both paths, so a run started by one is "already there" for the other. Every
request is recorded in :attr:`requests`.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import shlex
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

DAG_RUNS = re.compile(r"^/dags/(?P<dag>[^/]+)/dagRuns$")


@dataclass
class Recorded:
    kind: str  # "invoke_rest_api", "create_cli_token", "cli"
    path: str
    headers: dict
    body: object  # parsed JSON for the control plane, text for the CLI
    url: str | None = None


@dataclass
class MwaaStandin:
    env_name: str = "m7-etl-mwaa-test"
    dags: set[str] = field(default_factory=lambda: {"m7_etl_pipeline"})
    rest_mode: str = "accept"
    token_mode: str = "accept"
    cli_mode: str = "accept"
    refusal: tuple[int, dict] = (400, {"detail": "conf is not a valid JSON object",
                                       "status": 400, "title": "Bad Request"})
    requests: list[Recorded] = field(default_factory=list)
    runs: dict[tuple[str, str], dict] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    cli_urls: list[str] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> MwaaStandin:
        standin = self

        class Handler(_Handler):
            owner = standin

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}"

    def client(self):
        """A boto3 MWAA client aimed at the stand-in."""
        import boto3
        from botocore.config import Config

        return boto3.client("mwaa", region_name="eu-west-1", endpoint_url=self.endpoint,
                            aws_access_key_id="testing", aws_secret_access_key="testing",
                            config=Config(inject_host_prefix=False, retries={"max_attempts": 1}))

    def http(self, url: str, *, headers: dict[str, str], body: bytes,
             timeout: float) -> tuple[int, bytes]:
        """An ``HttpPost`` reaching the web server endpoint (https terminated here)."""
        self.cli_urls.append(url)
        request = urllib.request.Request(url.replace("https://", "http://", 1), data=body,
                                         headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    # -- what tests assert on ----------------------------------------------------------
    def of_kind(self, kind: str) -> list[Recorded]:
        return [r for r in self.requests if r.kind == kind]

    # -- Airflow's side ----------------------------------------------------------------
    def start_run(self, dag_id: str, run_id: str, conf: dict, logical_date) -> tuple[int, dict]:
        with self.lock:
            if dag_id not in self.dags:
                return 404, {"detail": f"The Dag with ID: `{dag_id}` was not found",
                             "status": 404, "title": "Dag not found"}
            if (dag_id, run_id) in self.runs:
                return 409, {"detail": f"DAG Run with run_id: `{run_id}` already exists",
                             "status": 409, "title": "Conflict"}
            run = {"dag_run_id": run_id, "dag_id": dag_id, "logical_date": logical_date,
                   "conf": conf, "state": "queued", "run_type": "manual",
                   "triggered_by": "rest_api"}
            self.runs[(dag_id, run_id)] = run
            return 200, run


class _Handler(BaseHTTPRequestHandler):
    owner: MwaaStandin
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args) -> None:  # keep pytest output clean
        pass

    def _send(self, status: int, body: dict | bytes, headers: dict | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", secrets.token_hex(8))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _aws_error(self, status: int, code: str, body: dict) -> None:
        self._send(status, body, {"x-amzn-ErrorType": code})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        owner = self.owner
        headers = {k.lower(): v for k, v in self.headers.items()}
        path = self.path.split("?", 1)[0]
        if path == "/aws_mwaa/cli":
            owner.requests.append(Recorded("cli", path, headers, raw.decode()))
            return self._cli(headers, raw.decode())
        match = re.fullmatch(r"/(restapi|clitoken)/([^/]+)", path)
        if not match:
            return self._aws_error(404, "UnknownOperationException",
                                   {"message": "Unknown operation"})
        kind = "invoke_rest_api" if match.group(1) == "restapi" else "create_cli_token"
        body = json.loads(raw) if raw else {}
        owner.requests.append(Recorded(kind, path, headers, body))
        if not headers.get("authorization", "").startswith("AWS4-HMAC-SHA256"):
            return self._aws_error(403, "AccessDeniedException",
                                   {"Message": "Missing SigV4 signature"})
        name = unquote(match.group(2))
        if name != owner.env_name:
            return self._aws_error(404, "ResourceNotFoundException",
                                   {"message": f"Environment {name} not found"})
        if kind == "create_cli_token":
            return self._token()
        return self._rest(body)

    def _token(self) -> None:
        owner = self.owner
        if owner.token_mode == "denied":
            return self._aws_error(403, "AccessDeniedException", {
                "Message": "User is not authorized to perform: airflow:CreateCliToken"})
        token = secrets.token_urlsafe(24)
        owner.tokens.add(token)
        self._send(200, {"CliToken": token, "WebServerHostname": owner.host})

    def _rest(self, body: dict) -> None:
        owner = self.owner
        if owner.rest_mode == "unsupported":
            return self._aws_error(400, "ValidationException", {
                "message": "InvokeRestApi is not supported for this environment's Apache "
                           "Airflow version."})
        if owner.rest_mode == "denied":
            return self._aws_error(403, "AccessDeniedException", {
                "Message": "User is not authorized to perform: airflow:InvokeRestApi"})
        if owner.rest_mode == "refuse":
            status, detail = owner.refusal
            return self._airflow_error(status, detail)
        for key in ("Path", "Method"):
            if key not in body:
                return self._aws_error(400, "ValidationException",
                                       {"message": f"1 validation error: '{key}' is required"})
        match = DAG_RUNS.match(body["Path"])
        if body["Method"] != "POST" or not match:
            return self._airflow_error(404, {"detail": "Not Found", "status": 404})
        payload = body.get("Body") or {}
        if "logical_date" not in payload:
            return self._airflow_error(422, {"detail": [{"type": "missing", "loc": [
                "body", "logical_date"], "msg": "Field required"}]})
        run_id = payload.get("dag_run_id") or f"manual__{secrets.token_hex(4)}"
        status, answer = owner.start_run(match.group("dag"), run_id, payload.get("conf") or {},
                                         payload.get("logical_date"))
        if status != 200:
            return self._airflow_error(status, answer)
        self._send(200, {"RestApiStatusCode": 200, "RestApiResponse": answer})

    def _airflow_error(self, status: int, detail: dict) -> None:
        code = "RestApiServerException" if status >= 500 else "RestApiClientException"
        self._aws_error(400, code, {"RestApiStatusCode": status, "RestApiResponse": detail})

    def _cli(self, headers: dict, text: str) -> None:
        owner = self.owner
        token = headers.get("authorization", "").removeprefix("Bearer ")
        if owner.cli_mode == "forbidden" or token not in owner.tokens:
            return self._send(403, b'{"message": "Forbidden"}')
        stdout, stderr = self._run_cli(text)
        self._send(200, {"stdout": base64.b64encode(stdout.encode()).decode(),
                         "stderr": base64.b64encode(stderr.encode()).decode()})

    def _run_cli(self, text: str) -> tuple[str, str]:
        owner = self.owner
        if owner.cli_mode == "fail":
            return "", ("Traceback (most recent call last):\n  ...\n"
                        "airflow.exceptions.AirflowException: Dag is paused\n")
        args = shlex.split(text)
        if args[:2] != ["dags", "trigger"] or len(args) < 3:
            return "", f"airflow command error: unsupported command {text!r}\n"
        dag_id, opts = args[2], dict(zip(args[3::2], args[4::2], strict=False))
        run_id = opts.get("--run-id") or opts.get("-r") or f"manual__{secrets.token_hex(4)}"
        conf = json.loads(opts.get("--conf") or opts.get("-c") or "{}")
        status, answer = owner.start_run(dag_id, run_id, conf, opts.get("--logical-date"))
        if status == 404:
            return "", f"airflow.exceptions.DagNotFound: Dag id {dag_id} not found\n"
        if status == 409:
            return "", (f"airflow.exceptions.DagRunAlreadyExists: A Dag Run already exists for "
                        f"Dag {dag_id} with run id {run_id}\n")
        table = (f"conf | dag_id | dag_run_id | state\n{json.dumps(conf)} | {dag_id} | "
                 f"{run_id} | {answer['state']}\n")
        return table, ""
