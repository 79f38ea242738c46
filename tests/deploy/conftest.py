"""Fixtures of the deploy tests: moto made to execute change sets like CloudFormation, and
a whole environment for the full ``m7etl deploy`` and ``m7etl status``.

moto executes a change set differently from CloudFormation: at once, writing only the
stack's own events, without computing the outputs, and by raising (the stack left in
REVIEW_IN_PROGRESS) when a resource fails. ``cloudformation_like`` wraps moto's execution
so the events and the final status are what CloudFormation writes: one IN_PROGRESS/COMPLETE
pair per resource, the outputs, and on a failure (moto's real error, e.g. a bucket name
already taken) CREATE_FAILED with that reason, the rollback and ROLLBACK_COMPLETE. The
resources themselves are moto's, created for real.

``flow``: a fake checkout in tmp_path (cwd), its ``m7etl.toml``, versioned code bucket,
data bucket and MWAA stand-in (emulated CLI): what ``m7etl deploy`` runs end to end on.
"""

from __future__ import annotations

import io
import shutil
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner

from m7etl.cli import cli
from m7etl.deploy.upload import SOURCES, source_path
from m7etl.local.standins.mwaa import MwaaStandin

FLOW_TEMPLATE = Path(__file__).parent / "templates" / "flow.yaml"
PASSWORD = "Sentinel-Pa55word-4b7e"  # a value that must never be printed


# =============================================================================================
# moto, made to execute like CloudFormation
# =============================================================================================
def _event(stack, logical_id: str, resource_type: str, status: str, reason: str | None = None,
           physical_id: str = ""):
    from moto.cloudformation.models import Event

    return Event(stack.stack_id, stack.name, logical_id, physical_id or logical_id, resource_type,
                 status, reason, None)


def _resource_events(stack, change_set) -> list:
    events = []
    for change in change_set.changes:
        verb = {"Add": "CREATE", "Modify": "UPDATE", "Remove": "DELETE"}[change.action]
        for status in (f"{verb}_IN_PROGRESS", f"{verb}_COMPLETE"):
            events.append(_event(stack, change.logical_resource_id, change.resource_type, status))
    return events


def _roll_back(stack, change_set, exc: Exception) -> None:
    created = stack.resource_map._parsed_resources
    adds = [c for c in change_set.changes if c.action == "Add"]
    failed = next(c for c in adds if c.logical_resource_id not in created)
    done = [c for c in adds if c.logical_resource_id in created]
    reason = getattr(exc, "message", None) or str(exc)
    for c in done:
        stack.events += [_event(stack, c.logical_resource_id, c.resource_type, s)
                         for s in ("CREATE_IN_PROGRESS", "CREATE_COMPLETE")]
    stack.events += [
        _event(stack, failed.logical_resource_id, failed.resource_type, "CREATE_IN_PROGRESS"),
        _event(stack, failed.logical_resource_id, failed.resource_type, "CREATE_FAILED", reason)]
    stack._add_stack_event("ROLLBACK_IN_PROGRESS", "The following resource(s) failed to create: "
                           f"[{failed.logical_resource_id}]. Rollback requested by user.")
    stack.resource_map.delete()
    stack.events += [_event(stack, c.logical_resource_id, c.resource_type, "DELETE_COMPLETE")
                     for c in [*done, failed]]
    stack._add_stack_event("ROLLBACK_COMPLETE")
    stack.status = "ROLLBACK_COMPLETE"
    change_set.execution_status = "EXECUTE_FAILED"


@pytest.fixture
def cloudformation_like(monkeypatch):
    from moto.cloudformation.models import CloudFormationBackend

    original = CloudFormationBackend.execute_change_set

    def execute(self, change_set_name, stack_name=None):
        change_set = self.describe_change_set(change_set_name)
        stack = self.stacks[change_set.stack_id]
        try:
            original(self, change_set_name, stack_name)
        except Exception as exc:  # moto raises where CloudFormation records a failure
            _roll_back(stack, change_set, exc)
            return
        final = stack.events.pop()  # the stack's COMPLETE: the resources' events go before it
        stack.events += _resource_events(stack, change_set) + [final]
        stack._parse_template()  # moto keeps the empty template of the change set's stack
        stack.output_map = stack._create_output_map()

    monkeypatch.setattr(CloudFormationBackend, "execute_change_set", execute)


def lines(output: str) -> list[str]:
    """The output's lines with runs of spaces and table borders folded (rich pads cells)."""
    out = []
    for line in output.splitlines():
        cells = [c.strip() for c in line.replace("│", "|").replace("┃", "|").split("|")]
        text = " | ".join(c for c in cells if c)
        if text and not set(text) <= set("━─┏┓┗┛┡┩└┘┳┻╇┼╋┴┬ |"):
            out.append(" ".join(text.split()))
    return out


# =============================================================================================
# A whole environment: checkout, buckets, MWAA stand-in, m7etl.toml
# =============================================================================================
def _zip(name: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{name}.py", f"def handler(event, context):\n    return {{'fn': '{name}'}}\n")
    return buf.getvalue()


def make_checkout(root: Path) -> Path:
    """What project_root() and the upload look for: lambda_src/, src/m7etl/, dags/, the
    template (flow.yaml) and every artefact of build/ as a small file (a zip for the zips)."""
    for folder in ("lambda_src", "src/m7etl"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for source in SOURCES:
        path = source_path(source, root, root / "build")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_zip(path.stem) if path.suffix == ".zip" else
                         f"# {source.key}\n".encode())
    shutil.copyfile(FLOW_TEMPLATE, root / "templates" / "etl-pipeline-mwaa.yaml")
    return root


@dataclass
class Flow:
    name: str
    root: Path
    config: Path
    endpoint: str
    standin: MwaaStandin

    lines = staticmethod(lines)
    password = PASSWORD
    stack = property(lambda self: f"m7-etl-{self.name}")
    data_bucket = property(lambda self: f"m7-etl-data-{self.name}")
    code_bucket = property(lambda self: f"m7-code-{self.name}")
    mwaa = property(lambda self: f"m7-etl-mwaa-{self.name}")

    def client(self, service: str):
        return boto3.client(service, endpoint_url=self.endpoint, region_name="eu-west-1")

    def describe(self) -> dict:
        return self.client("cloudformation").describe_stacks(StackName=self.stack)["Stacks"][0]

    def parameters(self) -> dict[str, str]:
        return {p["ParameterKey"]: p["ParameterValue"] for p in self.describe()["Parameters"]}

    def outputs(self) -> dict[str, str]:
        return {o["OutputKey"]: o["OutputValue"] for o in self.describe().get("Outputs", [])}

    def change_sets(self) -> list[dict]:
        """This stack's (moto lists every stack's change sets whatever StackName says)."""
        summaries = self.client("cloudformation").list_change_sets(StackName=self.stack)["Summaries"]
        return [s for s in summaries if s.get("StackName") == self.stack]

    def latest_versions(self) -> dict[str, str]:
        versions = self.client("s3").list_object_versions(Bucket=self.code_bucket)
        return {v["Key"]: v["VersionId"] for v in versions.get("Versions", []) if v["IsLatest"]}

    def notifications(self) -> dict:
        answer = self.client("s3").get_bucket_notification_configuration(Bucket=self.data_bucket)
        return {k: v for k, v in answer.items() if k != "ResponseMetadata"}

    def run(self, command: str, *args: str, config: Path | None = None):
        argv = [command, "--env", self.name, "--config", str(config or self.config), *args]
        return CliRunner().invoke(cli, argv, env={"M7_SNOWFLAKE_PASSWORD": PASSWORD})

    def deploy(self, *args: str, config: Path | None = None):
        return self.run("deploy", "--skip-build", "--poll-seconds", "0.01", *args, config=config)


@pytest.fixture
def flow(tmp_path, moto_endpoint, monkeypatch, cloudformation_like):
    monkeypatch.delenv("M7_SNOWFLAKE_PASSWORD", raising=False)
    name = f"f{uuid.uuid4().hex[:10]}"
    standin = MwaaStandin(env_name=f"m7-etl-mwaa-{name}").start()
    root = make_checkout(tmp_path / "project")
    config = root / "m7etl.toml"
    config.write_text(
        f'[{name}]\nendpoint_url = "{moto_endpoint}"\nregion = "eu-west-1"\n'
        f'stack_name = "m7-etl-{name}"\ndata_bucket = "m7-etl-data-{name}"\n'
        f'code_bucket = "m7-code-{name}"\n'
        f'[{name}.endpoints]\nmwaa = "{standin.endpoint}"\nmwaa_web = "{standin.endpoint}"\n',
        encoding="utf-8")
    env = Flow(name, root, config, moto_endpoint, standin)
    s3 = env.client("s3")
    for bucket in (env.data_bucket, env.code_bucket):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_bucket_versioning(Bucket=env.code_bucket,
                             VersioningConfiguration={"Status": "Enabled"})
    monkeypatch.chdir(root)
    yield env
    standin.stop()
