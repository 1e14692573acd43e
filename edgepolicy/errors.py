"""The one error hierarchy of edgepolicy.

Library code raises these; only the CLI turns them into a message and an exit code.
Every message names the problem and the place (file, object, field) where there is one.
"""

from __future__ import annotations


class EdgepolicyError(Exception):
    """Base class of every error edgepolicy raises on purpose."""


class UsageError(EdgepolicyError):
    """The command line or configuration is wrong (bad flag values, missing files)."""


class InputError(EdgepolicyError):
    """A manifest or policy file could not be read or parsed.

    The message names the file and, for YAML, the line.
    """

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        self.path = path
        self.line = line
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")


class OpaNotFoundError(EdgepolicyError):
    """No OPA binary could be located."""


class OpaError(EdgepolicyError):
    """OPA could not be started, reached, or returned an unusable answer."""


class OpaUnavailableError(OpaError):
    """OPA did not answer in time, refused the connection or failed TLS."""


class BundleError(EdgepolicyError):
    """A policy bundle could not be built, signed, published or served."""


class UntrustedCommitError(BundleError):
    """A commit a bundle would be built from lacks a valid signature by an allowed signer."""


class RollbackError(BundleError):
    """Publishing would replace a bundle with an older revision of the policy."""


class RegistryError(BundleError):
    """An OCI registry refused or failed a bundle push or pull (names the reference and status)."""


class ModelTrustError(EdgepolicyError):
    """A ModelPolicy's spec.signature cannot be turned into trust (the message names the field)."""


class ModelSigningError(EdgepolicyError):
    """A model directory could not be signed, or read to be verified (names the file)."""


class ModelSignatureRejected(EdgepolicyError):
    """A model signature did not verify; the message is the reason, in one line."""


class ModelInputError(InputError):
    """An ONNX model, its evaluation data or its model card cannot be read or used.

    The message names the file and, for CSV and YAML, the line.
    """


class PrometheusError(EdgepolicyError):
    """A Prometheus-compatible query API was unreachable or refused a query (names the URL and
    the query)."""
