"""CloudFormation models of the secret, the Glue job and its security configuration and the
KMS alias (moto 5.1 has no model for them), on moto's own backends.

Each model creates, updates and deletes the resource in the moto backend the service's API
reads, so what the stack made is what ``get_job``, ``get_secret_value``, ``list_aliases``...
answer. Ref and GetAtt are the CloudFormation resource reference's:

================================ ================ ==========
type                             Ref              GetAtt
================================ ================ ==========
AWS::SecretsManager::Secret      ARN              Id (ARN)
AWS::Glue::Job                   name             (none)
AWS::Glue::SecurityConfiguration name             (none)
AWS::KMS::Alias                  alias name       (none)
================================ ================ ==========

Updates are in place (UpdateSecret, UpdateJob keeping the job's runs, UpdateAlias), except
a change of name (a new resource, the old one deleted) and the Glue security configuration
(every change replaces it; with the same name that is CloudFormation's custom-name error).
A stack delete deletes the secret at once (no recovery window), as CloudFormation does.
Not modelled: the secret's ``GenerateSecretString`` (refused) and ``ReplicaRegions``
(ignored); a security configuration is only stored (moto's Glue has no such API, so
``get_security_configuration`` cannot see it, and jobs are not encrypted by it).
"""

from __future__ import annotations

from typing import Any, ClassVar

from moto.core.common_models import CloudFormationModel
from moto.core.utils import utcnow
from moto.glue.models import glue_backends
from moto.kms.models import kms_backends
from moto.secretsmanager.models import secretsmanager_backends

from m7etl.local.moto.cfn_models_base import (
    Resource,
    ResourceFailed,
    custom_name_replacement,
    number,
    properties,
    string_map,
    tag_list,
    tag_map,
)

# Glue security configurations: moto has no backend for them (account, region) -> name -> doc.
SECURITY_CONFIGURATIONS: dict[tuple[str, str], dict[str, dict]] = {}


# =============================================================================================
# Requests: CloudFormation properties -> the backend call's arguments (pure, tested as data)
# =============================================================================================
def secret_request(name: str, props: dict) -> dict[str, Any]:
    if "GenerateSecretString" in props:
        raise ResourceFailed(name, "GenerateSecretString is not modelled by the local stack.",
                             "Give the secret a SecretString.")
    return {"name": name, "secret_string": props.get("SecretString"), "secret_binary": None,
            "description": props.get("Description"), "tags": tag_list(props.get("Tags")),
            "kms_key_id": props.get("KmsKeyId"), "client_request_token": None,
            "replica_regions": [], "force_overwrite": False}


def glue_job_request(name: str, props: dict) -> dict[str, Any]:
    """``GlueBackend.create_job`` arguments, typed as Glue's API types them (CloudFormation
    hands over parameters as strings: ``MaxCapacity: "0.0625"`` is the double 0.0625)."""
    for required in ("Role", "Command"):
        if not props.get(required):
            raise ResourceFailed(name, f"Property {required} cannot be empty.")
    execution = props.get("ExecutionProperty") or {}
    return {
        "name": name, "role": props["Role"], "command": dict(props["Command"]),
        "description": props.get("Description"), "log_uri": props.get("LogUri"),
        "execution_property": {"MaxConcurrentRuns": number(execution.get("MaxConcurrentRuns", 1))},
        "default_arguments": string_map(props.get("DefaultArguments")),
        "non_overridable_arguments": string_map(props.get("NonOverridableArguments")),
        "connections": props.get("Connections"), "max_retries": number(props.get("MaxRetries")),
        "allocated_capacity": number(props.get("AllocatedCapacity")),
        "timeout": number(props.get("Timeout")),
        "max_capacity": number(props.get("MaxCapacity"), float),
        "security_configuration": props.get("SecurityConfiguration"),
        "tags": tag_map(props.get("Tags")),
        "notification_property": props.get("NotificationProperty"),
        "glue_version": props.get("GlueVersion"),
        "number_of_workers": number(props.get("NumberOfWorkers")),
        "worker_type": props.get("WorkerType"), "code_gen_configuration_nodes": None,
        "execution_class": props.get("ExecutionClass"), "source_control_details": None,
    }


# =============================================================================================
# Models
# =============================================================================================
class SecretsManagerSecret(Resource, CloudFormationModel):
    TYPE, NAME_PROPERTY, REF = "AWS::SecretsManager::Secret", "Name", "arn"
    ATTRIBUTES: ClassVar[dict[str, str]] = {"Id": "arn"}

    def __init__(self, account_id: str, region: str, name: str, arn: str, props: dict):
        self.account_id, self.region, self.name, self.arn, self.props = (
            account_id, region, name, arn, props)

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name, **kwargs):
        props = properties(cloudformation_json)
        backend = secretsmanager_backends[account_id][region_name]
        if resource_name in backend.secrets:
            raise ResourceFailed(resource_name, "A resource with the ID you requested already "
                                                "exists.", "Delete the secret or rename it.")
        backend.create_secret(**secret_request(resource_name, props))
        return cls(account_id, region_name, resource_name, backend.secrets[resource_name].arn,
                   props)

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name,
                                        cloudformation_json, account_id, region_name):
        props = properties(cloudformation_json)
        if new_resource_name != original_resource.name:  # replacement: new one, old deleted
            new = cls.create_from_cloudformation_json(new_resource_name, cloudformation_json,
                                                      account_id, region_name)
            original_resource.delete(account_id, region_name)
            return new
        old = original_resource.props
        changed = {k for k in ("SecretString", "Description", "KmsKeyId")
                   if props.get(k) != old.get(k)}
        if changed:
            secretsmanager_backends[account_id][region_name].update_secret(
                original_resource.arn,
                secret_string=props.get("SecretString") if "SecretString" in changed else None,
                description=props.get("Description"), kms_key_id=props.get("KmsKeyId"))
        original_resource.props = props
        return original_resource

    def delete(self, account_id: str, region_name: str) -> None:
        """CloudFormation deletes the secret at once (no recovery window), so a new stack
        can create the same name again."""
        secretsmanager_backends[account_id][region_name].delete_secret(
            self.arn, None, force_delete_without_recovery=True)


class GlueJob(Resource, CloudFormationModel):
    TYPE, NAME_PROPERTY = "AWS::Glue::Job", "Name"

    def __init__(self, account_id: str, region: str, name: str):
        self.account_id, self.region, self.name = account_id, region, name

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name, **kwargs):
        backend = glue_backends[account_id][region_name]
        if resource_name in backend.jobs:
            raise ResourceFailed(resource_name, f"Job {resource_name} already exists.")
        backend.create_job(**glue_job_request(resource_name, properties(cloudformation_json)))
        return cls(account_id, region_name, resource_name)

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name,
                                        cloudformation_json, account_id, region_name):
        if new_resource_name != original_resource.name:
            new = cls.create_from_cloudformation_json(new_resource_name, cloudformation_json,
                                                      account_id, region_name)
            original_resource.delete(account_id, region_name)
            return new
        # UpdateJob: the job keeps its runs, every setting is the new definition's.
        job = glue_backends[account_id][region_name].get_job(original_resource.name)
        request = glue_job_request(original_resource.name, properties(cloudformation_json))
        tags = request.pop("tags")
        for key, value in request.items():
            if key != "name":
                setattr(job, key, value)
        job.backend.tag_resource(job.arn, tags)
        job.last_modified_on = utcnow()
        return original_resource

    def delete(self, account_id: str, region_name: str) -> None:
        glue_backends[account_id][region_name].delete_job(self.name)


class GlueSecurityConfiguration(Resource, CloudFormationModel):
    TYPE, NAME_PROPERTY = "AWS::Glue::SecurityConfiguration", "Name"

    def __init__(self, account_id: str, region: str, name: str, props: dict):
        self.account_id, self.region, self.name, self.props = account_id, region, name, props

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name, **kwargs):
        props = properties(cloudformation_json)
        if not props.get("EncryptionConfiguration"):
            raise ResourceFailed(resource_name, "Property EncryptionConfiguration cannot be "
                                                "empty.")
        store = SECURITY_CONFIGURATIONS.setdefault((account_id, region_name), {})
        if resource_name in store:
            raise ResourceFailed(resource_name, f"Security configuration {resource_name} "
                                                "already exists.")
        store[resource_name] = {"Name": resource_name, "CreatedTimeStamp": utcnow().isoformat(),
                                "EncryptionConfiguration": props["EncryptionConfiguration"]}
        return cls(account_id, region_name, resource_name, props)

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name,
                                        cloudformation_json, account_id, region_name):
        if properties(cloudformation_json) == original_resource.props:
            return original_resource
        if new_resource_name == original_resource.name:  # every property is "Replacement"
            raise custom_name_replacement(new_resource_name)
        new = cls.create_from_cloudformation_json(new_resource_name, cloudformation_json,
                                                  account_id, region_name)
        original_resource.delete(account_id, region_name)
        return new

    def delete(self, account_id: str, region_name: str) -> None:
        SECURITY_CONFIGURATIONS.get((account_id, region_name), {}).pop(self.name, None)


class KmsAlias(Resource, CloudFormationModel):
    TYPE, NAME_PROPERTY = "AWS::KMS::Alias", "AliasName"

    def __init__(self, account_id: str, region: str, name: str, key_id: str):
        self.account_id, self.region, self.name, self.key_id = account_id, region, name, key_id

    @classmethod
    def _key(cls, name: str, props: dict, account_id: str, region_name: str) -> str:
        backend = kms_backends[account_id][region_name]
        key_id = backend.get_key_id(str(props.get("TargetKeyId") or ""))
        if key_id not in backend.keys:
            raise ResourceFailed(name, f"Invalid keyId {props.get('TargetKeyId')!r}.",
                                 "TargetKeyId must name a key of this account.")
        return key_id

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name, **kwargs):
        props = properties(cloudformation_json)
        if not resource_name.startswith("alias/") or resource_name.startswith("alias/aws/"):
            raise ResourceFailed(resource_name, "An alias name must begin with 'alias/' and "
                                                "not with 'alias/aws/'.")
        backend = kms_backends[account_id][region_name]
        if backend.alias_exists(resource_name):
            raise ResourceFailed(resource_name, f"An alias with the name "
                                                f"arn:aws:kms:{region_name}:{account_id}:"
                                                f"{resource_name} already exists.")
        key_id = cls._key(resource_name, props, account_id, region_name)
        backend.create_alias(key_id, resource_name)
        return cls(account_id, region_name, resource_name, key_id)

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name,
                                        cloudformation_json, account_id, region_name):
        if new_resource_name != original_resource.name:
            new = cls.create_from_cloudformation_json(new_resource_name, cloudformation_json,
                                                      account_id, region_name)
            original_resource.delete(account_id, region_name)
            return new
        key_id = cls._key(new_resource_name, properties(cloudformation_json), account_id,
                          region_name)
        backend = kms_backends[account_id][region_name]
        backend.delete_alias(original_resource.name)  # UpdateAlias: moves it to the new key
        backend.create_alias(key_id, original_resource.name)
        original_resource.key_id = key_id
        return original_resource

    def delete(self, account_id: str, region_name: str) -> None:
        kms_backends[account_id][region_name].delete_alias(self.name)


NEW_TYPES = (SecretsManagerSecret, GlueJob, GlueSecurityConfiguration, KmsAlias)
