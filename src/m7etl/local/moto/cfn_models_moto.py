"""Replacements for moto's own models of four types the stack uses, where moto's differ
from CloudFormation in a way the stack notices. ``install()`` puts them in front of moto's.

* ``AWS::SSM::Parameter``: moto has no ``Fn::GetAtt`` (the stack reads ``Value`` for every
  bucket name): ``Value`` and ``Type`` here. An update overwrites the value (a new version,
  as PutParameter) instead of deleting the parameter.
* ``AWS::Lambda::LayerVersion``: moto names it after the logical id, drops
  ``CompatibleArchitectures`` and ``S3ObjectVersion``, and its Ref is the Python object.
  Here: ``LayerName``, Ref = the layer version ARN (GetAtt ``LayerVersionArn``), the pinned
  object version, a missing zip fails as Lambda fails, and a change publishes a new version
  and deletes the old one (CloudFormation's replacement).
* ``AWS::Lambda::Function``: moto keeps only eight properties. Here also ``Layers`` (so the
  function runs with its layer), ``Architectures``, ``EphemeralStorage``, ``TracingConfig``,
  ``PackageType``, ``ImageConfig``, ``Tags``, and the code's ``S3ObjectVersion``; a missing
  zip fails. ``KmsKeyArn``, ``DeadLetterConfig`` and ``LoggingConfig`` are accepted and not
  modelled (moto's Lambda has no such settings).
* ``AWS::Logs::LogGroup``: moto drops ``KmsKeyId`` and cannot update: here the key is kept
  and ``RetentionInDays``/``KmsKeyId`` change in place.
"""

from __future__ import annotations

import base64
from typing import Any, ClassVar

from moto.awslambda.models import LambdaFunction, _s3_content, lambda_backends
from moto.logs.models import logs_backends
from moto.s3.exceptions import MissingBucket
from moto.s3.models import s3_backends
from moto.ssm.models import Parameter, ssm_backends
from moto.utilities.utils import get_partition

from m7etl.local.moto.cfn_models_base import Resource, ResourceFailed, number, properties, tag_map

S3_ERROR = "Error occurred while GetObject. S3 Error Code: {code}. S3 Error Message: {message}"


def s3_object(account_id: str, region: str, content: dict, what: str):
    """The object ``{S3Bucket, S3Key, S3ObjectVersion}`` names, or Lambda's error for it."""
    bucket, key, version = content.get("S3Bucket"), content.get("S3Key"), content.get(
        "S3ObjectVersion")
    where = f"s3://{bucket}/{key}" + (f" (version {version})" if version else "")
    backend = s3_backends[account_id][get_partition(region)]
    try:
        found = backend.get_object(bucket, key, version_id=version)
        exists = found is not None or backend.get_object(bucket, key) is not None
    except MissingBucket:
        raise ResourceFailed(what, S3_ERROR.format(code="NoSuchBucket", message="The specified "
                             "bucket does not exist"), f"Create the bucket of {where}.") from None
    if found is None:
        code, message = ("NoSuchVersion", "The specified version does not exist.") \
            if version and exists else ("NoSuchKey", "The specified key does not exist.")
        raise ResourceFailed(what, S3_ERROR.format(code=code, message=message),
                             f"Upload {where} first (m7etl upload).")
    return found


def function_spec(name: str, props: dict) -> dict[str, Any]:
    """``LambdaBackend.create_function``'s spec from the properties (pure, tested as data)."""
    for required in ("Code", "Role"):
        if not props.get(required):
            raise ResourceFailed(name, f"Property {required} cannot be empty.")
    spec: dict[str, Any] = {"FunctionName": name, "Code": dict(props["Code"]),
                            "Role": props["Role"], "Handler": props.get("Handler"),
                            "Runtime": props.get("Runtime")}
    for key in ("Description", "Publish", "VpcConfig", "Environment", "TracingConfig",
                "PackageType", "ImageConfig", "ReservedConcurrentExecutions"):
        if key in props:
            spec[key] = props[key]
    for key in ("MemorySize", "Timeout"):
        if key in props:
            spec[key] = number(props[key])
    if "EphemeralStorage" in props:
        spec["EphemeralStorage"] = {"Size": number(props["EphemeralStorage"]["Size"])}
    spec["Layers"] = [str(arn) for arn in props.get("Layers") or []]
    spec["Architectures"] = list(props.get("Architectures") or ["x86_64"])
    spec["Tags"] = tag_map(props.get("Tags"))
    return spec


def layer_spec(name: str, props: dict) -> dict[str, Any]:
    if not props.get("Content"):
        raise ResourceFailed(name, "Property Content cannot be empty.")
    spec = {"LayerName": name, "Content": dict(props["Content"])}
    for key in ("Description", "CompatibleRuntimes", "CompatibleArchitectures", "LicenseInfo"):
        if key in props:
            spec[key] = props[key]
    return spec


def _set_code(target: Any, key: Any) -> None:
    """Point moto's function or layer at the pinned object version (moto reads the latest)."""
    target.code_bytes, target.code_size, target.code_sha_256, target.code_digest = (
        _s3_content(key))


class SsmParameterModel:
    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::SSM::Parameter"

    @staticmethod
    def cloudformation_name_type() -> str:
        return "Name"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in ("Value", "Type")

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name, **kwargs):
        parameter = Parameter.create_from_cloudformation_json(
            resource_name, cloudformation_json, account_id, region_name)
        return SsmParameterResource(account_id, region_name, parameter.name)

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name,
                                        cloudformation_json, account_id, region_name):
        props = properties(cloudformation_json)
        backend = ssm_backends[account_id][region_name]
        if new_resource_name != original_resource.name:
            new = cls.create_from_cloudformation_json(new_resource_name, cloudformation_json,
                                                      account_id, region_name)
            original_resource.delete(account_id, region_name)
            return new
        backend.put_parameter(name=new_resource_name, description=props.get("Description"),
                              value=props.get("Value"), parameter_type=props.get("Type"),
                              allowed_pattern=props.get("AllowedPattern"), keyid=None,
                              overwrite=True, tags=None, data_type=props.get("DataType", "text"),
                              tier=props.get("Tier"), policies=props.get("Policies"))
        return original_resource

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name):
        ssm_backends[account_id][region_name].delete_parameter(resource_name)


class SsmParameterResource(Resource):
    ATTRIBUTES: ClassVar[dict[str, str]] = {"Value": "value", "Type": "type"}

    def __init__(self, account_id: str, region: str, name: str):
        self.account_id, self.region, self.name = account_id, region, name

    def _current(self) -> Parameter:
        return ssm_backends[self.account_id][self.region].get_parameter(self.name)

    value = property(lambda self: self._current().value)
    type = property(lambda self: self._current().type)

    def delete(self, account_id: str, region_name: str) -> None:
        ssm_backends[account_id][region_name].delete_parameter(self.name)


class LayerVersionModel:
    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Lambda::LayerVersion"

    @staticmethod
    def cloudformation_name_type() -> str:
        return "LayerName"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "LayerVersionArn"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name, **kwargs):
        props = properties(cloudformation_json)
        spec = layer_spec(resource_name, props)
        key = s3_object(account_id, region_name, spec["Content"], resource_name) \
            if "S3Bucket" in spec["Content"] else None
        version = lambda_backends[account_id][region_name].publish_layer_version(spec)
        if key is not None:
            _set_code(version, key)
        return LayerVersionResource(account_id, region_name, version, props)

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name,
                                        cloudformation_json, account_id, region_name):
        if properties(cloudformation_json) == original_resource.props and \
                new_resource_name == original_resource.name:
            return original_resource
        new = cls.create_from_cloudformation_json(new_resource_name, cloudformation_json,
                                                  account_id, region_name)
        original_resource.delete(account_id, region_name)
        return new


class LayerVersionResource(Resource):
    REF = "arn"
    ATTRIBUTES: ClassVar[dict[str, str]] = {"LayerVersionArn": "arn"}

    def __init__(self, account_id: str, region: str, version: Any, props: dict):
        self.account_id, self.region, self.version, self.props = (
            account_id, region, version, props)
        self.name, self.arn = version.name, version.arn

    def delete(self, account_id: str, region_name: str) -> None:
        lambda_backends[account_id][region_name].delete_layer_version(self.name,
                                                                      self.version.version)


class LambdaFunctionModel:
    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Lambda::Function"

    @staticmethod
    def cloudformation_name_type() -> str:
        return "FunctionName"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "Arn"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name, **kwargs):
        spec = function_spec(resource_name, properties(cloudformation_json))
        code = spec["Code"]
        if "ZipFile" in code:  # inline code, as moto's own model builds it
            code["ZipFile"] = base64.b64encode(
                LambdaFunction._create_zipfile_from_plaintext_code(code["ZipFile"]))
            key = None
        else:
            key = s3_object(account_id, region_name, code, resource_name)
        try:
            function = lambda_backends[account_id][region_name].create_function(spec)
        except Exception as exc:  # an unknown layer ARN, a bad architecture...
            raise ResourceFailed(resource_name, getattr(exc, "message", None) or str(exc)) \
                from None
        if key is not None:
            _set_code(function, key)
        return function

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name,
                                        cloudformation_json, account_id, region_name):
        if new_resource_name != original_resource.function_name:
            new = cls.create_from_cloudformation_json(new_resource_name, cloudformation_json,
                                                      account_id, region_name)
            original_resource.delete(account_id, region_name)
            return new
        spec = function_spec(new_resource_name, properties(cloudformation_json))
        original_resource.update_configuration({k: v for k, v in spec.items()
                                                if k not in ("Code", "FunctionName")})
        original_resource.architectures = spec["Architectures"]
        if "EphemeralStorage" in spec:
            original_resource.ephemeral_storage = spec["EphemeralStorage"]["Size"]
        if "S3Bucket" in spec["Code"]:
            key = s3_object(account_id, region_name, spec["Code"], new_resource_name)
            original_resource.code = spec["Code"]
            _set_code(original_resource, key)
        return original_resource


class LogGroupModel:
    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Logs::LogGroup"

    @staticmethod
    def cloudformation_name_type() -> str:
        return "LogGroupName"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "Arn"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name, **kwargs):
        props = properties(cloudformation_json)
        backend = logs_backends[account_id][region_name]
        if resource_name in backend.groups:
            raise ResourceFailed(resource_name, f"Resource of type 'AWS::Logs::LogGroup' with "
                                                f"identifier '{resource_name}' already exists.")
        extra = {"RetentionInDays": number(props.get("RetentionInDays")),
                 "kmsKeyId": props.get("KmsKeyId")}
        return backend.create_log_group(resource_name, tag_map(props.get("Tags")), **extra)

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name,
                                        cloudformation_json, account_id, region_name):
        if new_resource_name != original_resource.name:
            new = cls.create_from_cloudformation_json(new_resource_name, cloudformation_json,
                                                      account_id, region_name)
            original_resource.delete(account_id, region_name)
            return new
        props = properties(cloudformation_json)
        original_resource.set_retention_policy(number(props.get("RetentionInDays")))
        original_resource.kms_key_id = props.get("KmsKeyId")
        return original_resource

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name):
        logs_backends[account_id][region_name].delete_log_group(resource_name)


OVERRIDES = (SsmParameterModel, LayerVersionModel, LambdaFunctionModel, LogGroupModel)
