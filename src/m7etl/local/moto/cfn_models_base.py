"""What every local CloudFormation model shares: Ref and GetAtt, the failure, coercions.

A model is a class with moto's ``CloudFormationModel`` protocol (see cfn_models.py). The
instance is what the stack's resource map holds: ``physical_resource_id`` is what ``Ref``
gives, :attr:`Resource.ATTRIBUTES` what ``Fn::GetAtt`` gives (anything else is the template
error CloudFormation reports), ``delete`` what a stack delete calls.
"""

from __future__ import annotations

from typing import Any, ClassVar

from moto.cloudformation.exceptions import CloudFormationError, UnformattedGetAttTemplateException


class ResourceFailed(CloudFormationError):
    """A resource CloudFormation would mark CREATE_FAILED/UPDATE_FAILED: moto raises it from
    CreateStack/UpdateStack/ExecuteChangeSet, so the caller gets it as a ClientError."""

    code = "ValidationError"

    def __init__(self, resource: str, cause: str, hint: str = ""):
        super().__init__(f"{resource}: {cause}" + (f" {hint}" if hint else ""))


class Resource:
    """Ref/GetAtt/name plumbing; subclasses name the type, the attributes and the Ref."""

    TYPE: ClassVar[str] = ""
    NAME_PROPERTY: ClassVar[str] = ""  # the property naming it ("" = generated names only)
    ATTRIBUTES: ClassVar[dict[str, str]] = {}  # GetAtt name -> attribute of the instance
    REF: ClassVar[str] = "name"  # attribute Ref returns

    logical_resource_id: str = ""
    resource_type: str = ""

    @classmethod
    def cloudformation_type(cls) -> str:
        return cls.TYPE

    @classmethod
    def cloudformation_name_type(cls) -> str:
        return cls.NAME_PROPERTY

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in cls.ATTRIBUTES

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        if attribute_name not in self.ATTRIBUTES:
            raise UnformattedGetAttTemplateException()
        return getattr(self, self.ATTRIBUTES[attribute_name])

    @property
    def physical_resource_id(self) -> str:
        return getattr(self, self.REF)

    def is_created(self) -> bool:
        return True

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name: str, cloudformation_json: Any,
                                        account_id: str, region_name: str) -> None:
        """Only reached when ``delete`` failed with TypeError/AttributeError: nothing to do."""


def properties(cloudformation_json: dict) -> dict:
    return dict(cloudformation_json.get("Properties") or {})


def custom_name_replacement(name: str) -> ResourceFailed:
    """What CloudFormation answers when a change needs a new resource with the same name."""
    return ResourceFailed(name, "CloudFormation cannot update a stack when a custom-named "
                                "resource requires replacing.",
                          f"Rename {name} and update the stack again.")


def number(value: Any, kind: type = int) -> Any:
    """A CloudFormation Number: parameters arrive as str, int or float; None stays None."""
    if value is None or value == "":
        return None
    return kind(float(value)) if kind is int else kind(value)


def boolean(value: Any) -> bool | None:
    if value is None:
        return None
    return value if isinstance(value, bool) else str(value).lower() == "true"


def string_map(value: Any) -> dict[str, str]:
    """A JSON map of strings (Glue arguments, Airflow options): what the APIs accept."""
    return {str(k): v if isinstance(v, str) else str(v).lower() if isinstance(v, bool)
            else str(v) for k, v in (value or {}).items()}


def tag_list(value: Any) -> list[dict[str, str]]:
    """``[{Key, Value}]`` from CloudFormation's list form or a map (MWAA, Glue use maps)."""
    if isinstance(value, dict):
        return [{"Key": str(k), "Value": str(v)} for k, v in value.items()]
    return [{"Key": str(t["Key"]), "Value": str(t["Value"])} for t in value or []]


def tag_map(value: Any) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tag_list(value)}
