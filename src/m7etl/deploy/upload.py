"""``m7etl upload``: every artefact to the code bucket, in the guide's layout (step 2).

Pure part: :func:`plan_uploads` (which file goes to which key, with its sha256) and
:func:`decide` (upload or skip, from a ``head_object`` answer). Thin part:
:func:`upload_all` sends it. An object is skipped when its ``sha256`` metadata equals the
file's: an ETag is not a content hash under SSE-KMS or multipart, and S3 does not compute
a whole-object SHA-256 of a multipart upload, so the hash travels as metadata. The code
bucket is versioned (MWAA requires it), so every object gets a version id the stack pins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m7etl.deploy.functions import HANDLERS, LAYER
from m7etl.deploy.glue import BUNDLE_NAME, GLUE_DIR, GLUE_SCRIPT
from m7etl.deploy.zips import sha256
from m7etl.exceptions import DeployError
from m7etl.storage import errors

UPLOAD, SKIP = "upload", "skip"  # decide()'s answers
UPLOADED, SKIPPED = "uploaded", "skipped"  # what happened, in the report
SHA256_KEY = "sha256"  # x-amz-meta-sha256
TEMPLATE_KEY = "templates/etl-pipeline-mwaa.yaml"
LARGE_FILE = 8 * 1024 * 1024  # boto3's multipart threshold: above it the CLI draws a bar
CONTENT_TYPES = {".zip": "application/zip", ".py": "text/x-python", ".txt": "text/plain",
                 ".yaml": "application/x-yaml"}
# The template's parameters that pin an object's version (empty = latest).
VERSION_PARAMETERS = {
    f"layers/{LAYER}.zip": "LayerCodeVersion",
    "lambda/raw_to_silver.zip": "RawToSilverCodeVersion",
    "lambda/silver_to_gold.zip": "SilverToGoldCodeVersion",
    "lambda/s3_event.zip": "S3EventCodeVersion",
    "lambda/maintenance.zip": "MaintenanceCodeVersion",
    "requirements/requirements.txt": "RequirementsVersion",
}
BUILT = "built by m7etl package (or m7etl upload without --skip-build)"


@dataclass(frozen=True)
class Source:
    """One object of the layout: its key, where its file is, and what produces that file."""

    key: str
    base: str  # "build" (the build folder) or "project" (the checkout)
    path: str  # relative to the base
    made_by: str


SOURCES: tuple[Source, ...] = (
    *(Source(f"lambda/{h}.zip", "build", f"{h}.zip", BUILT) for h in HANDLERS),
    Source(f"{GLUE_DIR}/{GLUE_SCRIPT}", "build", f"{GLUE_DIR}/{GLUE_SCRIPT}", BUILT),
    Source(f"{GLUE_DIR}/{BUNDLE_NAME}", "build", f"{GLUE_DIR}/{BUNDLE_NAME}", BUILT),
    Source(f"layers/{LAYER}.zip", "build", f"{LAYER}.zip", BUILT),
    Source("dags/m7_etl_pipeline.py", "project", "dags/m7_etl_pipeline.py",
           "the Airflow DAG (the guide's step 1.4), kept in the project's dags/ folder"),
    Source("requirements/requirements.txt", "project", "dags/requirements.txt",
           "MWAA's requirements file (the guide's step 1.4), kept beside the DAG in dags/"),
    Source("dags/.airflowignore", "project", "dags/.airflowignore",
           "the DAG folder's ignore file (the m7etl modules beside the DAG are no DAG files)"),
    Source(TEMPLATE_KEY, "project", TEMPLATE_KEY, "the stack's template, kept in templates/"),
)
DAG_FILE = "dags/m7_etl_pipeline.py"


@dataclass(frozen=True)
class UploadItem:
    key: str
    path: Path
    size: int
    sha256: str
    content_type: str


@dataclass(frozen=True)
class ObjectResult:
    item: UploadItem
    action: str  # UPLOADED or SKIPPED
    version_id: str | None  # None: the bucket does not version it

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.item.key, "action": self.action, "size": self.item.size,
                "sha256": self.item.sha256, "version_id": self.version_id,
                "source": str(self.item.path)}


@dataclass
class UploadReport:
    bucket: str
    objects: list[ObjectResult] = field(default_factory=list)
    versioning: str | None = None  # "Enabled", "Suspended", "" (never enabled), None (unknown)
    endpoint_url: str | None = None  # the client's, for the template's URL
    region: str | None = None

    @property
    def uploaded(self) -> list[ObjectResult]:
        return [o for o in self.objects if o.action == UPLOADED]

    @property
    def skipped(self) -> list[ObjectResult]:
        return [o for o in self.objects if o.action == SKIPPED]

    @property
    def bytes_uploaded(self) -> int:
        return sum(o.item.size for o in self.uploaded)

    def version_ids(self) -> dict[str, str | None]:
        """Key -> version id, for ``deploy`` to pin what it deploys."""
        return {o.item.key: o.version_id for o in self.objects}

    def stack_parameters(self) -> dict[str, str]:
        """The template's ``*Version`` parameters, for the objects that have a version."""
        ids = self.version_ids()
        return {p: ids[k] for k, p in VERSION_PARAMETERS.items() if ids.get(k)}

    @property
    def template_url(self) -> str | None:
        """Where ``deploy`` points ``TemplateURL`` (the template is over --template-body's
        comfort zone: 50,013 of 51,200 bytes)."""
        if TEMPLATE_KEY not in self.version_ids():
            return None
        return object_url(self.bucket, TEMPLATE_KEY, self.region, self.endpoint_url,
                          self.version_ids()[TEMPLATE_KEY])

    @property
    def warnings(self) -> list[str]:
        unpinned = [o.item.key for o in self.objects if o.version_id is None]
        if self.versioning == "Enabled" or not unpinned:
            return []
        # versioning None: the caller may not read it (s3:GetBucketVersioning).
        state = {"Suspended": "has versioning suspended", "": "is not versioned",
                 None: "gave no version id"}.get(self.versioning, "gave no version id")
        return [f"Code bucket {self.bucket} {state}: {len(unpinned)} object(s) have no "
                "version id for the stack to pin "
                f"({', '.join(sorted(VERSION_PARAMETERS.values()))}), and MWAA requires "
                "versioning on its source bucket. Enable it with "
                f"'aws s3api put-bucket-versioning --bucket {self.bucket} "
                "--versioning-configuration Status=Enabled', then run m7etl upload again."]

    def to_dict(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "objects": [o.to_dict() for o in self.objects],
                "uploaded": len(self.uploaded), "skipped": len(self.skipped),
                "bytes_uploaded": self.bytes_uploaded, "version_ids": self.version_ids(),
                "stack_parameters": self.stack_parameters(), "template_url": self.template_url,
                "versioning": self.versioning, "warnings": self.warnings}


# --- the pure part ---------------------------------------------------------------------

def source_path(source: Source, root: Path, build_dir: Path) -> Path:
    return (build_dir if source.base == "build" else root) / source.path


def missing_sources(root: Path, build_dir: Path, base: str | None = None) -> list[Source]:
    """The sources whose file does not exist (only those under ``base`` if given)."""
    return [s for s in SOURCES if (base is None or s.base == base)
            and not source_path(s, root, build_dir).is_file()]


def missing_error(missing: list[Source], root: Path, build_dir: Path) -> DeployError:
    """One error naming every missing file, and per group of them what produces them."""
    shown = [_shown(source_path(s, root, build_dir), root) for s in missing]
    groups: dict[str, list[str]] = {}
    for name, source in zip(shown, missing, strict=True):
        groups.setdefault(source.made_by, []).append(name)
    return DeployError(
        f"Cannot upload: {len(missing)} file(s) missing: {', '.join(shown)}.",
        hint=" ".join(f"{', '.join(names)}: {made_by}." for made_by, names in groups.items()))


def plan_uploads(root: Path, build_dir: Path) -> list[UploadItem]:
    """Every object of the layout with its file, size and sha256; a missing file is an error."""
    missing = missing_sources(root, build_dir)
    if missing:
        raise missing_error(missing, root, build_dir)
    files = [(s.key, source_path(s, root, build_dir)) for s in SOURCES]
    files += dag_modules(root)
    return [UploadItem(key, path, path.stat().st_size, sha256(path),
                       CONTENT_TYPES.get(path.suffix, "application/octet-stream"))
            for key, path in files]


def dag_modules(root: Path) -> list[tuple[str, Path]]:
    """The m7etl modules the DAG imports, as ``dags/m7etl/...`` keys: MWAA puts the DAG
    folder on ``sys.path``, and has no m7etl installed. Found by the Lambda zips' walker."""
    from m7etl.deploy.imports import module_graph

    dags, src = root / "dags", root / "src"
    graph = module_graph(Path(DAG_FILE).stem, [dags, src], what=f"The DAG {DAG_FILE}")
    return sorted((f"dags/{path.relative_to(src).as_posix()}", path)
                  for path in graph.files.values() if path.is_relative_to(src))


def decide(item: UploadItem, head: dict | None, *, need_version: bool = False) -> str:
    """UPLOAD unless the object holds the same bytes (sha256 metadata and size), and, when
    the bucket versions objects (``need_version``), has a real version id to pin."""
    if head is None:
        return UPLOAD
    meta = {k.lower(): v for k, v in (head.get("Metadata") or {}).items()}
    if meta.get(SHA256_KEY) != item.sha256 or head.get("ContentLength") != item.size:
        return UPLOAD
    if need_version and _version(head) is None:
        return UPLOAD  # written before versioning was enabled: a new upload gets a version
    return SKIP


def head_request(bucket: str, key: str) -> dict[str, str]:
    return {"Bucket": bucket, "Key": key}


def upload_request(bucket: str, item: UploadItem) -> dict[str, Any]:
    """The arguments of ``s3.upload_file`` (multipart above 8 MB, hence not put_object)."""
    return {"Filename": str(item.path), "Bucket": bucket, "Key": item.key,
            "ExtraArgs": {"Metadata": {SHA256_KEY: item.sha256}, "ContentType": item.content_type}}


def object_url(bucket: str, key: str, region: str | None, endpoint_url: str | None = None,
               version_id: str | None = None) -> str:
    """An object's HTTPS URL, as CloudFormation's ``TemplateURL`` takes it."""
    host = (endpoint_url or "").rstrip("/")
    if not host or host.endswith(".amazonaws.com") or host.endswith(".amazonaws.com.cn"):
        suffix = ".amazonaws.com.cn" if (region or "").startswith("cn-") else ".amazonaws.com"
        url = f"https://{bucket}.s3.{region or 'us-east-1'}{suffix}/{key}"
    else:  # a local endpoint (moto, LocalStack): path style
        url = f"{host}/{bucket}/{key}"
    return f"{url}?versionId={version_id}" if version_id else url


DENIED = errors.DENIED_CODES
PERMISSION = {"GetBucketVersioning": "s3:GetBucketVersioning",
              "HeadObject": "s3:GetObject (and s3:ListBucket: without it S3 answers 403 for a key "
                            "that does not exist yet)",
              "PutObject": "s3:PutObject (and kms:GenerateDataKey if the bucket uses SSE-KMS)"}


def explain(code: str, message: str, operation: str, bucket: str, key: str | None) -> DeployError | None:
    """The DeployError for an S3 error code, or None when it is not an expected one (the
    category from :func:`m7etl.storage.errors.classify_code`, the words for an upload)."""
    where = f"s3://{bucket}/{key}" if key else f"s3://{bucket}"
    category = errors.classify_code(code)
    if code == "NoSuchBucket" or (category == errors.NOT_FOUND and key is None):
        return DeployError(
            f"Code bucket {bucket} does not exist.",
            hint=f"Create it with versioning on (a prerequisite of the guide: 'aws s3 mb "
                 f"s3://{bucket}' then 'aws s3api put-bucket-versioning --bucket {bucket} "
                 "--versioning-configuration Status=Enabled'), or set code_bucket for this "
                 "environment in m7etl.toml.")
    if category == errors.DENIED:
        permission = PERMISSION.get(operation, PERMISSION["PutObject"])
        return DeployError(
            f"Access denied to {where} ({operation}{': ' + message if message else ''}).",
            hint=f"Grant the caller {permission} on arn:aws:s3:::{bucket}"
                 f"{'/' + key if key else ''}, or use a profile that has it (--profile).")
    if category in errors.RETRYABLE:
        return DeployError(f"S3 is throttling or unavailable for {where} ({operation}: {code}).",
                           hint="Run m7etl upload again in a minute: objects already uploaded "
                                "are skipped.", retryable=True)
    if category == errors.EXPIRED:
        return DeployError(f"The AWS credentials have expired ({operation} on {where}: {code}).",
                           hint="Refresh them (aws sso login, or a new session) and run again.")
    if category == errors.BAD_CREDENTIALS:
        return DeployError(f"AWS rejected the credentials ({operation} on {where}: {code}).",
                           hint="Check the profile's access key (aws sts get-caller-identity).")
    if code in ("PermanentRedirect", "301", "AuthorizationHeaderMalformed"):
        return DeployError(f"Code bucket {bucket} is in another region than the client's "
                           f"({operation}: {code}).",
                           hint="Set region for this environment in m7etl.toml, or pass --region.")
    return None


# --- the thin AWS layer ----------------------------------------------------------------

class UploadProgress:
    """Hooks :func:`upload_all` calls (the CLI draws bars; this base draws nothing).

    ``advance`` is called from s3transfer's worker threads with the bytes sent since the
    last call (negative when a part is retried)."""

    def start(self, item: UploadItem) -> None:
        pass

    def advance(self, item: UploadItem, nbytes: int) -> None:
        pass

    def finish(self, result: ObjectResult) -> None:
        pass


def upload_all(s3, bucket: str, items: Iterable[UploadItem],
               progress: UploadProgress | None = None) -> UploadReport:
    """Upload what is missing or changed, skip the rest; the report has the version ids.

    Checksums: the client keeps botocore's defaults (``when_supported``). Uploads carry a
    CRC32 per request or part, which S3 verifies, a check the sha256 metadata (not verified
    by S3) does not give. Response validation only applies to bodies we read, and this
    module reads none (HEAD only), so moto's FlexibleChecksumError on reading back a
    multipart object does not concern it; tests that read objects set it themselves.
    """
    progress = progress or UploadProgress()
    report = UploadReport(bucket, versioning=_versioning(s3, bucket),
                          endpoint_url=s3.meta.endpoint_url, region=s3.meta.region_name)
    pin = report.versioning == "Enabled"
    for item in items:
        head = _head(s3, bucket, item.key)
        if decide(item, head, need_version=pin) == SKIP:
            result = ObjectResult(item, SKIPPED, _version(head))
        else:
            progress.start(item)
            _upload(s3, bucket, item, progress)
            after = _head(s3, bucket, item.key)
            if after is None or decide(item, after) != SKIP:
                raise DeployError(f"s3://{bucket}/{item.key} changed while it was uploaded.",
                                  hint="Another upload ran at the same time: run m7etl upload "
                                       "again.", retryable=True)
            result = ObjectResult(item, UPLOADED, _version(after))
        report.objects.append(result)
        progress.finish(result)
    return report


def _versioning(s3, bucket: str) -> str | None:
    """The bucket's versioning status; the call also tells a missing bucket apart (a HEAD
    on a key of a missing bucket is a bare 404, like a missing key)."""
    from botocore.exceptions import ClientError

    try:
        return s3.get_bucket_versioning(Bucket=bucket).get("Status", "")
    except ClientError as exc:
        code = _code(exc)
        if code in DENIED:  # not fatal: versions may still come back on the objects
            return None
        raise _translated(exc, "GetBucketVersioning", bucket, None) from None
    except Exception as exc:
        raise _unreachable(exc, s3, bucket) from None


def _head(s3, bucket: str, key: str) -> dict | None:
    from botocore.exceptions import ClientError

    try:
        return s3.head_object(**head_request(bucket, key))
    except ClientError as exc:
        if _code(exc) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise _translated(exc, "HeadObject", bucket, key) from None
    except Exception as exc:
        raise _unreachable(exc, s3, bucket) from None


def _upload(s3, bucket: str, item: UploadItem, progress: UploadProgress) -> None:
    from botocore.exceptions import ClientError

    request = upload_request(bucket, item)
    try:
        s3.upload_file(**request, Callback=lambda n: progress.advance(item, n))
    except Exception as exc:
        # boto3 wraps a ClientError in S3UploadFailedError (raised while handling it).
        cause = exc if isinstance(exc, ClientError) else exc.__context__
        if isinstance(cause, ClientError):
            raise _translated(cause, "PutObject", bucket, item.key) from None
        raise _unreachable(exc, s3, bucket) from None


def _code(exc) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _translated(exc, operation: str, bucket: str, key: str | None) -> Exception:
    err = exc.response.get("Error", {})
    return explain(_code(exc), err.get("Message", ""), operation, bucket, key) or exc


def _unreachable(exc: Exception, s3, bucket: str) -> Exception:
    """Connection failures and timeouts are retryable DeployErrors; anything else as is."""
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return DeployError(f"Cannot reach S3 at {s3.meta.endpoint_url} for bucket {bucket} "
                           f"({type(exc).__name__}).",
                           hint="Check the network (or the endpoint_url in m7etl.toml) and run "
                                "again.", retryable=True)
    return exc


def _version(head: dict | None) -> str | None:
    """The object's version id; "null" (written while versioning was off) pins nothing."""
    version = (head or {}).get("VersionId")
    return None if version in (None, "", "null") else version


def _shown(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


# --- what the commands call ------------------------------------------------------------

def upload_environment(config, clients, *, build: bool = True, root: Path | None = None,
                       build_dir: Path | None = None, wheel_cache: Path | None = None,
                       progress: UploadProgress | None = None,
                       on_step: Callable[[str], None] | None = None) -> UploadReport:
    """Build what is missing or stale (unless ``build`` is False), then upload everything
    to ``config.code_bucket``. ``deploy`` calls this and pins ``report.version_ids()``."""
    root = (root or _project_root()).resolve()
    build_dir = (build_dir or root / "build").resolve()
    say = on_step or (lambda _message: None)
    missing = missing_sources(root, build_dir, base="project")  # before a slow build
    if missing:
        raise missing_error(missing, root, build_dir)
    if build:
        from m7etl.deploy.artefacts import DEFAULT_ARCH, DEFAULT_RUNTIME, build_all

        runtime = config.parameters.get("LambdaRuntime", DEFAULT_RUNTIME)
        arch = config.parameters.get("LambdaArchitecture", DEFAULT_ARCH)
        say(f"Building the artefacts in {_shown(build_dir, root)}/ ({runtime} {arch}; "
            "unchanged zips are kept)...")
        build_all(build_dir, runtime=runtime, arch=arch, root=root, wheel_cache=wheel_cache)
    items = plan_uploads(root, build_dir)
    say(f"Uploading {len(items)} file(s) to s3://{config.code_bucket}/ ...")
    return upload_all(_s3_client(clients), config.code_bucket, items, progress)


def _project_root() -> Path:
    from m7etl.deploy.project import project_root
    from m7etl.exceptions import PackageError

    try:
        return project_root()
    except PackageError:
        raise DeployError(f"Cannot find the project's checkout (dags/, templates/, lambda_src/) "
                          f"from {Path.cwd()}.", hint="Run m7etl upload from the checkout, or "
                          "pass --project-dir.") from None


def _s3_client(clients):
    from botocore.exceptions import ProfileNotFound

    try:
        return clients("s3")
    except ProfileNotFound as exc:
        raise DeployError(f"AWS profile {exc.kwargs.get('profile')!r} does not exist.",
                          hint="Create it (aws configure --profile NAME) or fix profile in "
                               "m7etl.toml / --profile.") from None
