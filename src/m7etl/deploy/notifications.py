"""The data bucket's event notifications to the S3-event function (the guide's step 5).

``PutBucketNotificationConfiguration`` replaces the bucket's whole configuration, so the
guide's one-liner would erase every other rule on the bucket. Here the configuration is
read, our two rules are merged into it by id, and it is written back only when something
changes. Our rules cover ``landing/`` only (the guide's suffix-only rule would also fire on
the pipeline's own ``raw/`` copies) and gzipped files too. A foreign rule that overlaps
ours is explained, never overwritten (S3 would refuse the pair as "ambiguously defined").

Pure part: :func:`desired_rules`, :func:`overlaps`, :func:`merge`, :func:`permits_bucket`.
Thin part: :func:`configure_notifications` and the few calls it makes.
"""

from __future__ import annotations

import copy
import fnmatch
import json
from dataclasses import asdict, dataclass, field

from m7etl.exceptions import DeployError

LANDING_PREFIX = "landing/"
EVENTS = ("s3:ObjectCreated:*",)
RULES = {"m7etl-landing-csv": ".csv", "m7etl-landing-csv-gz": ".csv.gz"}
FUNCTION_OUTPUT = "S3EventLambdaFunctionArn"
PERMISSION_RESOURCE = "S3EventInvokePermission"
# The configuration's rule lists and the ARN key of each.
KINDS = {"LambdaFunctionConfigurations": "LambdaFunctionArn",
         "QueueConfigurations": "QueueArn", "TopicConfigurations": "TopicArn"}
EVENTBRIDGE = "EventBridgeConfiguration"

ADDED, UPDATED, UNCHANGED, REMOVED, KEPT = "added", "updated", "unchanged", "removed", "kept"


# -- pure --------------------------------------------------------------------------------

def desired_rules(function_arn: str) -> list[dict]:
    """Our ``LambdaFunctionConfigurations``: ``landing/*.csv`` and ``landing/*.csv.gz``."""
    return [{"Id": rule_id, "LambdaFunctionArn": function_arn, "Events": list(EVENTS),
             "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": LANDING_PREFIX},
                                                {"Name": "suffix", "Value": suffix}]}}}
            for rule_id, suffix in RULES.items()]


def key_filter(rule: dict) -> tuple[str, str]:
    """(prefix, suffix) of a rule; S3 answers ``Prefix``/``Suffix``, accepts either case."""
    values = {"prefix": "", "suffix": ""}
    for item in rule.get("Filter", {}).get("Key", {}).get("FilterRules", []):
        values[str(item.get("Name", "")).lower()] = item.get("Value", "")
    return values["prefix"], values["suffix"]


def target(rule: dict) -> tuple[str, str]:
    """(kind, ARN) of a rule's destination: ``lambda``, ``sqs`` or ``sns``."""
    for key, kind in (("LambdaFunctionArn", "lambda"), ("QueueArn", "sqs"), ("TopicArn", "sns")):
        if key in rule:
            return kind, rule[key]
    return "?", ""


def _events_overlap(a: str, b: str) -> bool:
    def matches(pattern: str, event: str) -> bool:
        return pattern == event or (pattern.endswith("*") and event.startswith(pattern[:-1]))

    return matches(a, b) or matches(b, a)


def overlaps(rule_a: dict, rule_b: dict) -> bool:
    """True when S3 would call the pair ambiguous: a shared event type, overlapping
    prefixes (one starts the other; empty overlaps all) and suffixes (one ends the other)."""
    if not any(_events_overlap(a, b) for a in rule_a.get("Events", [])
               for b in rule_b.get("Events", [])):
        return False
    (pa, sa), (pb, sb) = key_filter(rule_a), key_filter(rule_b)
    return (pa.startswith(pb) or pb.startswith(pa)) and (sa.endswith(sb) or sb.endswith(sa))


def _normal(rule: dict) -> tuple:
    return (rule.get("Id"), target(rule), tuple(sorted(rule.get("Events", []))), key_filter(rule))


def describe(rule: dict) -> str:
    """A rule in one phrase, for messages: its id, filter, events and target."""
    prefix, suffix = key_filter(rule)
    kind, arn = target(rule)
    return (f"rule '{rule.get('Id', '(no id)')}' (prefix {prefix!r}, suffix {suffix!r}, "
            f"events {', '.join(rule.get('Events', []))}) to {kind} {arn}")


@dataclass
class Change:
    rule_id: str
    action: str  # added | updated | unchanged | removed
    before: dict | None = None
    after: dict | None = None


def merge(existing: dict | None, desired: list[dict], *, replace: tuple[str, ...] = (),
          bucket: str = "the data bucket") -> tuple[dict, list[Change]]:
    """The configuration to write, and what it changes.

    Everything that is not ours is kept as read (other targets, queues, topics, the
    ``EventBridgeConfiguration``); our rules are replaced by id; foreign rules named in
    ``replace`` are removed. A foreign rule overlapping one of ours raises, naming it.
    """
    config = {k: copy.deepcopy(v) for k, v in (existing or {}).items()
              if k in KINDS or k == EVENTBRIDGE}
    ours = {rule["Id"] for rule in desired}
    changes: list[Change] = []
    for kind in KINDS:
        kept = []
        for rule in config.get(kind, []):
            if rule.get("Id") in replace and rule.get("Id") not in ours:
                changes.append(Change(rule["Id"], REMOVED, before=rule))
            else:
                kept.append(rule)
        config[kind] = kept
    for rule in desired:
        for kind in KINDS:
            for other in config[kind]:
                if other.get("Id") not in ours and overlaps(rule, other):
                    raise _conflict(bucket, rule, other)
    previous = {r.get("Id"): r for r in config["LambdaFunctionConfigurations"]}
    misplaced = [r.get("Id") for k in KINDS if k != "LambdaFunctionConfigurations"
                 for r in config[k] if r.get("Id") in ours]
    for kind in KINDS:  # one of our ids on a queue or topic: ours now, to the function
        config[kind] = [r for r in config[kind] if r.get("Id") not in ours]
    rules = config["LambdaFunctionConfigurations"]
    for rule in desired:
        before = previous.get(rule["Id"])
        if before is not None and _normal(before) == _normal(rule):
            changes.append(Change(rule["Id"], UNCHANGED, before=before, after=before))
            rules.append(before)
            continue
        action = UPDATED if before is not None or rule["Id"] in misplaced else ADDED
        changes.append(Change(rule["Id"], action, before=before, after=rule))
        rules.append(copy.deepcopy(rule))
    order = {r["Id"]: i for i, r in enumerate(desired)}
    rules.sort(key=lambda r: (r.get("Id") in order, order.get(r.get("Id"), 0)))
    return {k: v for k, v in config.items() if v or k == EVENTBRIDGE}, changes


def _conflict(bucket: str, ours: dict, other: dict) -> DeployError:
    rule_id = other.get("Id", "(no id)")
    same = target(other)[1] == target(ours)[1]
    why = (" It sends to the S3-event function itself: it looks like the guide's hand-made "
           "step-5 rule." if same else "")
    return DeployError(
        f"Bucket {bucket}: the existing {describe(other)} overlaps m7etl's rule "
        f"'{ours['Id']}' (prefix {key_filter(ours)[0]!r}, suffix {key_filter(ours)[1]!r}); "
        f"S3 refuses overlapping rules, so nothing was written.{why}",
        hint=f"Narrow or remove rule '{rule_id}' (S3 console: bucket > Properties > Event "
             f"notifications), or run again with --replace-rule {rule_id} to let m7etl "
             "replace it.")


def permits_bucket(policy: dict, bucket: str, account: str | None = None,
                   partition: str = "aws") -> bool:
    """True when a statement of the function's policy lets S3 invoke it for ``bucket``:
    principal ``s3.amazonaws.com``, action ``lambda:InvokeFunction``, and a ``SourceArn``
    matching the bucket, or else a ``SourceAccount`` (or no condition at all)."""
    bucket_arn = f"arn:{partition}:s3:::{bucket}"
    for statement in policy.get("Statement", []):
        if statement.get("Effect") != "Allow":
            continue
        principal = statement.get("Principal", {})
        services = principal.get("Service", []) if isinstance(principal, dict) else principal
        if "s3.amazonaws.com" not in ([services] if isinstance(services, str) else services):
            continue
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if not {"lambda:InvokeFunction", "lambda:*", "*"} & set(actions):
            continue
        conditions = {key.lower(): value for values in statement.get("Condition", {}).values()
                      for key, value in values.items()}
        source_arn = conditions.get("aws:sourcearn")
        if source_arn is not None:
            patterns = [source_arn] if isinstance(source_arn, str) else source_arn
            if any(fnmatch.fnmatchcase(bucket_arn, p) for p in patterns):
                return True
            continue
        source_account = conditions.get("aws:sourceaccount")
        if source_account is None or account is None or account in (
                [source_account] if isinstance(source_account, str) else source_account):
            return True
    return False


def add_permission_command(function_arn: str, bucket: str) -> str:
    """The AWS CLI line that grants what the template's S3EventInvokePermission grants."""
    partition, account = _arn_parts(function_arn)
    return (f"aws lambda add-permission --function-name {function_arn} --statement-id "
            f"s3-invoke-{bucket} --action lambda:InvokeFunction --principal s3.amazonaws.com "
            f"--source-arn arn:{partition}:s3:::{bucket} --source-account {account}")


def _arn_parts(arn: str) -> tuple[str, str]:
    parts = arn.split(":")
    return (parts[1], parts[4]) if len(parts) > 4 else ("aws", "")


# -- the report ---------------------------------------------------------------------------

@dataclass
class NotificationReport:
    """What ``m7etl notifications`` did: the rules now on the bucket and the changes."""

    bucket: str
    function_arn: str
    rules: list[dict]  # the configuration's rules after the merge, each with its kind
    changes: list[Change] = field(default_factory=list)
    written: bool = False
    dry_run: bool = False

    @property
    def changed(self) -> bool:
        return any(c.action != UNCHANGED for c in self.changes)

    def action_of(self, rule_id: str) -> str:
        return next((c.action for c in self.changes if c.rule_id == rule_id), KEPT)

    def rows(self) -> list[dict]:
        """One row per rule (and per removed rule): id, events, prefix, suffix, target, change."""
        rows = []
        for rule in self.rules + [c.before for c in self.changes if c.action == REMOVED]:
            prefix, suffix = key_filter(rule)
            kind, arn = target(rule)
            rows.append({"id": rule.get("Id", ""), "events": list(rule.get("Events", [])),
                         "prefix": prefix, "suffix": suffix, "target_kind": kind,
                         "target": arn, "change": self.action_of(rule.get("Id", ""))})
        return rows

    def to_dict(self) -> dict:
        return {"bucket": self.bucket, "function_arn": self.function_arn,
                "changed": self.changed, "written": self.written, "dry_run": self.dry_run,
                "rules": self.rows(), "changes": [asdict(c) for c in self.changes]}


# -- thin AWS layer ----------------------------------------------------------------------

def _code(exc) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _refused(exc, what: str, permission: str) -> DeployError:
    from m7etl.storage import errors

    code, message, kind = _code(exc), errors.error_message(exc), errors.classify(exc)
    if kind in errors.RETRYABLE:
        return DeployError(f"AWS throttled {what} ({code})." if kind == errors.THROTTLED else
                           f"AWS failed {what} for now ({code}).",
                           hint="Run the same command again.", retryable=True)
    if kind == errors.DENIED:
        return DeployError(f"Access denied to {what}.",
                           hint=f"Grant the caller {permission} and run again.")
    if kind == errors.EXPIRED:
        return DeployError(f"The AWS session expired during {what}.",
                           hint="Refresh the credentials (e.g. aws sso login) and run again.")
    return DeployError(f"AWS refused {what}: {code}: {message}".rstrip(": "),
                       hint="Check the bucket, the function and the caller's permissions.")


def function_arn(cloudformation, stack_name: str, env: str) -> str:
    """The S3-event function's ARN, from the stack's output (the stack is the one truth)."""
    from botocore.exceptions import ClientError

    deploy = f"Run `m7etl deploy --env {env}` first."
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        if _code(exc) == "ValidationError" and "does not exist" in str(exc):
            raise DeployError(f"Stack {stack_name} does not exist in this account and region.",
                              hint=deploy) from None
        raise _refused(exc, f"reading stack {stack_name}",
                       "cloudformation:DescribeStacks") from None
    stack = stacks[0]
    for output in stack.get("Outputs", []):
        if output.get("OutputKey") == FUNCTION_OUTPUT:
            return output["OutputValue"]
    raise DeployError(f"Stack {stack_name} ({stack.get('StackStatus', '?')}) has no output "
                      f"{FUNCTION_OUTPUT}.", hint=deploy)


def check_invoke_permission(lambda_client, arn: str, bucket: str, env: str) -> None:
    """Raise unless S3 may invoke the function for ``bucket``: S3 validates the target on
    write and would refuse the whole configuration without it."""
    from botocore.exceptions import ClientError

    partition, account = _arn_parts(arn)
    try:
        policy = json.loads(lambda_client.get_policy(FunctionName=arn)["Policy"])
    except ClientError as exc:
        if _code(exc) != "ResourceNotFoundException":
            raise _refused(exc, f"reading the policy of function {arn}",
                           "lambda:GetPolicy") from None
        policy = {}
    if not permits_bucket(policy, bucket, account or None, partition):
        raise DeployError(
            f"Function {arn} does not let S3 invoke it for bucket {bucket} (the stack's "
            f"{PERMISSION_RESOURCE} is missing or names another bucket).",
            hint=f"Run `m7etl deploy --env {env}` to restore it, or grant it by hand: "
                 f"{add_permission_command(arn, bucket)}")


def read_configuration(s3, bucket: str) -> dict:
    """The bucket's notification configuration, without the response metadata."""
    from botocore.exceptions import ClientError

    try:
        answer = s3.get_bucket_notification_configuration(Bucket=bucket)
    except ClientError as exc:
        if _code(exc) == "NoSuchBucket":
            raise DeployError(f"Data bucket {bucket} does not exist.",
                              hint="Create it (a prerequisite of the guide) or set data_bucket "
                                   "in m7etl.toml.") from None
        raise _refused(exc, f"reading the notifications of bucket {bucket}",
                       "s3:GetBucketNotification") from None
    return {k: v for k, v in answer.items() if k != "ResponseMetadata"}


def write_configuration(s3, bucket: str, config: dict) -> None:
    from botocore.exceptions import ClientError

    try:
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=config)
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", "")
        if "ambiguously defined" in message:
            raise DeployError(f"S3 refused the notifications of bucket {bucket}: {message}.",
                              hint="Another rule overlaps m7etl's; list them with `aws s3api "
                                   f"get-bucket-notification-configuration --bucket {bucket}`."
                              ) from None
        if "validate the following destination" in message:
            raise DeployError(f"S3 could not validate a destination of bucket {bucket}'s "
                              f"notifications: {message}.",
                              hint="Every target needs a policy letting S3 send to it; fix or "
                                   "remove the rule it names.") from None
        raise _refused(exc, f"writing the notifications of bucket {bucket}",
                       "s3:PutBucketNotification") from None


def configure_notifications(config, clients, *, dry_run: bool = False,
                            replace: tuple[str, ...] = ()) -> NotificationReport:
    """Read, check, merge, and write only when something changes (idempotent)."""
    arn = function_arn(clients("cloudformation"), config.stack_name, config.name)
    check_invoke_permission(clients("lambda"), arn, config.data_bucket, config.name)
    existing = read_configuration(clients("s3"), config.data_bucket)
    new, changes = merge(existing, desired_rules(arn), replace=tuple(replace),
                         bucket=config.data_bucket)
    rules = [rule for kind in KINDS for rule in new.get(kind, [])]
    report = NotificationReport(config.data_bucket, arn, rules, changes, dry_run=dry_run)
    if report.changed and not dry_run:
        write_configuration(clients("s3"), config.data_bucket, new)
        report.written = True
    return report
