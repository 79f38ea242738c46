"""CloudFormation models of the resources that wire others together, on moto's backends:
SNS topic policy and subscription, SQS queue policy, security group egress rule, CloudWatch
alarm and dashboard (moto 5.1 has no model for any of them).

============================== ====================== ===================================
type                           Ref                    GetAtt
============================== ====================== ===================================
AWS::SNS::TopicPolicy          generated id           Id
AWS::SNS::Subscription         subscription ARN       Arn
AWS::SQS::QueuePolicy          generated id           Id
AWS::EC2::SecurityGroupEgress  rule id (sgr-...)      Id
AWS::CloudWatch::Alarm         alarm name             Arn
AWS::CloudWatch::Dashboard     dashboard name         (none)
============================== ====================== ===================================

Policies are set on their topics and queues (deleting one gives a topic moto's default
policy back, a queue none); the subscription is moto's (an e-mail one is created, no
confirmation is sent); alarms are stored, never evaluated; a dashboard body must be a JSON
object, as PutDashboard checks. Changing an alarm's or dashboard's name replaces it, an
egress rule is replaced by any change, a subscription by a new topic, protocol or endpoint.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from typing import Any, ClassVar

from moto.cloudwatch.models import Dimension, Metric, MetricDataQuery, MetricStat, cloudwatch_backends
from moto.core.common_models import CloudFormationModel
from moto.ec2.models import ec2_backends
from moto.sns.models import sns_backends
from moto.sqs.models import sqs_backends

from m7etl.local.moto.cfn_models_base import (
    Resource,
    ResourceFailed,
    boolean,
    number,
    properties,
    tag_list,
)


# =============================================================================================
# Requests: CloudFormation properties -> the backend call's arguments (pure, tested as data)
# =============================================================================================
def alarm_request(name: str, props: dict) -> dict[str, Any]:
    """``CloudWatchBackend.put_metric_alarm`` arguments (one metric or a ``Metrics`` math)."""
    queries = []
    for query in props.get("Metrics") or []:
        stat = query.get("MetricStat")
        metric_stat = None
        if stat:
            metric = stat.get("Metric") or {}
            metric_stat = MetricStat(
                Metric(metric.get("MetricName"), metric.get("Namespace"),
                       [Dimension(d["Name"], d["Value"]) for d in metric.get("Dimensions") or []]),
                stat.get("Period"), stat.get("Stat"), stat.get("Unit"))
        queries.append(MetricDataQuery(query["Id"], query.get("Label"), query.get("Period"),
                                       query.get("ReturnData"), query.get("Expression"),
                                       metric_stat))
    return {
        "name": name, "namespace": props.get("Namespace"), "metric_name": props.get("MetricName"),
        "comparison_operator": props["ComparisonOperator"],
        "evaluation_periods": number(props["EvaluationPeriods"]),
        "period": number(props.get("Period")), "threshold": number(props.get("Threshold"), float),
        "statistic": props.get("Statistic"), "description": props.get("AlarmDescription"),
        "dimensions": [{"name": d["Name"], "value": d["Value"]}
                       for d in props.get("Dimensions") or []],
        "alarm_actions": list(props.get("AlarmActions") or []),
        "metric_data_queries": queries or None,
        "datapoints_to_alarm": number(props.get("DatapointsToAlarm")),
        "extended_statistic": props.get("ExtendedStatistic"),
        "ok_actions": list(props.get("OKActions") or []),
        "insufficient_data_actions": list(props.get("InsufficientDataActions") or []),
        "unit": props.get("Unit"), "actions_enabled": boolean(props.get("ActionsEnabled", True)),
        "treat_missing_data": props.get("TreatMissingData"),
        "evaluate_low_sample_count_percentile": props.get("EvaluateLowSampleCountPercentile"),
        "threshold_metric_id": props.get("ThresholdMetricId"), "tags": tag_list(props.get("Tags")),
    }


def dashboard_body(name: str, body: Any) -> str:
    """PutDashboard refuses a body that is not a JSON object with a ``widgets`` list."""
    text = body if isinstance(body, str) else json.dumps(body)
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ResourceFailed(name, f"The dashboard body is not valid JSON ({exc}).",
                             "Check the DashboardBody's Fn::Sub: a substituted value may "
                             "break the JSON.") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("widgets", []), list):
        raise ResourceFailed(name, "The dashboard body must be a JSON object whose widgets "
                                   "is a list.")
    return text


def egress_request(props: dict) -> dict[str, Any]:
    """``EC2Backend.authorize_security_group_egress`` arguments of one egress rule."""
    if not props.get("GroupId") or not props.get("IpProtocol"):
        raise ResourceFailed("AWS::EC2::SecurityGroupEgress", "GroupId and IpProtocol are "
                                                              "required.")
    ranges = []
    if props.get("CidrIp"):
        ranges.append({"CidrIp": props["CidrIp"], "Description": props.get("Description")})
    if props.get("CidrIpv6"):
        ranges.append({"CidrIpv6": props["CidrIpv6"], "Description": props.get("Description")})
    groups = [{"GroupId": props["DestinationSecurityGroupId"],
               "Description": props.get("Description")}] \
        if props.get("DestinationSecurityGroupId") else []
    prefixes = [{"PrefixListId": props["DestinationPrefixListId"]}] \
        if props.get("DestinationPrefixListId") else []
    if not (ranges or groups or prefixes):
        raise ResourceFailed(props["GroupId"], "An egress rule needs one of CidrIp, CidrIpv6, "
                                               "DestinationSecurityGroupId, "
                                               "DestinationPrefixListId.")
    protocol = str(props["IpProtocol"])
    return {"group_name_or_id": props["GroupId"], "ip_protocol": protocol,
            "from_port": None if protocol == "-1" else props.get("FromPort"),
            "to_port": None if protocol == "-1" else props.get("ToPort"),
            "ip_ranges": ranges, "source_groups": groups, "prefix_list_ids": prefixes}


def queue_name(url_or_arn: str) -> str:
    """A queue's name from its URL (what Ref gives) or its ARN."""
    return url_or_arn.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]


def generated_id(resource_name: str) -> str:
    """A policy's Ref: CloudFormation's ``<stack>-<LogicalId>-<random>`` (moto's name)."""
    return resource_name or f"policy-{secrets.token_hex(6).upper()}"



# =============================================================================================
# Models
# =============================================================================================
class _Policy(Resource):
    """TopicPolicy and QueuePolicy: a policy document set on a list of targets."""

    ATTRIBUTES: ClassVar[dict[str, str]] = {"Id": "name"}
    TARGETS = ""

    def __init__(self, account_id: str, region: str, name: str, targets: list[str]):
        self.account_id, self.region, self.name, self.targets = account_id, region, name, targets

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name, **kwargs):
        props = properties(cloudformation_json)
        targets = list(props.get(cls.TARGETS) or [])
        if not targets or not props.get("PolicyDocument"):
            raise ResourceFailed(resource_name, f"{cls.TARGETS} and PolicyDocument are "
                                                "required.")
        policy = json.dumps(props["PolicyDocument"])
        for target in targets:
            cls._apply(account_id, region_name, target, policy)
        return cls(account_id, region_name, generated_id(resource_name), targets)

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name,
                                        cloudformation_json, account_id, region_name):
        props = properties(cloudformation_json)
        targets = list(props.get(cls.TARGETS) or [])
        for gone in set(original_resource.targets) - set(targets):
            cls._apply(account_id, region_name, gone, None)
        for target in targets:
            cls._apply(account_id, region_name, target, json.dumps(props["PolicyDocument"]))
        original_resource.targets = targets
        return original_resource

    def delete(self, account_id: str, region_name: str) -> None:
        for target in self.targets:
            with contextlib.suppress(Exception):  # the target went first: nothing to reset
                self._apply(account_id, region_name, target, None)

    @classmethod
    def _apply(cls, account_id: str, region: str, target: str, policy: str | None) -> None:
        raise NotImplementedError


class SnsTopicPolicy(_Policy, CloudFormationModel):
    TYPE, TARGETS = "AWS::SNS::TopicPolicy", "Topics"

    @classmethod
    def _apply(cls, account_id: str, region: str, target: str, policy: str | None) -> None:
        backend = sns_backends[account_id][region]
        topic = backend.get_topic(target)
        if policy is None:  # deleting the policy gives the topic its default policy back
            topic._policy_json = topic._create_default_topic_policy(region, account_id,
                                                                     topic.name)
        else:
            backend.set_topic_attribute(target, "policy", policy)  # as SetTopicAttributes


class SqsQueuePolicy(_Policy, CloudFormationModel):
    TYPE, TARGETS = "AWS::SQS::QueuePolicy", "Queues"

    @classmethod
    def _apply(cls, account_id: str, region: str, target: str, policy: str | None) -> None:
        sqs_backends[account_id][region].set_queue_attributes(queue_name(target),
                                                              {"Policy": policy or ""})


class SnsSubscription(Resource, CloudFormationModel):
    TYPE, REF = "AWS::SNS::Subscription", "arn"
    ATTRIBUTES: ClassVar[dict[str, str]] = {"Arn": "arn"}
    SETTABLE = ("DeliveryPolicy", "FilterPolicy", "FilterPolicyScope", "RawMessageDelivery",
                "RedrivePolicy", "SubscriptionRoleArn")

    def __init__(self, account_id: str, region: str, arn: str, props: dict):
        self.account_id, self.region, self.arn, self.props = account_id, region, arn, props

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name, **kwargs):
        props = properties(cloudformation_json)
        if not props.get("TopicArn") or not props.get("Protocol"):
            raise ResourceFailed(resource_name, "TopicArn and Protocol are required.")
        backend = sns_backends[account_id][region_name]
        subscription = backend.subscribe(props["TopicArn"], props.get("Endpoint"),
                                         props["Protocol"])
        cls._attributes(backend, subscription.arn, props)
        return cls(account_id, region_name, subscription.arn, props)

    @staticmethod
    def _attributes(backend, arn: str, props: dict) -> None:
        for key in SnsSubscription.SETTABLE:
            if key in props:
                value = props[key]
                backend.set_subscription_attributes(
                    arn, key, value if isinstance(value, str) else json.dumps(value)
                    if isinstance(value, dict) else str(value).lower())

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name,
                                        cloudformation_json, account_id, region_name):
        props = properties(cloudformation_json)
        if any(props.get(k) != original_resource.props.get(k)
               for k in ("TopicArn", "Protocol", "Endpoint", "Region")):
            new = cls.create_from_cloudformation_json(new_resource_name, cloudformation_json,
                                                      account_id, region_name)
            original_resource.delete(account_id, region_name)
            return new
        cls._attributes(sns_backends[account_id][region_name], original_resource.arn, props)
        original_resource.props = props
        return original_resource

    def delete(self, account_id: str, region_name: str) -> None:
        sns_backends[account_id][region_name].unsubscribe(self.arn)


class SecurityGroupEgress(Resource, CloudFormationModel):
    TYPE, REF = "AWS::EC2::SecurityGroupEgress", "rule_id"
    ATTRIBUTES: ClassVar[dict[str, str]] = {"Id": "rule_id"}

    def __init__(self, account_id: str, region: str, rule_id: str, group_id: str, props: dict):
        self.account_id, self.region, self.rule_id, self.group_id, self.props = (
            account_id, region, rule_id, group_id, props)

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name, **kwargs):
        props = properties(cloudformation_json)
        request = egress_request(props)
        try:
            rules, group = ec2_backends[account_id][region_name].authorize_security_group_egress(
                **request)
        except Exception as exc:  # moto's EC2 errors name the group or the duplicate rule
            raise ResourceFailed(props["GroupId"], getattr(exc, "message", str(exc))) from None
        return cls(account_id, region_name, rules[0].id, group.id, props)

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name,
                                        cloudformation_json, account_id, region_name):
        if properties(cloudformation_json) == original_resource.props:
            return original_resource
        original_resource.delete(account_id, region_name)  # every property but Description
        return cls.create_from_cloudformation_json(new_resource_name, cloudformation_json,
                                                   account_id, region_name)

    def delete(self, account_id: str, region_name: str) -> None:
        backend = ec2_backends[account_id][region_name]
        if backend.get_security_group_from_id(self.group_id) is None:
            return  # the group went first (a stack delete's order): its rules went with it
        request = egress_request(self.props)
        backend.revoke_security_group_egress(
            self.group_id, request["ip_protocol"], request["from_port"], request["to_port"],
            request["ip_ranges"], security_rule_ids=[self.rule_id])


class CloudWatchAlarm(Resource, CloudFormationModel):
    TYPE, NAME_PROPERTY = "AWS::CloudWatch::Alarm", "AlarmName"
    ATTRIBUTES: ClassVar[dict[str, str]] = {"Arn": "arn"}

    def __init__(self, account_id: str, region: str, name: str, arn: str):
        self.account_id, self.region, self.name, self.arn = account_id, region, name, arn

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name, **kwargs):
        props = properties(cloudformation_json)
        try:
            alarm = cloudwatch_backends[account_id][region_name].put_metric_alarm(
                **alarm_request(resource_name, props))
        except KeyError as exc:
            raise ResourceFailed(resource_name, f"Property {exc.args[0]} cannot be "
                                                "empty.") from None
        return cls(account_id, region_name, resource_name, alarm.alarm_arn)

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name,
                                        cloudformation_json, account_id, region_name):
        new = cls.create_from_cloudformation_json(new_resource_name, cloudformation_json,
                                                  account_id, region_name)  # PutMetricAlarm
        if new_resource_name != original_resource.name:
            original_resource.delete(account_id, region_name)
        return new

    def delete(self, account_id: str, region_name: str) -> None:
        cloudwatch_backends[account_id][region_name].delete_alarms([self.name])


class CloudWatchDashboard(Resource, CloudFormationModel):
    TYPE, NAME_PROPERTY = "AWS::CloudWatch::Dashboard", "DashboardName"

    def __init__(self, account_id: str, region: str, name: str):
        self.account_id, self.region, self.name = account_id, region, name

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name, **kwargs):
        body = dashboard_body(resource_name, properties(cloudformation_json).get("DashboardBody"))
        cloudwatch_backends[account_id][region_name].put_dashboard(resource_name, body)
        return cls(account_id, region_name, resource_name)

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name,
                                        cloudformation_json, account_id, region_name):
        new = cls.create_from_cloudformation_json(new_resource_name, cloudformation_json,
                                                  account_id, region_name)
        if new_resource_name != original_resource.name:
            original_resource.delete(account_id, region_name)
        return new

    def delete(self, account_id: str, region_name: str) -> None:
        cloudwatch_backends[account_id][region_name].delete_dashboards([self.name])



WIRING_TYPES = (SnsTopicPolicy, SqsQueuePolicy, SnsSubscription, SecurityGroupEgress,
                CloudWatchAlarm, CloudWatchDashboard)
