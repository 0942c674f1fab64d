"""The certificates of a signed MP4's C2PA manifest, read from the file with ``cryptography`` alone.

c2pa-python validates a manifest but does not hand out the certificate chain it validated (only the
signer's common name, organisation and serial number), so ``verify`` reads the chain itself from the
same bytes: the MP4's C2PA ``uuid`` box → its JUMBF manifest store → the manifest c2pa names active
→ its ``c2pa.signature`` box → the COSE_Sign1 structure (CBOR) → the ``x5chain`` header (label 33),
the DER certificates, signing certificate first. The signing certificate found here must carry the
serial number c2pa reports for the signature it checked, or the chain is not named at all.

Nothing here judges trust: :mod:`provenance.verdict` does, from c2pa's validation codes and these
certificates.
"""

from __future__ import annotations

import datetime as dt
import itertools
import struct
from collections.abc import Iterator
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes

from dubbing_pipeline.records import Record

C2PA_UUID = bytes.fromhex("d8fec3d61b0e483c92975828877ec481")  # the uuid box type C2PA uses in BMFF
X5CHAIN = 33  # COSE header label of the certificate chain (RFC 9360)
COSE_SIGN1_TAG = 18


class CertInfo(Record):
    """One certificate as a person checks it: names, validity and SHA-256 fingerprint (of its DER)."""

    subject: str
    issuer: str
    not_before: str  # ISO 8601, UTC
    not_after: str
    fingerprint: str
    self_signed: bool


def cert_info(cert: x509.Certificate) -> CertInfo:
    return CertInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_before=cert.not_valid_before_utc.isoformat(),
        not_after=cert.not_valid_after_utc.isoformat(),
        fingerprint=fingerprint(cert),
        self_signed=cert.subject == cert.issuer,
    )


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER, hex."""
    return cert.fingerprint(hashes.SHA256()).hex()


def valid_at(cert: x509.Certificate, when: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= when <= cert.not_valid_after_utc


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer``'s key signed ``cert`` (names and signature; dates are judged apart)."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def ends_at(chain: list[x509.Certificate], root: x509.Certificate) -> bool:
    """Whether ``chain`` (signing certificate first, each issued by the next) ends at ``root``: its
    last certificate is ``root`` itself, or one ``root`` issued (a chain may leave its root out)."""
    if not chain or not all(issued_by(a, b) for a, b in itertools.pairwise(chain)):
        return False
    last = chain[-1]
    return fingerprint(last) == fingerprint(root) or issued_by(last, root)


# --- the chain in the file --------------------------------------------------------------------------


def signing_chain(path: Path, manifest_label: str, serial: str | None) -> list[x509.Certificate]:
    """The certificate chain that signed the manifest ``manifest_label`` of the MP4 at ``path``
    (signing certificate first); empty when it cannot be found, or when its signing certificate is
    not the one c2pa checked (``serial``: the serial number c2pa reports, decimal)."""
    try:
        store = _manifest_store(path.read_bytes())
        ders = _x5chain(_signature_cbor(store, manifest_label)) if store else []
        chain = [x509.load_der_x509_certificate(der) for der in ders]
    except (OSError, ValueError, IndexError, struct.error):
        return []
    if not chain or (serial is not None and str(chain[0].serial_number) != serial):
        return []
    return chain


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """``(type, payload start, box end)`` of each ISO BMFF / JUMBF box in ``data[start:end]``."""
    pos, stop = start, len(data) if end is None else end
    while pos + 8 <= stop:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[pos + 8 : pos + 16])[0], 16
        elif size == 0:
            size = stop - pos
        if size < header or pos + size > stop:
            raise ValueError(f"malformed box at byte {pos}")
        yield kind, pos + header, pos + size
        pos += size


def _manifest_store(data: bytes) -> tuple[bytes, int, int] | None:
    """The JUMBF manifest store in the MP4's C2PA ``uuid`` box: ``(data, start, end)``."""
    for kind, start, end in _boxes(data):
        if kind == b"uuid" and data[start : start + 16] == C2PA_UUID:
            pos = start + 16 + 4  # the extended type, then version and flags
            purpose_end = data.index(b"\0", pos, end)
            if data[pos:purpose_end] != b"manifest":
                continue
            return data, purpose_end + 1 + 8, end  # after the purpose, the 8-byte Merkle offset
    return None


def _superboxes(data: bytes, start: int, end: int) -> Iterator[tuple[str, int, int]]:
    """``(label, content start, end)`` of each JUMBF superbox (``jumb``) in ``data[start:end]``."""
    for kind, begin, stop in _boxes(data, start, end):
        if kind != b"jumb":
            continue
        boxes = _boxes(data, begin, stop)
        dkind, dstart, dend = next(boxes)
        if dkind != b"jumd":
            raise ValueError("a JUMBF superbox without its description box")
        toggles = data[dstart + 16]
        label = ""
        if toggles & 0x02:
            label = data[dstart + 17 : data.index(b"\0", dstart + 17, dend)].decode("utf-8")
        yield label, dend, stop


def _signature_cbor(store: tuple[bytes, int, int], manifest_label: str) -> bytes:
    """The CBOR content of the ``c2pa.signature`` box of the manifest ``manifest_label``."""
    data, start, end = store
    (_, store_start, store_end) = next(_superboxes(data, start, end))  # the store: label "c2pa"
    for label, begin, stop in _superboxes(data, store_start, store_end):
        if label != manifest_label:
            continue
        for inner, sig_start, sig_end in _superboxes(data, begin, stop):
            if inner == "c2pa.signature":
                for kind, cbor_start, cbor_end in _boxes(data, sig_start, sig_end):
                    if kind == b"cbor":
                        return data[cbor_start:cbor_end]
    raise ValueError(f"no signature for manifest {manifest_label!r}")


def _x5chain(cose: bytes) -> list[bytes]:
    """The DER certificates of a COSE_Sign1's ``x5chain`` header (protected first, then unprotected)."""
    sign1, _ = _cbor(cose, 0)
    if isinstance(sign1, _Tagged) and sign1.tag == COSE_SIGN1_TAG:
        sign1 = sign1.value
    if not isinstance(sign1, list) or len(sign1) != 4 or not isinstance(sign1[0], bytes):
        raise ValueError("not a COSE_Sign1 structure")
    protected = _cbor(sign1[0], 0)[0] if sign1[0] else {}
    for header in (protected, sign1[1]):
        found = header.get(X5CHAIN) if isinstance(header, dict) else None
        if isinstance(found, bytes):
            return [found]
        if isinstance(found, list) and all(isinstance(c, bytes) for c in found):
            return list(found)
    raise ValueError("no x5chain in the signature")


class _Tagged:
    def __init__(self, tag: int, value: object) -> None:
        self.tag, self.value = tag, value


def _cbor(data: bytes, pos: int) -> tuple[object, int]:
    """One CBOR item (RFC 8949, definite lengths: what c2pa writes) at ``pos``; ``(value, next pos)``."""
    head = data[pos]
    major, info = head >> 5, head & 0x1F
    pos += 1
    if major == 7:
        simple = {20: False, 21: True, 22: None, 23: None}
        if info in simple:
            return simple[info], pos
        width = {25: 2, 26: 4, 27: 8}.get(info)
        if width is None:
            raise ValueError(f"unsupported CBOR simple value {info}")
        fmt = {2: ">e", 4: ">f", 8: ">d"}[width]
        return struct.unpack(fmt, data[pos : pos + width])[0], pos + width
    if info < 24:
        arg = info
    elif info <= 27:
        width = 1 << (info - 24)
        arg, pos = int.from_bytes(data[pos : pos + width], "big"), pos + width
    else:
        raise ValueError("indefinite-length CBOR is not expected here")
    return _cbor_value(data, pos, major, arg)


def _cbor_value(data: bytes, pos: int, major: int, arg: int) -> tuple[object, int]:
    if major == 0:
        return arg, pos
    if major == 1:
        return -1 - arg, pos
    if major in (2, 3):
        raw = data[pos : pos + arg]
        if len(raw) != arg:
            raise ValueError("truncated CBOR string")
        return (raw if major == 2 else raw.decode("utf-8")), pos + arg
    if major == 4:
        items = []
        for _ in range(arg):
            item, pos = _cbor(data, pos)
            items.append(item)
        return items, pos
    if major == 5:
        mapping: dict[object, object] = {}
        for _ in range(arg):
            key, pos = _cbor(data, pos)
            value, pos = _cbor(data, pos)
            mapping[tuple(key) if isinstance(key, list) else key] = value
        return mapping, pos
    value, pos = _cbor(data, pos)  # major 6: a tag
    return _Tagged(arg, value), pos
