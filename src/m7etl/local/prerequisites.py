"""The guide's prerequisites on the local stack: the VPC exports and both buckets.

The guide assumes them ("Prérequis": the two buckets exist, a VPC with two private subnets
whose ids an existing stack exports as ``VPC``, ``PrivateSubnet1``, ``PrivateSubnet2``); on
a fresh moto nothing exists, so ``m7etl local up --with-prerequisites`` and ``make
local-e2e`` create them as an account would have them: a small network stack (a VPC and
two subnets in two zones, exported under the guide's names), the data bucket and the code
bucket, public access blocked, the code bucket versioned (MWAA requires it). Existing ones
are left as they are. The requests are data (:func:`network_template`,
:func:`bucket_requests`); :func:`create_prerequisites` sends them.
"""

from __future__ import annotations

import json

NETWORK_STACK = "m7-network-local"
EXPORTS = ("VPC", "PrivateSubnet1", "PrivateSubnet2")
BLOCK_ALL = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
             "RestrictPublicBuckets": True}


def network_template(region: str) -> dict:
    """A VPC and two private subnets in two zones, exported under the guide's names."""
    subnets = {f"PrivateSubnet{i}": {"Type": "AWS::EC2::Subnet", "Properties": {
        "VpcId": {"Ref": "Vpc"}, "CidrBlock": f"10.42.{i}.0/24",
        "AvailabilityZone": f"{region}{'ab'[i - 1]}"}} for i in (1, 2)}
    return {"AWSTemplateFormatVersion": "2010-09-09",
            "Description": "The network the guide's prerequisites assume (local stack).",
            "Resources": {"Vpc": {"Type": "AWS::EC2::VPC",
                                  "Properties": {"CidrBlock": "10.42.0.0/16"}}, **subnets},
            "Outputs": {name: {"Value": {"Ref": ref}, "Export": {"Name": name}} for name, ref in
                        (("VPC", "Vpc"), ("PrivateSubnet1", "PrivateSubnet1"),
                         ("PrivateSubnet2", "PrivateSubnet2"))}}


def bucket_requests(config) -> list[tuple[str, dict]]:
    """``(S3 operation, its arguments)`` making both buckets as the guide expects them."""
    requests: list[tuple[str, dict]] = []
    for bucket in (config.data_bucket, config.code_bucket):
        requests.append(("create_bucket", {"Bucket": bucket, "CreateBucketConfiguration": {
            "LocationConstraint": config.region}}))
        requests.append(("put_public_access_block", {
            "Bucket": bucket, "PublicAccessBlockConfiguration": dict(BLOCK_ALL)}))
    requests.append(("put_bucket_versioning", {"Bucket": config.code_bucket,
                                               "VersioningConfiguration": {"Status": "Enabled"}}))
    return requests


def local_clients(config):
    """Clients of the local stack (``clients(service)``) with moto's fake keys: the
    prerequisites never need, nor reach, a credential of this machine."""
    import boto3

    from m7etl.storage.aws import INTERACTIVE, client

    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                    aws_session_token="testing", region_name=config.region)
    made: dict[str, object] = {}

    def clients(service: str):
        if service not in made:
            made[service] = client(service, session, config.region,
                                   config.endpoints.get(service) or config.endpoint_url,
                                   INTERACTIVE)
        return made[service]

    return clients


def create_prerequisites(config, clients) -> list[str]:
    """Create what is missing; one line per thing, saying whether it was made or found."""
    from botocore.exceptions import ClientError

    done: list[str] = []
    cf = clients("cloudformation")
    exports = {e["Name"]: e["Value"] for e in cf.list_exports().get("Exports", [])}
    if all(name in exports for name in EXPORTS):
        done.append("VPC exports found: " + ", ".join(f"{n}={exports[n]}" for n in EXPORTS))
    else:
        cf.create_stack(StackName=NETWORK_STACK,
                        TemplateBody=json.dumps(network_template(config.region)))
        cf.get_waiter("stack_create_complete").wait(
            StackName=NETWORK_STACK, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
        exports = {e["Name"]: e["Value"] for e in cf.list_exports().get("Exports", [])}
        done.append(f"stack {NETWORK_STACK} created, exporting "
                    + ", ".join(f"{n}={exports.get(n)}" for n in EXPORTS))
    s3 = clients("s3")
    for operation, request in bucket_requests(config):
        try:
            getattr(s3, operation)(**request)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
                raise
            done.append(f"bucket {request['Bucket']} found")
            continue
        if operation == "create_bucket":
            done.append(f"bucket {request['Bucket']} created (public access blocked)")
        elif operation == "put_bucket_versioning":
            done.append(f"versioning enabled on {request['Bucket']}")
    return done
