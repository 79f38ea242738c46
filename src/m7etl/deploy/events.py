"""Watching a stack: its new events as they come, until its status is final.

CloudFormation gives events newest first and keeps them for the stack's whole life, so a
stream remembers the ids it has seen (the ones before ExecuteChangeSet included: the start
marker) and each poll reads only until the first known one. The watch ends on the stack's
status (DescribeStacks), not on an event, so a missed event cannot make it wait forever;
``Polling.max_wait`` bounds it (two hours: an MWAA environment can take over one).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from m7etl.deploy.changeset import DEFAULT_POLLING, Polling, aws_error, find_stack, quiet_wire_log
from m7etl.deploy.stack import fresh_events, is_terminal
from m7etl.exceptions import DeployError


class EventStream:
    """The events of one stack (by id: it still answers once the stack is deleted)."""

    def __init__(self, cf, stack_id: str):
        self.cf = cf
        self.stack_id = stack_id
        self.seen: set[str] = set()
        self.events: list[dict[str, Any]] = []  # every event returned by poll, oldest first

    def _pages(self):
        paginator = self.cf.get_paginator("describe_stack_events")
        for page in paginator.paginate(StackName=self.stack_id):
            yield page.get("StackEvents") or []

    def mark(self) -> None:
        """Remember the events there are now: only later ones are new."""
        with quiet_wire_log():
            for page in self._pages():
                self.seen.update(e["EventId"] for e in page)
                break  # newest first: the first page holds the newest, enough as a marker

    def poll(self) -> list[dict[str, Any]]:
        """The events since the last poll, oldest first."""
        with quiet_wire_log():
            new = fresh_events(self._pages(), self.seen)
        self.seen.update(e["EventId"] for e in new)
        self.events.extend(new)
        return new


def watch(cf, stream: EventStream, *, on_event: Callable[[dict[str, Any]], None],
          polling: Polling = DEFAULT_POLLING, follow: str = "",
          on_wait: Callable[[float], None] | None = None,
          sleep: Callable[[float], None] = time.sleep,
          clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Report each new event to ``on_event`` until the stack's status is final; the stack.

    ``follow`` is the command that goes on following it, named when the watch stops early
    (time is up, the session expired): the deployment itself goes on in CloudFormation."""
    from botocore.exceptions import ClientError

    start = clock()
    status = ""
    try:
        while True:
            for event in stream.poll():
                on_event(event)
            stack = find_stack(cf, stream.stack_id)
            if stack is None:  # gone: only a finished deletion does that
                return {"StackId": stream.stack_id, "StackStatus": "DELETE_COMPLETE"}
            status = stack["StackStatus"]
            if is_terminal(status):
                for event in stream.poll():  # those written with the final status
                    on_event(event)
                return stack
            elapsed = clock() - start
            if elapsed >= polling.max_wait:
                raise DeployError(
                    f"Stopped watching stack {stack['StackName']} after "
                    f"{elapsed / 60:.0f} min: it is still {status}.",
                    hint="The deployment goes on in CloudFormation (an MWAA environment can take "
                         f"over an hour). Follow it with '{follow}'.")
            if on_wait is not None:
                on_wait(elapsed)
            sleep(polling.delay)
    except ClientError as exc:
        last = f" (last seen {status})" if status else ""
        error = aws_error(exc, f"watching stack {stream.stack_id}{last}",
                          "cloudformation:DescribeStackEvents and DescribeStacks")
        if error is None:
            raise
        raise DeployError(error.message, hint=f"The deployment goes on in CloudFormation. "
                                              f"{error.hint} Follow it with '{follow}'.",
                          retryable=error.retryable) from None
