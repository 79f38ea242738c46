"""Sessions and clients, in one place.

Everything else receives a client (or session) as a parameter with this module's default,
so tests can pass a moto one. No client is created at import time: moto must start first,
and Lambda cold starts should not pay for clients they do not use. The endpoint comes from
``AWS_ENDPOINT_URL`` (boto3 reads it itself), which is how a moto server is reached.
"""

from __future__ import annotations

import boto3
from botocore.config import Config

RETRIES = Config(retries={"max_attempts": 10, "mode": "adaptive"}, connect_timeout=10, read_timeout=120)


def session(profile: str | None = None, region: str | None = None) -> boto3.session.Session:
    return boto3.session.Session(profile_name=profile, region_name=region)


def client(service: str, sess: boto3.session.Session | None = None, region: str | None = None):
    sess = sess or boto3.session.Session()
    return sess.client(service, region_name=region or sess.region_name or "eu-west-1", config=RETRIES)
