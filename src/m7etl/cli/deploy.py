"""``m7etl deploy --env E``: the guide's steps 1 to 5 in one command.

Preflight (the doctor's checks), upload (build what is stale, upload what changed, keep
the S3 version ids), the stack by change set (below), then the Airflow variables and the
S3 notifications once the stack is complete. A second run with nothing changed uploads 0
bytes, executes no change set and says so.

The stack part:

Read the template (the code bucket's copy, or ``--template``), check every parameter
against it, make a CREATE or UPDATE change set, show it, execute it on ``--yes`` or a
confirmation, follow the stack's events until its status is final, print the outputs.
:func:`deploy_stack` is the seam for the full ``deploy``: it takes the upload's version
ids (``versions``) and template URL (``StackOptions.template_url``), and returns the run
(exit code, final stack, outputs) so the post-deploy steps (variables, notifications) run
only after a success. The Snowflake password comes from ``$M7_SNOWFLAKE_PASSWORD`` or a
hidden prompt, never a flag; it is not printed, logged or written anywhere.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from m7etl.cli.options import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, Context, env_options
from m7etl.cli.render import stack as render
from m7etl.cli.render.airflow import show_variables
from m7etl.cli.render.doctor import show as show_checks
from m7etl.cli.render.notifications import show as show_notifications
from m7etl.cli.render.upload import UploadBars
from m7etl.cli.render.upload import console as upload_console
from m7etl.cli.render.upload import print_report as print_upload
from m7etl.deploy.changeset import (
    DEFAULT_POLLING,
    ChangeSetRef,
    Polling,
    create_change_set,
    delete_change_set,
    delete_stack,
    describe_stack,
    execute_change_set,
    list_changes,
    read_template,
    wait_change_set,
)
from m7etl.deploy.config import PASSWORD_ENV, check_password
from m7etl.deploy.doctor import default_template, failed, run_checks
from m7etl.deploy.events import EventStream, watch
from m7etl.deploy.notifications import configure_notifications
from m7etl.deploy.stack import (
    PASSWORD_PARAMETER,
    Decision,
    StackPlan,
    change_set_failure,
    change_set_name,
    change_set_request,
    decide,
    failures,
    follow_command,
    is_no_change,
    needs_password,
    outcome,
    outputs,
    parse_template,
    plan_stack,
    resource_changes,
    template_url,
)
from m7etl.deploy.upload import upload_environment
from m7etl.deploy.variables import set_variables
from m7etl.exceptions import ConfigurationError, DeployError


@dataclass(frozen=True)
class StackOptions:
    template_path: Path | None = None  # a local template, sent as TemplateBody
    template_url: str | None = None  # the uploaded template (default: the code bucket's copy)
    yes: bool = False
    dry_run: bool = False
    recreate: bool = False
    polling: Polling = DEFAULT_POLLING


DEFAULT_OPTIONS = StackOptions()


@dataclass
class StackRun:
    """What the stack part did: the exit code, the stack at the end, the JSON document."""

    exit_code: int
    outcome: str  # created, updated, no changes, dry run, declined, failed, interrupted
    stack: dict[str, Any] | None = None
    document: dict[str, Any] = field(default_factory=dict)

    @property
    def outputs(self) -> dict[str, str]:
        return outputs(self.stack or {})


def read_password(ctx: Context, stack_name: str, needed: bool) -> str | None:
    """``$M7_SNOWFLAKE_PASSWORD``, else (when the stack has none yet) a hidden prompt; either
    checked by :func:`check_password` (a refused answer is asked again)."""
    env = ctx.config.name
    value = os.environ.get(PASSWORD_ENV) or None
    if value is not None or not needed:
        return value if value is None else check_password(value, f"${PASSWORD_ENV}", env)
    while True:  # click's own value_proc would hide why (hide_input): say it, ask again
        try:
            answer = click.prompt(f"Snowflake password for stack {stack_name} (kept only in "
                                  f"the secret m7-etl/snowflake-{env})", hide_input=True,
                                  confirmation_prompt=True, err=ctx.json)
        except click.exceptions.Abort:
            raise DeployError(f"Stack {stack_name} needs {PASSWORD_PARAMETER} and none was "
                              "given.", hint=f"Set ${PASSWORD_ENV} (from your secret store) or "
                              "run deploy in a terminal to be prompted; it is never read from a "
                              "flag or m7etl.toml.") from None
        try:
            return check_password(answer, "the prompt", env)
        except ConfigurationError as exc:
            click.echo(f"Error: {exc}", err=True)


def _template(ctx: Context, options: StackOptions) -> tuple[str, dict[str, Any], dict[str, str]]:
    """The template's text and dict, and how CloudFormation gets it (body or URL)."""
    if options.template_path is not None:
        path = options.template_path
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DeployError(f"Template {path} cannot be read: {exc}.",
                              hint="Pass a readable UTF-8 template file.") from None
        return text, parse_template(text, str(path)), {"template_body": text}
    url = options.template_url or template_url(ctx.config.code_bucket, ctx.config.region)
    text = read_template(ctx.clients("s3"), url)
    return text, parse_template(text, url), {"template_url": url}


def _delete_for_create(ctx: Context, cf, out, stack: dict[str, Any], decision: Decision,
                       polling: Polling) -> None:
    """Delete an empty or failed stack before creating it again, showing its events."""
    render.say(out, decision.note or "", "yellow")
    stream = EventStream(cf, stack["StackId"])
    stream.mark()
    delete_stack(cf, stack["StackId"])
    final = watch(cf, stream, on_event=render.EventPrinter(out), polling=polling,
                  follow=follow_command(ctx.config.name))
    if final["StackStatus"] != "DELETE_COMPLETE":
        raise DeployError(f"Deleting stack {stack['StackName']} failed ({final['StackStatus']}).",
                          hint="See the events above, delete what is left, then deploy again.")


def _discard(cf, ref: ChangeSetRef, plan: StackPlan, polling: Polling) -> None:
    """Remove a change set not executed; for a CREATE, the empty stack it made too."""
    delete_change_set(cf, ref)
    if plan.change_set_type == "CREATE":
        stream = EventStream(cf, ref.stack_id)
        delete_stack(cf, ref.stack_id)
        watch(cf, stream, on_event=lambda _event: None, polling=polling)


def _document(ctx: Context, plan: StackPlan, ref: ChangeSetRef | None, changes: list) -> dict:
    return {"stack": plan.stack_name, "environment": ctx.config.name,
            "change_set_type": plan.change_set_type,
            "change_set": ref.name if ref else None,
            "changes": [c.to_dict() for c in changes],
            "parameters": [c.to_dict() for c in plan.changes], "executed": False}


def _confirm(ctx: Context, ref: ChangeSetRef, plan: StackPlan) -> bool:
    try:
        return click.confirm(f"Execute change set {ref.name} on stack {plan.stack_name}?",
                             default=False, err=ctx.json)
    except click.exceptions.Abort:
        raise DeployError(f"Change set {ref.name} was not executed: nobody answered the "
                          "confirmation (no terminal?). It was deleted; the stack is unchanged.",
                          hint="Pass --yes to execute without asking, or --dry-run to only see "
                               "the changes.") from None


def deploy_stack(ctx: Context, options: StackOptions = DEFAULT_OPTIONS, *,
                 versions: Mapping[str, str] | None = None) -> StackRun:
    """Make, show, execute and follow the change set; ``versions``: parameter -> version id."""
    cf = ctx.clients("cloudformation")
    out = render.console(ctx.json)
    env, polling = ctx.config.name, options.polling
    _, template, source = _template(ctx, options)
    stack = describe_stack(cf, ctx.config.stack_name)
    decision = decide(stack, recreate=options.recreate, env=env)
    existing = None if decision.change_set_type == "CREATE" else stack
    has_password = any(p["ParameterKey"] == PASSWORD_PARAMETER
                       for p in (existing or {}).get("Parameters") or [])
    password = read_password(ctx, ctx.config.stack_name,
                             needs_password(template) and not has_password)
    plan = plan_stack(template, ctx.config, change_set_type=decision.change_set_type,
                      versions=versions, password=password, existing=existing)
    request = change_set_request(plan, change_set_name(datetime.now(UTC)),
                                 description=f"m7etl deploy --env {env}", **source)
    if decision.delete_first and stack is not None:
        try:
            _delete_for_create(ctx, cf, out, stack, decision, polling)
        except KeyboardInterrupt:
            ctx.warn(f"Stopped watching the deletion of stack {plan.stack_name}; it goes on in "
                     f"CloudFormation. Follow it with '{follow_command(env)}', then deploy again.")
            return StackRun(EXIT_INTERRUPTED, "interrupted", stack, {"outcome": "interrupted"})
    ref = create_change_set(cf, request)
    document = _document(ctx, plan, ref, [])
    if ref is None:
        return _no_changes(out, plan, stack, document)
    try:
        described = wait_change_set(cf, ref, polling)
        if described["Status"] == "FAILED":
            if is_no_change(described.get("StatusReason")):
                delete_change_set(cf, ref)
                return _no_changes(out, plan, stack, document)
            _discard(cf, ref, plan, polling)
            raise change_set_failure(described.get("StatusReason") or "?", plan.stack_name, env)
        changes = resource_changes(list_changes(cf, ref, described))
        document["changes"] = [c.to_dict() for c in changes]
        render.print_change_set(out, plan.stack_name, plan.change_set_type, changes)
        if plan.changes:
            render.print_parameters(out, plan.changes, plan.change_set_type)
        if not changes:
            render.say(out, "No resource changes: only the stack's parameters change.")
        if options.dry_run:
            _discard(cf, ref, plan, polling)
            render.say(out, f"Dry run: change set {ref.name} deleted; stack {plan.stack_name} "
                            "unchanged.")
            return StackRun(EXIT_OK, "dry run", stack, {**document, "outcome": "dry run"})
        if not options.yes and not _confirm_or_discard(ctx, cf, ref, plan, polling):
            render.say(out, f"Not executed: change set {ref.name} deleted; stack "
                            f"{plan.stack_name} unchanged.")
            return StackRun(EXIT_OK, "declined", stack, {**document, "outcome": "declined"})
    except KeyboardInterrupt:
        _discard(cf, ref, plan, polling)
        ctx.warn(f"Cancelled before execution: change set {ref.name} deleted; stack "
                 f"{plan.stack_name} unchanged.")
        return StackRun(EXIT_INTERRUPTED, "interrupted", stack, {**document, "outcome": "interrupted"})
    return _execute(ctx, cf, out, ref, plan, document, polling)


def _confirm_or_discard(ctx: Context, cf, ref: ChangeSetRef, plan: StackPlan,
                        polling: Polling) -> bool:
    try:
        answer = _confirm(ctx, ref, plan)
    except DeployError:
        _discard(cf, ref, plan, polling)
        raise
    if not answer:
        _discard(cf, ref, plan, polling)
    return answer


def _no_changes(out, plan: StackPlan, stack: dict[str, Any] | None, document: dict) -> StackRun:
    render.say(out, f"No changes: stack {plan.stack_name} is up to date (the empty change set was "
                    "deleted).")
    render.print_outputs(out, outputs(stack or {}))
    return StackRun(EXIT_OK, "no changes", stack,
                    {**document, "outcome": "no changes", "outputs": outputs(stack or {})})


def _execute(ctx: Context, cf, out, ref: ChangeSetRef, plan: StackPlan, document: dict,
             polling: Polling) -> StackRun:
    """Execute, follow the events, then the outcome: outputs, or the failures and exit 2."""
    env = ctx.config.name
    stream = EventStream(cf, ref.stack_id)
    stream.mark()  # the start marker: the events from before are not this deployment's
    execute_change_set(cf, ref)
    document["executed"] = True
    render.say(out, f"Executing change set {ref.name} on stack {plan.stack_name} "
                    "(Ctrl-C stops watching, not the deployment):")
    printer = render.EventPrinter(out)
    try:
        with render.waiting(out, printer) as on_wait:
            final = watch(cf, stream, on_event=printer, polling=polling,
                          follow=follow_command(env), on_wait=on_wait)
    except KeyboardInterrupt:
        ctx.warn(f"Stopped watching. The deployment goes on in CloudFormation: follow it with "
                 f"'{follow_command(env)}'.")
        return StackRun(EXIT_INTERRUPTED, "interrupted", None, {**document, "outcome": "interrupted"})
    result = outcome(final["StackStatus"], plan.stack_name, env)
    document.update(status=final["StackStatus"], outputs=outputs(final))
    if not result.ok:
        found = failures(stream.events)
        if found:
            render.print_failures(out, found)
        render.say(out, result.summary, "bold red")
        if result.next_step:
            render.say(out, result.next_step)
        document.update(outcome="failed", failures=[f.to_dict() for f in found])
        return StackRun(EXIT_FAILED, "failed", final, document)
    render.say(out, result.summary, "bold green")
    render.print_outputs(out, outputs(final))
    kind = "created" if plan.change_set_type == "CREATE" else "updated"
    return StackRun(EXIT_OK, kind, final, {**document, "outcome": kind})


@click.command("deploy")
@click.option("--template", "template_path",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A local template, sent as the template body (default: the copy the upload "
                   "puts in the code bucket, templates/etl-pipeline-mwaa.yaml).")
@click.option("--yes", "-y", is_flag=True, help="Execute the change set without asking.")
@click.option("--dry-run", is_flag=True,
              help="Show the change set, then delete it: the stack does not change (the upload "
                   "still runs, so the change set can pin the new versions).")
@click.option("--recreate", is_flag=True,
              help="Delete a stack whose creation failed (ROLLBACK_COMPLETE) and create it again.")
@click.option("--skip-preflight", is_flag=True, help="Do not run the doctor's checks first.")
@click.option("--skip-build", is_flag=True, help="Upload build/ as it is (no m7etl package).")
@click.option("--skip-upload", is_flag=True,
              help="Upload nothing: the stack keeps the versions it pins (a parameter-only "
                   "change); the template is the code bucket's copy or --template.")
@click.option("--skip-variables", is_flag=True,
              help="Do not set the Airflow variables after the stack (m7etl set-variables).")
@click.option("--skip-notifications", is_flag=True,
              help="Do not configure the data bucket's S3 notifications (m7etl notifications).")
@click.option("--wait-minutes", type=click.IntRange(1, 24 * 60), default=120, show_default=True,
              help="How long to follow the stack before leaving it running (MWAA can take "
                   "over an hour).")
@click.option("--poll-seconds", type=click.FloatRange(0, 300), default=DEFAULT_POLLING.delay,
              hidden=True)
@env_options
def command(ctx: Context, template_path: Path | None, yes: bool, dry_run: bool, recreate: bool,
            skip_preflight: bool, skip_build: bool, skip_upload: bool, skip_variables: bool,
            skip_notifications: bool, wait_minutes: int, poll_seconds: float) -> None:
    """Deploy an environment, the guide's steps 1 to 5: check the prerequisites, build and
    upload the artefacts, create or update the stack through a change set (shown, then
    executed on --yes or confirmation, every resource followed live), then set the Airflow
    variables and the S3 notifications. Exit 2 when a check fails or the stack rolls back.
    The Snowflake password comes from $M7_SNOWFLAKE_PASSWORD or a hidden prompt.

    Example: m7etl deploy --env test --yes   (with $M7_SNOWFLAKE_PASSWORD set on the first create)
    """
    started = time.monotonic()
    out = render.console(ctx.json)
    document: dict[str, Any] = {"environment": ctx.config.name}
    read_password(ctx, ctx.config.stack_name, needed=False)  # $M7_SNOWFLAKE_PASSWORD, before AWS
    if not skip_preflight:
        checks = run_checks(ctx.config, ctx.clients,
                            template_path=template_path or default_template())
        document["preflight"] = [c.to_dict() for c in checks]
        show_checks(checks, ctx.config.name, ctx.json)
        if failed(checks):
            ctx.warn(f"Preflight failed: nothing was uploaded or deployed. Fix the checks above "
                     f"(m7etl doctor --env {ctx.config.name} runs them alone), or pass "
                     "--skip-preflight.")
            _finish(ctx, document, EXIT_FAILED)
    report = None
    if not skip_upload:
        with UploadBars(upload_console(ctx.json)) as bars:
            report = upload_environment(ctx.config, ctx.clients, build=not skip_build,
                                        progress=bars, on_step=ctx.info)
        document["upload"] = report.to_dict()
        if not ctx.json:
            print_upload(upload_console(ctx.json), report)
        for warning in report.warnings:
            ctx.warn(f"Warning: {warning}")
    options = StackOptions(template_path=template_path,
                           template_url=_template_url(ctx, report) if report else None,
                           yes=yes, dry_run=dry_run, recreate=recreate,
                           polling=Polling(poll_seconds, wait_minutes * 60.0))
    run = deploy_stack(ctx, options, versions=report.stack_parameters() if report else None)
    document.update(run.document)  # the stack's fields at the top, as before the other steps
    if run.exit_code != EXIT_OK or run.outcome not in ("created", "updated", "no changes"):
        _finish(ctx, document, run.exit_code)
    from m7etl.cli.render.upload import human_size
    from m7etl.exceptions import M7Error

    stack = "unchanged (no change set executed)" if run.outcome == "no changes" else run.outcome
    left = [c for c, skip in (("set-variables", skip_variables),
                              ("notifications", skip_notifications)) if not skip]
    try:  # a step that fails after the stack says so, and which steps are left to run
        if not skip_variables:
            variables = set_variables(ctx.config, ctx.clients)
            for warning in variables.warnings:
                ctx.warn(f"Warning: {warning}")
            show_variables(variables, ctx.json)
            document["variables"] = variables.to_dict()
            left.pop(0)
        if not skip_notifications:
            notifications = configure_notifications(ctx.config, ctx.clients)
            show_notifications(notifications, ctx.json)
            document["notifications"] = notifications.to_dict()
    except M7Error as exc:
        rerun = " then ".join(f"'m7etl {c} --env {ctx.config.name}'" for c in left)
        raise DeployError(f"Stack {ctx.config.stack_name} is deployed ({stack}), but {left[0]} "
                          f"failed: {exc.message}",
                          hint=(f"{exc.hint} " if exc.hint else "") + f"Then run {rerun} (or "
                               "deploy again: what is unchanged is skipped).",
                          retryable=exc.retryable) from None
    files = (f"{len(report.uploaded)} file(s) uploaded ({human_size(report.bytes_uploaded)}), "
             f"{len(report.skipped)} unchanged" if report else "nothing uploaded")
    render.say(out, f"Deployed {ctx.config.name} in {time.monotonic() - started:.1f} s: {files}; "
                    f"stack {stack}.", "bold green")
    _finish(ctx, document, EXIT_OK)


def _template_url(ctx: Context, report) -> str | None:
    """The uploaded template, pinned to its version. A local endpoint (moto) serves
    CloudFormation only virtual-hosted amazonaws.com URLs, which it resolves itself."""
    local = ctx.clients.endpoint_url or ctx.clients.endpoints.get("s3") or \
        os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if local:
        return template_url(ctx.config.code_bucket, ctx.config.region)
    return report.template_url


def _finish(ctx: Context, document: dict, exit_code: int) -> None:
    document["exit_code"] = exit_code
    ctx.result(document)
    raise click.exceptions.Exit(exit_code)
