"""The local CloudFormation models' requests, as data: CloudFormation properties in, the
moto backend call's arguments (or the stand-in's MWAA request) out, and the stack engine's
reference and ordering rules. tests/local/test_cfn_models.py runs them on a real server.
"""

from __future__ import annotations

import pytest

from m7etl.local.moto.cfn_models_base import ResourceFailed
from m7etl.local.moto.cfn_models_moto import function_spec, layer_spec
from m7etl.local.moto.cfn_models_mwaa import (
    MwaaEnvironment,
    environment_document,
    environment_request,
    update_request,
)
from m7etl.local.moto.cfn_models_stack import dependency_order, references
from m7etl.local.moto.cfn_models_types import glue_job_request
from m7etl.local.moto.cfn_models_wiring import alarm_request, dashboard_body, egress_request, queue_name

ACCOUNT, REGION = "123456789012", "eu-west-1"


def test_glue_job_request_types_parameters_as_glue_does():
    request = glue_job_request("job", {
        "Role": "arn:role", "Command": {"Name": "pythonshell"}, "MaxCapacity": "0.0625",
        "Timeout": "60", "ExecutionProperty": {"MaxConcurrentRuns": "4"},
        "DefaultArguments": {"--flag": True, "--n": 3}, "Tags": {"team": "data"}})
    assert (request["max_capacity"], request["timeout"], request["execution_property"]) == (
        0.0625, 60, {"MaxConcurrentRuns": 4})
    assert request["default_arguments"] == {"--flag": "true", "--n": "3"}
    assert request["tags"] == {"team": "data"}
    with pytest.raises(ResourceFailed) as failed:
        glue_job_request("job", {"Command": {"Name": "pythonshell"}})
    assert failed.value.message == "job: Property Role cannot be empty."


def test_alarm_request_dimensions_and_metric_math():
    request = alarm_request("a", {"ComparisonOperator": "GreaterThanThreshold",
                                  "EvaluationPeriods": 1, "Threshold": "5.0",
                                  "Dimensions": [{"Name": "FunctionName", "Value": "f"}],
                                  "Metrics": [{"Id": "m", "Expression": "SELECT 1"}]})
    assert request["dimensions"] == [{"name": "FunctionName", "value": "f"}]
    assert request["threshold"] == 5.0
    assert [(q.id, q.expression) for q in request["metric_data_queries"]] == [("m", "SELECT 1")]


def test_dashboard_body_must_be_a_json_object():
    assert dashboard_body("d", '{"widgets": []}') == '{"widgets": []}'
    with pytest.raises(ResourceFailed) as failed:
        dashboard_body("d", '{"widgets": [}')
    assert failed.value.message == (
        "d: The dashboard body is not valid JSON (Expecting value: line 1 column 14 (char 13)). "
        "Check the DashboardBody's Fn::Sub: a substituted value may break the JSON.")
    with pytest.raises(ResourceFailed) as failed:
        dashboard_body("d", '{"widgets": {}}')
    assert failed.value.message == "d: The dashboard body must be a JSON object whose widgets is " \
                                   "a list."


def test_egress_request_all_traffic_to_a_group():
    assert egress_request({"GroupId": "sg-1", "IpProtocol": "-1",
                           "DestinationSecurityGroupId": "sg-1", "FromPort": 1}) == {
        "group_name_or_id": "sg-1", "ip_protocol": "-1", "from_port": None, "to_port": None,
        "ip_ranges": [], "source_groups": [{"GroupId": "sg-1", "Description": None}],
        "prefix_list_ids": []}
    with pytest.raises(ResourceFailed, match="needs one of CidrIp"):
        egress_request({"GroupId": "sg-1", "IpProtocol": "tcp"})


def test_function_and_layer_specs_keep_what_moto_dropped():
    spec = function_spec("f", {"Code": {"S3Bucket": "b", "S3Key": "k"}, "Role": "r",
                               "Layers": ["arn:l:1"], "Architectures": ["arm64"],
                               "EphemeralStorage": {"Size": "1024"}, "MemorySize": "256",
                               "KmsKeyArn": "arn:kms", "Tags": [{"Key": "a", "Value": "b"}]})
    assert (spec["Layers"], spec["Architectures"], spec["EphemeralStorage"], spec["MemorySize"],
            spec["Tags"]) == (["arn:l:1"], ["arm64"], {"Size": 1024}, 256, {"a": "b"})
    assert "KmsKeyArn" not in spec
    assert layer_spec("l", {"Content": {"S3Bucket": "b"}, "CompatibleArchitectures": ["arm64"]}) \
        == {"LayerName": "l", "Content": {"S3Bucket": "b"}, "CompatibleArchitectures": ["arm64"]}


def test_environment_request_and_document():
    props = {"AirflowVersion": "3.0.6", "MinWorkers": "1", "MaxWorkers": 2,
             "SourceBucketArn": "arn:aws:s3:::code", "DagS3Path": "dags",
             "ExecutionRoleArn": "arn:aws:iam::1:role/r", "WebserverAccessMode": "PUBLIC_ONLY",
             "AirflowConfigurationOptions": {"m7etl.environment": "test", "core.x": 5},
             "NetworkConfiguration": {"SubnetIds": ["s1", "s2"], "SecurityGroupIds": ["g"]},
             "LoggingConfiguration": {"TaskLogs": {"Enabled": True, "LogLevel": "INFO"}},
             "RequirementsS3ObjectVersion": None}
    request = environment_request("m7-etl-mwaa-test", props)
    assert request["MinWorkers"] == 1 and "RequirementsS3ObjectVersion" not in request
    assert request["AirflowConfigurationOptions"] == {"m7etl.environment": "test", "core.x": "5"}
    assert update_request(request)["NetworkConfiguration"] == {"SecurityGroupIds": ["g"]}
    doc = environment_document(request, ACCOUNT, REGION, webserver="127.0.0.1:9", created=None,
                               queue="q", vpce="vpce-svc-1")
    assert doc["Arn"] == f"arn:aws:airflow:{REGION}:{ACCOUNT}:environment/m7-etl-mwaa-test"
    assert (doc["Status"], doc["WebserverUrl"], doc["WebserverVpcEndpointService"]) == (
        "AVAILABLE", "127.0.0.1:9", "")
    assert doc["LoggingConfiguration"]["TaskLogs"] == {
        "Enabled": True, "LogLevel": "INFO",
        "CloudWatchLogGroupArn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:"
                                 "airflow-m7-etl-mwaa-test-Task"}
    assert doc["LoggingConfiguration"]["WorkerLogs"]["Enabled"] is False
    model = MwaaEnvironment(ACCOUNT, REGION, doc, None)
    assert (model.get_cfn_attribute("LoggingConfiguration.WebserverLogs.CloudWatchLogGroupArn"),
            model.get_cfn_attribute("LoggingConfiguration.DagProcessingLogs.CloudWatchLogGroupArn")
            ) == (f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:airflow-m7-etl-mwaa-test-WebServer",
                  f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:airflow-m7-etl-mwaa-test-DAGProcessing")
    assert (model.physical_resource_id, model.get_cfn_attribute("WebserverUrl")) == (
        "m7-etl-mwaa-test", "127.0.0.1:9")
    assert not MwaaEnvironment.has_cfn_attr("LoggingConfiguration.FooLogs.CloudWatchLogGroupArn")


def test_references_see_sub_variables_and_getatt_targets():
    definition = {"Properties": {
        "A": {"Fn::Sub": '{"password": "${SnowflakePassword}", "k": "${Key.Arn}", "x": "${!Lit}"}'},
        "B": {"Fn::GetAtt": ["Role", "Arn"]}, "C": {"Ref": "Topic"},
        "D": {"Fn::Sub": ["${Mwaa}-x", {"Mwaa": {"Ref": "MwaaEnvironment"}}]}}}
    assert sorted(references(definition)) == ["Key", "Mwaa", "MwaaEnvironment", "Role",
                                              "SnowflakePassword", "Topic"]


def test_dependency_order_puts_referenced_resources_first():
    resources = {"Fn": {"Properties": {"Layers": [{"Ref": "Layer"}]}},
                 "Alarm": {"Properties": {"D": {"Ref": "Fn"}}},
                 "Layer": {"Properties": {}}}
    assert dependency_order(["Alarm", "Fn", "Layer"], resources) == ["Layer", "Fn", "Alarm"]
    assert dependency_order(["Alarm"], resources) == ["Alarm"]
    assert queue_name("https://sqs.eu-west-1.amazonaws.com/1/m7-etl-dlq-test") == "m7-etl-dlq-test"
