"""Sessions and clients, in one place: profile, region, endpoints, retries.

Everything else receives a client (or a :class:`Clients`) as a parameter with this
module's default, so tests can pass a moto one. No client is created at import time: moto
must start first, and Lambda cold starts should not pay for clients they do not use.
Endpoints: boto3 itself honours ``AWS_ENDPOINT_URL`` and ``AWS_ENDPOINT_URL_<SERVICE>``
(how a moto server is reached); an environment's configuration may also name them.

Python 3.9-clean: the Glue job imports this module.
"""

from __future__ import annotations

import boto3
from botocore.config import Config

DEFAULT_REGION = "eu-west-1"
RETRIES = Config(retries={"max_attempts": 10, "mode": "adaptive"}, connect_timeout=10, read_timeout=120)
# A person is waiting: a few retries, a short connect timeout (an unreachable endpoint is
# reported in seconds, not after ten adaptive attempts).
INTERACTIVE = Config(retries={"max_attempts": 4, "mode": "standard"}, connect_timeout=5,
                     read_timeout=60)


def session(profile: str | None = None, region: str | None = None) -> boto3.session.Session:
    return boto3.session.Session(profile_name=profile, region_name=region)


def client(service: str, sess: boto3.session.Session | None = None, region: str | None = None,
           endpoint_url: str | None = None, config: Config | None = None):
    sess = sess or boto3.session.Session()
    return sess.client(service, region_name=region or sess.region_name or DEFAULT_REGION,
                       endpoint_url=endpoint_url, config=config or RETRIES)


class Clients:
    """The clients of one command: one session (profile and region), made on first use.

    ``endpoint_url`` applies to every service, ``endpoints`` to one (``{"mwaa": url}``);
    when neither names a service, boto3's own environment variables decide.
    """

    def __init__(self, profile: str | None = None, region: str | None = None,
                 endpoint_url: str | None = None, endpoints: dict[str, str] | None = None,
                 config: Config | None = None):
        self.profile = profile
        self.region = region
        self.endpoint_url = endpoint_url
        self.endpoints = dict(endpoints or {})
        self.config = config  # None: RETRIES, the pipeline's
        self._session: boto3.session.Session | None = None
        self._clients: dict[str, object] = {}

    @property
    def session(self) -> boto3.session.Session:
        if self._session is None:
            self._session = session(self.profile, self.region)
        return self._session

    def __call__(self, service: str, config: Config | None = None):
        key = service if config is None else f"{service}:{id(config)}"
        if key not in self._clients:
            endpoint = self.endpoints.get(service) or self.endpoint_url
            self._clients[key] = client(service, self.session, self.region, endpoint,
                                        config or self.config)
        return self._clients[key]
