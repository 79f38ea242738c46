"""The stack template read as CloudFormation would see it, for the template tests.

The template is read with cfn-lint's YAML decoder (the one ``make lint-template`` uses; it
knows the short-form tags ``!Sub``, ``!GetAtt``, ``!Ref``...) and its intrinsic functions are
resolved for a given set of parameter values by :class:`Resolver`. A resource the stack
creates is named ``ref:<Id>`` / ``att:<Id>.<Attribute>`` there, so rules can tell the stack's
own resources apart; :class:`DeployedResolver` gives them the ARNs AWS would (or the ones a
test created in moto), so a role's policies can be handed to IAM as they are.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from cfnlint.decode import cfn_yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "templates" / "etl-pipeline-mwaa.yaml"
ACCOUNT = "123456789012"
REGION = "eu-west-1"
PASSWORD = "Sentinel-Pa55word-9f3c"  # a value that must appear in exactly one place


def load_template(path: Path = TEMPLATE_PATH) -> dict:
    return cfn_yaml.load(str(path))


NO_VALUE = object()
# Ref on these types returns the named property; GetAtt Arn is built from it.
NAME_PROPERTY = {
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::Glue::Job": "Name",
    "AWS::MWAA::Environment": "Name",
    "AWS::Events::Rule": "Name",
    "AWS::SSM::Parameter": "Name",
    "AWS::CloudWatch::Dashboard": "DashboardName",
}


class Resolver:
    def __init__(self, template: dict, **overrides: str) -> None:
        self.template = template
        params = {
            name: str(spec["Default"]) for name, spec in template["Parameters"].items() if "Default" in spec
        }
        params["SnowflakePassword"] = PASSWORD
        params.update(overrides)
        self.params = params
        self.pseudo = {
            "AWS::AccountId": ACCOUNT,
            "AWS::Region": REGION,
            "AWS::Partition": "aws",
            "AWS::StackName": "m7-etl-pipeline-mwaa",
            "AWS::URLSuffix": "amazonaws.com",
        }

    # -- conditions --------------------------------------------------------------------------
    def condition(self, name: str) -> bool:
        return self._cond(self.template["Conditions"][name])

    def _cond(self, node: Any) -> bool:
        ((fn, arg),) = node.items()
        if fn == "Fn::Equals":
            return str(self.resolve(arg[0])) == str(self.resolve(arg[1]))
        if fn == "Fn::Not":
            return not self._cond(arg[0])
        if fn == "Fn::And":
            return all(self._cond(a) for a in arg)
        if fn == "Fn::Or":
            return any(self._cond(a) for a in arg)
        if fn == "Condition":
            return self.condition(arg)
        raise ValueError(f"unsupported condition function {fn}")

    # -- references --------------------------------------------------------------------------
    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.params:
            return self.params[name]
        resource = self.template["Resources"][name]
        prop = NAME_PROPERTY.get(resource["Type"])
        if prop:
            return self.resolve(resource["Properties"][prop])
        return f"ref:{name}"

    def get_att(self, name: str, attribute: str) -> Any:
        resource = self.template["Resources"][name]
        kind = resource["Type"]
        if kind == "AWS::SSM::Parameter" and attribute == "Value":
            return self.resolve(resource["Properties"]["Value"])
        if attribute == "Arn" and kind == "AWS::Lambda::Function":
            return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.ref(name)}"
        if attribute == "Arn" and kind == "AWS::Logs::LogGroup":
            return f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{self.ref(name)}:*"
        return f"att:{name}.{attribute}"

    def sub(self, text: str, variables: dict) -> str:
        def replace(match: re.Match) -> str:
            key = match.group(1)
            if key.startswith("!"):
                return "${" + key[1:] + "}"
            if key in variables:
                return str(variables[key])
            if "." in key and key.split(".", 1)[0] in self.template["Resources"]:
                return str(self.get_att(*key.split(".", 1)))
            return str(self.ref(key))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    # -- everything --------------------------------------------------------------------------
    def resolve(self, node: Any) -> Any:
        if isinstance(node, dict):
            if len(node) == 1:
                ((key, arg),) = node.items()
                if key == "Ref":
                    return self.ref(arg)
                if key == "Fn::GetAtt":
                    parts = arg if isinstance(arg, list) else arg.split(".", 1)
                    return self.get_att(parts[0], parts[1])
                if key == "Fn::Sub":
                    if isinstance(arg, list):
                        variables = {k: self.resolve(v) for k, v in arg[1].items()}
                        return self.sub(arg[0], variables)
                    return self.sub(arg, {})
                if key == "Fn::If":
                    branch = arg[1] if self.condition(arg[0]) else arg[2]
                    return self.resolve(branch)
                if key == "Fn::ImportValue":
                    return f"import:{self.resolve(arg)}"
                if key == "Fn::Join":
                    return arg[0].join(str(self.resolve(x)) for x in self.resolve(arg[1]))
                if key == "Fn::Split":
                    return str(self.resolve(arg[1])).split(arg[0])
                if key == "Fn::Select":
                    return self.resolve(arg[1])[int(self.resolve(arg[0]))]
                if key.startswith("Fn::"):
                    raise ValueError(f"unsupported function {key}")
            out = {}
            for k, v in node.items():
                value = self.resolve(v)
                if value is not NO_VALUE:
                    out[str(k)] = value
            return out
        if isinstance(node, list):
            return [v for v in (self.resolve(x) for x in node) if v is not NO_VALUE]
        if isinstance(node, str):
            return str(node)
        return node

    def resource(self, name: str) -> dict:
        resource = self.template["Resources"][name]
        if "Condition" in resource and not self.condition(resource["Condition"]):
            return {}
        return self.resolve(resource.get("Properties", {}))

    def resources(self, kind: str) -> dict[str, dict]:
        return {
            name: self.resource(name)
            for name, res in self.template["Resources"].items()
            if res["Type"] == kind
        }


class DeployedResolver(Resolver):
    """The resolver with the physical ids AWS gives the stack's resources.

    ``physical`` overrides a ``Ref`` (``{"SnowflakeSecret": <the ARN moto gave it>}``);
    the other references are built the way AWS builds them from the resource's name.
    """

    KEY_ID = "0b0c0d0e-1111-4222-8333-444455556666"

    def __init__(self, template: dict, physical: dict[str, str] | None = None,
                 **overrides: str) -> None:
        super().__init__(template, **overrides)
        self.physical = dict(physical or {})

    def _props(self, name: str) -> dict:
        return self.template["Resources"][name].get("Properties", {})

    def ref(self, name: str) -> Any:
        if name in self.physical:
            return self.physical[name]
        resource = self.template["Resources"].get(name)
        kind = resource["Type"] if resource else None
        if kind == "AWS::SNS::Topic":
            return f"arn:aws:sns:{REGION}:{ACCOUNT}:{self.resolve(self._props(name)['TopicName'])}"
        if kind == "AWS::SecretsManager::Secret":  # AWS appends six random characters
            secret = self.resolve(self._props(name)["Name"])
            return f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{secret}-AbCdEf"
        if kind == "AWS::KMS::Key":
            return self.KEY_ID
        return super().ref(name)

    def get_att(self, name: str, attribute: str) -> Any:
        kind = self.template["Resources"][name]["Type"]
        if (kind, attribute) == ("AWS::SQS::Queue", "Arn"):
            return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{self.resolve(self._props(name)['QueueName'])}"
        if (kind, attribute) == ("AWS::KMS::Key", "Arn"):
            return f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{self.KEY_ID}"
        return super().get_att(name, attribute)


def role_policies(resolver: Resolver, role: str) -> dict[str, dict]:
    """The inline policy documents of one ``AWS::IAM::Role``, by policy name, resolved."""
    return {p["PolicyName"]: p["PolicyDocument"] for p in resolver.resource(role)["Policies"]}
