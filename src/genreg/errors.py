"""The one error hierarchy. The core raises these; the CLI and the API translate them once.

Every message is a single line saying *what* went wrong and *where* (file and line, field).
"""

from __future__ import annotations

from typing import Any


class GenregError(Exception):
    """Base class for every error genreg reports to a user."""

    code = "error"
    http_status = 400
    exit_code = 1

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def __str__(self) -> str:
        return self.message


class NotFound(GenregError):
    """A reference, artifact, version, alias, run, token or object that does not exist."""

    code = "not_found"
    http_status = 404


class AlreadyExists(GenregError):
    """Creating something whose name is taken (e.g. an active API token name)."""

    code = "conflict"
    http_status = 409


class InvalidArtifact(GenregError):
    """Content that fails parsing or schema validation."""

    code = "invalid"
    http_status = 422


class InvalidRef(GenregError):
    """A reference that does not parse (``KIND:NAME[@ALIAS|@vN|@sha256:HEX]``), an unknown
    kind, or a selector that does not apply."""

    code = "invalid_ref"
    http_status = 422


class InvalidName(InvalidRef):
    """An artifact, alias, split or token name outside ``[a-z0-9][a-z0-9._-]{0,99}``."""

    code = "invalid_name"


class AmbiguousRef(GenregError):
    """A digest prefix that matches more than one version (never a guess)."""

    code = "ambiguous_ref"
    http_status = 409


class IntegrityError(GenregError):
    """Stored bytes do not match their digest, or a referenced object is missing."""

    code = "integrity"
    http_status = 500


class StorageError(GenregError):
    """The object store (an S3-compatible server, GCS, ...) could not be reached or dropped
    the connection mid-operation. The message names the store and its endpoint, never
    credentials. A write cut this way commits no version (nothing is half-visible): re-run it
    once the store is reachable. HTTP 503."""

    code = "storage"
    http_status = 503


class ConfigError(GenregError):
    """Bad usage or configuration: exit code 2 on the CLI."""

    code = "config"
    http_status = 422
    exit_code = 2


class RenderError(GenregError):
    """Prompt variables that are missing or fail the prompt's variable schema."""

    code = "render"
    http_status = 422


class GateFailed(GenregError):
    """A promotion refused because its run failed (or ran no) gates, or used another version."""

    code = "gate_failed"
    http_status = 409


class AuthError(GenregError):
    """A missing, malformed, unknown or revoked API token (HTTP 401)."""

    code = "unauthorized"
    http_status = 401


class Forbidden(GenregError):
    """A valid token without the scope the route needs (HTTP 403)."""

    code = "forbidden"
    http_status = 403


class PayloadTooLarge(GenregError):
    """A request body over the API's size limit (HTTP 413)."""

    code = "payload_too_large"
    http_status = 413


class EndpointError(GenregError):
    """An LLM endpoint cannot be reached or rejects the API key (401/403): the eval run stops
    before spending further. Exit code 2, like a config error (fix the route, then re-run)."""

    code = "endpoint"
    http_status = 502
    exit_code = 2


class ReplayMiss(GenregError):
    """``cache: replay`` found no recorded response for a query (names the query id)."""

    code = "replay_miss"
    http_status = 409
    exit_code = 2


__all__ = [
    "AlreadyExists",
    "AmbiguousRef",
    "AuthError",
    "ConfigError",
    "EndpointError",
    "Forbidden",
    "GateFailed",
    "GenregError",
    "IntegrityError",
    "InvalidArtifact",
    "InvalidName",
    "InvalidRef",
    "NotFound",
    "PayloadTooLarge",
    "RenderError",
    "ReplayMiss",
    "StorageError",
    "error_classes",
]


def error_classes() -> dict[str, type[GenregError]]:
    """Every error class of this module by its ``code`` (the ``code`` of the API's error
    envelope). Each class has its own code (``tests/test_api_errors.py`` pins it), so a client
    turns an envelope back into the class the server raised."""
    classes = [v for v in globals().values() if isinstance(v, type) and issubclass(v, GenregError)]
    return {cls.code: cls for cls in classes}
