"""m7etl upload: the guide's layout in the code bucket, unchanged objects skipped by their
sha256 metadata, the version ids S3 gave back, and one clear line per expected failure.

Against the moto server (conftest's ``moto_endpoint``), with a fake project in tmp_path
and ``--skip-build`` / ``build=False`` so no test runs pip."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import uuid
from pathlib import Path

import pytest
from botocore.config import Config
from botocore.stub import Stubber
from click.testing import CliRunner
from rich.console import Console

from m7etl.cli import cli
from m7etl.cli.render.upload import UploadBars, human_size
from m7etl.deploy.config import EnvConfig
from m7etl.deploy.upload import (
    SKIP,
    UPLOAD,
    ObjectResult,
    UploadItem,
    UploadProgress,
    decide,
    explain,
    object_url,
    plan_uploads,
    upload_all,
    upload_environment,
    upload_request,
)
from m7etl.exceptions import DeployError, PackageError
from m7etl.storage.aws import Clients

# The guide's step 2, plus the S3-event and maintenance zips, the Glue bundle and the
# template (deployed with TemplateURL), in this order.
LAYOUT = {
    "lambda/raw_to_silver.zip": "build/raw_to_silver.zip",
    "lambda/silver_to_gold.zip": "build/silver_to_gold.zip",
    "lambda/s3_event.zip": "build/s3_event.zip",
    "lambda/maintenance.zip": "build/maintenance.zip",
    "glue/gold_to_snowflake.py": "build/glue/gold_to_snowflake.py",
    "glue/m7etl_glue.zip": "build/glue/m7etl_glue.zip",
    "layers/etl-dependencies.zip": "build/etl-dependencies.zip",
    "dags/m7_etl_pipeline.py": "dags/m7_etl_pipeline.py",
    "requirements/requirements.txt": "dags/requirements.txt",
    "dags/.airflowignore": "dags/.airflowignore",
    "templates/etl-pipeline-mwaa.yaml": "templates/etl-pipeline-mwaa.yaml",
}
MB9 = 9 * 1024 * 1024  # over boto3's 8 MB multipart threshold


def make_project(root: Path, layer_size: int = 2048) -> Path:
    """A checkout with a filled build/ folder: distinct bytes per file."""
    for key, rel in LAYOUT.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"# content of {key}\n".encode() * 10)  # a comment: valid Python
    (root / "build/etl-dependencies.zip").write_bytes(os.urandom(layer_size))
    return root


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path / "project")


@pytest.fixture
def s3(moto_endpoint):
    return Clients(endpoint_url=moto_endpoint, region="eu-west-1")("s3")


def new_bucket(s3, versioned: bool = True) -> str:
    name = f"m7-code-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    if versioned:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def latest_versions(s3, bucket: str) -> dict[str, str]:
    versions = s3.list_object_versions(Bucket=bucket)["Versions"]
    return {v["Key"]: v["VersionId"] for v in versions if v["IsLatest"]}


def item(sha256: str = "a" * 64, size: int = 10) -> UploadItem:
    return UploadItem("lambda/x.zip", Path("/tmp/x.zip"), size, sha256, "application/zip")


# --- the pure part ---------------------------------------------------------------------

def test_plan_is_the_guides_layout_with_each_files_size_and_sha256(project):
    items = plan_uploads(project, project / "build")
    assert [i.key for i in items] == list(LAYOUT)
    for i in items:
        source = project / LAYOUT[i.key]
        assert i.path == source
        assert (i.size, i.sha256) == (len(source.read_bytes()), sha(source))
    types = {i.key: i.content_type for i in items}
    assert types["layers/etl-dependencies.zip"] == "application/zip"
    assert types["dags/m7_etl_pipeline.py"] == "text/x-python"
    assert types["requirements/requirements.txt"] == "text/plain"
    assert types["templates/etl-pipeline-mwaa.yaml"] == "application/x-yaml"


def test_the_dags_m7etl_modules_ship_beside_it_and_cli_code_never(project):
    """MWAA has no m7etl installed: the modules the DAG imports (inside tasks too) go to
    dags/m7etl/..., found by the Lambda zips' import walker; reaching m7etl.cli fails."""
    src = project / "src" / "m7etl"
    (src / "cli").mkdir(parents=True)
    (src / "__init__.py").write_text("")
    (src / "plan.py").write_text("from m7etl import layout\n")
    (src / "layout.py").write_text("import json\n")
    (src / "unused.py").write_text("")
    (src / "cli" / "__init__.py").write_text("import click\n")
    (project / "dags/m7_etl_pipeline.py").write_text("def task():\n    from m7etl import plan\n")
    keys = [i.key for i in plan_uploads(project, project / "build")]
    assert keys == [*LAYOUT, "dags/m7etl/__init__.py", "dags/m7etl/layout.py", "dags/m7etl/plan.py"]
    (src / "layout.py").write_text("from m7etl.cli import render\n")
    with pytest.raises(PackageError, match=r"The DAG dags/m7_etl_pipeline.py reaches m7etl\.cli "
                                           r"\(m7etl\.cli <- m7etl\.layout <- m7etl\.plan <- "
                                           r"m7_etl_pipeline\)"):
        plan_uploads(project, project / "build")


def test_plan_names_every_missing_file_and_what_produces_it(project):
    (project / "dags/m7_etl_pipeline.py").unlink()
    (project / "build/etl-dependencies.zip").unlink()
    with pytest.raises(DeployError) as err:
        plan_uploads(project, project / "build")
    assert str(err.value) == (
        "Cannot upload: 2 file(s) missing: build/etl-dependencies.zip, dags/m7_etl_pipeline.py. "
        "build/etl-dependencies.zip: built by m7etl package (or m7etl upload without "
        "--skip-build). dags/m7_etl_pipeline.py: the Airflow DAG (the guide's step 1.4), kept "
        "in the project's dags/ folder.")


def test_the_plan_reads_the_folder_the_real_build_writes(tmp_path):
    """build_all's file names and the plan's agree (the layer aside: it needs pip)."""
    from m7etl.deploy.artefacts import build_all
    from m7etl.deploy.project import project_root
    from m7etl.deploy.upload import missing_sources

    build_dir = tmp_path / "build"
    build_all(build_dir, root=project_root(), skip_layer=True)
    missing = missing_sources(tmp_path, build_dir, base="build")
    assert [s.path for s in missing] == ["etl-dependencies.zip"]


def test_decide_skips_only_the_same_bytes():
    same = {"Metadata": {"sha256": "a" * 64}, "ContentLength": 10, "VersionId": "v1"}
    assert decide(item(), None) == UPLOAD
    assert decide(item(), same) == SKIP
    assert decide(item(), {**same, "Metadata": {"sha256": "b" * 64}}) == UPLOAD
    assert decide(item(), {**same, "Metadata": {}}) == UPLOAD  # copied by hand: no hash
    assert decide(item(), {**same, "ContentLength": 11}) == UPLOAD
    # Written before versioning was enabled: a new upload gets a version id to pin.
    assert decide(item(), {**same, "VersionId": "null"}, need_version=True) == UPLOAD
    assert decide(item(), same, need_version=True) == SKIP


def test_upload_request_carries_the_hash_and_the_content_type():
    assert upload_request("bkt", item()) == {
        "Filename": "/tmp/x.zip", "Bucket": "bkt", "Key": "lambda/x.zip",
        "ExtraArgs": {"Metadata": {"sha256": "a" * 64}, "ContentType": "application/zip"}}


def test_object_url_for_template_url():
    assert object_url("bkt", "templates/t.yaml", "eu-west-1", "https://s3.eu-west-1.amazonaws.com",
                      "v1") == "https://bkt.s3.eu-west-1.amazonaws.com/templates/t.yaml?versionId=v1"
    assert object_url("bkt", "t.yaml", "cn-north-1") == "https://bkt.s3.cn-north-1.amazonaws.com.cn/t.yaml"
    assert object_url("bkt", "t.yaml", "eu-west-1", "http://127.0.0.1:5000/") == \
        "http://127.0.0.1:5000/bkt/t.yaml"


def test_expected_s3_errors_say_what_to_do():
    throttled = explain("SlowDown", "Please reduce your request rate.", "PutObject", "bkt", "lambda/a.zip")
    assert throttled.retryable is True
    assert str(throttled) == ("S3 is throttling or unavailable for s3://bkt/lambda/a.zip (PutObject: "
                              "SlowDown). Run m7etl upload again in a minute: objects already "
                              "uploaded are skipped.")
    expired = explain("ExpiredToken", "The provided token has expired.", "HeadObject", "bkt", "k")
    assert (str(expired), expired.retryable) == (
        "The AWS credentials have expired (HeadObject on s3://bkt/k: ExpiredToken). Refresh them "
        "(aws sso login, or a new session) and run again.", False)
    assert explain("NoSuchUpload", "", "PutObject", "bkt", "k") is None  # left to the boundary


# --- against the moto server -----------------------------------------------------------

def test_first_upload_puts_every_key_with_the_files_real_sha256(s3, project):
    bucket = new_bucket(s3)
    report = upload_all(s3, bucket, plan_uploads(project, project / "build"))
    listed = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert listed == sorted(LAYOUT)
    for key, rel in LAYOUT.items():
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["Metadata"]["sha256"] == sha(project / rel)
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == (project / rel).read_bytes()
    assert [o.action for o in report.objects] == ["uploaded"] * len(LAYOUT)
    assert report.bytes_uploaded == sum((project / rel).stat().st_size for rel in LAYOUT.values())
    assert report.version_ids() == latest_versions(s3, bucket)
    assert report.warnings == []


def test_second_upload_skips_everything_and_keeps_the_version_ids(s3, project):
    bucket = new_bucket(s3)
    first = upload_all(s3, bucket, plan_uploads(project, project / "build"))
    second = upload_all(s3, bucket, plan_uploads(project, project / "build"))
    assert [o.action for o in second.objects] == ["skipped"] * len(LAYOUT)
    assert second.bytes_uploaded == 0
    assert second.version_ids() == first.version_ids() == latest_versions(s3, bucket)
    versions = s3.list_object_versions(Bucket=bucket)["Versions"]
    assert len(versions) == len(LAYOUT)  # nothing was written twice


def test_a_changed_file_is_the_only_one_uploaded_again_with_a_new_version(s3, project):
    bucket = new_bucket(s3)
    first = upload_all(s3, bucket, plan_uploads(project, project / "build"))
    dag = project / "dags/m7_etl_pipeline.py"
    dag.write_text("# the DAG, edited\n")
    second = upload_all(s3, bucket, plan_uploads(project, project / "build"))
    actions = {o.item.key: o.action for o in second.objects}
    assert actions.pop("dags/m7_etl_pipeline.py") == "uploaded"
    assert set(actions.values()) == {"skipped"}
    assert second.bytes_uploaded == len("# the DAG, edited\n")
    old, new = first.version_ids()["dags/m7_etl_pipeline.py"], second.version_ids()["dags/m7_etl_pipeline.py"]
    assert new != old
    dag_versions = [v["VersionId"] for v in s3.list_object_versions(
        Bucket=bucket, Prefix="dags/m7_etl_pipeline.py")["Versions"]]
    assert sorted(dag_versions) == sorted([old, new])
    assert second.version_ids() == latest_versions(s3, bucket)
    head = s3.head_object(Bucket=bucket, Key="dags/m7_etl_pipeline.py")
    assert head["Metadata"]["sha256"] == hashlib.sha256(b"# the DAG, edited\n").hexdigest()


def test_a_large_layer_goes_multipart_and_its_sha256_is_the_whole_files(s3, tmp_path, moto_endpoint):
    project = make_project(tmp_path / "big", layer_size=MB9)
    bucket = new_bucket(s3)
    sent: dict[str, int] = {}

    class Count(UploadProgress):
        def advance(self, item, nbytes):
            sent[item.key] = sent.get(item.key, 0) + nbytes

    report = upload_all(s3, bucket, plan_uploads(project, project / "build"), progress=Count())
    layer = project / "build/etl-dependencies.zip"
    assert sent["layers/etl-dependencies.zip"] == MB9
    head = s3.head_object(Bucket=bucket, Key="layers/etl-dependencies.zip")
    assert head["ETag"].strip('"').endswith("-2")  # multipart: the ETag is no content hash
    assert head["Metadata"]["sha256"] == sha(layer)
    # Reading a multipart object back from moto needs response validation "when_required".
    reader = Clients(endpoint_url=moto_endpoint, region="eu-west-1")(
        "s3", Config(response_checksum_validation="when_required"))
    body = reader.get_object(Bucket=bucket, Key="layers/etl-dependencies.zip")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == sha(layer)
    assert report.version_ids()["layers/etl-dependencies.zip"] == latest_versions(s3, bucket)[
        "layers/etl-dependencies.zip"]


def test_an_unversioned_bucket_uploads_but_warns_that_nothing_can_be_pinned(s3, project):
    bucket = new_bucket(s3, versioned=False)
    report = upload_all(s3, bucket, plan_uploads(project, project / "build"))
    assert set(report.version_ids().values()) == {None}
    assert report.stack_parameters() == {}
    assert report.warnings == [
        f"Code bucket {bucket} is not versioned: {len(LAYOUT)} object(s) have no version id for the "
        "stack to pin (LayerCodeVersion, MaintenanceCodeVersion, RawToSilverCodeVersion, "
        "RequirementsVersion, S3EventCodeVersion, SilverToGoldCodeVersion), and MWAA requires "
        f"versioning on its source bucket. Enable it with 'aws s3api put-bucket-versioning "
        f"--bucket {bucket} --versioning-configuration Status=Enabled', then run m7etl upload "
        "again."]
    # Following the advice works: once versioning is on, every object gets a version.
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    again = upload_all(s3, bucket, plan_uploads(project, project / "build"))
    assert [o.action for o in again.objects] == ["uploaded"] * len(LAYOUT)
    assert again.version_ids() == latest_versions(s3, bucket)
    assert None not in again.version_ids().values()
    assert again.warnings == []


def test_upload_environment_returns_the_stack_parameters_to_pin(s3, project, moto_endpoint):
    bucket = new_bucket(s3)
    config = EnvConfig(name="test", code_bucket=bucket, endpoint_url=moto_endpoint)
    clients = Clients(endpoint_url=moto_endpoint, region="eu-west-1")
    report = upload_environment(config, clients, build=False, root=project)
    latest = latest_versions(s3, bucket)
    assert report.stack_parameters() == {
        "LayerCodeVersion": latest["layers/etl-dependencies.zip"],
        "RawToSilverCodeVersion": latest["lambda/raw_to_silver.zip"],
        "SilverToGoldCodeVersion": latest["lambda/silver_to_gold.zip"],
        "S3EventCodeVersion": latest["lambda/s3_event.zip"],
        "MaintenanceCodeVersion": latest["lambda/maintenance.zip"],
        "RequirementsVersion": latest["requirements/requirements.txt"]}
    assert report.template_url == (f"{moto_endpoint}/{bucket}/templates/etl-pipeline-mwaa.yaml"
                                   f"?versionId={latest['templates/etl-pipeline-mwaa.yaml']}")


def test_the_build_uses_the_stacks_runtime_and_runs_after_the_dag_check(project, monkeypatch,
                                                                           moto_endpoint, s3):
    calls = []
    monkeypatch.setattr("m7etl.deploy.artefacts.build_all",
                        lambda out_dir, **kw: calls.append((out_dir, kw)))
    config = EnvConfig(name="test", code_bucket=new_bucket(s3), endpoint_url=moto_endpoint,
                       parameters={"LambdaRuntime": "python3.13", "LambdaArchitecture": "arm64"})
    clients = Clients(endpoint_url=moto_endpoint, region="eu-west-1")
    upload_environment(config, clients, root=project, wheel_cache=project / "wheels")
    assert calls == [(project / "build", {"runtime": "python3.13", "arch": "arm64",
                                          "root": project, "wheel_cache": project / "wheels"})]
    (project / "dags/requirements.txt").unlink()
    calls.clear()
    with pytest.raises(DeployError, match=r"missing: dags/requirements.txt\. "):
        upload_environment(config, clients, root=project)
    assert calls == []  # no slow layer build before a missing DAG-side file is reported


def test_access_denied_on_put_names_the_key_and_the_permission(s3, project):
    stub = Stubber(s3)
    stub.add_response("get_bucket_versioning", {"Status": "Enabled"})
    stub.add_client_error("head_object", "404", "Not Found", 404)
    stub.add_client_error("put_object", "AccessDenied", "Access Denied", 403)
    with stub, pytest.raises(DeployError) as err:
        upload_all(s3, "bkt", plan_uploads(project, project / "build")[:1])
    assert str(err.value) == (
        "Access denied to s3://bkt/lambda/raw_to_silver.zip (PutObject: Access Denied). Grant "
        "the caller s3:PutObject (and kms:GenerateDataKey if the bucket uses SSE-KMS) on "
        "arn:aws:s3:::bkt/lambda/raw_to_silver.zip, or use a profile that has it (--profile).")


def test_no_right_to_read_versioning_is_not_fatal(s3, project):
    first = plan_uploads(project, project / "build")[0]
    stub = Stubber(s3)
    stub.add_client_error("get_bucket_versioning", "AccessDenied", "Access Denied", 403)
    stub.add_client_error("head_object", "404", "Not Found", 404)
    stub.add_response("put_object", {"ETag": '"e"'})
    stub.add_response("head_object", {"Metadata": {"sha256": sha(first.path)},
                                      "ContentLength": first.size, "VersionId": "v-1"})
    with stub:
        report = upload_all(s3, "bkt", [first])
    assert (report.versioning, report.version_ids(), report.warnings) == (
        None, {"lambda/raw_to_silver.zip": "v-1"}, [])


def test_a_403_on_head_names_get_object_and_list_bucket(s3, project):
    stub = Stubber(s3)
    stub.add_response("get_bucket_versioning", {"Status": "Enabled"})
    stub.add_client_error("head_object", "403", "Forbidden", 403)
    with stub, pytest.raises(DeployError) as err:
        upload_all(s3, "bkt", plan_uploads(project, project / "build")[:1])
    assert str(err.value) == (
        "Access denied to s3://bkt/lambda/raw_to_silver.zip (HeadObject: Forbidden). Grant the "
        "caller s3:GetObject (and s3:ListBucket: without it S3 answers 403 for a key that does "
        "not exist yet) on arn:aws:s3:::bkt/lambda/raw_to_silver.zip, or use a profile that has "
        "it (--profile).")


def test_an_unreachable_endpoint_is_a_retryable_error(project):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = Clients(endpoint_url=f"http://127.0.0.1:{port}", region="eu-west-1")(
        "s3", Config(retries={"max_attempts": 1}, connect_timeout=1))
    with pytest.raises(DeployError) as err:
        upload_all(client, "bkt", plan_uploads(project, project / "build"))
    assert err.value.retryable is True
    assert str(err.value) == (
        f"Cannot reach S3 at http://127.0.0.1:{port} for bucket bkt (EndpointConnectionError). "
        "Check the network (or the endpoint_url in m7etl.toml) and run again.")


# --- the command -----------------------------------------------------------------------

def write_config(tmp_path: Path, bucket: str, endpoint: str) -> Path:
    path = tmp_path / "m7etl.toml"
    path.write_text(f'[test]\ncode_bucket = "{bucket}"\nendpoint_url = "{endpoint}"\n'
                    'region = "eu-west-1"\n', encoding="utf-8")
    return path


def run_upload(tmp_path, project, bucket, endpoint, *extra):
    config = write_config(tmp_path, bucket, endpoint)
    return CliRunner().invoke(cli, ["upload", "--env", "test", "--config", str(config),
                                    "--skip-build", "--project-dir", str(project), *extra])


def test_cli_uploads_then_skips_with_a_table_and_totals(s3, tmp_path, project, moto_endpoint):
    bucket = new_bucket(s3)
    first = run_upload(tmp_path, project, bucket, moto_endpoint)
    assert first.exit_code == 0, first.output
    total = sum((project / rel).stat().st_size for rel in LAYOUT.values())
    assert f"Uploaded {len(LAYOUT)} file(s), {total / 1000:.1f} kB; skipped 0 unchanged" in first.stdout
    latest = latest_versions(s3, bucket)
    for key in LAYOUT:
        line = next(li for li in first.stdout.splitlines() if f" {key} " in li)
        assert "uploaded" in line and latest[key] in line
    second = run_upload(tmp_path, project, bucket, moto_endpoint)
    assert second.exit_code == 0, second.output
    assert f"Uploaded 0 file(s), 0 B; skipped {len(LAYOUT)} unchanged" in second.stdout
    assert first.stderr == second.stderr == ""


def test_cli_json_prints_the_report_with_the_version_ids(s3, tmp_path, project, moto_endpoint):
    bucket = new_bucket(s3)
    result = run_upload(tmp_path, project, bucket, moto_endpoint, "--output", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["version_ids"] == latest_versions(s3, bucket)
    assert (doc["bucket"], doc["uploaded"], doc["skipped"]) == (bucket, len(LAYOUT), 0)
    assert {o["key"]: o["sha256"] for o in doc["objects"]} == {
        key: sha(project / rel) for key, rel in LAYOUT.items()}
    assert f"Uploading {len(LAYOUT)} file(s) to s3://{bucket}/ ..." in result.stderr


def test_cli_missing_bucket_is_one_line_and_exit_1(tmp_path, project, moto_endpoint):
    bucket = f"m7-code-missing-{uuid.uuid4().hex[:8]}"
    result = run_upload(tmp_path, project, bucket, moto_endpoint)
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: Code bucket {bucket} does not exist. Create it with versioning on (a "
        f"prerequisite of the guide: 'aws s3 mb s3://{bucket}' then 'aws s3api "
        f"put-bucket-versioning --bucket {bucket} --versioning-configuration Status=Enabled'), "
        "or set code_bucket for this environment in m7etl.toml.\n")


def test_cli_without_credentials_is_one_line_and_exit_1(tmp_path, project, moto_endpoint,
                                                          monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = run_upload(tmp_path, project, "m7-code-nocreds", moto_endpoint)
    assert result.exit_code == 1
    assert result.stderr == ("Error: No AWS credentials found. Configure them (aws configure, "
                             "AWS_PROFILE or environment variables) and run again.\n")


def test_cli_skip_build_with_an_empty_build_folder_names_the_files(tmp_path, project, moto_endpoint):
    empty = tmp_path / "empty-build"
    empty.mkdir()
    result = run_upload(tmp_path, project, "m7-code-unused", moto_endpoint, "--build-dir", str(empty))
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "Error: Cannot upload: 7 file(s) missing: "
        f"{empty}/raw_to_silver.zip, {empty}/silver_to_gold.zip, {empty}/s3_event.zip, "
        f"{empty}/maintenance.zip, {empty}/glue/gold_to_snowflake.py, "
        f"{empty}/glue/m7etl_glue.zip, {empty}/etl-dependencies.zip. ")
    assert result.stderr.count("\n") == 1


# --- rendering -------------------------------------------------------------------------

def test_bars_only_for_large_files_on_a_terminal():
    big = UploadItem("layers/etl-dependencies.zip", Path("l.zip"), MB9, "a" * 64, "application/zip")
    small = UploadItem("dags/d.py", Path("d.py"), 100, "b" * 64, "text/x-python")
    tty = Console(file=io.StringIO(), force_terminal=True, width=100)
    with UploadBars(tty) as bars:
        bars.start(big)
        bars.start(small)
        bars.advance(big, 1024)
        assert list(bars.tasks) == ["layers/etl-dependencies.zip"]
        assert bars.progress.tasks[0].completed == 1024
        bars.finish(ObjectResult(big, "uploaded", "v1"))
        assert bars.progress.tasks[0].finished
    log = Console(file=io.StringIO(), force_terminal=False)
    with UploadBars(log) as bars:
        bars.start(big)
        assert bars.tasks == {} and bars.progress is None
    assert [human_size(n) for n in (0, 999, 2500, 48_200_000)] == ["0 B", "999 B", "2.5 kB", "48.2 MB"]
