"""Sign a model directory and verify its signature, in the OpenSSF model-signing format.

A signature is a Sigstore bundle whose DSSE envelope carries an in-toto statement: the digest of
every file of the model directory (`model_signing` builds and checks it). Three ways to sign:
an elliptic-curve key, a key with its certificate chain (private PKI), Sigstore keyless.

Verification is split as in `model_signing`: `verify_signature` checks the bundle against a
`ModelTrust` and returns the signed file digests WITHOUT reading the model (admission);
`verify_directory` does that, then hashes the directory and compares (`model verify`, the
init container). Both share one code path, so CI, admission and pod start agree.

`model_signing`, `sigstore` and pyOpenSSL are imported inside the functions: the admission
path imports this module at start-up and pays for them only at the first verification.
Verification never fetches trust data: keys, certificates and Sigstore trusted roots come from
the `ModelTrust` (or, for keyless without a trusted root, the public-good Sigstore root shipped
inside the pinned `sigstore` package).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, cast

from edgepolicy.errors import ModelSignatureRejected, ModelSigningError
from edgepolicy.models.identities import IdentityPolicy
from edgepolicy.models.trust import ModelTrust

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

FACTS_FILE_NAME = "edgepolicy-facts.json"

MALFORMED = "signature is malformed"
INVALID = "signature is not valid"
UNTRUSTED = "signed by nobody the policy trusts"
CERTIFICATE_NOT_VALID_NOW = "signing certificate is expired or not yet valid"
FILES_DIFFER = "model files do not match the signature"

_SUPPORTED_CURVES = ("secp256r1", "secp384r1", "secp521r1")
_PUBLIC_GOOD_TUF_DIRECTORY = "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev"
_NAMES_SHOWN = 5


# ---------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class SignedFile:
    """One entry of the signed manifest: a file (or shard) name and its digest."""

    name: str
    algorithm: str
    digest: str  # lowercase hex


@dataclass(frozen=True)
class SignedModel:
    """What a verified signature says: who signed, and the digest of every signed file."""

    signer: str
    model_name: str
    files: tuple[SignedFile, ...]
    serialization: Mapping[str, Any] = field(repr=False)

    def file(self, name: str) -> SignedFile | None:
        """The signed entry for `name` (a path relative to the model directory), if any."""
        return next((entry for entry in self.files if entry.name == name), None)


# ---------------------------------------------------------------------------------------------
# Signing


@dataclass(frozen=True)
class KeySigning:
    """Sign with an unencrypted elliptic-curve private key in PEM (P-256, P-384 or P-521)."""

    private_key: Path


@dataclass(frozen=True)
class CertificateSigning:
    """Sign with a private key whose certificate (and chain) is embedded in the signature."""

    private_key: Path
    certificate: Path
    certificate_chain: tuple[Path, ...] = ()


@dataclass(frozen=True)
class KeylessSigning:
    """Sign with Sigstore keyless: Fulcio certifies an OIDC identity, Rekor logs the signature.

    Needs the network (Fulcio, Rekor, the OIDC provider). Token precedence as in model-signing:
    an explicit identity token, then ambient credentials, then an interactive OAuth flow.
    """

    identity_token: str | None = None
    use_ambient_credentials: bool = False
    oauth_force_oob: bool = False
    client_id: str | None = None
    client_secret: str | None = None
    trust_config: Path | None = None  # a Sigstore ClientTrustConfig JSON (private instance)
    use_staging: bool = False


SigningMethod = KeySigning | CertificateSigning | KeylessSigning


def sign_directory(directory: Path, signature: Path, method: SigningMethod) -> SignedModel:
    """Sign every file of `directory` (model files and facts) and write the bundle to `signature`.

    Files model-signing ignores by default (.git, .gitattributes, .github, .gitignore) and the
    signature file itself, when it lies in `directory`, are not signed. Returns what was signed.

    Raises:
        ModelSigningError: the directory, a key, certificate or trust file is missing or
            unusable, a file cannot be hashed (e.g. a symbolic link), the signature cannot be
            written, or keyless signing failed (the message names the file or the service).
    """
    _require_libraries()
    from model_signing import hashing, signing

    if not directory.is_dir():
        raise ModelSigningError(f"{directory}: not a directory")
    config = signing.Config()  # type: ignore[no-untyped-call]
    if isinstance(method, KeylessSigning):
        _configure_keyless(config, method)
    elif isinstance(method, CertificateSigning):
        _check_certificate_files(method, _load_private_key(method.private_key))
        config.use_certificate_signer(
            private_key=method.private_key,
            signing_certificate=method.certificate,
            certificate_chain=list(method.certificate_chain),
        )
    else:
        _load_private_key(method.private_key)
        config.use_elliptic_key_signer(private_key=method.private_key)
    ignored = [relative] if (relative := _relative_inside(signature, directory)) else []
    config.set_hashing_config(
        hashing.Config().set_ignored_paths(  # type: ignore[no-untyped-call]
            paths=ignored, ignore_git_paths=True
        )
    )
    try:
        config.sign(directory, signature)
    except OSError as error:
        where = error.filename or signature
        raise ModelSigningError(f"{where}: {error.strerror or error}") from error
    except ValueError as error:  # model-signing: a symbolic link, an unreadable entry
        raise ModelSigningError(f"{directory}: cannot sign: {_one_line(error)}") from error
    except Exception as error:  # keyless: OIDC, Fulcio and Rekor clients raise many types
        if not isinstance(method, KeylessSigning):
            raise
        raise ModelSigningError(f"keyless signing failed: {_one_line(error)}") from error
    return _read_signed_model(signature.read_text(encoding="utf-8"))


def _configure_keyless(config: Any, method: KeylessSigning) -> None:
    if method.trust_config is not None and not method.trust_config.is_file():
        raise ModelSigningError(f"{method.trust_config}: no such trust configuration file")
    try:
        config.use_sigstore_signer(
            use_ambient_credentials=method.use_ambient_credentials,
            use_staging=method.use_staging,
            force_oob=method.oauth_force_oob,
            identity_token=method.identity_token,
            client_id=method.client_id,
            client_secret=method.client_secret,
            trust_config=method.trust_config,
        )
    except Exception as error:  # TUF refresh, malformed trust config: many third-party types
        raise ModelSigningError(
            f"keyless signing set-up failed (it needs the Sigstore services and the network): "
            f"{_one_line(error)}"
        ) from error


def _load_private_key(path: Path) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        pem = path.read_bytes()
    except OSError as error:
        raise ModelSigningError(f"{path}: cannot read: {error.strerror}") from error
    try:
        key = serialization.load_pem_private_key(pem, None)
    except (ValueError, TypeError) as error:
        raise ModelSigningError(f"{path}: not an unencrypted PEM private key") from error
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name not in _SUPPORTED_CURVES:
        raise ModelSigningError(
            f"{path}: model signatures need an elliptic-curve key (P-256, P-384 or P-521)"
        )
    return key


def _check_certificate_files(method: CertificateSigning, private_key: Any) -> None:
    certificate = _load_certificates(method.certificate)[0]
    if certificate.public_key() != private_key.public_key():
        raise ModelSigningError(
            f"{method.certificate}: the certificate is not for the key {method.private_key}"
        )
    for path in method.certificate_chain:
        _load_certificates(path)


def _load_certificates(path: Path) -> list[x509.Certificate]:
    from cryptography import x509

    try:
        pem = path.read_bytes()
    except OSError as error:
        raise ModelSigningError(f"{path}: cannot read: {error.strerror}") from error
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError as error:
        raise ModelSigningError(f"{path}: not a PEM certificate") from error


# ---------------------------------------------------------------------------------------------
# Verifying a signature without the model files


def verify_signature(signature: str, trust: ModelTrust) -> SignedModel:
    """Check the bundle `signature` (the text `model sign` wrote) against `trust`.

    Verifies the DSSE envelope's signature over the in-toto statement with a trusted key,
    certificate chain (valid now) or keyless identity, and returns the statement's signed file
    digests. Reads no model file and fetches nothing.

    Raises:
        ModelSignatureRejected: the signature is malformed, not valid, or signed by nobody
            `trust` trusts; the message is the reason, in one line.
        ModelSigningError: model-signing, sigstore or pyOpenSSL is not installed.
    """
    _require_libraries()
    bundle = _parse_bundle_json(signature)
    material = bundle.get("verificationMaterial")
    if not isinstance(material, Mapping):
        raise ModelSignatureRejected(f"{MALFORMED}: no verificationMaterial")
    compiled = _compile_trust(trust)
    if "publicKey" in material:
        return _verify_with_key(signature, material, compiled)
    if "x509CertificateChain" in material:
        return _verify_with_certificates(signature, compiled)
    if "certificate" in material:
        return _verify_keyless(signature, trust, compiled)
    raise ModelSignatureRejected(
        f"{MALFORMED}: verificationMaterial has no publicKey, x509CertificateChain or certificate"
    )


def _read_signed_model(signature: str) -> SignedModel:
    """The signed files of a bundle `model sign` just wrote, without checking any signature.

    Only for reporting what was signed; never a trust decision.

    Raises:
        ModelSignatureRejected: the bundle or its statement is malformed.
    """
    bundle = _parse_bundle_json(signature)
    envelope = bundle.get("dsseEnvelope")
    if not isinstance(envelope, Mapping) or not isinstance(envelope.get("payload"), str):
        raise ModelSignatureRejected(f"{MALFORMED}: no DSSE envelope")
    from model_signing._signing import signing

    try:
        statement = json.loads(base64.b64decode(envelope["payload"]))
        manifest = signing.dsse_payload_to_manifest(statement)
    except (ValueError, KeyError, TypeError) as error:
        raise ModelSignatureRejected(f"{MALFORMED}: {_one_line(error)}") from error
    return _signed_model(manifest, signer="")


def _require_libraries() -> None:
    """Fail with a clear message when the `signing` extra is not installed."""
    try:
        import model_signing  # noqa: F401
        import OpenSSL  # noqa: F401
        import sigstore  # noqa: F401
    except ImportError as error:
        raise ModelSigningError(
            "model signatures need the signing extra (pip install 'edgepolicy[signing]', "
            f"part of 'edgepolicy[models]'): {error}"
        ) from error


def _parse_bundle_json(signature: str) -> dict[str, Any]:
    try:
        bundle = json.loads(signature)
    except ValueError as error:
        raise ModelSignatureRejected(f"{MALFORMED}: not JSON ({error})") from error
    if not isinstance(bundle, dict):
        raise ModelSignatureRejected(f"{MALFORMED}: expected a Sigstore bundle (a JSON object)")
    if not isinstance(bundle.get("dsseEnvelope"), Mapping):
        raise ModelSignatureRejected(
            f"{MALFORMED}: no dsseEnvelope (not a model signature: model signatures are "
            "Sigstore bundles over a DSSE envelope)"
        )
    return bundle


@dataclass(frozen=True)
class _CompiledTrust:
    """A `ModelTrust` with its key material parsed (cached per trust)."""

    keys_by_hint: Mapping[str, ec.EllipticCurvePublicKey]
    certificates: tuple[x509.Certificate, ...]
    problems: tuple[str, ...]  # unusable entries, reported when nothing trusted matches


@functools.lru_cache(maxsize=64)
def _compile_trust(trust: ModelTrust) -> _CompiledTrust:

    keys: dict[str, ec.EllipticCurvePublicKey] = {}
    problems: list[str] = []
    for index, pem in enumerate(trust.public_keys):
        key, problem = parse_trusted_key(pem)
        if key is None:
            problems.append(f"publicKeys[{index}] {problem}")
            continue
        keys[_key_hint(key)] = key
    certificates: list[x509.Certificate] = []
    for index, pem in enumerate(trust.certificate_chains):
        chain, problem = parse_trusted_chain(pem)
        if not chain:
            problems.append(f"certificateChains[{index}] {problem}")
        certificates.extend(chain)
    return _CompiledTrust(keys, tuple(certificates), tuple(problems))


def parse_trusted_key(pem: str) -> tuple[ec.EllipticCurvePublicKey | None, str]:
    """Return the EC public key of ``pem``, or None and why it is unusable ("is not ...")."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        key = serialization.load_pem_public_key(pem.encode())
    except ValueError:
        return None, "is not a PEM public key"
    if not (isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _SUPPORTED_CURVES):
        return None, "is not a P-256, P-384 or P-521 key"
    return key, ""


def parse_trusted_chain(pem: str) -> tuple[list[x509.Certificate], str]:
    """Return the certificates of ``pem``, or none and why it is unusable ("is not ...")."""
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificates(pem.encode()), ""
    except ValueError:
        return [], "is not a PEM certificate chain"


def _key_hint(key: ec.EllipticCurvePublicKey) -> str:
    """The key hint model-signing records in a bundle: sha256 (hex) of the PEM public key."""
    from cryptography.hazmat.primitives import serialization

    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(pem).hexdigest()


def key_fingerprint(key: ec.EllipticCurvePublicKey) -> str:
    """``SHA256:`` + unpadded base64 of sha256(DER SubjectPublicKeyInfo), as OpenSSH prints."""
    from cryptography.hazmat.primitives import serialization

    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")


def _with_problems(reason: str, compiled: _CompiledTrust) -> str:
    if compiled.problems:
        reason += f" (unusable in the policy: {'; '.join(compiled.problems)})"
    return reason


def _verify_with_key(
    signature: str, material: Mapping[str, Any], compiled: _CompiledTrust
) -> SignedModel:
    from model_signing._signing import sign_ec_key

    public_key = material.get("publicKey")
    hint = public_key.get("hint") if isinstance(public_key, Mapping) else None
    if not isinstance(hint, str) or not hint:
        raise ModelSignatureRejected(
            f"{MALFORMED}: the signature does not name its public key (no publicKey.hint; "
            "re-sign with model-signing 1.0 or later)"
        )
    key = compiled.keys_by_hint.get(hint)
    if key is None:
        trusted = len(compiled.keys_by_hint)
        raise ModelSignatureRejected(
            _with_problems(
                f"{UNTRUSTED}: signed with a public key (hint {hint[:16]}) that is not among "
                f"the policy's {trusted} trusted publicKeys",
                compiled,
            )
        )

    trusted_key: ec.EllipticCurvePublicKey = key

    class _TrustedKeyVerifier(sign_ec_key.Verifier):
        """model-signing's key verifier, given the key itself instead of a file."""

        def __init__(self) -> None:
            self._public_key = trusted_key

    manifest = _run_verifier(
        _TrustedKeyVerifier(), _protobuf_signature(signature), f"key {key_fingerprint(key)}"
    )
    return _signed_model(manifest, signer=key_fingerprint(key))


def _verify_with_certificates(signature: str, compiled: _CompiledTrust) -> SignedModel:
    from model_signing._signing import sign_certificate
    from OpenSSL import crypto

    if not compiled.certificates:
        raise ModelSignatureRejected(
            _with_problems(
                f"{UNTRUSTED}: signed with a certificate, but the policy trusts no "
                "certificateChains",
                compiled,
            )
        )
    parsed = _protobuf_signature(signature)
    try:
        chain = [
            _der_certificate(entry.raw_bytes)
            for entry in parsed.bundle.verification_material.x509_certificate_chain.certificates
        ]
    except (ValueError, AttributeError) as error:
        raise ModelSignatureRejected(f"{MALFORMED}: bad certificate chain: {error}") from error
    if not chain:
        raise ModelSignatureRejected(f"{MALFORMED}: empty certificate chain")
    leaf = chain[0]
    subject = leaf.subject.rfc4514_string() or f"serial {leaf.serial_number}"
    trusted = compiled.certificates

    class _TrustedChainVerifier(sign_certificate.Verifier):
        """model-signing's certificate verifier, given certificates instead of files.

        It checks the chain at the leaf's notBefore (bundles carry no trusted time); the
        validity now is checked afterwards by `_check_valid_now`.
        """

        def __init__(self) -> None:
            self._log_fingerprints = False
            self._store = crypto.X509Store()
            for certificate in trusted:
                self._store.add_cert(crypto.X509.from_cryptography(certificate))

    try:
        manifest = _run_verifier(_TrustedChainVerifier(), parsed, f"certificate '{subject}'")
    except crypto.X509StoreContextError as error:
        raise ModelSignatureRejected(
            _with_problems(
                f"{UNTRUSTED}: certificate '{subject}' does not chain to a trusted certificate "
                f"({_one_line(error)})",
                compiled,
            )
        ) from error
    _check_valid_now(chain, trusted)
    return _signed_model(manifest, signer=subject)


def _check_valid_now(chain: list[x509.Certificate], trusted: Iterable[x509.Certificate]) -> None:
    """The certificate path must be valid at the time of verification (no signed timestamp)."""
    from OpenSSL import crypto

    store = crypto.X509Store()
    for certificate in trusted:
        store.add_cert(crypto.X509.from_cryptography(certificate))
    context = crypto.X509StoreContext(
        store,
        crypto.X509.from_cryptography(chain[0]),
        [crypto.X509.from_cryptography(certificate) for certificate in chain[1:]],
    )
    try:
        context.verify_certificate()
    except crypto.X509StoreContextError as error:
        failing = error.certificate.to_cryptography()
        name = failing.subject.rfc4514_string()
        window = (
            f"valid {failing.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ} to "
            f"{failing.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}"
        )
        now = datetime.now(UTC)
        if not failing.not_valid_before_utc <= now <= failing.not_valid_after_utc:
            raise ModelSignatureRejected(
                f"{CERTIFICATE_NOT_VALID_NOW}: certificate '{name}' is {window}"
            ) from error
        raise ModelSignatureRejected(
            f"{UNTRUSTED}: certificate '{name}' is not trusted now ({_one_line(error)})"
        ) from error


def _verify_keyless(signature: str, trust: ModelTrust, compiled: _CompiledTrust) -> SignedModel:
    from model_signing._signing import sign_sigstore
    from sigstore import models as sigstore_models
    from sigstore.errors import CertValidationError, Error, VerificationError

    if not trust.identities:
        raise ModelSignatureRejected(
            _with_problems(
                f"{UNTRUSTED}: signed keyless (Sigstore), but the policy trusts no identities",
                compiled,
            )
        )
    try:
        bundle = sigstore_models.Bundle.from_json(signature)
    except Exception as error:  # pydantic, InvalidBundle, DER errors: all mean malformed
        raise ModelSignatureRejected(f"{MALFORMED}: {_summary(error)}") from error
    try:
        sigstore_verifier = _sigstore_verifier(trust.trusted_root)
    except Error as error:
        raise ModelSignatureRejected(
            f"{UNTRUSTED}: the policy's trustedRoot is unusable ({_one_line(error)})"
        ) from error
    policy = IdentityPolicy(trust.identities)

    class _TrustedRootVerifier(sign_sigstore.Verifier):
        """model-signing's Sigstore verifier, given a trusted root and identity policy."""

        def __init__(self) -> None:
            self._verifier = sigstore_verifier
            # any sigstore VerificationPolicy; model-signing annotates its own Identity policy
            self._policy = policy  # type: ignore[assignment]

    try:
        manifest = _run_verifier(
            _TrustedRootVerifier(), sign_sigstore.Signature(bundle), "its Fulcio certificate"
        )
    except CertValidationError as error:
        if "not valid at validation time" in str(error):
            raise ModelSignatureRejected(
                f"{CERTIFICATE_NOT_VALID_NOW}: the signing certificate was not valid when the "
                f"transparency log recorded the signature ({_one_line(error)})"
            ) from error
        raise ModelSignatureRejected(
            f"{UNTRUSTED}: the signing certificate does not chain to the trusted root's "
            f"certificate authorities ({_one_line(error)})"
        ) from error
    except VerificationError as error:
        if policy.mismatch:
            raise ModelSignatureRejected(f"{UNTRUSTED}: {policy.mismatch}") from error
        message = _one_line(error)
        if "expired" in message:
            raise ModelSignatureRejected(f"{CERTIFICATE_NOT_VALID_NOW}: {message}") from error
        raise ModelSignatureRejected(f"{INVALID}: {message}") from error
    except Error as error:  # e.g. InvalidEnvelope: sigstore could not read the bundle's parts
        raise ModelSignatureRejected(f"{MALFORMED}: {_summary(error)}") from error
    return _signed_model(manifest, signer=policy.matched)


@functools.lru_cache(maxsize=16)
def _sigstore_verifier(text: str | None) -> Any:
    """sigstore's verifier for a trusted root: the policy's, else the public-good one shipped in
    the `sigstore` package. Cached per root (it only reads the root when verifying offline)."""
    from importlib import resources

    from sigstore.errors import Error
    from sigstore.models import TrustedRoot
    from sigstore.verify import Verifier
    from sigstore_models.trustroot import v1 as trustroot_v1

    if text is None:
        shipped = resources.files("sigstore._store") / _PUBLIC_GOOD_TUF_DIRECTORY
        text = (shipped / "trusted_root.json").read_text(encoding="utf-8")
    try:
        root = TrustedRoot(trustroot_v1.TrustedRoot.from_json(text))
    except Error:
        raise
    except Exception as error:  # pydantic validation errors: a malformed trusted root
        raise Error(f"malformed trusted_root.json: {_summary(error)}") from error
    return Verifier(trusted_root=root)


class _TextFile:
    """Lets model-signing's ``Signature.read(path)`` parse text already in memory."""

    def __init__(self, text: str) -> None:
        self._text = text

    def read_text(self, encoding: str = "utf-8") -> str:
        return self._text


def _protobuf_signature(signature: str) -> Any:
    from model_signing._signing import sign_sigstore_pb

    try:
        return sign_sigstore_pb.Signature.read(cast(Path, _TextFile(signature)))
    except Exception as error:  # pydantic validation, KeyError, base64: all mean malformed
        raise ModelSignatureRejected(f"{MALFORMED}: {_summary(error)}") from error


def _run_verifier(verifier: Any, parsed: Any, what: str) -> Any:
    """Run a model-signing verifier: signature check, then statement → manifest.

    Lets X509StoreContextError and sigstore errors through for the caller to word.
    """
    from cryptography.exceptions import InvalidSignature

    try:
        return verifier.verify(parsed)
    except InvalidSignature as error:
        raise ModelSignatureRejected(
            f"{INVALID}: the DSSE envelope's signature does not verify with {what}"
        ) from error
    except ValueError as error:
        message = _one_line(error)
        if "cannot be used for signing" in message:
            raise ModelSignatureRejected(
                f"{UNTRUSTED}: {what} is not allowed to sign (needs the digitalSignature key "
                "usage or the codeSigning extended key usage)"
            ) from error
        raise ModelSignatureRejected(f"{MALFORMED}: {message}") from error
    except (KeyError, TypeError, IndexError, AttributeError) as error:
        raise ModelSignatureRejected(
            f"{MALFORMED}: unexpected statement or envelope ({type(error).__name__}: "
            f"{_one_line(error)})"
        ) from error


def _der_certificate(raw: bytes) -> x509.Certificate:
    from cryptography import x509

    return x509.load_der_x509_certificate(raw)


def _signed_model(manifest: Any, *, signer: str) -> SignedModel:
    files = tuple(
        SignedFile(
            name=descriptor.identifier,
            algorithm=descriptor.digest.algorithm,
            digest=descriptor.digest.digest_hex,
        )
        for descriptor in manifest.resource_descriptors()
    )
    return SignedModel(
        signer=signer,
        model_name=manifest.model_name,
        files=files,
        serialization=dict(manifest.serialization_type),
    )


# ---------------------------------------------------------------------------------------------
# Verifying a directory


def verify_directory(directory: Path, signature: Path, trust: ModelTrust) -> SignedModel:
    """Verify `signature` against `trust` (as `verify_signature`), then the files of `directory`.

    The directory must hash exactly to the signed manifest: no changed, extra or missing file.
    Ignored as at signing: the paths the signature records, git files, and the signature file
    itself when it lies in `directory`.

    Raises:
        ModelSigningError: `directory` or `signature` is missing or unreadable, or the models
            extra is not installed.
        ModelSignatureRejected: the signature does not verify, or the files differ (the message
            says which check failed and lists the files).
    """
    try:
        text = signature.read_text(encoding="utf-8")
    except OSError as error:
        raise ModelSigningError(f"{signature}: cannot read: {error.strerror}") from error
    except UnicodeDecodeError as error:
        raise ModelSignatureRejected(f"{MALFORMED}: {signature} is not UTF-8 text") from error
    if not directory.is_dir():
        raise ModelSigningError(f"{directory}: not a directory")
    signed = verify_signature(text, trust)
    actual = _hash_directory(directory, signed.serialization, signature)
    differences = _differences(signed.files, actual)
    if differences:
        raise ModelSignatureRejected(f"{FILES_DIFFER}: {'; '.join(differences)}")
    return signed


def _hash_directory(
    directory: Path, serialization: Mapping[str, Any], signature: Path
) -> dict[str, SignedFile]:
    from model_signing import hashing

    config = hashing.Config()  # type: ignore[no-untyped-call]
    method = serialization.get("method")
    algorithm = serialization.get("hash_type")
    allow_symlinks = serialization.get("allow_symlinks") is True
    try:
        if algorithm not in ("sha256", "blake2", "blake3"):
            raise ValueError(f"unknown hash type {algorithm!r}")
        if method == "files":
            config.use_file_serialization(
                hashing_algorithm=algorithm, allow_symlinks=allow_symlinks
            )
        elif method == "shards":
            config.use_shard_serialization(
                hashing_algorithm=algorithm,
                shard_size=serialization["shard_size"],
                allow_symlinks=allow_symlinks,
            )
        else:
            raise ValueError(f"unknown serialization method {method!r}")
    except (ValueError, KeyError, TypeError) as error:
        raise ModelSignatureRejected(
            f"{MALFORMED}: unsupported serialization ({_one_line(error)})"
        ) from error
    recorded = serialization.get("ignore_paths") or []
    ignored = [str(path) for path in recorded if isinstance(path, str)]
    if relative := _relative_inside(signature, directory):
        ignored.append(relative)
    config.set_ignored_paths(paths=ignored, ignore_git_paths=True)
    try:
        manifest = config.hash(directory)
    except OSError as error:
        raise ModelSigningError(
            f"{error.filename or directory}: cannot read: {error.strerror}"
        ) from error
    except ValueError as error:  # a symbolic link while the signature allows none
        raise ModelSignatureRejected(f"{FILES_DIFFER}: {_one_line(error)}") from error
    return {entry.name: entry for entry in _signed_model(manifest, signer="").files}


def _differences(signed: tuple[SignedFile, ...], actual: Mapping[str, SignedFile]) -> list[str]:
    expected = {entry.name: entry for entry in signed}
    common = expected.keys() & actual.keys()
    changed = sorted(name for name in common if expected[name] != actual[name])
    extra = sorted(actual.keys() - expected.keys())
    missing = sorted(expected.keys() - actual.keys())
    return [
        f"{label}: {_names(names)}"
        for label, names in (
            ("changed since signing", changed),
            ("not signed (extra)", extra),
            ("missing", missing),
        )
        if names
    ]


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:_NAMES_SHOWN])
    more = len(names) - _NAMES_SHOWN
    return f"{shown} and {more} more" if more > 0 else shown


def _relative_inside(path: Path, directory: Path) -> str | None:
    """`path` relative to `directory` (POSIX form) when it lies inside it, else None."""
    try:
        relative = path.resolve().relative_to(directory.resolve())
    except ValueError:
        return None
    return str(PurePosixPath(*relative.parts)) if relative.parts else None


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _summary(error: BaseException) -> str:
    """The first two lines of a long error (pydantic: the count and the first field), on one."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return " ".join(lines[:2]) or type(error).__name__
