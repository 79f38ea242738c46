"""Fixes of moto's stack engine (moto.cloudformation) where the real stack would notice.

:func:`apply` (called by ``install()``) patches, in this process only:

* **A parameter used in ``Fn::Sub`` is used, and one left out is back to its default.**
  moto updates only the resources with a direct ``Ref`` to a parameter given a new value,
  so a new ``SnowflakePassword`` (only in the secret's ``Fn::Sub``) never reached the
  secret, and a parameter no longer given kept its old value in the resources.
* **Updates in dependency order, and passed on.** moto updates the changed resources in
  template order and never the resources that reference them. Here a resource is updated
  after the ones it references, and when an update gives a resource a new ``Ref`` or
  ``Fn::GetAtt`` value (a new layer version, a bucket name in an SSM parameter...), the
  resources that reference it are updated too, as CloudFormation does.
* **A type moto cannot update keeps its resource.** moto replaced it with nothing, so every
  ``Ref`` to it became empty (KMS key, Lambda permission, security group ingress: they stay
  as created, with a warning in the server's log).
* **A change set executes like a stack.** Its stack gets the account's exports (moto gave
  none: ``Fn::ImportValue`` failed), then its outputs and its own exports (moto kept the
  empty template of the change set's stack: no outputs).
* **Only what the stack holds is listed.** A resource whose ``Condition`` is false was
  listed by ListStackResources as an empty row, and listing (or describing the outputs of)
  a rolled-back or deleted stack made its resources again (moto's map creates on lookup).
* **A resource whose ``Condition`` is false is not updated.** It is deleted if it was there
  (moto called the type's update with no resource and rolled the stack back).
* **An update that changes nothing is "no changes".** moto compared the parameters as
  sent, not as resolved with the template's defaults.
* **A NoEcho parameter is shown as ``****``.** moto's DescribeStacks printed its value (the
  Snowflake password).
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Any

from moto.cloudformation import parsing
from moto.cloudformation.models import CloudFormationBackend, Stack

logger = logging.getLogger(__name__)
# A stack without outputs: describing it must not resolve them (moto would make the resources).
NO_OUTPUTS = {"CREATE_IN_PROGRESS", "CREATE_FAILED", "ROLLBACK_IN_PROGRESS", "ROLLBACK_FAILED",
              "ROLLBACK_COMPLETE", "DELETE_IN_PROGRESS", "DELETE_FAILED", "DELETE_COMPLETE",
              "REVIEW_IN_PROGRESS"}
SUB_NAME = re.compile(r"\$\{([^!}][^}.]*)[^}]*\}")  # ${Name} and ${Resource.Attribute}


def apply() -> None:
    parsing.MAX_UPDATE_ATTEMPTS = 10  # passes of moto's update loop: passed-on updates need some
    original_update = parsing.parse_and_update_resource
    parsing.parse_and_update_resource = functools.partial(_update_and_pass_on, original_update)
    parsing.get_references_from_template = references
    original_diff = parsing.ResourceMap.build_resource_diff
    parsing.ResourceMap.build_resource_diff = functools.partialmethod(_ordered_diff, original_diff)
    original_execute = CloudFormationBackend.execute_change_set
    CloudFormationBackend.execute_change_set = functools.partialmethod(
        _execute_like_a_stack, original_execute)
    Stack.stack_resources = property(_made_resources)
    Stack.parameter_list = property(_masked_parameters)
    outputs = Stack.outputs.fget
    Stack.outputs = property(lambda self: None if self.status in NO_OUTPUTS else outputs(self))
    detect_unchanged_updates()


def resolved_parameters(template: dict, given: dict) -> dict[str, str]:
    """A stack's parameter values as CloudFormation compares them: the template's defaults
    under the values given (pure)."""
    defaults = {name: str(spec["Default"]) for name, spec in
                (template.get("Parameters") or {}).items() if "Default" in spec}
    return {**defaults, **{name: str(value) for name, value in given.items()}}


def detect_unchanged_updates() -> None:
    """An UPDATE change set that changes nothing is FAILED "didn't contain changes", as in AWS.

    moto does detect it, but compares the parameters *as sent*: the stack's create sent a
    subset (the template's defaults for the rest), and an update sends every parameter
    (``UsePreviousValue``), so the same values looked different and ``m7etl deploy`` ran an
    empty change set where AWS reports "no changes". Compared resolved here.
    """

    def has_parameters(self, other_parameters: dict) -> bool:
        self._parse_template()
        return resolved_parameters(self.template_dict, self.parameters) == \
            resolved_parameters(self.template_dict, other_parameters)

    Stack.has_parameters = has_parameters


def _made_resources(stack) -> list[Any]:
    """The resources the stack holds now. moto listed every resource of the template, and
    made the ones it did not hold (its map creates on lookup): a rolled-back or deleted
    stack came back to life when listed."""
    made = stack.resource_map._parsed_resources
    return [made[k] for k in stack.resource_map._resource_json_map if made.get(k) is not None]


def _masked_parameters(stack) -> list[dict[str, Any]]:
    """DescribeStacks' parameters, a NoEcho one as ``****`` (moto compared the value with
    the NoEcho names, so it printed the Snowflake password)."""
    hidden = set(stack.resource_map.no_echo_parameter_keys)
    return [{"ParameterKey": k, "ParameterValue": "****" if k in hidden else v}
            for k, v in stack.resource_map.resolved_parameters.items()]


def references(template: Any) -> list[str]:
    """The names a definition uses: ``Ref``, ``Fn::GetAtt`` targets, ``Fn::Sub`` variables."""
    found: list[str] = []
    if isinstance(template, dict):
        for key, value in template.items():
            if key == "Ref":
                found.append(value)
            elif key == "Fn::GetAtt":
                found.append(value[0] if isinstance(value, list) else str(value).split(".")[0])
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                if isinstance(text, str):
                    found.extend(SUB_NAME.findall(text))
                if isinstance(value, list):
                    found.extend(references(value[1:]))
            else:
                found.extend(references(value))
    elif isinstance(template, list):
        for item in template:
            found.extend(references(item))
    return found


def dependency_order(names: list[str], resources: dict[str, Any]) -> list[str]:
    """``names`` with each resource after the ones of ``names`` it references (a stable
    topological order; a cycle, which CloudFormation refuses, keeps the template order)."""
    wanted, done, order = set(names), set(), []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in done or name in path:
            return
        for used in references(resources.get(name, {})):
            if used in wanted:
                visit(used, (*path, name))
        done.add(name)
        order.append(name)

    for name in names:
        visit(name, ())
    return order


def dependents(name: str, resources: dict[str, Any]) -> list[str]:
    return [other for other, definition in resources.items()
            if other != name and name in references(definition)]


def fingerprint(resource: Any) -> tuple:
    """What the resources referencing this one see of it: the object, its Ref, its GetAtts."""
    if resource is None:
        return (None,)
    values = []
    for attribute in getattr(resource, "ATTRIBUTES", {}).values():
        try:
            values.append(getattr(resource, attribute))
        except Exception:  # a value that cannot be read now counts as changed
            values.append(object())
    return id(resource), getattr(resource, "physical_resource_id", None), tuple(values)


def _ordered_diff(self, original, other_template: dict, parameters: dict | None = None) -> dict:
    if parameters:  # a parameter given before and not now is back to its default: a change
        declared = other_template.get("Parameters") or {}
        dropped = {k: str(declared[k].get("Default", "")) for k in self.input_parameters
                   if k not in parameters and k in declared}
        parameters = {**dropped, **parameters}
    diff = original(self, other_template, parameters)
    diff["Modify"] = dependency_order(diff["Modify"], other_template.get("Resources", {}))
    self.m7_pending = diff["Modify"]  # the list moto's update loop works through
    return diff


def _update_and_pass_on(original, logical_id: str, resource_json: dict, resources_map,
                        account_id: str, region_name: str):
    before = resources_map._parsed_resources.get(logical_id)
    seen = fingerprint(before)
    condition = resource_json.get("Condition")
    if condition and not resources_map.lazy_condition_map[condition]:
        # Its Condition is false now: CloudFormation deletes the resource (or leaves it
        # absent). moto called the type's update with no original resource and failed
        # ("'NoneType' object has no attribute 'props'"), e.g. when an update sent
        # AlertEmail="" that the create had left to its default.
        if before is not None:
            resources_map._delete_resource(before, resource_json)
        return None
    if before is None and condition:  # its Condition turned true: the resource is created
        resources_map._parsed_resources.pop(logical_id, None)
        return resources_map[logical_id]  # moto's map creates on lookup
    updated = original(logical_id, resource_json, resources_map, account_id, region_name)
    if updated is None:  # moto cannot update this type: the resource stays as it was
        logger.warning("%s (%s) is not updated on the local stack: moto cannot update the type",
                       logical_id, resource_json.get("Type"))
        return before
    pending = getattr(resources_map, "m7_pending", None)
    if pending is not None and fingerprint(updated) != seen:
        for other in dependents(logical_id, resources_map._resource_json_map):
            if other not in pending and resources_map._parsed_resources.get(other) is not None:
                logger.info("%s changed: %s is updated too", logical_id, other)
                pending.append(other)
    return updated


def _execute_like_a_stack(self, original, change_set_name: str, stack_name: str | None = None):
    change_set = self.change_sets.get(change_set_name) or next(
        (c for c in self.change_sets.values() if c.change_set_name == change_set_name), None)
    stack = self.stacks.get(change_set.stack_id) if change_set else None
    if stack is not None:
        stack.cross_stack_resources = stack.resource_map.cross_stack_resources = self.exports
    original(self, change_set_name, stack_name)
    if stack is not None:
        stack._parse_template()
        stack.output_map = stack._create_output_map()
        publish_exports(self, stack)


def publish_exports(backend, stack) -> None:
    """The stack's exports, in the account's (an export name belongs to one stack)."""
    from moto.cloudformation.exceptions import ValidationError

    exports = stack.exports
    for export in exports:
        holder = backend.exports.get(export.name)
        if holder is not None and holder.exporting_stack_id != stack.stack_id:
            raise ValidationError(stack.stack_id, message="Export names must be unique across "
                                                          "a given region")
    for name in [n for n, e in backend.exports.items() if e.exporting_stack_id == stack.stack_id]:
        del backend.exports[name]
    backend.exports.update({export.name: export for export in exports})
