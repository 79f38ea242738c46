"""The stack deploy's pure half: the template, its parameters, the requests, the decisions.

Everything here is data in, data out (no client, no clock), so the rules a deploy follows
are tested as data: which parameters are sent and how (a value, or ``UsePreviousValue``),
which capabilities the template needs, what a stack's status allows, what a change set
holds, which events are new, why a deployment failed and what to do next. The AWS calls
are in :mod:`m7etl.deploy.changeset` and :mod:`m7etl.deploy.events`.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import yaml

from m7etl.deploy.config import PASSWORD_ENV, EnvConfig
from m7etl.exceptions import DeployError

TEMPLATE_KEY = "templates/etl-pipeline-mwaa.yaml"  # where m7etl upload puts the template
TEMPLATE_BODY_LIMIT = 51_200  # bytes CreateChangeSet accepts as TemplateBody
PASSWORD_PARAMETER = "SnowflakePassword"
# The template's parameters pinning an S3 object version (the upload gives the values).
VERSION_PARAMETERS = ("RawToSilverCodeVersion", "SilverToGoldCodeVersion", "S3EventCodeVersion",
                      "MaintenanceCodeVersion", "LayerCodeVersion", "RequirementsVersion")
HEADLINE_OUTPUTS = ("AirflowWebUIUrl", "DashboardUrl")
STACK_TYPE = "AWS::CloudFormation::Stack"
AWS_HOSTS = (".amazonaws.com", ".amazonaws.com.cn")
# IAM resources whose custom name makes CloudFormation ask for CAPABILITY_NAMED_IAM.
NAMED_IAM = {"AWS::IAM::Role": "RoleName", "AWS::IAM::User": "UserName",
             "AWS::IAM::Group": "GroupName", "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
             "AWS::IAM::InstanceProfile": "InstanceProfileName"}
# How CloudFormation says a change set is empty (CreateChangeSet, or the change set's reason).
NO_CHANGE_REASONS = ("didn't contain changes", "No updates are to be performed")
CREATE_FAILED_STATES = {"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED"}
UPDATABLE_STATES = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE",
                    "IMPORT_COMPLETE", "IMPORT_ROLLBACK_COMPLETE"}
SUCCESS_STATES = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"}
CANCELLED = ("Resource creation cancelled", "Resource update cancelled")


def follow_command(env: str) -> str:
    return f"m7etl status --env {env} --follow"


# =============================================================================================
# The template
# =============================================================================================
class _TemplateLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short forms (``!Ref``, ``!Sub``...) read as their long form."""


def _short_form(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref" or suffix == "Condition":
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_TemplateLoader.add_multi_constructor("!", _short_form)


def parse_template(text: str, source: str) -> dict[str, Any]:
    """The template as a dict (YAML or JSON); ``source`` names it in the error."""
    try:
        is_json = text.lstrip().startswith("{")
        data = json.loads(text) if is_json else yaml.load(text, _TemplateLoader)  # SafeLoader
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise DeployError(f"Template {source} cannot be read: {exc}".splitlines()[0],
                          hint="Fix its syntax (cfn-lint shows where), then deploy again.") from None
    if not isinstance(data, dict) or not isinstance(data.get("Resources"), dict):
        raise DeployError(f"Template {source} has no Resources section.",
                          hint="Deploy the project's templates/etl-pipeline-mwaa.yaml.")
    return data


def template_url(bucket: str, region: str, key: str = TEMPLATE_KEY) -> str:
    """Where ``m7etl upload`` puts the template (CloudFormation reads it from there)."""
    return f"https://{bucket}.s3.{region}.amazonaws.com/{key}"


def parse_s3_url(url: str) -> tuple[str, str, str | None]:
    """(bucket, key, version id) of an object URL: virtual-hosted, path style, ``s3://``."""
    parts = urlparse(url)
    version = parse_qs(parts.query).get("versionId", [None])[0]
    path = unquote(parts.path.lstrip("/"))
    host = parts.hostname or ""
    virtual = re.match(r"^(.+)\.s3[.-]", host) if host.endswith(AWS_HOSTS) else None
    if parts.scheme == "s3":
        bucket, key = host, path
    elif virtual:  # <bucket>.s3.<region>.amazonaws.com/<key>
        bucket, key = virtual.group(1), path
    else:  # s3.<region>.amazonaws.com/<bucket>/<key>, or a local endpoint's path style
        bucket, _, key = path.partition("/")
    if not bucket or not key:
        raise DeployError(f"Template URL {url} does not name an S3 object.",
                          hint="Use https://<bucket>.s3.<region>.amazonaws.com/<key>.")
    return bucket, key, version


def required_capabilities(template: Mapping[str, Any]) -> list[str]:
    """The capabilities CloudFormation will ask for, from the template's resources."""
    resources = template.get("Resources") or {}
    kinds = [(r.get("Type", ""), r.get("Properties") or {}) for r in resources.values()
             if isinstance(r, dict)]
    caps = []
    if any(kind.startswith("AWS::IAM::") for kind, _ in kinds):
        caps.append("CAPABILITY_IAM")
        if any(NAMED_IAM.get(kind) in props for kind, props in kinds):
            caps.append("CAPABILITY_NAMED_IAM")
    if template.get("Transform"):
        caps.append("CAPABILITY_AUTO_EXPAND")
    return caps


def is_secret(spec: Mapping[str, Any]) -> bool:
    return str(spec.get("NoEcho", "false")).lower() == "true"


def needs_password(template: Mapping[str, Any]) -> bool:
    """True when the template takes the password and has no default for it."""
    spec = (template.get("Parameters") or {}).get(PASSWORD_PARAMETER)
    return spec is not None and "Default" not in spec


# =============================================================================================
# Parameters: what is sent, validated before sending, and what changes
# =============================================================================================
def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def check_value(name: str, spec: Mapping[str, Any], value: str) -> str | None:
    """Why the template would refuse ``value`` for parameter ``name`` (None: it accepts it).

    A NoEcho parameter's value never appears in the answer."""
    shown = "(hidden)" if is_secret(spec) else repr(value)
    described = str(spec.get("ConstraintDescription") or "").rstrip(".")
    constraint = f" ({described})" if described else ""
    kind = str(spec.get("Type", "String"))
    if kind.startswith("List<") or kind.startswith("AWS::") or kind == "CommaDelimitedList":
        return None  # CloudFormation checks these against the account
    if kind == "Number":
        number = _number(value)
        if number is None:
            return f"{name} = {shown} is not a number"
        if "MinValue" in spec and number < float(spec["MinValue"]):
            return f"{name} = {shown} is below its MinValue {spec['MinValue']}"
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            return f"{name} = {shown} is above its MaxValue {spec['MaxValue']}"
    if "MinLength" in spec and len(value) < int(spec["MinLength"]):
        return f"{name} = {shown} is shorter than its MinLength {spec['MinLength']}{constraint}"
    if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
        return f"{name} = {shown} is longer than its MaxLength {spec['MaxLength']}{constraint}"
    allowed = spec.get("AllowedValues")
    if allowed is not None:
        texts = [str(a) for a in allowed]
        numeric = kind == "Number" and any(_number(t) == _number(value) for t in texts)
        if value not in texts and not numeric:
            return f"{name} = {shown} is not one of its AllowedValues: {', '.join(texts)}"
    pattern = spec.get("AllowedPattern")
    if pattern is not None:
        try:
            matched = re.fullmatch(str(pattern), value) is not None
        except re.error:
            matched = True  # a Java-only construct: CloudFormation will judge
        if not matched:
            return f"{name} = {shown} does not match its AllowedPattern {pattern}{constraint}"
    return None


@dataclass(frozen=True)
class ParameterChange:
    """One parameter as the change set table shows it (a NoEcho one never by value)."""

    name: str
    old: str | None  # None: the stack does not have it yet
    new: str  # the value sent; "(changed)" or "(kept)" for a NoEcho parameter
    secret: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "old": self.old, "new": self.new, "secret": self.secret}


@dataclass(frozen=True)
class StackPlan:
    """What the change set will be asked for. ``parameters`` may hold the password: not shown."""

    stack_name: str
    change_set_type: str  # CREATE or UPDATE
    parameters: list[dict[str, Any]] = field(repr=False)
    capabilities: list[str]
    changes: list[ParameterChange]
    ignored: list[str]  # values m7etl has that the template does not declare (not sent)


def _origins(config: EnvConfig, versions: Mapping[str, str]) -> dict[str, str]:
    """Where each value came from, for the messages that refuse one."""
    origins = {"Environment": "--env", "DataBucketName": f"data_bucket in {config.source}",
               "CodeBucketName": f"code_bucket in {config.source}"}
    origins.update({name: f"[snowflake] in {config.source}"
                    for name in config.snowflake.parameters()})
    origins.update({name: f"[parameters] in {config.source}" for name in config.parameters})
    origins.update({name: "the upload's version id" for name in versions})
    origins[PASSWORD_PARAMETER] = f"${PASSWORD_ENV} or the prompt"
    return origins


def plan_stack(template: Mapping[str, Any], config: EnvConfig, *, change_set_type: str,
               versions: Mapping[str, str] | None = None, password: str | None = None,
               existing: Mapping[str, Any] | None = None) -> StackPlan:
    """The parameters and capabilities of the change set, checked against the template.

    Sent with a value: the environment's parameters (``EnvConfig.stack_parameters()``), the
    upload's version ids and the password when given. On an update, every other parameter
    the stack already has is sent as ``UsePreviousValue`` (so a deploy without an upload
    keeps the pinned versions, and one without a password keeps the secret's)."""
    declared: dict[str, Any] = dict(template.get("Parameters") or {})
    versions = dict(versions or {})
    unknown = sorted(set(config.parameters) - set(declared))
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(declared), n=1)
        raise DeployError(
            f"{config.source}: parameter '{unknown[0]}' (under [{config.name}.parameters] or "
            f"[default.parameters]) is not a parameter of the template.",
            hint=(f"Did you mean '{close[0]}'? " if close else "")
            + f"Remove it or use one of: {', '.join(sorted(declared))}.")
    given = {**config.stack_parameters(), **versions}
    if password is not None:
        given[PASSWORD_PARAMETER] = password
    ignored = sorted(set(given) - set(declared))
    origins = _origins(config, versions)
    problems = []
    for name in sorted(set(given) & set(declared)):
        problem = check_value(name, declared[name], str(given[name]))
        if problem:
            problems.append(f"{problem} (from {origins.get(name, config.source)})")
    if problems:
        raise DeployError(f"The template refuses {len(problems)} parameter value(s): "
                          + "; ".join(problems) + ".",
                          hint="Fix them (m7etl.toml for the settings), then deploy again: "
                               "nothing was sent to CloudFormation.")
    old = {p["ParameterKey"]: p.get("ParameterValue") for p in (existing or {}).get("Parameters") or []}
    parameters, changes = [], []
    for name, spec in declared.items():
        secret = is_secret(spec)
        hidden = "(hidden)" if name in old else None  # CloudFormation says '****'; moto, the value
        if name in given:
            value = str(given[name])
            parameters.append({"ParameterKey": name, "ParameterValue": value})
            if secret:
                changes.append(ParameterChange(name, hidden, "(changed)", True))
            elif existing is None or old.get(name) != value:
                changes.append(ParameterChange(name, old.get(name), value))
        elif existing is not None and name in old:
            parameters.append({"ParameterKey": name, "UsePreviousValue": True})
            if secret:
                changes.append(ParameterChange(name, hidden, "(kept)", True))
        elif "Default" not in spec:
            raise DeployError(f"Template parameter {name} has no default and no value.",
                              hint=f"Set it under [{config.name}.parameters] in m7etl.toml."
                              if not secret else f"Set ${PASSWORD_ENV} or answer the prompt.")
    return StackPlan(config.stack_name, change_set_type, parameters,
                     required_capabilities(template), changes, ignored)


# =============================================================================================
# Requests
# =============================================================================================
def change_set_name(now: datetime) -> str:
    """A unique, valid change set name ([a-zA-Z][-a-zA-Z0-9]*)."""
    return f"m7etl-{now:%Y%m%d-%H%M%S-%f}"


def change_set_request(plan: StackPlan, name: str, *, template_body: str | None = None,
                       template_url: str | None = None, description: str = "") -> dict[str, Any]:
    """CreateChangeSet's arguments: the template by body or by URL, never both."""
    if (template_body is None) == (template_url is None):
        raise ValueError("give exactly one of template_body and template_url")
    request: dict[str, Any] = {"StackName": plan.stack_name, "ChangeSetName": name,
                               "ChangeSetType": plan.change_set_type,
                               "Parameters": plan.parameters,
                               "Capabilities": plan.capabilities}
    if description:  # CloudFormation refuses an empty one
        request["Description"] = description[:1024]
    if template_body is not None:
        size = len(template_body.encode("utf-8"))
        if size > TEMPLATE_BODY_LIMIT:
            raise DeployError(
                f"The template is {size:,} bytes, over the {TEMPLATE_BODY_LIMIT:,} a template "
                "body may have.",
                hint="Upload it (m7etl upload) and deploy from the code bucket (no --template).")
        request["TemplateBody"] = template_body
    else:
        request["TemplateURL"] = template_url
    return request


# =============================================================================================
# Decisions on the stack's state
# =============================================================================================
@dataclass(frozen=True)
class Decision:
    change_set_type: str  # CREATE or UPDATE
    delete_first: bool = False  # an empty or failed stack is deleted before the new CREATE
    note: str | None = None  # what the user is told about it


def decide(stack: Mapping[str, Any] | None, *, recreate: bool, env: str) -> Decision:
    """What a deploy does with the stack as it is, or why it cannot."""
    if stack is None:
        return Decision("CREATE")
    name, status = stack["StackName"], stack["StackStatus"]
    events = f"aws cloudformation describe-stack-events --stack-name {name}"
    if status == "REVIEW_IN_PROGRESS":
        return Decision("CREATE", True,
                        f"Stack {name} is in REVIEW_IN_PROGRESS: a CREATE change set was made and "
                        "never executed, so it has no resources. Deleting it and starting over.")
    if status in CREATE_FAILED_STATES:
        if recreate:
            return Decision("CREATE", True,
                            f"Stack {name} is in {status} (its creation failed): deleting it and "
                            "creating it again (--recreate).")
        left = ("some resources could not be deleted" if status == "ROLLBACK_FAILED"
                else "it has no resources" if status == "ROLLBACK_COMPLETE"
                else "its resources were kept (rollback disabled)")
        raise DeployError(
            f"Stack {name} is in {status}: its first creation failed ({left}), and "
            "CloudFormation cannot update such a stack.",
            hint=f"See why with '{events}', fix it, then run 'm7etl deploy --env {env} "
                 "--recreate' to delete the stack and create it again.")
    if recreate:
        raise DeployError(
            f"--recreate only replaces a stack whose creation failed; stack {name} is {status}.",
            hint="Deploy without --recreate to update it in place (nothing is deleted).")
    if status.endswith("_IN_PROGRESS"):
        raise DeployError(f"Stack {name} is busy ({status}).",
                          hint=f"Wait for it to finish ('{follow_command(env)}'), then deploy "
                               "again.", retryable=True)
    if status == "UPDATE_ROLLBACK_FAILED":
        raise DeployError(
            f"Stack {name} is in UPDATE_ROLLBACK_FAILED: an update failed and so did its rollback.",
            hint=f"Fix the resource named in '{events}', run 'aws cloudformation "
                 f"continue-update-rollback --stack-name {name}', then deploy again.")
    if status == "DELETE_FAILED":
        raise DeployError(f"Stack {name} is in DELETE_FAILED: a deletion left resources behind.",
                          hint=f"Delete it (see '{events}' for what is left), then deploy again.")
    if status in UPDATABLE_STATES:
        return Decision("UPDATE")
    raise DeployError(f"Stack {name} is in {status}, which deploy does not handle.",
                      hint=f"See '{events}'.")


# =============================================================================================
# Change sets
# =============================================================================================
@dataclass(frozen=True)
class ResourceChange:
    action: str  # Add, Modify, Remove, Import, Dynamic
    logical_id: str
    resource_type: str
    replacement: str | None  # True, False, Conditional (Modify only)

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "logical_id": self.logical_id,
                "resource_type": self.resource_type, "replacement": self.replacement}


def resource_changes(changes: Iterable[Mapping[str, Any]]) -> list[ResourceChange]:
    """DescribeChangeSet's ``Changes`` as rows."""
    rows = []
    for change in changes:
        rc = change.get("ResourceChange") or {}
        if rc:
            rows.append(ResourceChange(rc.get("Action", "?"), rc.get("LogicalResourceId", "?"),
                                       rc.get("ResourceType", "?"), rc.get("Replacement")))
    return rows


def is_no_change(reason: str | None) -> bool:
    return any(text in (reason or "") for text in NO_CHANGE_REASONS)


def change_set_failure(reason: str, stack_name: str, env: str) -> DeployError:
    """A change set CloudFormation could not make, with the fix for the known causes."""
    hint = "Fix the template or the parameters, then deploy again."
    export = re.search(r"No export named (\S+)", reason)
    if export:
        hint = (f"The template imports {export.group(1)}, which no stack exports: deploy the "
                "VPC stack exporting VPC, PrivateSubnet1, PrivateSubnet2 (guide, step 3), or set "
                f"VpcId, PrivateSubnet1Id and PrivateSubnet2Id under [{env}.parameters] "
                f"(m7etl doctor --env {env} checks this).")
    elif "capabilit" in reason.lower():
        hint = "The template needs a capability deploy did not grant: report it with the template."
    return DeployError(f"CloudFormation could not make the change set of stack {stack_name}: "
                       f"{reason}", hint=hint)


# =============================================================================================
# Events and outcome
# =============================================================================================
def fresh_events(pages: Iterable[list[Mapping[str, Any]]], seen: set[str]) -> list[dict]:
    """The events not seen yet, oldest first, from DescribeStackEvents' newest-first pages.

    Reading stops at the first event already seen: a stack with years of history costs
    one page per poll."""
    new: list[dict] = []
    for page in pages:
        for event in page:
            if event["EventId"] in seen:
                return new[::-1]
            new.append(dict(event))
    return new[::-1]


def is_terminal(status: str) -> bool:
    return not status.endswith("_IN_PROGRESS")


def is_root(event: Mapping[str, Any]) -> bool:
    """The stack's own event (not one of its resources', nor a nested stack's)."""
    return (event.get("ResourceType") == STACK_TYPE
            and event.get("PhysicalResourceId") == event.get("StackId"))


@dataclass(frozen=True)
class Failure:
    logical_id: str
    resource_type: str
    status: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"logical_id": self.logical_id, "resource_type": self.resource_type,
                "status": self.status, "reason": self.reason}


def failures(events: Iterable[Mapping[str, Any]]) -> list[Failure]:
    """The resources that failed, causes first: 'Resource creation cancelled' ones last."""
    found = [Failure(e.get("LogicalResourceId", "?"), e.get("ResourceType", "?"),
                     e["ResourceStatus"], e.get("ResourceStatusReason") or "")
             for e in events if e.get("ResourceStatus", "").endswith("_FAILED") and not is_root(e)]
    return sorted(found, key=lambda f: any(c in f.reason for c in CANCELLED))


@dataclass(frozen=True)
class Outcome:
    ok: bool
    summary: str
    next_step: str | None = None


def outcome(status: str, stack_name: str, env: str) -> Outcome:
    """What a terminal status means for the person who deployed, and what to do next."""
    if status == "CREATE_COMPLETE":
        return Outcome(True, f"Stack {stack_name} created.")
    if status in ("UPDATE_COMPLETE", "IMPORT_COMPLETE"):
        return Outcome(True, f"Stack {stack_name} updated.")
    if status == "ROLLBACK_COMPLETE":
        return Outcome(False, f"Creation of stack {stack_name} failed and was rolled back: the "
                              "stack has no resources.",
                       f"Fix the cause above, then run 'm7etl deploy --env {env} --recreate'.")
    if status == "UPDATE_ROLLBACK_COMPLETE":
        return Outcome(False, f"Update of stack {stack_name} failed and was rolled back: the stack "
                              "runs its previous version.",
                       "Fix the cause above, then deploy again.")
    if status == "UPDATE_ROLLBACK_FAILED":
        return Outcome(False, f"Update of stack {stack_name} failed, and so did its rollback.",
                       f"Fix the resource above, run 'aws cloudformation continue-update-rollback "
                       f"--stack-name {stack_name}', then deploy again.")
    if status == "ROLLBACK_FAILED":
        return Outcome(False, f"Creation of stack {stack_name} failed, and its rollback left "
                              "resources behind.",
                       f"Fix the cause above, then run 'm7etl deploy --env {env} --recreate'.")
    if status in ("CREATE_FAILED", "UPDATE_FAILED"):
        return Outcome(False, f"Stack {stack_name} ended in {status} (rollback disabled: the "
                              "resources are kept for inspection).",
                       "Fix the cause above, then deploy again.")
    return Outcome(status in SUCCESS_STATES, f"Stack {stack_name} ended in {status}.")


def outputs(stack: Mapping[str, Any]) -> dict[str, str]:
    """The stack's outputs, the Airflow UI and the dashboard first."""
    values = {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs") or []}
    first = {k: values[k] for k in HEADLINE_OUTPUTS if k in values}
    return {**first, **{k: v for k, v in sorted(values.items()) if k not in first}}
