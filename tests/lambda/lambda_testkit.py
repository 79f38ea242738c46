"""Helpers shared by the Lambda tests: sample files, recorded events, S3 listings, EMF."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "tests" / "events"
BUCKET = "m7-etl-data-solocco-test"
ENV_NAME = "m7-etl-mwaa-test"
DEVICE_HEADER = ("device_id,subscriber_id,model,firmware_version,region,activation_date,"
                 "last_seen_at,status,signal_quality_pct")
EPG_HEADER = "programme_id,channel_id,title,category,start_time,end_time"


def device_csv(rows: int = 5, bad: int = 0) -> bytes:
    lines = [DEVICE_HEADER]
    for i in range(rows):
        lines.append(f"STB{i:09d},SUB{i:08d},M7-HD100,1.2.{i},Bretagne,2020-01-0{1 + i % 9},"
                     f"2025-05-01 10:00:0{i % 10},active,{50 + i}")
    for i in range(bad):
        lines.append(f"BAD{i},SUB{i:08d},M7-HD100,1.2.3,Bretagne,2020-01-01,"
                     "2025-05-01 10:00:00,exploded,50")
    return ("\n".join(lines) + "\n").encode()


def load_event(name: str) -> dict:
    """A recorded event from tests/events/ (real AWS shapes)."""
    return json.loads((EVENTS / name).read_text())


def keys(client, prefix: str = "") -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def put(client, key: str, body: bytes, gz: bool = False) -> None:
    client.put_object(Bucket=BUCKET, Key=key, Body=gzip.compress(body, mtime=0) if gz else body)


def emf_records(text: str) -> list[dict]:
    """The CloudWatch embedded-metric-format records printed by Powertools."""
    found = []
    for line in text.splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and "_aws" in data:
            # Powertools 2 writes single values as one-element lists, 3 as numbers.
            found.append({k: v[0] if isinstance(v, list) and len(v) == 1 else v
                          for k, v in data.items()})
    return found


def ensure_empty_bucket(client, bucket: str) -> None:
    """Create the bucket, or empty it (moto's state is shared by every server in the
    process, so other tests' buckets are left alone: no global reset)."""
    try:
        client.create_bucket(Bucket=bucket,
                             CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    except client.exceptions.BucketAlreadyOwnedByYou:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            objects = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if objects:
                client.delete_objects(Bucket=bucket, Delete={"Objects": objects})
