"""``m7etl doctor``: the guide's prerequisites, checked before anything is deployed.

A failed CloudFormation create of the MWAA stack costs the best part of an hour, and most
failures are known in advance: no credentials, a missing bucket, a code bucket without
versioning or public access block (MWAA refuses both), missing VPC exports, two subnets in
one Availability Zone, a template cfn-lint rejects. Each check is a function returning a
:class:`Check` (data); an expected AWS error becomes a failed check with its fix, never an
exception. :func:`run_checks` is also the deploy command's preflight.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from botocore.config import Config

from m7etl.storage import errors

PASS, FAIL, SKIP, WARN = "pass", "fail", "skip", "warn"
TEMPLATE = Path("templates") / "etl-pipeline-mwaa.yaml"
EXPORTS = {"VPC": "VpcExportName", "PrivateSubnet1": "PrivateSubnet1ExportName",
           "PrivateSubnet2": "PrivateSubnet2ExportName"}  # default export -> its parameter
EXPLICIT = ("VpcId", "PrivateSubnet1Id", "PrivateSubnet2Id")
CONNECTION = "aws_default"
CONNECTION_FIX = ("Admin > Connections in the Airflow UI: add or fix aws_default (type Amazon "
                  "Web Services, no keys: tasks use the environment's execution role).")
# A doctor answers quickly: few retries, short timeouts (the deploy's clients wait longer).
QUICK = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=30)
QUICK_LOCAL_MWAA = QUICK.merge(Config(inject_host_prefix=False))  # a stand-in has no api./env.
MWAA_FAILED = {"CREATE_FAILED", "UPDATE_FAILED", "UNAVAILABLE", "DELETED"}


@dataclass(frozen=True)
class Check:
    """One line of the doctor: what was checked, the outcome, and for a failure the fix."""

    name: str
    status: str  # pass | fail | skip | warn
    detail: str
    fix: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def failed(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.status == FAIL]


# -- expected AWS errors become failed checks ----------------------------------------------

def aws_failure(name: str, exc: Exception, what: str, permission: str) -> Check | None:
    """The failed check for an expected AWS error, or None for anything else (the category
    from :func:`m7etl.storage.errors.classify`, the words for the doctor)."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        ProfileNotFound,
    )

    if isinstance(exc, NoCredentialsError):
        return Check(name, FAIL, "no AWS credentials found",
                     "Configure them (aws configure, aws sso login, AWS_PROFILE or the "
                     "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY variables), or set profile in "
                     "m7etl.toml.")
    if isinstance(exc, ProfileNotFound):
        return Check(name, FAIL, f"AWS profile {exc.kwargs.get('profile')!r} does not exist",
                     "Create it (aws configure --profile NAME) or fix profile in m7etl.toml / "
                     "--profile.")
    if isinstance(exc, EndpointConnectionError):
        return Check(name, FAIL, f"cannot reach AWS for {what} ({exc.kwargs.get('endpoint_url')})",
                     "Check the network, the region and any endpoint_url in m7etl.toml.")
    category = errors.classify(exc)
    if not isinstance(exc, ClientError):
        if category == errors.TRANSIENT:
            return Check(name, FAIL, f"AWS did not answer for {what} ({type(exc).__name__})",
                         "Check the network, then run m7etl doctor again.")
        return None
    code, message = errors.error_code(exc), errors.error_message(exc)
    if category == errors.DENIED:
        return Check(name, FAIL, f"access denied to {what}",
                     f"Grant the caller {permission} and run again.")
    if category == errors.EXPIRED:
        return Check(name, FAIL, "the AWS session token has expired",
                     "Refresh the credentials (e.g. aws sso login) and run again.")
    if category == errors.BAD_CREDENTIALS:
        return Check(name, FAIL, f"AWS does not accept these credentials ({code})",
                     "Check the access key of the profile or environment in use.")
    if category == errors.THROTTLED:
        return Check(name, FAIL, f"AWS throttled {what} ({code})", "Run m7etl doctor again.")
    if category == errors.TRANSIENT:
        return Check(name, FAIL, f"AWS failed on {what} ({code}, a transient error)",
                     "Run m7etl doctor again in a minute.")
    return Check(name, FAIL, f"AWS refused {what}: {code}: {message[:200]}".rstrip(": "),
                 f"Check {permission} for the caller and the resource's name.")


def guarded(name: str, what: str, permission: str) -> Callable:
    """Turn the expected AWS errors of a check into its failed :class:`Check`."""

    def wrap(check: Callable[..., Check]) -> Callable[..., Check]:
        @functools.wraps(check)
        def run(*args, **kwargs) -> Check:
            try:
                return check(*args, **kwargs)
            except Exception as exc:
                failure = aws_failure(name, exc, what, permission)
                if failure is None:
                    raise
                return failure

        return run

    return wrap


def _code(exc) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


# -- region and credentials ---------------------------------------------------------------

def regions(endpoint_prefix: str) -> set[str]:
    """The regions botocore's endpoint data lists for a service (no session: a bad profile
    must not break the region check)."""
    from botocore.loaders import create_loader
    from botocore.regions import EndpointResolver

    resolver = EndpointResolver(create_loader().load_data("endpoints"))
    return {region for partition in resolver.get_available_partitions()
            for region in resolver.get_available_endpoints(endpoint_prefix, partition)}


def check_region(config, clients) -> Check:
    """A region botocore knows, and one where MWAA is offered (a warning: the data can lag)."""
    region = config.region
    if region not in regions("cloudformation"):
        return Check("region", FAIL, f"{region!r} is not an AWS region",
                     "Set region in m7etl.toml or pass --region (e.g. eu-west-1).")
    if region not in regions("airflow"):
        return Check("region", WARN, f"{region}: MWAA is not listed as offered there",
                     "Check the MWAA regions, or pick another region.")
    return Check("region", PASS, region)


@guarded("credentials", "sts:GetCallerIdentity", "sts:GetCallerIdentity")
def check_credentials(config, clients) -> Check:
    identity = clients("sts", QUICK).get_caller_identity()
    return Check("credentials", PASS, f"account {identity['Account']} as {identity['Arn']}")


# -- buckets ------------------------------------------------------------------------------

def bucket_region(location: str | None) -> str:
    """GetBucketLocation's answer as a region: none means us-east-1, EU means eu-west-1."""
    return {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(location, location)


def _bucket(name: str, bucket: str, key: str, region: str, clients) -> Check:
    from botocore.exceptions import ClientError

    s3 = clients("s3", QUICK)
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if _code(exc) in ("404", "NoSuchBucket", "NotFound"):
            return Check(name, FAIL, f"bucket {bucket} does not exist",
                         f"Create it (aws s3 mb s3://{bucket} --region {region}: a prerequisite "
                         f"of the guide) or set {key} in m7etl.toml.")
        if _code(exc) in ("403", "AccessDenied"):
            return Check(name, FAIL, f"bucket {bucket} exists but this account may not read it",
                         f"Pick a bucket of this account ({key} in m7etl.toml) or grant "
                         "s3:ListBucket.")
        raise
    where = bucket_region(s3.get_bucket_location(Bucket=bucket).get("LocationConstraint"))
    if where != region:
        return Check(name, FAIL, f"bucket {bucket} is in {where}, not {region}",
                     f"Deploy to {where} (--region {where}) or use a bucket in {region}: the "
                     "stack's functions and MWAA must be in the bucket's region.")
    return Check(name, PASS, f"{bucket} ({where})")


@guarded("data-bucket", "the data bucket", "s3:ListBucket and s3:GetBucketLocation")
def check_data_bucket(config, clients) -> Check:
    return _bucket("data-bucket", config.data_bucket, "data_bucket", config.region, clients)


@guarded("code-bucket", "the code bucket", "s3:ListBucket and s3:GetBucketLocation")
def check_code_bucket(config, clients) -> Check:
    return _bucket("code-bucket", config.code_bucket, "code_bucket", config.region, clients)


@guarded("code-bucket-versioning", "the code bucket's versioning", "s3:GetBucketVersioning")
def check_code_versioning(config, clients) -> Check:
    bucket = config.code_bucket
    status = clients("s3", QUICK).get_bucket_versioning(Bucket=bucket).get("Status")
    if status == "Enabled":
        return Check("code-bucket-versioning", PASS, f"versioning enabled on {bucket}")
    state = "suspended" if status == "Suspended" else "not enabled"
    return Check("code-bucket-versioning", FAIL,
                 f"versioning is {state} on {bucket} (MWAA requires it)",
                 f"aws s3api put-bucket-versioning --bucket {bucket} "
                 "--versioning-configuration Status=Enabled")


PUBLIC_ACCESS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")


@guarded("code-bucket-public-access", "the code bucket's public access block",
         "s3:GetBucketPublicAccessBlock")
def check_code_public_access(config, clients) -> Check:
    from botocore.exceptions import ClientError

    bucket = config.code_bucket
    fix = (f"aws s3api put-public-access-block --bucket {bucket} "
           "--public-access-block-configuration "
           + ",".join(f"{k}=true" for k in PUBLIC_ACCESS))
    try:
        block = clients("s3", QUICK).get_public_access_block(Bucket=bucket)
    except ClientError as exc:
        if _code(exc) != "NoSuchPublicAccessBlockConfiguration":
            raise
        return Check("code-bucket-public-access", FAIL,
                     f"{bucket} has no public access block (MWAA requires one)", fix)
    settings = block.get("PublicAccessBlockConfiguration", {})
    off = [k for k in PUBLIC_ACCESS if not settings.get(k)]
    if off:
        return Check("code-bucket-public-access", FAIL,
                     f"{bucket} leaves {', '.join(off)} off (MWAA requires all four)", fix)
    return Check("code-bucket-public-access", PASS, f"all public access blocked on {bucket}")


# -- network ------------------------------------------------------------------------------

@dataclass(frozen=True)
class NetworkPlan:
    """Where the stack takes its VPC and subnets from: explicit ids, or exports by name."""

    mode: str  # "explicit" or "exports"
    names: dict[str, str]  # role (VPC, PrivateSubnet1, PrivateSubnet2) -> id or export name
    problem: str | None = None


def network_plan(parameters: dict[str, str]) -> NetworkPlan:
    """The template's logic: VpcId set means the explicit ids (then both subnets too)."""
    if parameters.get("VpcId"):
        names = dict(zip(EXPORTS, (parameters.get(k, "") for k in EXPLICIT), strict=True))
        missing = [k for k in EXPLICIT[1:] if not parameters.get(k)]
        verb = "are" if len(missing) > 1 else "is"
        problem = f"VpcId is set but {' and '.join(missing)} {verb} not" if missing else None
        return NetworkPlan("explicit", names, problem)
    return NetworkPlan("exports", {role: parameters.get(param) or role
                                   for role, param in EXPORTS.items()})


def _exports(cloudformation) -> dict[str, str]:
    values: dict[str, str] = {}
    for page in cloudformation.get_paginator("list_exports").paginate():
        values.update({e["Name"]: e["Value"] for e in page.get("Exports", [])})
    return values


def resolve_network(config, clients) -> tuple[Check, dict[str, str] | None]:
    """The network check and, when it passes, the ids (VPC, PrivateSubnet1, PrivateSubnet2)."""
    plan = network_plan(config.parameters)
    if plan.problem:
        return Check("network", FAIL, plan.problem,
                     "Set PrivateSubnet1Id and PrivateSubnet2Id with VpcId under "
                     f"[{config.name}.parameters] in m7etl.toml, or remove VpcId to use the "
                     "exports."), None
    if plan.mode == "explicit":
        ids = dict(plan.names)
        return Check("network", PASS, "explicit ids " + ", ".join(
            f"{k}={v}" for k, v in ids.items())), ids
    exports = _exports(clients("cloudformation", QUICK))
    missing = [name for name in plan.names.values() if name not in exports]
    if missing:
        return Check("network", FAIL,
                     f"CloudFormation export(s) {', '.join(missing)} not found in {config.region}",
                     "Deploy the network stack that exports them (the guide's step 3), name "
                     "the exports with parameters VpcExportName, PrivateSubnet1ExportName and "
                     "PrivateSubnet2ExportName, or set VpcId, PrivateSubnet1Id and "
                     f"PrivateSubnet2Id under [{config.name}.parameters] in m7etl.toml."), None
    ids = {role: exports[name] for role, name in plan.names.items()}
    return Check("network", PASS, "exports " + ", ".join(
        f"{plan.names[k]}={v}" for k, v in ids.items())), ids


def check_network(config, clients) -> Check:
    return _network(config, clients)[0]


def subnet_problem(ids: dict[str, str], subnets: list[dict]) -> str | None:
    """Why MWAA would refuse these two subnets, or None (pure: the describe answer given)."""
    one, two = ids["PrivateSubnet1"], ids["PrivateSubnet2"]
    if one == two:
        return f"PrivateSubnet1 and PrivateSubnet2 are the same subnet {one}"
    by_id = {s["SubnetId"]: s for s in subnets}
    for subnet_id in (one, two):
        if subnet_id not in by_id:
            return f"subnet {subnet_id} does not exist"
        if by_id[subnet_id].get("VpcId") != ids["VPC"]:
            return f"subnet {subnet_id} is in {by_id[subnet_id].get('VpcId')}, not in {ids['VPC']}"
    if by_id[one]["AvailabilityZone"] == by_id[two]["AvailabilityZone"]:
        return f"{one} and {two} are both in {by_id[one]['AvailabilityZone']}"
    return None


@guarded("subnets", "the subnets", "ec2:DescribeSubnets")
def check_subnets(config, clients, ids: dict[str, str]) -> Check:
    fix = ("MWAA needs two private subnets (with a NAT route) of the VPC, in two different "
           "Availability Zones: fix the exports or the *Id parameters.")
    wanted = sorted({ids["PrivateSubnet1"], ids["PrivateSubnet2"]})
    # A filter, not SubnetIds: an unknown id is then missing from the answer, not an error.
    subnets = clients("ec2", QUICK).describe_subnets(
        Filters=[{"Name": "subnet-id", "Values": wanted}])["Subnets"]
    problem = subnet_problem(ids, subnets)
    if problem:
        return Check("subnets", FAIL, problem, fix)
    zones = {s["SubnetId"]: s["AvailabilityZone"] for s in subnets}
    return Check("subnets", PASS, f"{ids['PrivateSubnet1']} ({zones[ids['PrivateSubnet1']]}), "
                                  f"{ids['PrivateSubnet2']} ({zones[ids['PrivateSubnet2']]}) "
                                  f"in {ids['VPC']}")


# -- the template -------------------------------------------------------------------------

def check_template(template_path: Path | None, region: str) -> Check:
    """cfn-lint, as `make lint-template` runs it: errors fail, warnings warn."""
    fix = "Run `make lint-template` and fix what cfn-lint reports."
    if template_path is None or not Path(template_path).is_file():
        return Check("template", FAIL, f"template {template_path or TEMPLATE} not found",
                     "Run m7etl from the project's checkout or pass --template PATH.")
    try:
        from cfnlint.api import ManualArgs, lint
    except ImportError:
        return Check("template", SKIP, "cfn-lint is not installed",
                     "pip install 'cfn-lint>=1.39,<2' (the dev extra) to check the template.")
    from cfnlint.helpers import REGIONS

    lint_region = region if region in REGIONS else "us-east-1"  # a typo is the region check's
    matches = lint(Path(template_path).read_text(encoding="utf-8"),
                   config=ManualArgs(regions=[lint_region]))
    errors = [m for m in matches if m.rule.id.startswith("E")]
    warnings = [m for m in matches if m.rule.id.startswith("W")]
    for found, status, kind in ((errors, FAIL, "error"), (warnings, WARN, "warning")):
        if found:
            first = found[0]
            return Check("template", status,
                         f"{template_path}: {len(found)} cfn-lint {kind}(s); first "
                         f"{first.rule.id} line {first.linenumber}: {first.message}", fix)
    return Check("template", PASS, f"{template_path} passes cfn-lint ({lint_region})")


def default_template() -> Path | None:
    """The checkout's template, when m7etl runs from (or was installed from) a checkout."""
    from m7etl.deploy.project import project_root
    from m7etl.exceptions import PackageError

    try:
        return project_root() / TEMPLATE
    except PackageError:
        return None


# -- the MWAA environment, once it exists -------------------------------------------------

def _mwaa(clients):
    local = (clients.endpoints.get("mwaa") or clients.endpoint_url
             or os.environ.get("AWS_ENDPOINT_URL_MWAA") or os.environ.get("AWS_ENDPOINT_URL"))
    return clients("mwaa", QUICK_LOCAL_MWAA if local else QUICK)


def _stack_exists(config, clients) -> bool:
    from botocore.exceptions import ClientError

    try:
        clients("cloudformation", QUICK).describe_stacks(StackName=config.stack_name)
    except ClientError as exc:
        if _code(exc) == "ValidationError" and "does not exist" in str(exc):
            return False
        raise
    return True


@guarded("mwaa-environment", "the MWAA environment", "airflow:GetEnvironment")
def check_environment(config, clients) -> Check:
    from botocore.exceptions import ClientError, EndpointConnectionError

    name = config.mwaa_environment
    not_yet = Check("mwaa-environment", SKIP, f"environment {name} not created yet")
    if not _stack_exists(config, clients):
        return not_yet
    try:
        env = _mwaa(clients).get_environment(Name=name)["Environment"]
    except ClientError as exc:
        if _code(exc) == "ResourceNotFoundException":
            return not_yet
        raise
    except EndpointConnectionError:
        return Check("mwaa-environment", SKIP, f"environment {name} not created yet (MWAA did "
                                               "not answer)")
    status = env.get("Status", "?")
    detail = f"{name} is {status} (Airflow {env.get('AirflowVersion', '?')})"
    if status == "AVAILABLE":
        return Check("mwaa-environment", PASS, detail)
    error = (env.get("LastUpdate") or {}).get("Error") or {}
    if status in MWAA_FAILED:
        why = f": {error.get('ErrorCode')}: {error.get('ErrorMessage')}" if error else ""
        return Check("mwaa-environment", FAIL, detail + why,
                     f"Read the environment's logs in CloudWatch, then m7etl deploy --env "
                     f"{config.name} again.")
    return Check("mwaa-environment", WARN, detail, "Run m7etl doctor again when it is AVAILABLE.")


def get_connection(client, env_name: str, conn_id: str = CONNECTION) -> dict:
    """``GET /connections/{id}`` through MWAA's InvokeRestApi; Airflow's answer."""
    response = client.invoke_rest_api(Name=env_name, Method="GET", Path=f"/connections/{conn_id}")
    return response.get("RestApiResponse") or {}


@guarded("airflow-connection", "the Airflow REST API", "airflow:InvokeRestApi")
def check_connection(config, clients) -> Check:
    """The guide's step 4: the ``aws_default`` connection exists and is an AWS one. Only its
    type is read: a connection can hold secrets, which are never shown."""
    from botocore.exceptions import ClientError

    try:
        connection = get_connection(_mwaa(clients), config.mwaa_environment)
    except ClientError as exc:
        status = exc.response.get("RestApiStatusCode")
        if _code(exc) == "RestApiClientException" and status == 404:
            return Check("airflow-connection", FAIL,
                         f"connection {CONNECTION} does not exist on {config.mwaa_environment}",
                         CONNECTION_FIX)
        if _code(exc) in ("RestApiClientException", "RestApiServerException"):
            return Check("airflow-connection", FAIL,
                         f"Airflow answered HTTP {status} for connection {CONNECTION}",
                         CONNECTION_FIX)
        raise
    kind = connection.get("conn_type")
    if kind != "aws":
        return Check("airflow-connection", FAIL,
                     f"connection {CONNECTION} has type {kind!r}, not 'aws'", CONNECTION_FIX)
    return Check("airflow-connection", PASS, f"{CONNECTION} (type aws) on {config.mwaa_environment}")


# -- all of them --------------------------------------------------------------------------

def _skip(name: str, why: str) -> Check:
    return Check(name, SKIP, why)


def _network(config, clients) -> tuple[Check, dict[str, str] | None]:
    try:
        return resolve_network(config, clients)
    except Exception as exc:
        failure = aws_failure("network", exc, "the CloudFormation exports",
                              "cloudformation:ListExports")
        if failure is None:
            raise
        return failure, None


def run_checks(config, clients, *, template_path: Path | None) -> list[Check]:
    """Every check, in the guide's order; a check whose premise failed is skipped."""
    checks = [check_region(config, clients)]
    aws = checks[-1].status != FAIL
    checks.append(check_credentials(config, clients) if aws else
                  _skip("credentials", "needs a valid region"))
    aws = aws and checks[-1].status == PASS
    why = "needs working credentials and region"
    checks.append(check_data_bucket(config, clients) if aws else _skip("data-bucket", why))
    checks.append(check_code_bucket(config, clients) if aws else _skip("code-bucket", why))
    code_ok = checks[-1].status == PASS
    checks.append(check_code_versioning(config, clients) if code_ok else
                  _skip("code-bucket-versioning", "needs the code bucket"))
    checks.append(check_code_public_access(config, clients) if code_ok else
                  _skip("code-bucket-public-access", "needs the code bucket"))
    network, ids = _network(config, clients) if aws else (_skip("network", why), None)
    checks.append(network)
    checks.append(check_subnets(config, clients, ids) if ids else
                  _skip("subnets", "needs the network's ids"))
    checks.append(check_template(template_path, config.region))
    checks.append(check_environment(config, clients) if aws else
                  _skip("mwaa-environment", why))
    checks.append(check_connection(config, clients) if checks[-1].status == PASS else
                  _skip("airflow-connection", "needs an AVAILABLE environment"))
    return checks
