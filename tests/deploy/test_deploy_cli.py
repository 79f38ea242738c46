"""``m7etl deploy`` end to end against the moto server: change sets, events, outcomes.

moto cannot create the real template (MWAA, Glue jobs, secrets...), so these deploy the
small templates in tests/deploy/templates/ (a topic, a bucket, SSM parameters, with the
same kinds of parameters: names, a version id, the NoEcho password, constrained values).
tests/deploy/test_stack.py checks what deploy would send for the real template.

moto also executes a change set differently from CloudFormation: at once, writing only
the stack's own events, without computing the outputs, and by raising (the stack left in
REVIEW_IN_PROGRESS) when a resource fails. The ``cloudformation_like`` fixture wraps
moto's execution so the events and the final status are what CloudFormation writes: one
IN_PROGRESS/COMPLETE pair per resource, the outputs, and on a failure (moto's real error,
e.g. a bucket name already taken) CREATE_FAILED with that reason, the rollback and
ROLLBACK_COMPLETE. The resources themselves are moto's, created for real.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner

from m7etl.cli import cli
from m7etl.cli.deploy import StackOptions, deploy_stack
from m7etl.cli.options import Context
from m7etl.deploy.changeset import Polling
from m7etl.deploy.config import load_env
from m7etl.storage.aws import Clients

TEMPLATES = Path(__file__).parent / "templates"
V1 = str(TEMPLATES / "pipeline.yaml")
V2 = str(TEMPLATES / "pipeline_v2.yaml")
PASSWORD = "Sentinel-Pa55word-4b7e"  # a value that must never be printed
# The stack part alone: the preflight, the upload and the post-deploy steps have their own tests.
FAST = ["--poll-seconds", "0.01", "--skip-preflight", "--skip-upload", "--skip-variables",
        "--skip-notifications"]


# moto executes the change sets like CloudFormation (conftest.py's cloudformation_like).
pytestmark = pytest.mark.usefixtures("cloudformation_like")


# =============================================================================================
# One environment per test (the moto server is shared by the session)
# =============================================================================================
@dataclass
class Env:
    name: str
    config: Path
    endpoint: str

    @property
    def stack(self) -> str:
        return f"m7-etl-{self.name}"

    @property
    def cf(self):
        return boto3.client("cloudformation", endpoint_url=self.endpoint, region_name="eu-west-1")

    def describe(self) -> dict:
        return self.cf.describe_stacks(StackName=self.stack)["Stacks"][0]

    def parameters(self) -> dict[str, str]:
        return {p["ParameterKey"]: p["ParameterValue"] for p in self.describe()["Parameters"]}

    def change_sets(self) -> list[dict]:
        return [s for s in self.cf.list_change_sets(StackName=self.stack)["Summaries"]
                if s.get("StackName") == self.stack]

    def deploy(self, *args: str, template: str | None = V1, password: str | None = PASSWORD,
               input: str | None = None):
        argv = ["deploy", "--env", self.name, "--config", str(self.config), *FAST, *args]
        if template is not None:
            argv += ["--template", template]
        env = {"M7_SNOWFLAKE_PASSWORD": password}
        return CliRunner().invoke(cli, argv, env=env, input=input)

    def context(self) -> Context:
        config = load_env(self.name, self.config)
        return Context(config, Clients(endpoint_url=self.endpoint, region="eu-west-1"), "text")


@pytest.fixture
def make_env(tmp_path, moto_endpoint, monkeypatch):
    monkeypatch.delenv("M7_SNOWFLAKE_PASSWORD", raising=False)

    def make(parameters: str = "") -> Env:
        name = f"t{uuid.uuid4().hex[:10]}"
        path = tmp_path / f"{name}.toml"
        path.write_text(f'[{name}]\nendpoint_url = "{moto_endpoint}"\nregion = "eu-west-1"\n'
                        f'stack_name = "m7-etl-{name}"\n{parameters}', encoding="utf-8")
        return Env(name, path, moto_endpoint)

    return make


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
# Create, update, nothing to do
# =============================================================================================
def test_create_shows_the_change_set_executes_follows_and_prints_the_outputs(make_env):
    env = make_env()
    result = env.deploy("--yes")
    assert result.exit_code == 0, result.output
    out = lines(result.output)
    assert f"Change set: create stack {env.stack} (3 resource change(s))" in out
    assert "+ Add | AlertTopic | AWS::SNS::Topic" in out
    assert "+ Add | ArtefactBucket | AWS::S3::Bucket" in out
    assert "+ Add | CodeVersionParameter | AWS::SSM::Parameter" in out
    assert f"Environment | - | {env.name}" in out
    assert "SnowflakePassword | - | (changed)" in out
    # one line per resource event, in CloudFormation's order, then the stack's status
    statuses = [(w[1], w[3]) for w in (line.split() for line in out) if len(w) > 3
                and w[3].startswith("CREATE_")]
    assert statuses == [(env.stack, "CREATE_IN_PROGRESS"),
                        ("AlertTopic", "CREATE_IN_PROGRESS"), ("AlertTopic", "CREATE_COMPLETE"),
                        ("ArtefactBucket", "CREATE_IN_PROGRESS"), ("ArtefactBucket", "CREATE_COMPLETE"),
                        ("CodeVersionParameter", "CREATE_IN_PROGRESS"),
                        ("CodeVersionParameter", "CREATE_COMPLETE"), (env.stack, "CREATE_COMPLETE")]
    assert f"Stack {env.stack} created." in out
    assert f"Airflow UI: https://{env.name}.airflow.example.com" in out
    assert ("Dashboard: https://eu-west-1.console.aws.amazon.com/cloudwatch/home#dashboards:name="
            f"m7-etl-{env.name}") in out
    assert env.describe()["StackStatus"] == "CREATE_COMPLETE"
    assert env.change_sets() == [] or all(s["ExecutionStatus"] == "EXECUTE_COMPLETE"
                                          for s in env.change_sets())
    s3 = boto3.client("s3", endpoint_url=env.endpoint, region_name="eu-west-1")
    assert s3.head_bucket(Bucket=f"m7etl-stack-{env.name}")["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert PASSWORD not in result.output


def test_an_update_shows_only_what_changes_and_keeps_the_password(make_env):
    env = make_env()
    assert env.deploy("--yes").exit_code == 0
    env.config.write_text(env.config.read_text() + f'[{env.name}.parameters]\n'
                          'EnvironmentClass = "mw1.medium"\n', encoding="utf-8")
    result = env.deploy("--yes", template=V2, password=None)  # no password: the stack's is kept
    assert result.exit_code == 0, result.output
    out = lines(result.output)
    assert f"Change set: update stack {env.stack} (1 resource change(s))" in out
    assert "+ Add | EnvironmentClassParameter | AWS::SSM::Parameter" in out
    rows = out[out.index("Parameters that change") + 1:out.index("Parameters that change") + 4]
    assert rows == ["parameter | old | new", "EnvironmentClass | mw1.small | mw1.medium",
                    "SnowflakePassword | (hidden) | (kept)"]
    assert f"Stack {env.stack} updated." in out
    params = env.parameters()
    assert params["EnvironmentClass"] == "mw1.medium"
    assert params["SnowflakePassword"] == PASSWORD  # UsePreviousValue (moto shows NoEcho values)
    ssm = boto3.client("ssm", endpoint_url=env.endpoint, region_name="eu-west-1")
    value = ssm.get_parameter(Name=f"/m7etl/{env.name}/environment-class")["Parameter"]["Value"]
    assert value == "mw1.medium"


def test_the_uploads_version_ids_update_the_stack_and_unchanged_ones_do_not(make_env, capsys,
                                                                           monkeypatch):
    """The seam the full deploy uses: deploy_stack with the upload's version ids."""
    monkeypatch.setenv("M7_SNOWFLAKE_PASSWORD", PASSWORD)
    env = make_env()
    options = StackOptions(template_path=Path(V1), yes=True, polling=Polling(0.01, 5))
    first = deploy_stack(env.context(), options, versions={"RawToSilverCodeVersion": "v1"})
    assert (first.exit_code, first.outcome) == (0, "created")
    monkeypatch.delenv("M7_SNOWFLAKE_PASSWORD")
    second = deploy_stack(env.context(), options, versions={"RawToSilverCodeVersion": "v2"})
    assert (second.exit_code, second.outcome) == (0, "updated")
    assert second.document["parameters"] == [
        {"name": "RawToSilverCodeVersion", "old": "v1", "new": "v2", "secret": False},
        {"name": "SnowflakePassword", "old": "(hidden)", "new": "(kept)", "secret": True}]
    assert env.parameters()["RawToSilverCodeVersion"] == "v2"
    events_before = len(env.cf.describe_stack_events(StackName=env.stack)["StackEvents"])
    third = deploy_stack(env.context(), options, versions={"RawToSilverCodeVersion": "v2"})
    assert (third.exit_code, third.outcome) == (0, "no changes")
    assert len(env.cf.describe_stack_events(StackName=env.stack)["StackEvents"]) == events_before
    # without an upload the pinned version is kept (UsePreviousValue), not reset to latest
    fourth = deploy_stack(env.context(), options)
    assert fourth.outcome == "no changes"
    assert env.parameters()["RawToSilverCodeVersion"] == "v2"
    assert PASSWORD not in capsys.readouterr().out


@pytest.mark.parametrize("how", ["moto", "cloudformation"])
def test_an_empty_change_set_says_no_changes_deletes_itself_and_exits_0(make_env, monkeypatch, how):
    """moto refuses an empty UPDATE at once ('No updates are to be performed.');
    CloudFormation makes the change set and fails it ('didn't contain changes'): moto does
    that too without its early check, once it compares the parameters' effective values
    (defaults included) as CloudFormation does. Both paths."""
    if how == "cloudformation":
        from moto.cloudformation.models import Stack
        from moto.cloudformation.responses import CloudFormationResponse

        monkeypatch.setattr(CloudFormationResponse, "_validate_different_update",
                            lambda *args, **kwargs: None)
        monkeypatch.setattr(Stack, "has_parameters", lambda self, other: all(
            self.stack_parameters.get(k) == v for k, v in other.items()))
    env = make_env()
    assert env.deploy("--yes").exit_code == 0
    events_before = env.cf.describe_stack_events(StackName=env.stack)["StackEvents"]
    result = env.deploy("--yes", password=None)
    assert result.exit_code == 0, result.output
    out = lines(result.output)
    assert f"No changes: stack {env.stack} is up to date (the empty change set was deleted)." in out
    assert f"Airflow UI: https://{env.name}.airflow.example.com" in out
    assert "Executing" not in result.output
    assert env.cf.describe_stack_events(StackName=env.stack)["StackEvents"] == events_before
    assert [s for s in env.change_sets() if s["Status"] == "FAILED"] == []


def test_dry_run_of_a_create_leaves_no_stack(make_env):
    env = make_env()
    result = env.deploy("--dry-run")
    assert result.exit_code == 0, result.output
    out = lines(result.output)
    assert "+ Add | AlertTopic | AWS::SNS::Topic" in out
    assert any(line.startswith("Dry run: change set m7etl-") and line.endswith(
        f"deleted; stack {env.stack} unchanged.") for line in out)
    with pytest.raises(env.cf.exceptions.ClientError, match="does not exist"):
        env.describe()


def test_dry_run_of_an_update_changes_nothing(make_env):
    env = make_env()
    assert env.deploy("--yes").exit_code == 0
    before = env.describe()
    result = env.deploy("--dry-run", template=V2)
    assert result.exit_code == 0, result.output
    assert "+ Add | EnvironmentClassParameter | AWS::SSM::Parameter" in lines(result.output)
    after = env.describe()
    assert (after["StackStatus"], after["Parameters"]) == (before["StackStatus"], before["Parameters"])
    assert env.change_sets() == [] or all(s["ExecutionStatus"] == "EXECUTE_COMPLETE"
                                          for s in env.change_sets())
    resources = env.cf.describe_stack_resources(StackName=env.stack)["StackResources"]
    assert "EnvironmentClassParameter" not in {r["LogicalResourceId"] for r in resources}


def test_a_declined_confirmation_executes_nothing(make_env):
    env = make_env()
    result = env.deploy(input="n\n")
    assert result.exit_code == 0, result.output
    assert "Execute change set m7etl-" in result.output
    assert any(line.endswith(f"deleted; stack {env.stack} unchanged.") and line.startswith(
        "Not executed: change set m7etl-") for line in lines(result.output))
    with pytest.raises(env.cf.exceptions.ClientError, match="does not exist"):
        env.describe()


def test_no_answer_to_the_confirmation_is_an_error_naming_yes(make_env):
    env = make_env()
    result = env.deploy()  # no --yes, no terminal: the confirmation reads end of file
    assert result.exit_code == 1
    assert "Execute change set m7etl-" in result.stdout
    last = result.stderr.strip()
    assert last.startswith("Error: Change set m7etl-")
    assert last.endswith("was not executed: nobody answered the confirmation (no terminal?). It "
                         "was deleted; the stack is unchanged. Pass --yes to execute without "
                         "asking, or --dry-run to only see the changes.")
    with pytest.raises(env.cf.exceptions.ClientError, match="does not exist"):
        env.describe()


def test_json_output_is_one_document_without_the_password(make_env):
    env = make_env()
    result = CliRunner().invoke(cli, ["deploy", "--env", env.name, "--config", str(env.config),
                                      "--template", V1, "--yes", "--output", "json", *FAST],
                                env={"M7_SNOWFLAKE_PASSWORD": PASSWORD})
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["stack"], doc["change_set_type"], doc["outcome"], doc["status"], doc["executed"]) == (
        env.stack, "CREATE", "created", "CREATE_COMPLETE", True)
    assert [c["logical_id"] for c in doc["changes"]] == ["AlertTopic", "ArtefactBucket",
                                                         "CodeVersionParameter"]
    assert doc["outputs"]["AirflowWebUIUrl"] == f"https://{env.name}.airflow.example.com"
    assert {"name": "SnowflakePassword", "old": None, "new": "(changed)", "secret": True} in doc[
        "parameters"]
    assert "Change set: create stack" in result.stderr  # the tables go to stderr
    assert PASSWORD not in result.stdout + result.stderr


def test_the_template_is_read_from_the_code_bucket_by_default(make_env):
    env = make_env()
    result = env.deploy("--yes", template=None)
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        f"Error: Code bucket m7-solocco-code-repository-{env.name} does not exist. Create it "
        "(versioned: a prerequisite of the guide), or set code_bucket in m7etl.toml.")
    s3 = boto3.client("s3", endpoint_url=env.endpoint, region_name="eu-west-1")
    bucket = f"m7-solocco-code-repository-{env.name}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    result = env.deploy("--yes", template=None)
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        f"Error: The template is not in the code bucket: s3://{bucket}/templates/"
        "etl-pipeline-mwaa.yaml does not exist. Run 'm7etl upload' first (it uploads the "
        "template), or pass --template templates/etl-pipeline-mwaa.yaml.")
    s3.put_object(Bucket=bucket, Key="templates/etl-pipeline-mwaa.yaml",
                  Body=Path(V1).read_bytes())
    result = env.deploy("--yes", template=None)  # TemplateURL: moto reads its own S3 object
    assert result.exit_code == 0, result.output
    assert "+ Add | ArtefactBucket | AWS::S3::Bucket" in lines(result.output)
    assert env.describe()["StackStatus"] == "CREATE_COMPLETE"


def test_an_unknown_override_is_refused_before_anything_is_sent(make_env):
    env = make_env('[PLACEHOLDER.parameters]\nEnvironmentClas = "mw1.medium"\n')
    env.config.write_text(env.config.read_text().replace("PLACEHOLDER", env.name))
    result = env.deploy("--yes")
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        f"Error: {env.config}: parameter 'EnvironmentClas' (under [{env.name}.parameters] or "
        "[default.parameters]) is not a parameter of the template. Did you mean "
        "'EnvironmentClass'? Remove it or use one of: CodeBucketName, DataBucketName, "
        "Environment, EnvironmentClass, MwaaMaxWorkers, RawToSilverCodeVersion, "
        "SnowflakePassword.")
    with pytest.raises(env.cf.exceptions.ClientError, match="does not exist"):
        env.describe()


# =============================================================================================
# Failures, ROLLBACK_COMPLETE and REVIEW_IN_PROGRESS
# =============================================================================================
def _taken_bucket(env: Env) -> str:
    """The template's bucket name, created outside the stack: the stack's creation fails."""
    s3 = boto3.client("s3", endpoint_url=env.endpoint, region_name="eu-west-1")
    name = f"m7etl-stack-{env.name}"
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    return name


def test_a_failing_resource_is_named_with_its_reason_the_rollback_and_exit_2(make_env):
    env = make_env()
    _taken_bucket(env)
    result = env.deploy("--yes")
    assert result.exit_code == 2, result.output
    out = lines(result.output)
    reason = ("The requested bucket name is not available. The bucket namespace is shared by all "
              "users of the system. Please select a different name and try again")
    assert "Failed resources (causes first):" in out
    assert f"ArtefactBucket (AWS::S3::Bucket) CREATE_FAILED: {reason}" in out
    assert f"Creation of stack {env.stack} failed and was rolled back: the stack has no resources." in out
    assert f"Fix the cause above, then run 'm7etl deploy --env {env.name} --recreate'." in out
    assert env.describe()["StackStatus"] == "ROLLBACK_COMPLETE"


def test_rollback_complete_is_explained_and_recreated_only_with_recreate(make_env):
    env = make_env()
    bucket = _taken_bucket(env)
    assert env.deploy("--yes").exit_code == 2
    failed_id = env.describe()["StackId"]
    result = env.deploy("--yes")
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        f"Error: Stack {env.stack} is in ROLLBACK_COMPLETE: its first creation failed (it has no "
        "resources), and CloudFormation cannot update such a stack. See why with 'aws "
        f"cloudformation describe-stack-events --stack-name {env.stack}', fix it, then run "
        f"'m7etl deploy --env {env.name} --recreate' to delete the stack and create it again.")
    assert env.describe()["StackId"] == failed_id
    boto3.client("s3", endpoint_url=env.endpoint, region_name="eu-west-1").delete_bucket(Bucket=bucket)
    result = env.deploy("--yes", "--recreate")
    assert result.exit_code == 0, result.output
    out = lines(result.output)
    assert (f"Stack {env.stack} is in ROLLBACK_COMPLETE (its creation failed): deleting it and "
            "creating it again (--recreate).") in out
    assert any(line.split()[1:4] == [env.stack, "AWS::CloudFormation::Stack", "DELETE_COMPLETE"]
               for line in out)
    assert f"Stack {env.stack} created." in out
    stack = env.describe()
    assert (stack["StackStatus"], stack["StackId"] != failed_id) == ("CREATE_COMPLETE", True)


def test_recreate_never_deletes_a_working_stack(make_env):
    env = make_env()
    assert env.deploy("--yes").exit_code == 0
    result = env.deploy("--yes", "--recreate")
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        f"Error: --recreate only replaces a stack whose creation failed; stack {env.stack} is "
        "CREATE_COMPLETE. Deploy without --recreate to update it in place (nothing is deleted).")
    assert env.describe()["StackStatus"] == "CREATE_COMPLETE"


def test_a_stack_left_in_review_in_progress_is_started_over(make_env):
    env = make_env()
    env.cf.create_change_set(StackName=env.stack, ChangeSetName="abandoned", ChangeSetType="CREATE",
                             TemplateBody=Path(V1).read_text(),
                             Parameters=[{"ParameterKey": "SnowflakePassword",
                                          "ParameterValue": "other"}])
    assert env.describe()["StackStatus"] == "REVIEW_IN_PROGRESS"
    result = env.deploy("--yes")
    assert result.exit_code == 0, result.output
    out = lines(result.output)
    assert (f"Stack {env.stack} is in REVIEW_IN_PROGRESS: a CREATE change set was made and never "
            "executed, so it has no resources. Deleting it and starting over.") in out
    assert f"Change set: create stack {env.stack} (3 resource change(s))" in out
    assert env.describe()["StackStatus"] == "CREATE_COMPLETE"
    assert env.parameters()["SnowflakePassword"] == PASSWORD


def test_ctrl_c_while_watching_stops_watching_says_how_to_follow_and_exits_130(make_env,
                                                                              monkeypatch):
    from m7etl.cli.render import stack as render

    def interrupted(self, event):
        raise KeyboardInterrupt

    monkeypatch.setattr(render.EventPrinter, "__call__", interrupted)
    env = make_env()
    result = env.deploy("--yes")
    assert result.exit_code == 130, result.output
    assert result.output.strip().splitlines()[-1] == (
        "Stopped watching. The deployment goes on in CloudFormation: follow it with "
        f"'m7etl status --env {env.name} --follow'.")
    assert env.describe()["StackStatus"] == "CREATE_COMPLETE"  # the deployment was not stopped


# =============================================================================================
# The password
# =============================================================================================
def test_the_password_is_prompted_hidden_on_the_first_create(make_env):
    env = make_env()
    result = env.deploy("--yes", password=None, input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert (f"Snowflake password for stack {env.stack} (kept only in the secret "
            f"m7-etl/snowflake-{env.name}):") in result.output
    assert "Repeat for confirmation:" in result.output
    assert PASSWORD not in result.output  # hide_input: CliRunner echoes visible input only
    assert env.parameters()["SnowflakePassword"] == PASSWORD


def test_without_a_password_nor_a_terminal_the_create_stops_before_any_change(make_env):
    env = make_env()
    result = env.deploy("--yes", password=None)
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        f"Error: Stack {env.stack} needs SnowflakePassword and none was given. Set "
        "$M7_SNOWFLAKE_PASSWORD (from your secret store) or run deploy in a terminal to be "
        "prompted; it is never read from a flag or m7etl.toml.")
    with pytest.raises(env.cf.exceptions.ClientError, match="does not exist"):
        env.describe()


def test_a_password_the_template_refuses_is_never_echoed(make_env):
    env = make_env()
    bad = 'Pa55"word-9c1f'
    result = env.deploy("--yes", password=bad)
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        "Error: The Snowflake password from $M7_SNOWFLAKE_PASSWORD holds a double quote (\"): "
        f"the stack keeps it as JSON in the secret m7-etl/snowflake-{env.name}, and "
        "CloudFormation cannot escape that. Use a password without double quotes, backslashes "
        "or control characters (set it in Snowflake too: ALTER USER ... SET PASSWORD), then "
        "deploy again; nothing was sent to AWS.")
    assert bad not in result.output


def test_a_new_password_is_sent_on_update_and_shown_only_as_changed(make_env):
    env = make_env()
    assert env.deploy("--yes").exit_code == 0
    result = env.deploy("--yes", password="Rotated-Pa55-0e2d")
    assert result.exit_code == 0, result.output
    assert "SnowflakePassword | (hidden) | (changed)" in lines(result.output)
    assert "Rotated-Pa55-0e2d" not in result.output
    assert env.parameters()["SnowflakePassword"] == "Rotated-Pa55-0e2d"


def test_the_password_is_in_no_log_record(make_env, caplog):
    """Every record of this process at DEBUG, botocore's wire log included, but the moto
    server's own (it runs in this process, and it is the stand-in for AWS, not the CLI)."""
    caplog.set_level(logging.DEBUG)
    env = make_env()
    assert env.deploy("--yes").exit_code == 0
    assert env.deploy("--yes", template=V2, password=None).exit_code == 0
    ours = [r for r in caplog.records if not r.name.startswith(("moto", "werkzeug"))]
    assert any(r.name.startswith("botocore") for r in ours)  # the wire log was on
    assert not [r.name for r in ours if PASSWORD in r.getMessage()]
