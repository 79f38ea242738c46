"""The guide's prerequisites on the local stack (m7etl.local.prerequisites), on moto."""

from __future__ import annotations

import uuid
from dataclasses import replace

import boto3
import pytest

from m7etl.deploy.config import EnvConfig
from m7etl.local.prerequisites import (
    NETWORK_STACK,
    bucket_requests,
    create_prerequisites,
    network_template,
)

REGION = "eu-north-1"  # the session's moto is shared: exports are per region, none here


def test_the_network_exports_the_guides_names_from_two_zones():
    template = network_template("eu-west-1")
    assert template["Outputs"] == {
        "VPC": {"Value": {"Ref": "Vpc"}, "Export": {"Name": "VPC"}},
        "PrivateSubnet1": {"Value": {"Ref": "PrivateSubnet1"}, "Export": {"Name": "PrivateSubnet1"}},
        "PrivateSubnet2": {"Value": {"Ref": "PrivateSubnet2"}, "Export": {"Name": "PrivateSubnet2"}}}
    zones = [template["Resources"][f"PrivateSubnet{i}"]["Properties"]["AvailabilityZone"]
             for i in (1, 2)]
    assert zones == ["eu-west-1a", "eu-west-1b"]


def test_both_buckets_block_public_access_and_the_code_bucket_is_versioned():
    config = EnvConfig("local", data_bucket="d-bucket", code_bucket="c-bucket")
    assert [(op, r["Bucket"]) for op, r in bucket_requests(config)] == [
        ("create_bucket", "d-bucket"), ("put_public_access_block", "d-bucket"),
        ("create_bucket", "c-bucket"), ("put_public_access_block", "c-bucket"),
        ("put_bucket_versioning", "c-bucket")]
    assert bucket_requests(config)[0][1]["CreateBucketConfiguration"] == {
        "LocationConstraint": "eu-west-1"}
    assert bucket_requests(config)[-1][1]["VersioningConfiguration"] == {"Status": "Enabled"}


@pytest.fixture
def config(moto_endpoint):
    suffix = uuid.uuid4().hex[:8]
    return replace(EnvConfig("local"), region=REGION, endpoint_url=moto_endpoint,
                   data_bucket=f"m7-data-{suffix}", code_bucket=f"m7-code-{suffix}")


def test_they_are_created_once_then_found(config, moto_endpoint):
    from m7etl.local.prerequisites import local_clients

    clients = local_clients(config)
    first = create_prerequisites(config, clients)
    cf = boto3.client("cloudformation", endpoint_url=moto_endpoint, region_name=REGION)
    exports = {e["Name"]: e["Value"] for e in cf.list_exports()["Exports"]}
    ec2 = boto3.client("ec2", endpoint_url=moto_endpoint, region_name=REGION)
    subnets = ec2.describe_subnets(SubnetIds=[exports["PrivateSubnet1"],
                                              exports["PrivateSubnet2"]])["Subnets"]
    assert {s["VpcId"] for s in subnets} == {exports["VPC"]}
    assert sorted(s["AvailabilityZone"] for s in subnets) == ["eu-north-1a", "eu-north-1b"]
    assert first == [
        f"stack {NETWORK_STACK} created, exporting VPC={exports['VPC']}, "
        f"PrivateSubnet1={exports['PrivateSubnet1']}, PrivateSubnet2={exports['PrivateSubnet2']}",
        f"bucket {config.data_bucket} created (public access blocked)",
        f"bucket {config.code_bucket} created (public access blocked)",
        f"versioning enabled on {config.code_bucket}"]
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION)
    assert s3.get_bucket_versioning(Bucket=config.code_bucket)["Status"] == "Enabled"
    block = s3.get_public_access_block(Bucket=config.data_bucket)
    assert all(block["PublicAccessBlockConfiguration"].values())
    again = create_prerequisites(config, local_clients(config))
    assert again[:3] == [
        f"VPC exports found: VPC={exports['VPC']}, PrivateSubnet1={exports['PrivateSubnet1']}, "
        f"PrivateSubnet2={exports['PrivateSubnet2']}",
        f"bucket {config.data_bucket} found", f"bucket {config.code_bucket} found"]
