"""A stack's events and failures on the local stack, as CloudFormation writes them.

moto writes only the stack's own events and, when a resource fails, raises from CreateStack
(or UpdateStack, ExecuteChangeSet) and leaves the stack half made, IN_PROGRESS. CloudFormation
answers the call, then records the failure and rolls back; ``m7etl deploy`` and ``m7etl
status`` read those events. :func:`apply` (called by ``install()``) makes moto do the same:

* every resource created, updated or deleted gets its ``*_IN_PROGRESS`` and ``*_COMPLETE``
  events (with its physical id), written when moto has done it (so a resource another one
  references comes first, as in CloudFormation);
* a resource that fails to create gets ``CREATE_FAILED`` with the cause as its reason; the
  stack goes ``ROLLBACK_IN_PROGRESS`` ("The following resource(s) failed to create: [X].
  Rollback requested by user."), the resources made so far are deleted, then
  ``ROLLBACK_COMPLETE`` (``ROLLBACK_FAILED`` if a delete fails);
* a failed update (UpdateStack or an UPDATE change set) gets ``UPDATE_FAILED``, then
  ``UPDATE_ROLLBACK_IN_PROGRESS``, the previous template and parameters applied again, then
  ``UPDATE_ROLLBACK_COMPLETE`` (or ``UPDATE_ROLLBACK_FAILED``); the change set is
  ``EXECUTE_FAILED``.

Not modelled: the time a resource takes (everything is done within the call), stack
notifications beyond moto's (SNS topics get the stack's events only), ``OnFailure`` /
``DisableRollback`` (moto does not keep them: a failure always rolls back), the cleanup
phase (``UPDATE_COMPLETE_CLEANUP_IN_PROGRESS``: replaced resources go during the update).
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from moto.cloudformation import parsing
from moto.cloudformation.models import CloudFormationBackend, Event, Stack, cloudformation_backends


def apply() -> None:
    parsing.parse_and_create_resource = functools.partial(_create, parsing.parse_and_create_resource)
    parsing.parse_and_update_resource = functools.partial(_update, parsing.parse_and_update_resource)
    parsing.ResourceMap._delete_resource = functools.partialmethod(
        _delete, parsing.ResourceMap._delete_resource)
    Stack.create_resources = functools.partialmethod(_create_stack, Stack.create_resources)
    Stack.update = functools.partialmethod(_update_stack, Stack.update)
    CloudFormationBackend.execute_change_set = functools.partialmethod(
        _execute_change_set, CloudFormationBackend.execute_change_set)


def reason_of(exc: BaseException) -> str:
    return getattr(exc, "message", None) or str(exc) or type(exc).__name__


def _stack(resources_map) -> Stack | None:
    backend = cloudformation_backends[resources_map._account_id][resources_map._region_name]
    return backend.stacks.get(resources_map.stack_id)


def _event(stack: Stack | None, logical_id: str, resource_type: str, status: str,
           physical_id: str = "", reason: str | None = None) -> None:
    if stack is None:
        return
    event = Event(stack.stack_id, stack.name, logical_id, physical_id, resource_type, status,
                  reason, None)
    event.sendToSns(stack.account_id, stack.region_name, stack.notification_arns)
    stack.events.append(event)


def _pair(stack: Stack | None, verb: str, logical_id: str, resource: Any, kind: str) -> None:
    physical = str(getattr(resource, "physical_resource_id", "") or "")
    _event(stack, logical_id, kind, f"{verb}_IN_PROGRESS", physical)
    _event(stack, logical_id, kind, f"{verb}_COMPLETE", physical)


# -- resources -------------------------------------------------------------------------------
def _create(original, logical_id: str, resource_json: dict, resources_map, account_id: str,
            region_name: str):
    try:
        resource = original(logical_id, resource_json, resources_map, account_id, region_name)
    except Exception as exc:
        if getattr(resources_map, "m7_failed", None) is None:  # the first failure, not the
            resources_map.m7_failed = (logical_id, resource_json.get("Type", ""), reason_of(exc))
            stack = _stack(resources_map)  # resources whose creation was waiting for it
            _event(stack, logical_id, resource_json.get("Type", ""), "CREATE_IN_PROGRESS")
            _event(stack, logical_id, resource_json.get("Type", ""), "CREATE_FAILED",
                   reason=reason_of(exc))
        raise
    if resource is not None:
        _pair(_stack(resources_map), "CREATE", logical_id, resource, resource_json.get("Type", ""))
    return resource


def _update(original, logical_id: str, resource_json: dict, resources_map, account_id: str,
            region_name: str):
    try:
        resource = original(logical_id, resource_json, resources_map, account_id, region_name)
    except Exception as exc:  # moto tries again in its next pass: only the last one counts
        resources_map.m7_failed = (logical_id, resource_json.get("Type", ""), reason_of(exc))
        raise
    _pair(_stack(resources_map), "UPDATE", logical_id, resource, resource_json.get("Type", ""))
    return resource


def _delete(self, original, parsed_resource: Any, resource_json: dict) -> None:
    original(self, parsed_resource, resource_json)
    _pair(_stack(self), "DELETE", getattr(parsed_resource, "logical_resource_id", ""),
          parsed_resource, resource_json.get("Type", ""))


# -- stacks ----------------------------------------------------------------------------------
def _create_stack(self: Stack, original) -> None:
    self.resource_map.m7_failed = None
    try:
        original(self)
    except Exception as exc:
        roll_back_create(self, exc)


def roll_back_create(stack: Stack, exc: BaseException) -> None:
    logical_id, _, _ = getattr(stack.resource_map, "m7_failed", None) or (stack.name, "", "")
    stack.status = "ROLLBACK_IN_PROGRESS"
    stack._add_stack_event("ROLLBACK_IN_PROGRESS", f"The following resource(s) failed to "
                                                   f"create: [{logical_id}]. Rollback requested "
                                                   "by user.")
    try:
        stack.resource_map.delete()
    except Exception as failure:
        stack.status = "ROLLBACK_FAILED"
        stack._add_stack_event("ROLLBACK_FAILED", f"The following resource(s) failed to delete: "
                                                  f"{reason_of(failure)}")
        return
    stack.status = "ROLLBACK_COMPLETE"
    stack._add_stack_event("ROLLBACK_COMPLETE")


def _snapshot(stack: Stack) -> tuple[dict, dict, str]:
    return (copy.deepcopy(stack.resource_map._template),
            dict(stack.resource_map.input_parameters), stack.template)


def _update_stack(self: Stack, original, template: str, *args: Any, **kwargs: Any) -> None:
    before = _snapshot(self)
    self.resource_map.m7_failed = None
    try:
        original(self, template, *args, **kwargs)
    except Exception as exc:
        roll_back_update(self, exc, before)


def roll_back_update(stack: Stack, exc: BaseException, before: tuple[dict, dict, str]) -> None:
    logical_id, kind, reason = getattr(stack.resource_map, "m7_failed", None) or (
        stack.name, "AWS::CloudFormation::Stack", reason_of(exc))
    _event(stack, logical_id, kind, "UPDATE_FAILED", reason=reason)
    stack.status = "UPDATE_ROLLBACK_IN_PROGRESS"
    stack._add_stack_event("UPDATE_ROLLBACK_IN_PROGRESS", f"The following resource(s) failed "
                                                          f"to update: [{logical_id}].")
    template_dict, parameters, template = before
    try:
        stack.resource_map.update(template_dict, parameters)
    except Exception as failure:
        stack.status = "UPDATE_ROLLBACK_FAILED"
        stack._add_stack_event("UPDATE_ROLLBACK_FAILED", reason_of(failure))
        return
    stack.template = template
    stack._parse_template()
    stack.output_map = stack._create_output_map()
    stack.status = "UPDATE_ROLLBACK_COMPLETE"
    stack._add_stack_event("UPDATE_ROLLBACK_COMPLETE")


def _execute_change_set(self, original, change_set_name: str, stack_name: str | None = None):
    change_set = self.change_sets.get(change_set_name) or next(
        (c for c in self.change_sets.values() if c.change_set_name == change_set_name), None)
    stack = self.stacks.get(change_set.stack_id) if change_set else None
    if stack is None:
        return original(self, change_set_name, stack_name)
    before = _snapshot(stack)
    stack.resource_map.m7_failed = None
    try:
        return original(self, change_set_name, stack_name)
    except Exception as exc:
        change_set.execution_status = "EXECUTE_FAILED"
        if change_set.change_set_type == "CREATE":
            roll_back_create(stack, exc)
        else:
            roll_back_update(stack, exc, before)
        return None
