"""``verify``'s verdict on a signed file: c2pa's validation codes and the certificate chain read from
the file (``provenance.certs``), judged against the root the person trusts. One verdict, one exit
code, the worst first:

===== ==================== ===================================================================
exit  verdict              when
===== ==================== ===================================================================
0     trusted              with ``--trust ROOT``: intact, and the signing chain ends at ROOT
0     valid                without ``--trust``: intact and validly signed; who signed it is
                           printed (subject, fingerprints) but not judged
1     tampered             the file's bytes are not the ones signed: media changed after
                           signing, or a manifest moved here from another file (c2pa cannot tell
                           the two apart: both are ``assertion.bmffHash.mismatch``)
2     (configuration)      ``--trust`` unreadable or not a PEM certificate
3     (bad_input)          no C2PA manifest (stripped, or never signed), or an unreadable file
20    untrusted            with ``--trust ROOT``: intact, but signed by a chain that does not end
                           at ROOT (another signer)
21    expired              a certificate of the signing chain, or ROOT, is outside its validity
                           period now (no timestamp authority vouches for the signing time)
22    revoked              the signing certificate's issuer says it is revoked: an OCSP response
                           stapled in the manifest, or fetched with ``--ocsp``
23    credential refused   the signing certificate is not one C2PA accepts
                           (``signingCredential.invalid``: e.g. without ``emailProtection``)
===== ==================== ===================================================================

Codes 1 and 3 are those ``verify`` always had; 2 and 3 are the error taxonomy's own
(``errors.ConfigurationError``, ``errors.BadInputError``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from cryptography import x509

from dubbing_pipeline.provenance.certs import CertInfo, cert_info, ends_at, fingerprint, valid_at


class Verdict(NamedTuple):
    name: str
    exit_code: int
    meaning: str


TRUSTED = Verdict(
    "trusted", 0, "the manifest matches the file and its signing chain ends at the --trust root"
)
VALID = Verdict(
    "valid",
    0,
    "the manifest matches the file and its signature holds; who signed it is not judged (no --trust)",
)
TAMPERED = Verdict(
    "tampered", 1, "the file's bytes are not the ones signed (media changed, or the manifest comes from "
    "another file)",
)  # fmt: skip
UNTRUSTED = Verdict("untrusted", 20, "signed by a chain that does not end at the --trust root")
EXPIRED = Verdict("expired", 21, "a certificate of the signing chain is outside its validity period")
REVOKED = Verdict("revoked", 22, "the signing certificate is revoked (OCSP)")
REFUSED = Verdict("credential refused", 23, "the signing certificate is not one C2PA accepts")
VERDICTS = (TRUSTED, VALID, TAMPERED, UNTRUSTED, EXPIRED, REVOKED, REFUSED)

REVOKED_CODES = frozenset({"signingCredential.ocsp.revoked", "signingCredential.revoked"})
REFUSED_CODES = frozenset({"signingCredential.invalid"})
EXPIRED_CODES = frozenset({"signingCredential.expired"})
# what says nothing against the file's bytes: trust, revocation and time-stamp codes
CREDENTIAL_PREFIXES = ("signingCredential.", "timeStamp.")


@dataclass(frozen=True)
class Judgement:
    """The verdict, why (one line each), the chain as read from the file (signing certificate
    first), and the root it was judged against (``--trust``'s, or the chain's own self-signed one)."""

    verdict: Verdict
    reasons: list[str]
    chain: list[CertInfo]
    root: CertInfo | None
    root_source: str  # "--trust", "the manifest" or "" (none)


def judge(
    problems: list[str],
    state: str,
    chain: list[x509.Certificate],
    trust: list[x509.Certificate] | None,
    *,
    now: dt.datetime | None = None,
    explanations: Mapping[str, str] | None = None,
) -> Judgement:
    """The verdict on a manifest c2pa validated with ``state`` and failure codes ``problems`` (each
    with c2pa's ``explanations``), signed by ``chain``, for a person who trusts the roots ``trust``
    (``None``: no ``--trust``)."""
    now = now or dt.datetime.now(dt.UTC)
    root, source = _root(chain, trust)
    verdict, reasons = _worst(problems, state, chain, trust, root, now)
    reasons = [_explained(r, explanations or {}) for r in reasons]
    described = cert_info(root) if root is not None else None
    return Judgement(verdict, reasons, [cert_info(c) for c in chain], described, source)


def _explained(reason: str, said: Mapping[str, str]) -> str:
    """A reason naming a c2pa code, with c2pa's own explanation of it when it gave one."""
    code = reason.removeprefix("c2pa: ")
    return f"{reason} ({said[code]})" if code != reason and said.get(code) else reason


def _root(
    chain: list[x509.Certificate], trust: list[x509.Certificate] | None
) -> tuple[x509.Certificate | None, str]:
    """The root the chain ends at: one of ``trust`` when it does, else the chain's last certificate
    when it is self-signed."""
    for candidate in trust or []:
        if ends_at(chain, candidate):
            return candidate, "--trust"
    if chain and chain[-1].subject == chain[-1].issuer:
        return chain[-1], "the manifest"
    return None, ""


def _worst(
    problems: list[str],
    state: str,
    chain: list[x509.Certificate],
    trust: list[x509.Certificate] | None,
    root: x509.Certificate | None,
    now: dt.datetime,
) -> tuple[Verdict, list[str]]:
    """The worst verdict that holds, and its reasons."""
    broken = [p for p in problems if not p.startswith(CREDENTIAL_PREFIXES)]
    if broken or (state == "Invalid" and not problems):
        return TAMPERED, [f"c2pa: {p}" for p in broken] or ["c2pa: the manifest is Invalid"]
    if refused := sorted(REFUSED_CODES & set(problems)):
        return REFUSED, [f"c2pa: {p}" for p in refused]
    if revoked := sorted(REVOKED_CODES & set(problems)):
        return REVOKED, [f"c2pa: {p}" for p in revoked]
    lapsed = [c for c in [*chain, *([root] if root is not None else [])] if not valid_at(c, now)]
    if lapsed or EXPIRED_CODES & set(problems):
        reasons = [f"c2pa: {p}" for p in sorted(EXPIRED_CODES & set(problems))]
        reasons += [
            f"{c.subject.rfc4514_string()} valid {c.not_valid_before_utc:%Y-%m-%d %H:%M:%S} to "
            f"{c.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC, not now"
            for c in dict.fromkeys(lapsed)
        ]
        return EXPIRED, reasons
    if trust is None:
        return VALID, ["no --trust ROOT.pem: compare the signer's SHA-256 with the one you expect"]
    if not chain:
        return UNTRUSTED, ["the signing chain could not be read from the file"]
    if root is None or not _trusted_root(root, trust):
        last = chain[-1]
        return UNTRUSTED, [f"the chain ends at {last.issuer.rfc4514_string()}, not at the --trust root"]
    if state != "Trusted":
        return UNTRUSTED, [f"c2pa does not trust the chain ({', '.join(problems) or state})"]
    return TRUSTED, [f"the chain ends at the --trust root (SHA-256 {fingerprint(root)})"]


def _trusted_root(root: x509.Certificate, trust: list[x509.Certificate]) -> bool:
    return any(fingerprint(root) == fingerprint(t) for t in trust)
