"""Keyless (Sigstore) signer identities: who a Fulcio certificate says signed, and whether a
policy trusts them.

The certificate's OIDC issuer must equal an `Identity`'s issuer exactly, and one of its subject
SANs (email, URI, Sigstore's other-name) must match the identity's regular expression in full.
`IdentityPolicy` plugs into sigstore-python's verification as its `VerificationPolicy`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from edgepolicy.models.trust import Identity

if TYPE_CHECKING:
    from cryptography import x509

_OIDC_ISSUER_OID = "1.3.6.1.4.1.57264.1.1"  # raw bytes (Fulcio's first form)
_OIDC_ISSUER_V2_OID = "1.3.6.1.4.1.57264.1.8"  # a DER UTF8String
_SIGSTORE_OTHERNAME_OID = "1.3.6.1.4.1.57264.1.7"


class IdentityPolicy:
    """A sigstore `VerificationPolicy` accepting a certificate of any of `identities`.

    One instance per verification: it records the matched signer, or why none matched.
    """

    def __init__(self, identities: tuple[Identity, ...]) -> None:
        self._identities = identities
        self.matched = ""  # "issuer subject" once verified
        self.mismatch = ""  # why no identity matched, once rejected

    def verify(self, cert: x509.Certificate) -> None:
        """Accept `cert` or raise sigstore's `VerificationError` (after setting `mismatch`)."""
        from sigstore.errors import VerificationError

        issuer = certificate_issuer(cert)
        subjects = certificate_subjects(cert)
        for identity in self._identities:
            if identity.issuer != issuer:
                continue
            for subject in sorted(subjects):
                if _full_match(identity.subject_regexp, subject):
                    self.matched = f"{issuer} {subject}"
                    return
        shown = ", ".join(sorted(subjects)) or "none"
        self.mismatch = (
            f"keyless identity {shown} (issuer {issuer or 'unknown'}) matches none of the "
            f"policy's {len(self._identities)} trusted identities"
        )
        raise VerificationError(self.mismatch)


def certificate_issuer(cert: x509.Certificate) -> str:
    """The OIDC issuer a Fulcio certificate records ("" when it records none)."""
    from cryptography import x509
    from cryptography.hazmat import asn1

    try:
        value = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(_OIDC_ISSUER_V2_OID))
        return str(asn1.decode_der(str, value.value.public_bytes()))
    except (x509.ExtensionNotFound, ValueError):
        pass
    try:
        value = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(_OIDC_ISSUER_OID))
        return value.value.public_bytes().decode("utf-8", errors="replace")
    except x509.ExtensionNotFound:
        return ""


def certificate_subjects(cert: x509.Certificate) -> set[str]:
    """The subject SANs a keyless identity is matched against (as sigstore-python reads them)."""
    from cryptography import x509

    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    subjects = set(names.get_values_for_type(x509.RFC822Name))
    subjects.update(names.get_values_for_type(x509.UniformResourceIdentifier))
    subjects.update(
        other.value.decode("utf-8", errors="replace")
        for other in names.get_values_for_type(x509.OtherName)
        if other.type_id.dotted_string == _SIGSTORE_OTHERNAME_OID
    )
    return subjects


def _full_match(pattern: str, subject: str) -> bool:
    try:
        return re.fullmatch(pattern, subject) is not None
    except re.error:
        return False  # an invalid pattern trusts nobody
