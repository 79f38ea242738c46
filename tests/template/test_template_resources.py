"""Production fidelity of templates/etl-pipeline-mwaa.yaml (issue 13): the secret holds valid
JSON for every password the stack accepts, the loader uses the external stage by default,
EventBridge can reach the encrypted alert topic, the S3-event function is bounded, stateful
resources keep what they must, dead-letter queues sit only where invocations are
asynchronous, and the Glue python-shell job logs where such jobs do.

Most tests check the artefact itself (the statement, the policy, the property): no stand-in
here evaluates it. moto does not apply KMS key policies to service principals, treats
RetainExceptOnCreate as Delete, never throttles a function by its reserved concurrency and
runs no Glue job; each test says what it relies on.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from cfnlint.decode import cfn_yaml
from click.testing import CliRunner
from hypothesis import example, given, settings
from hypothesis import strategies as st

from m7etl.cli import cli
from m7etl.cli.deploy import read_password
from m7etl.deploy.config import PASSWORD_PATTERN, SnowflakeTarget, check_password, load_env
from m7etl.exceptions import ConfigurationError
from m7etl.storage.aws import Clients

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "templates" / "etl-pipeline-mwaa.yaml"
DOCS = ROOT / "docs" / "template.md"
TEMPLATE = cfn_yaml.load(str(TEMPLATE_PATH))
RESOURCES = TEMPLATE["Resources"]
PARAMETERS = TEMPLATE["Parameters"]


def resolve(node: Any, **values: str) -> Any:
    """Parameters, conditions and ``Fn::If`` resolved for the given values (defaults else);
    other intrinsic functions are left as they are (these tests do not need them)."""
    params = {k: str(v["Default"]) for k, v in PARAMETERS.items() if "Default" in v} | values

    def cond(n: Any) -> bool:
        ((fn, arg),) = n.items()
        if fn == "Fn::Not":
            return not cond(arg[0])
        if fn == "Fn::Equals":
            return str(value(arg[0])) == str(value(arg[1]))
        if fn == "Condition":
            return cond(TEMPLATE["Conditions"][arg])
        raise ValueError(fn)

    def value(n: Any) -> Any:
        if isinstance(n, dict) and list(n) == ["Ref"] and n["Ref"] in params:
            return params[n["Ref"]]
        if isinstance(n, dict) and list(n) == ["Fn::If"]:
            name, yes, no = n["Fn::If"]
            return value(yes if cond(TEMPLATE["Conditions"][name]) else no)
        if isinstance(n, dict):
            out = {k: value(v) for k, v in n.items()}
            return {k: v for k, v in out.items() if v != {"Ref": "AWS::NoValue"}}
        if isinstance(n, list):
            return [value(v) for v in n]
        return n

    return value(node)


def properties(name: str, **values: str) -> dict:
    return resolve(RESOURCES[name].get("Properties", {}), **values)


# =============================================================================================
# 1. The secret is valid JSON for every password the stack accepts
# =============================================================================================
SECRET_SUB = RESOURCES["SnowflakeSecret"]["Properties"]["SecretString"]["Fn::Sub"]


def secret_for(password: str) -> str:
    """What CloudFormation stores: Fn::Sub replaces ${SnowflakePassword} by the value as it is
    (it escapes nothing), so plain text replacement is exactly its result."""
    return SECRET_SUB.replace("${SnowflakePassword}", password)


def test_deploy_checks_the_templates_own_pattern():
    assert PARAMETERS["SnowflakePassword"]["AllowedPattern"] == PASSWORD_PATTERN
    assert PARAMETERS["SnowflakePassword"]["NoEcho"] in (True, "true")


@settings(max_examples=200, deadline=None)
@given(st.from_regex(PASSWORD_PATTERN, fullmatch=True))
@example("Pa55word with spaces, 'quotes', $dollars ${braces} and 100%")
@example("pässwörd-€-😀-\u2028-\ufffd")
def test_every_password_the_pattern_accepts_is_stored_as_valid_json(password):
    assert json.loads(secret_for(password)) == {"password": password}


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1))
@example("line\nbreak")
@example("tab\tinside")
@example('a "quoted" word')
@example("back\\slash")
@example("del\x7f")
@example("next-line\x85")
def test_any_text_is_refused_up_front_or_stored_intact(text):
    """Before: the pattern ^[^"\\\\]+$ admitted control characters, and a line break made the
    secret invalid JSON (the loader could not read its password)."""
    accepted = re.fullmatch(PARAMETERS["SnowflakePassword"]["AllowedPattern"], text) is not None
    if accepted:
        assert json.loads(secret_for(text)) == {"password": text}
        assert check_password(text, "$M7_SNOWFLAKE_PASSWORD", "test") == text
    else:
        with pytest.raises(ConfigurationError):
            check_password(text, "$M7_SNOWFLAKE_PASSWORD", "test")


JAVA_CHECK = """
import java.util.Base64; import java.util.regex.Pattern; import java.io.*;
public class Check { public static void main(String[] a) throws Exception {
  Pattern p = Pattern.compile(a[0]);
  BufferedReader r = new BufferedReader(new InputStreamReader(System.in, "UTF-8"));
  for (String l; (l = r.readLine()) != null; )
    System.out.println(p.matcher(new String(Base64.getDecoder().decode(l), "UTF-8")).matches()
                       ? "1" : "0"); } }
"""


@pytest.mark.skipif(shutil.which("java") is None, reason="no java: CloudFormation's regex dialect")
def test_java_reads_the_pattern_as_python_does(tmp_path):
    """CloudFormation evaluates AllowedPattern as a Java regex over the entire value; deploy
    and these tests use Python's re. Both must accept exactly the same strings: every
    character up to U+00FF, the Unicode line separators, an astral character, and a final
    line break (where Java's and Python's `$` differ from a full match)."""
    samples = [f"a{chr(c)}b" for c in range(256)] + ["\u2028", "\u2029", "😀", "€", "",
                                                     "ab\n", "ab\r\n"]
    source = tmp_path / "Check.java"
    source.write_text(JAVA_CHECK, encoding="utf-8")
    lines = "\n".join(base64.b64encode(s.encode("utf-8")).decode() for s in samples) + "\n"
    pattern = PARAMETERS["SnowflakePassword"]["AllowedPattern"]
    result = subprocess.run(["java", str(source), pattern], input=lines,
                            capture_output=True, text=True, timeout=60, check=True)
    java = [line == "1" for line in result.stdout.split()]
    python = [re.fullmatch(pattern, s) is not None for s in samples]
    assert java == python
    assert python.count(False) == 2 + 32 + 33 + 1 + 2  # '"', '\\', C0, DEL to C1, "", the two ends


@pytest.mark.parametrize(("password", "named"), [
    ('Pa55"word', 'a double quote (")'),
    ("Pa55\\word", "a backslash (\\)"),
    ("Pa55\nword", "a control character"),
    ("Pa55\x9bword", "a control character"),
    ("Pa55\udcffword", "bytes that are not UTF-8 text"),  # os.environ's surrogateescape
])
def test_a_refused_password_is_named_by_its_character_never_shown(password, named):
    with pytest.raises(ConfigurationError) as caught:
        check_password(password, "$M7_SNOWFLAKE_PASSWORD", "prod")
    text = str(caught.value)
    assert text.startswith(f"The Snowflake password from $M7_SNOWFLAKE_PASSWORD holds {named}")
    assert "m7-etl/snowflake-prod" in text and "nothing was sent to AWS" in text
    assert password not in text and "Pa55" not in text


def test_deploy_refuses_such_a_password_before_any_aws_call(tmp_path, monkeypatch):
    """Before: the password was checked by the change set's plan, after the preflight (AWS
    calls) and the upload. Every client m7etl or boto3 would make is recorded and refused."""
    calls: list[str] = []

    def no_aws(self, service, *args, **kwargs):
        calls.append(service)
        raise RuntimeError(f"AWS call to {service}")

    monkeypatch.setattr(Clients, "__call__", no_aws)
    monkeypatch.setattr(boto3.session.Session, "client", no_aws)
    config = tmp_path / "m7etl.toml"
    config.write_text('[t1]\nendpoint_url = "http://127.0.0.1:9"\n', encoding="utf-8")
    password = 'Pa55"word-7d2a'
    result = CliRunner().invoke(cli, ["deploy", "--env", "t1", "--config", str(config), "--yes"],
                                env={"M7_SNOWFLAKE_PASSWORD": password})
    assert calls == []
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        'Error: The Snowflake password from $M7_SNOWFLAKE_PASSWORD holds a double quote ("): the '
        "stack keeps it as JSON in the secret m7-etl/snowflake-t1, and CloudFormation cannot "
        "escape that. Use a password without double quotes, backslashes or control characters "
        "(set it in Snowflake too: ALTER USER ... SET PASSWORD), then deploy again; nothing "
        "was sent to AWS.")
    assert password not in result.output


def test_a_refused_prompt_answer_is_asked_again(monkeypatch):
    monkeypatch.delenv("M7_SNOWFLAKE_PASSWORD", raising=False)
    ctx = SimpleNamespace(config=SimpleNamespace(name="t2"), json=False)
    answers = "bad\\pw\nbad\\pw\ngood-Pa55\ngood-Pa55\n"  # each asked twice (confirmation)
    with CliRunner().isolation(input=answers) as (out, err, _):
        assert read_password(ctx, "m7-etl-t2", needed=True) == "good-Pa55"
        shown = out.getvalue().decode() + err.getvalue().decode()
    assert "holds a backslash" in shown and "bad\\pw" not in shown


def test_a_default_config_deploys_through_the_stage():
    assert SnowflakeTarget().parameters()["SnowflakeStage"] == PARAMETERS["SnowflakeStage"][
        "Default"]


# =============================================================================================
# 2. No doc shows a password on a command line
# =============================================================================================
PASSWORD_ON_A_COMMAND_LINE = re.compile(r"ParameterKey=SnowflakePassword|SnowflakePassword=\S")


@pytest.mark.parametrize("doc", [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))],
                         ids=lambda path: path.name)
def test_no_doc_shows_a_password_on_a_command_line(doc):
    hits = [f"{doc.name}:{n}" for n, line in enumerate(doc.read_text().splitlines(), 1)
            if PASSWORD_ON_A_COMMAND_LINE.search(line)]
    assert hits == []


# =============================================================================================
# 3. The COPY from the external stage is the default load
# =============================================================================================
def test_the_stack_loads_from_the_external_stage_unless_told_otherwise():
    assert PARAMETERS["SnowflakeStage"]["Default"] == "M7_GOLD_STAGE"
    args = properties("GoldToSnowflakeJob")["DefaultArguments"]
    assert args["--snowflake_stage"] == "M7_GOLD_STAGE"  # passed by default now
    assert "--snowflake_stage" not in properties("GoldToSnowflakeJob", SnowflakeStage="")[
        "DefaultArguments"]  # "" still means write_pandas


def test_the_local_stack_keeps_write_pandas_and_aws_environments_get_the_stage():
    """fakesnow cannot COPY from an s3:// stage (FINDINGS): [local] says so explicitly."""
    config = ROOT / "m7etl.toml"
    assert load_env("local", config).stack_parameters()["SnowflakeStage"] == ""
    assert load_env("test", config).stack_parameters()["SnowflakeStage"] == "M7_GOLD_STAGE"


def test_the_docs_say_what_the_stage_needs():
    text = DOCS.read_text()
    for needed in ("CREATE STORAGE INTEGRATION", "STORAGE_ALLOWED_LOCATIONS",
                   "CREATE STAGE M7_ETL.GOLD.M7_GOLD_STAGE", "s3://<data bucket>/gold/",
                   "GRANT USAGE ON INTEGRATION", "GRANT USAGE ON STAGE", "DESC INTEGRATION",
                   "STORAGE_AWS_IAM_USER_ARN", "STORAGE_AWS_EXTERNAL_ID", '"sts:ExternalId"',
                   "s3:GetObject", "s3:ListBucket", 'stage = ""'):
        assert needed in text, needed


# =============================================================================================
# 4. EventBridge can use the key of the encrypted alert topic
# =============================================================================================
def key_statements() -> list[dict]:
    return properties("PipelineKey")["KeyPolicy"]["Statement"]


def services(statement: dict) -> set[str]:
    principal = statement.get("Principal", {})
    found = principal.get("Service", []) if isinstance(principal, dict) else []
    return {f for f in (found if isinstance(found, list) else [found]) if isinstance(f, str)}


def test_eventbridge_may_use_the_key_without_a_source_condition():
    """The SNS developer guide: aws:SourceAccount and aws:SourceArn in a KMS key policy are not
    supported for EventBridge to encrypted topics; with them the Glue-failure rule's alerts
    never arrived. No stand-in evaluates key policies for service principals: checked here."""
    events = [s for s in key_statements() if "events.amazonaws.com" in services(s)]
    assert len(events) == 1
    (statement,) = events
    assert statement["Effect"] == "Allow"
    assert set(statement["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    assert "Condition" not in statement
    rule_targets = properties("GlueJobFailedRule")["Targets"]
    assert rule_targets[0]["Arn"] == {"Ref": "AlertTopic"}
    assert properties("AlertTopic")["KmsMasterKeyId"] == {"Ref": "PipelineKey"}


def test_cloudwatch_alarms_keep_their_source_account_condition():
    (statement,) = [s for s in key_statements() if "cloudwatch.amazonaws.com" in services(s)]
    assert services(statement) == {"cloudwatch.amazonaws.com"}
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref":
                                                                             "AWS::AccountId"}}}


# =============================================================================================
# 5. The S3-event function is bounded
# =============================================================================================
def test_the_s3_event_function_has_a_reserved_concurrency_parameter():
    """moto stores ReservedConcurrentExecutions but never throttles by it: the property is
    checked here, and the local stack deploys it (tests/local/test_cfn_models.py)."""
    spec = PARAMETERS["S3EventReservedConcurrency"]
    assert (spec["Type"], spec["MinValue"]) == ("Number", 0)
    assert properties("S3EventLambdaFunction")["ReservedConcurrentExecutions"] == "5"
    assert int(spec["Default"]) == 5
    assert properties("S3EventLambdaFunction", S3EventReservedConcurrency="12")[
        "ReservedConcurrentExecutions"] == "12"
    # 0 = no reservation (a reservation of 0 would throttle every notification).
    assert "ReservedConcurrentExecutions" not in properties(
        "S3EventLambdaFunction", S3EventReservedConcurrency="0")
    assert "S3EventReservedConcurrency" in DOCS.read_text()


# =============================================================================================
# 6. Stateful resources: DeletionPolicy and UpdateReplacePolicy chosen on purpose
# =============================================================================================
# What each stateful type keeps when the stack is deleted or the resource replaced.
KEEP = {"AWS::KMS::Key": ("RetainExceptOnCreate", "Retain"),
        "AWS::SecretsManager::Secret": ("RetainExceptOnCreate", "Retain"),
        "AWS::S3::Bucket": ("RetainExceptOnCreate", "Retain"),
        "AWS::SQS::Queue": ("Delete", "Delete"),
        "AWS::Logs::LogGroup": ("Delete", "Delete")}


def stateful() -> dict[str, dict]:
    return {n: r for n, r in RESOURCES.items() if r["Type"] in KEEP}


def test_every_stateful_resource_has_its_chosen_policies():
    """The resources `cfn-lint -c I` (I3011) listed without policies: 13 before this change.
    Checked here by type; `.venv/bin/cfn-lint -c I <template>` (about 7 s) agrees: no I3011."""
    assert len(stateful()) >= 12  # the key, the secret, the queue, 9 log groups
    for name, resource in stateful().items():
        got = (resource.get("DeletionPolicy"), resource.get("UpdateReplacePolicy"))
        assert got == KEEP[resource["Type"]], name


def test_the_docs_table_gives_each_stateful_resource_its_policies():
    """One table in docs/template.md: | `Id`, `Id`... | `DeletionPolicy` / `UpdateReplacePolicy` | why |."""
    documented = {}
    for line in DOCS.read_text().splitlines():
        cells = line.split("|")
        if len(cells) > 3 and " / " in cells[2]:
            policies = tuple(re.findall(r"`(\w+)`", cells[2]))
            documented.update({name: policies for name in re.findall(r"`(\w+)`", cells[1])})
    for name, resource in stateful().items():
        assert documented.get(name) == KEEP[resource["Type"]], name


# =============================================================================================
# 7. Dead-letter queues only where invocations are asynchronous
# =============================================================================================
def asynchronous_functions() -> set[str]:
    """Functions S3 or EventBridge invoke (both asynchronously), read from the template's own
    wiring; the DAG invokes the others with RequestResponse, where a DLQ never receives."""
    found = set()
    for resource in RESOURCES.values():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Lambda::Permission" and props["Principal"] in (
                "s3.amazonaws.com", "events.amazonaws.com"):
            found.add(props["FunctionName"]["Fn::GetAtt"][0])
    return found


def test_dead_letter_queues_only_on_asynchronously_invoked_functions():
    functions = {n for n, r in RESOURCES.items() if r["Type"] == "AWS::Lambda::Function"}
    with_dlq = {n for n in functions if "DeadLetterConfig" in RESOURCES[n]["Properties"]}
    assert asynchronous_functions() == {"S3EventLambdaFunction", "MaintenanceFunction"}
    assert with_dlq == asynchronous_functions()
    dag = (ROOT / "dags" / "m7_etl_pipeline.py").read_text()
    assert '"invocation_type": "RequestResponse"' in dag  # the synchronous two


# =============================================================================================
# 8. The Glue python-shell job: no Spark log settings; the logs it really writes
# =============================================================================================
PYTHON_SHELL_LOGS = ("/aws-glue/python-jobs/output", "/aws-glue/python-jobs/error")


def test_the_python_shell_job_has_no_spark_logging_arguments():
    args = properties("GoldToSnowflakeJob")["DefaultArguments"]
    assert properties("GoldToSnowflakeJob")["Command"]["Name"] == "pythonshell"
    spark_only = [a for a in args if a.startswith(("--enable-continuous", "--continuous-log",
                                                   "--enable-spark-ui", "--enable-metrics"))]
    assert spark_only == []


def test_the_dashboard_and_docs_point_at_the_python_shell_log_groups():
    body = RESOURCES["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"][0]
    widgets = json.loads(re.sub(r"\$\{[^}]+\}", "0", body))["widgets"]
    queries = [w["properties"]["query"] for w in widgets if w["type"] == "log"]
    assert len(queries) == 1
    assert "SOURCE '/aws-glue/python-jobs/error'" in queries[0]
    docs = DOCS.read_text()
    assert all(group in docs for group in PYTHON_SHELL_LOGS)
    assert not re.search(r"passed as\s+`--continuous-log-logGroup`", docs)  # the old claim
