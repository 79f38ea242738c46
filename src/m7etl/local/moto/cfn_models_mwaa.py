"""``AWS::MWAA::Environment`` on the local stack: moto has no MWAA at all.

The environment is checked as CreateEnvironment checks it against what moto holds (the
source bucket, the requirements/plugins/startup objects and their versions, the execution
role, two subnets in two Availability Zones and the security groups of one VPC; not the
bucket's versioning and public access block, which ``m7etl doctor`` checks), then
registered with the MWAA stand-in (m7etl.local.standins.mwaa, another process) when one is
configured: ``install(mwaa=<endpoint>)``, else ``$M7_LOCAL_MWAA_ENDPOINT``, else
``$AWS_ENDPOINT_URL_MWAA``. The model sends the stand-in MWAA's own ``CreateEnvironment``
(``PUT /environments/{Name}``), ``UpdateEnvironment`` and ``DeleteEnvironment``; a stand-in
without those routes is only asked ``GetEnvironment``, which must know the name (start it
with ``--env-name``). Creation waits (``WAIT_SECONDS``) for ``Status: AVAILABLE``.

Ref is the name; GetAtt ``Arn``, ``WebserverUrl`` (the stand-in's host, e.g.
``127.0.0.1:9003``, else an AWS-shaped ``<uuid>.c2.<region>.airflow.amazonaws.com``),
``CeleryExecutorQueue``, ``DatabaseVpcEndpointService``, ``WebserverVpcEndpointService``
(PRIVATE_ONLY only, else "") and ``LoggingConfiguration.<Type>Logs.CloudWatchLogGroupArn``
(``airflow-<Name>-DAGProcessing``, ``-Scheduler``, ``-Task``, ``-WebServer``, ``-Worker``: the
groups MWAA writes to; only in the long form ``Fn::GetAtt: [Env, LoggingConfiguration...]``,
moto's ``Fn::Sub`` splits the name at every dot). Not modelled: the environment's
20-30 minutes of creation, its workers, schedulers and web servers (the stand-in is the
Airflow), the service-linked role, KMS, VPC endpoints, and the replacement CloudFormation
does for a network or KMS change (updated in place here).
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from moto.core.common_models import CloudFormationModel
from moto.ec2.models import ec2_backends
from moto.iam.models import iam_backends
from moto.s3.exceptions import MissingBucket
from moto.s3.models import s3_backends
from moto.utilities.utils import get_partition

from m7etl.local.moto.cfn_models_base import (
    Resource,
    ResourceFailed,
    number,
    properties,
    string_map,
    tag_map,
)

logger = logging.getLogger(__name__)
ENDPOINT_VARIABLES = ("M7_LOCAL_MWAA_ENDPOINT", "AWS_ENDPOINT_URL_MWAA")
WAIT_SECONDS = 30.0
# LoggingConfiguration's keys -> the suffix of the log group MWAA writes to (airflow-<Name>-...).
LOG_GROUPS = {"DagProcessingLogs": "DAGProcessing", "SchedulerLogs": "Scheduler",
              "TaskLogs": "Task", "WebserverLogs": "WebServer", "WorkerLogs": "Worker"}
NAME = re.compile(r"^[a-zA-Z][0-9a-zA-Z_-]{0,79}$")
REQUIRED = ("ExecutionRoleArn", "SourceBucketArn", "DagS3Path", "NetworkConfiguration")
# The stand-in answers a route it lacks with 404 UnknownOperation or 501 (no such method).
UNSUPPORTED = {"UnknownOperationException", "501", "405", "NotImplemented"}
_settings: dict[str, Any] = {"endpoint": None}
# Every environment the stack made: (account, region) -> name -> GetEnvironment's Environment.
ENVIRONMENTS: dict[tuple[str, str], dict[str, dict]] = {}


def configure(endpoint: str | None) -> None:
    _settings["endpoint"] = endpoint.rstrip("/") if endpoint else None


def standin_endpoint() -> str | None:
    """The stand-in's endpoint: install()'s, else the first variable of ENDPOINT_VARIABLES."""
    found = _settings["endpoint"] or next(
        (os.environ[v] for v in ENDPOINT_VARIABLES if os.environ.get(v)), None)
    return found.rstrip("/") if found else None


# =============================================================================================
# Pure: the requests and the environment document
# =============================================================================================
def environment_request(name: str, props: dict) -> dict[str, Any]:
    """The CreateEnvironment request (UpdateEnvironment's is a subset) from the properties."""
    request: dict[str, Any] = {"Name": name}
    for key in ("ExecutionRoleArn", "SourceBucketArn", "DagS3Path", "PluginsS3Path",
                "PluginsS3ObjectVersion", "RequirementsS3Path", "RequirementsS3ObjectVersion",
                "StartupScriptS3Path", "StartupScriptS3ObjectVersion", "EnvironmentClass",
                "KmsKey", "AirflowVersion", "WeeklyMaintenanceWindowStart",
                "WebserverAccessMode", "EndpointManagement"):
        if props.get(key) not in (None, ""):
            request[key] = str(props[key])
    for key in ("MaxWorkers", "MinWorkers", "Schedulers", "MinWebservers", "MaxWebservers"):
        if props.get(key) not in (None, ""):
            request[key] = number(props[key])
    if props.get("NetworkConfiguration"):
        net = props["NetworkConfiguration"]
        request["NetworkConfiguration"] = {k: [str(v) for v in net.get(k) or []]
                                           for k in ("SubnetIds", "SecurityGroupIds")}
    if props.get("AirflowConfigurationOptions"):
        request["AirflowConfigurationOptions"] = string_map(props["AirflowConfigurationOptions"])
    if props.get("LoggingConfiguration"):
        request["LoggingConfiguration"] = {
            kind: {"Enabled": bool(conf.get("Enabled")), "LogLevel": conf.get("LogLevel", "INFO")}
            for kind, conf in props["LoggingConfiguration"].items()}
    if props.get("Tags"):
        request["Tags"] = tag_map(props["Tags"])
    return request


def update_request(request: dict[str, Any]) -> dict[str, Any]:
    allowed = ("Name", "ExecutionRoleArn", "AirflowConfigurationOptions", "AirflowVersion",
               "DagS3Path", "EnvironmentClass", "LoggingConfiguration", "MaxWorkers",
               "MinWorkers", "MaxWebservers", "MinWebservers", "NetworkConfiguration",
               "PluginsS3Path", "PluginsS3ObjectVersion", "RequirementsS3Path",
               "RequirementsS3ObjectVersion", "Schedulers", "SourceBucketArn",
               "StartupScriptS3Path", "StartupScriptS3ObjectVersion", "WebserverAccessMode",
               "WeeklyMaintenanceWindowStart")
    update = {k: v for k, v in request.items() if k in allowed}
    if "NetworkConfiguration" in update:  # only the security groups change in place
        update["NetworkConfiguration"] = {
            "SecurityGroupIds": update["NetworkConfiguration"]["SecurityGroupIds"]}
    return update


def log_group_arn(account_id: str, region: str, name: str, suffix: str) -> str:
    return f"arn:{get_partition(region)}:logs:{region}:{account_id}:log-group:airflow-{name}-{suffix}"


def environment_document(request: dict[str, Any], account_id: str, region: str, *,
                         webserver: str, created: datetime, queue: str, vpce: str) -> dict:
    """GetEnvironment's ``Environment`` for the request, AVAILABLE (what the stack shows)."""
    name = request["Name"]
    partition = get_partition(region)
    doc = {k: v for k, v in request.items() if k != "LoggingConfiguration"}
    doc.update({
        "Arn": f"arn:{partition}:airflow:{region}:{account_id}:environment/{name}",
        "Status": "AVAILABLE", "CreatedAt": created, "WebserverUrl": webserver,
        "ServiceRoleArn": f"arn:{partition}:iam::{account_id}:role/aws-service-role/"
                          "airflow.amazonaws.com/AWSServiceRoleForAmazonMWAA",
        "AirflowVersion": request.get("AirflowVersion", "2.10.3"),
        "EnvironmentClass": request.get("EnvironmentClass", "mw1.small"),
        "WebserverAccessMode": request.get("WebserverAccessMode", "PRIVATE_ONLY"),
        "CeleryExecutorQueue": queue,
        "DatabaseVpcEndpointService": f"com.amazonaws.vpce.{region}.{vpce}",
        "WebserverVpcEndpointService": f"com.amazonaws.vpce.{region}.{vpce}-web"
        if request.get("WebserverAccessMode", "PRIVATE_ONLY") == "PRIVATE_ONLY" else "",
        "LastUpdate": {"Status": "SUCCESS", "CreatedAt": created},
        "LoggingConfiguration": {
            key: {**(request.get("LoggingConfiguration") or {}).get(
                key, {"Enabled": False, "LogLevel": "INFO"}),
                "CloudWatchLogGroupArn": log_group_arn(account_id, region, name, suffix)}
            for key, suffix in LOG_GROUPS.items()},
    })
    return doc


# =============================================================================================
# What CreateEnvironment checks, against moto's S3, IAM and EC2
# =============================================================================================
def _bucket_of(arn: str) -> str:
    return arn.split(":::", 1)[-1]


def check(request: dict[str, Any], account_id: str, region: str) -> None:
    name = request["Name"]
    if not NAME.match(name):
        raise ResourceFailed(name, "The environment name must start with a letter and hold only "
                                   "letters, digits, - and _ (at most 80).")
    missing = [k for k in REQUIRED if not request.get(k)]
    if missing:
        raise ResourceFailed(name, f"Property {missing[0]} cannot be empty.")
    s3 = s3_backends[account_id][get_partition(region)]
    bucket = _bucket_of(request["SourceBucketArn"])
    try:
        s3.get_bucket(bucket)
    except MissingBucket:
        raise ResourceFailed(name, f"The source bucket {bucket} does not exist.",
                             "Create the code bucket first (guide step 1).") from None
    for kind in ("Requirements", "Plugins", "StartupScript"):
        path, version = request.get(f"{kind}S3Path"), request.get(f"{kind}S3ObjectVersion")
        if path and s3.get_object(bucket, path, version_id=version) is None:
            what = f"s3://{bucket}/{path}" + (f" version {version}" if version else "")
            raise ResourceFailed(name, f"Unable to read {kind}S3Path {what}: the object does not "
                                       "exist.", "Upload it first (m7etl upload).")
    role = request["ExecutionRoleArn"].rsplit("/", 1)[-1]
    if role not in {r.name for r in iam_backends[account_id][get_partition(region)].roles.values()}:
        raise ResourceFailed(name, f"The execution role {request['ExecutionRoleArn']} does not "
                                   "exist.")
    _check_network(name, request["NetworkConfiguration"], account_id, region)


def _check_network(name: str, network: dict, account_id: str, region: str) -> None:
    ec2 = ec2_backends[account_id][region]
    subnet_ids, group_ids = network.get("SubnetIds") or [], network.get("SecurityGroupIds") or []
    if len(subnet_ids) != 2:
        raise ResourceFailed(name, f"MWAA needs exactly 2 private subnets, got {len(subnet_ids)}.",
                             "Check the PrivateSubnet1/PrivateSubnet2 exports.")
    known = {s.id: s for s in ec2.describe_subnets()}
    unknown = [s for s in subnet_ids if s not in known]
    if unknown:
        raise ResourceFailed(name, f"The subnet {unknown[0]} does not exist.",
                             "Check the PrivateSubnet1/PrivateSubnet2 exports of the network "
                             "stack.")
    zones = {known[s].availability_zone for s in subnet_ids}
    if len(zones) != 2:
        raise ResourceFailed(name, f"The subnets {', '.join(subnet_ids)} are in one Availability "
                                   f"Zone ({zones.pop()}); MWAA needs two.")
    groups = {g.id: g for g in ec2.describe_security_groups()}
    if not group_ids or any(g not in groups for g in group_ids):
        raise ResourceFailed(name, f"Unknown security group in {group_ids}.")
    vpcs = {known[s].vpc_id for s in subnet_ids} | {groups[g].vpc_id for g in group_ids}
    if len(vpcs) != 1:
        raise ResourceFailed(name, f"The subnets and security groups are in different VPCs "
                                   f"({', '.join(sorted(vpcs))}).")


# =============================================================================================
# The stand-in (a boto3 MWAA client: the requests are MWAA's own)
# =============================================================================================
def standin_client(endpoint: str):
    import boto3
    from botocore.config import Config

    from m7etl.storage.aws import client

    # The stand-in checks that requests are signed, not by whom: no real credentials go there.
    session = boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local")
    return client("mwaa", session, region="eu-west-1", endpoint_url=endpoint, config=Config(
        inject_host_prefix=False, retries={"max_attempts": 1}, connect_timeout=3,
        read_timeout=30))


def _error_code(exc: Exception) -> str:
    error = getattr(exc, "response", {}).get("Error", {})
    return str(error.get("Code", ""))


def register(endpoint: str, request: dict[str, Any], wait: float | None = None) -> dict:
    """CreateEnvironment on the stand-in (when it has the route), then GetEnvironment until
    AVAILABLE: the stand-in's answer (its WebserverUrl)."""
    from botocore.exceptions import BotoCoreError, ClientError

    name = request["Name"]
    hint = (f"Start it (make local-up) with --env-name {name}, or unset "
            f"{' and '.join(ENDPOINT_VARIABLES)} to model the environment without it.")
    mwaa = standin_client(endpoint)
    try:
        try:
            mwaa.create_environment(**request)
        except ClientError as exc:
            if _error_code(exc) not in UNSUPPORTED:
                raise ResourceFailed(name, f"The MWAA stand-in at {endpoint} refused "
                                           f"CreateEnvironment: {exc}", hint) from None
        deadline = time.monotonic() + (WAIT_SECONDS if wait is None else wait)
        while True:
            try:
                env = mwaa.get_environment(Name=name)["Environment"]
            except ClientError as exc:
                raise ResourceFailed(name, f"The MWAA stand-in at {endpoint} does not serve "
                                           f"this environment ({_error_code(exc)}).",
                                     hint) from None
            if env.get("Status") == "AVAILABLE":
                return env
            if env.get("Status") in ("CREATE_FAILED", "UNAVAILABLE") or \
                    time.monotonic() > deadline:
                raise ResourceFailed(name, f"The MWAA stand-in at {endpoint} reports the "
                                           f"environment {env.get('Status')}.", hint)
            time.sleep(0.2)
    except BotoCoreError as exc:
        raise ResourceFailed(name, f"The MWAA stand-in at {endpoint} is not reachable ({exc}).",
                             hint) from None


def _best_effort(endpoint: str | None, operation: str, **request: Any) -> None:
    """UpdateEnvironment/DeleteEnvironment: a stand-in without the route is left as it is."""
    if not endpoint:
        return
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        getattr(standin_client(endpoint), operation)(**request)
    except ClientError as exc:
        if _error_code(exc) not in UNSUPPORTED | {"ResourceNotFoundException"}:
            raise ResourceFailed(request["Name"], f"The MWAA stand-in at {endpoint} refused "
                                                  f"{operation}: {exc}") from None
    except BotoCoreError as exc:
        logger.warning("MWAA stand-in at %s unreachable for %s: %s", endpoint, operation, exc)


# =============================================================================================
# The model
# =============================================================================================
class MwaaEnvironment(Resource, CloudFormationModel):
    TYPE, NAME_PROPERTY = "AWS::MWAA::Environment", "Name"
    ATTRIBUTES: ClassVar[dict[str, str]] = {"Arn": "arn", "WebserverUrl": "webserver_url",
                  "CeleryExecutorQueue": "celery_queue",
                  "DatabaseVpcEndpointService": "database_vpce",
                  "WebserverVpcEndpointService": "webserver_vpce"}

    def __init__(self, account_id: str, region: str, doc: dict, endpoint: str | None):
        self.account_id, self.region, self.doc, self.endpoint = account_id, region, doc, endpoint
        self.name = doc["Name"]

    arn = property(lambda self: self.doc["Arn"])
    webserver_url = property(lambda self: self.doc["WebserverUrl"])
    celery_queue = property(lambda self: self.doc["CeleryExecutorQueue"])
    database_vpce = property(lambda self: self.doc["DatabaseVpcEndpointService"])
    webserver_vpce = property(lambda self: self.doc["WebserverVpcEndpointService"])

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in cls.ATTRIBUTES or _log_attribute(attr) is not None

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        key = _log_attribute(attribute_name)
        if key is not None:
            return self.doc["LoggingConfiguration"][key]["CloudWatchLogGroupArn"]
        return super().get_cfn_attribute(attribute_name)

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name, **kwargs):
        request = environment_request(resource_name, properties(cloudformation_json))
        check(request, account_id, region_name)
        store = ENVIRONMENTS.setdefault((account_id, region_name), {})
        if resource_name in store:
            raise ResourceFailed(resource_name, f"An environment named {resource_name} already "
                                                "exists.")
        endpoint = standin_endpoint()
        webserver = register(endpoint, request)["WebserverUrl"] if endpoint else \
            f"{uuid.uuid4()}.c2.{region_name}.airflow.amazonaws.com"
        doc = environment_document(
            request, account_id, region_name, webserver=webserver,
            created=datetime.now(UTC),
            queue=f"arn:{get_partition(region_name)}:sqs:{region_name}:"
                  f"{uuid.uuid4().int % 10**12:012d}:airflow-celery-{uuid.uuid4()}",
            vpce=f"vpce-svc-{uuid.uuid4().hex[:17]}")
        store[resource_name] = doc
        return cls(account_id, region_name, doc, endpoint)

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name,
                                        cloudformation_json, account_id, region_name):
        if new_resource_name != original_resource.name:  # a new name: a new environment
            new = cls.create_from_cloudformation_json(new_resource_name, cloudformation_json,
                                                      account_id, region_name)
            original_resource.delete(account_id, region_name)
            return new
        request = environment_request(new_resource_name, properties(cloudformation_json))
        check(request, account_id, region_name)
        _best_effort(original_resource.endpoint, "update_environment", **update_request(request))
        old = original_resource.doc
        doc = environment_document(request, account_id, region_name,
                                   webserver=old["WebserverUrl"], created=old["CreatedAt"],
                                   queue=old["CeleryExecutorQueue"],
                                   vpce=old["DatabaseVpcEndpointService"].rsplit(".", 1)[-1])
        doc["LastUpdate"] = {"Status": "SUCCESS", "CreatedAt": datetime.now(UTC),
                             "Source": "CloudFormation"}
        ENVIRONMENTS.setdefault((account_id, region_name), {})[new_resource_name] = doc
        original_resource.doc = doc
        return original_resource

    def delete(self, account_id: str, region_name: str) -> None:
        _best_effort(self.endpoint, "delete_environment", Name=self.name)
        ENVIRONMENTS.get((account_id, region_name), {}).pop(self.name, None)


def _log_attribute(attr: str) -> str | None:
    """``LoggingConfiguration.SchedulerLogs.CloudWatchLogGroupArn`` -> ``SchedulerLogs``."""
    match = re.fullmatch(r"LoggingConfiguration\.(\w+)\.CloudWatchLogGroupArn", attr)
    return match.group(1) if match and match.group(1) in LOG_GROUPS else None
