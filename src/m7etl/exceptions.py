"""The project's error types.

Every user-facing failure is one of these: it names the thing, the cause and the next
step, so the CLI can print it as one line and exit non-zero. ``retryable`` tells Lambda
and Airflow whether running the same work again can succeed.
"""

from __future__ import annotations


class M7Error(Exception):
    """Base class of every error m7etl raises on purpose."""

    retryable = False

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message


class ContractError(M7Error):
    """A data contract file is invalid (names the file and the key at fault)."""


class UsageError(M7Error):
    """The user asked for something that cannot be done (bad date, missing folder...)."""


class UnreadableFileError(M7Error):
    """An input file cannot be read at all; it goes to quarantine with this reason."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class ConservationError(M7Error):
    """The rows written are not the rows counted (a fault in m7etl, never in the file):
    nothing is published and the raw file stays where it is."""


class StorageError(M7Error):
    """A storage operation failed (missing object, permissions...).

    ``key`` names the object when one is at fault; the cause is the message (and
    ``__cause__``)."""

    def __init__(self, message: str, *, hint: str | None = None, key: str | None = None):
        super().__init__(message, hint=hint)
        self.key = key


class ObjectNotFoundError(StorageError):
    """The object does not exist (a retry cannot make it appear)."""


class TransientStorageError(StorageError):
    """A storage operation failed in a way a retry may fix: throttling, a timeout, a reset
    connection, a full or failing disk. Never a reason to take a file for a bad one."""

    retryable = True


class ConfigurationError(M7Error):
    """A setting needed to run is missing or malformed."""


class PackageError(M7Error):
    """An artefact cannot be built (names the artefact, the cause and the fix)."""


class DeployError(M7Error):
    """A control-plane operation failed (upload, stack, variables, notifications...).

    ``retryable`` is set when running the same command again can succeed (throttling,
    a timeout, a stack busy with another update)."""

    def __init__(self, message: str, *, hint: str | None = None, retryable: bool = False):
        super().__init__(message, hint=hint)
        self.retryable = retryable
