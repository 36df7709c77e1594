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
    code = "not_found"
    http_status = 404


class AlreadyExists(GenregError):
    code = "conflict"
    http_status = 409


class Conflict(GenregError):
    code = "conflict"
    http_status = 409


class InvalidArtifact(GenregError):
    """Content that fails parsing or schema validation."""

    code = "invalid"
    http_status = 422


class InvalidRef(GenregError):
    code = "invalid_ref"
    http_status = 422


class InvalidName(InvalidRef):
    code = "invalid_name"


class AmbiguousRef(GenregError):
    code = "ambiguous_ref"
    http_status = 409


class IntegrityError(GenregError):
    """Stored bytes do not match their digest, or a referenced object is missing."""

    code = "integrity"
    http_status = 500


class ConfigError(GenregError):
    """Bad usage or configuration: exit code 2 on the CLI."""

    code = "config"
    http_status = 422
    exit_code = 2


class RenderError(GenregError):
    code = "render"
    http_status = 422


class GateFailed(GenregError):
    code = "gate_failed"
    http_status = 409


class AuthError(GenregError):
    code = "unauthorized"
    http_status = 401


class Forbidden(GenregError):
    code = "forbidden"
    http_status = 403


class PayloadTooLarge(GenregError):
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
    "Conflict",
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
]
