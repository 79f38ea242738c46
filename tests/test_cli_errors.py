"""The CLI's error boundary: an AWS error the library did not turn into an M7Error still
ends as one line with the next step, by its kind (m7etl.storage.errors), not a traceback."""

from __future__ import annotations

import click
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from click.testing import CliRunner

from m7etl.cli.errors import ErrorBoundaryGroup


def run_raising(exc: BaseException):
    @click.group(cls=ErrorBoundaryGroup)
    def group():
        pass

    @group.command()
    def boom():
        raise exc

    return CliRunner().invoke(group, ["boom"])


def client_error(code: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "said AWS"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")


@pytest.mark.parametrize(("exc", "line"), [
    (client_error("SlowDown", 503), "Error: AWS refused PutObject: SlowDown: said AWS AWS is "
                                    "throttling the calls: run the command again in a minute."),
    (client_error("AccessDenied", 403), "Error: AWS refused PutObject: AccessDenied: said AWS "
                                        "Grant the caller that permission, or use --profile "
                                        "for one that has it."),
    (client_error("ExpiredToken", 400), "Error: AWS refused PutObject: ExpiredToken: said AWS "
                                        "Refresh the credentials (e.g. aws sso login) and run "
                                        "again."),
    (client_error("NoSuchThing", 400), "Error: AWS refused PutObject: NoSuchThing: said AWS"),
    (EndpointConnectionError(endpoint_url="https://s3.eu-west-1.amazonaws.com"),
     "Error: Cannot reach AWS (EndpointConnectionError: Could not connect to the endpoint URL: "
     '"https://s3.eu-west-1.amazonaws.com"). Check the network and run again.'),
    (OSError(28, "No space left on device", "/tmp/m7-run-1/x.parquet"),
     "Error: A local file operation failed (/tmp/m7-run-1/x.parquet): No space left on device. "
     "Check the disk space and permissions there (TMPDIR for temporary files), then run again."),
])
def test_an_aws_error_is_one_line_with_the_next_step_by_its_kind(exc, line):
    result = run_raising(exc)
    assert result.exit_code == 1
    assert result.output.strip() == line  # CliRunner mixes stderr in: no traceback either
