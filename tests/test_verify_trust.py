"""``verify``'s verdicts on real signed MP4s (issue 28, item 2): one exit code per verdict, each tested.

Small MP4s made with ffmpeg are signed through the project's own signer (``Signer.sign_mp4``) with
certificate chains made here with ``cryptography``, then ``dubbing-pipeline verify`` runs on them as a
person would:

=========================== ==== ===========================================================
case                        exit how it is made, what c2pa says
=========================== ==== ===========================================================
trusted                     0    ``--trust`` the signing root: c2pa ``Trusted``
valid, not judged           0    no ``--trust``: c2pa ``Valid`` (``signingCredential.untrusted``)
another root                20   ``--trust`` another root: c2pa ``signingCredential.untrusted``
expired signing certificate 21   c2pa refuses to sign with an expired certificate, so it is
                                 signed with one valid for a few seconds, and verified once they
                                 have passed: c2pa ``signingCredential.expired`` (no timestamp
                                 authority vouches for the signing time)
expired intermediate CA     21   c2pa signs (it checks the signing certificate alone) and then
                                 says only ``signingCredential.untrusted``; verify finds the CA
                                 outside its dates in the chain it reads from the file
revoked                     22   the certificate names an OCSP responder (a local HTTP server
                                 here) that answers *revoked*; ``verify --ocsp`` asks it: c2pa
                                 ``signingCredential.ocsp.revoked``. Without ``--ocsp`` (offline)
                                 the same file is trusted: nothing in it says revoked
credential refused          23   a signing certificate with only the documentSigning usage:
                                 c2pa signs it only with its after-signing check off, then reads
                                 ``signingCredential.invalid`` (missing required EKU)
stripped                    3    the C2PA ``uuid`` box cut out: no manifest
moved from another file     1    the manifest box of one signed file put into another (same size,
                                 or inserted into an unsigned MP4): ``assertion.bmffHash.mismatch``
flipped media byte          1    one byte of ``mdat``: ``assertion.bmffHash.mismatch`` (c2pa
                                 cannot tell a moved manifest from changed media)
bad --trust                 2    not a PEM certificate
=========================== ==== ===========================================================
"""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import json
import os
import re
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import c2pa
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
    ExtendedKeyUsageOID,
    NameOID,
    ObjectIdentifier,
)

from dubbing_pipeline.provenance.c2pa import Signer, add_source, load_signer, sign_mp4
from dubbing_pipeline.provenance.manifest import ManifestFacts, dub_manifest

ROOT = Path(__file__).resolve().parent.parent
C2PA_UUID = bytes.fromhex("d8fec3d61b0e483c92975828877ec481")
EMAIL = [ExtendedKeyUsageOID.EMAIL_PROTECTION]
DOCUMENT_SIGNING = [ObjectIdentifier("1.3.6.1.5.5.7.3.36")]
PEM = serialization.Encoding.PEM


# --- certificates ------------------------------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclass
class Issuer:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(PEM)


def ca(cn: str, *, parent: Issuer | None = None, days: tuple[float, float] = (-30, 300)) -> Issuer:
    """A P-256 CA: a root, or one ``parent`` issues, valid from ``days[0]`` to ``days[1]`` from now."""
    key = ec.generate_private_key(ec.SECP256R1())
    signing_key = parent.key if parent else key
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(parent.cert.subject if parent else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=days[0]))
        .not_valid_after(now + dt.timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()), critical=False
        )
        .sign(signing_key, hashes.SHA256())
    )
    return Issuer(cert, key)


def leaf(
    issuer: Issuer,
    *,
    usages: list[ObjectIdentifier] = EMAIL,
    seconds: float = 5 * 86400,
    ocsp_url: str | None = None,
    cn: str = "test signer",
    key_usage: tuple[bool, ...] = (True, False, False, False, False, False, False, False, False),
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A signing certificate ``issuer`` issues, valid from a day ago for ``seconds`` from now."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(seconds=seconds))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(*key_usage), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
        )
    )
    if ocsp_url:
        where = x509.UniformResourceIdentifier(ocsp_url)
        access = x509.AccessDescription(AuthorityInformationAccessOID.OCSP, where)
        builder = builder.add_extension(x509.AuthorityInformationAccess([access]), critical=False)
    return builder.sign(issuer.key, hashes.SHA256()), key


def signer_of(
    cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, *cas: Issuer, checked: bool = True
) -> Signer:
    """The project's signer for a chain: checked by ``load_signer`` (as ``DUBBING_C2PA_CERT`` is),
    or as it is (a chain ``load_signer`` refuses, e.g. with an expired CA)."""
    chain = cert.public_bytes(PEM) + b"".join(c.pem for c in cas)
    pkcs8 = key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    if checked:
        return load_signer(chain, pkcs8, local=False)
    return Signer(chain_pem=chain, key_pem=pkcs8, local=False, name="", subject="", issuer="", not_after="",
                  fingerprint="")  # fmt: skip


def sha256(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


# --- media -------------------------------------------------------------------------------------------

FACTS = ManifestFacts(
    title="clip (es, AI dub)", source_name="clip.mp4", source_sha256="0" * 64, source_language="en",
    target_language="es", models={"speech": "test"}, providers=["test"], watermark=None, label=None,
    version="test",
)  # fmt: skip


def mp4(path: Path, tone: int) -> Path:
    picture = ["-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:duration=1"]
    sound = ["-f", "lavfi", "-i", f"sine=frequency={tone}:duration=1"]
    codecs = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"]
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", *picture, *sound, *codecs, str(path)], check=True
    )
    return path


def sign(signer: Signer, video: Path, out: Path) -> Path:
    sign_mp4(signer, dub_manifest(FACTS), video, video, out, title="clip.mp4", source_sha256="0" * 64)
    return out


def boxes(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """``(type, start, size)`` of the MP4's top-level boxes."""
    pos = 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        yield kind, pos, size
        pos += size


def manifest_box(data: bytes) -> tuple[int, int]:
    (found,) = [(p, s) for k, p, s in boxes(data) if k == b"uuid" and data[p + 8 : p + 24] == C2PA_UUID]
    return found


def verify(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    cmd = [sys.executable, "-m", "dubbing_pipeline.cli", "verify", "--no-watermark", *map(str, args)]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("verify")
    root, other = ca("test root A"), ca("test root B")
    (base / "root.pem").write_bytes(root.pem)
    (base / "other.pem").write_bytes(other.pem)
    cert, key = leaf(root)
    signer = signer_of(cert, key, root)
    one, two = mp4(base / "one.mp4", 440), mp4(base / "two.mp4", 660)
    signed = sign(signer, one, base / "signed.mp4")
    return {"base": base, "root": root, "leaf": cert, "signer": signer, "signed": signed, "two": two,
            "signed_two": sign(signer, two, base / "signed_two.mp4")}  # fmt: skip


# --- the verdicts ------------------------------------------------------------------------------------


def test_trusted_when_the_chain_ends_at_the_trust_root(world: dict[str, Any]) -> None:
    done = verify("--trust", world["base"] / "root.pem", world["signed"])
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "C2PA manifest Trusted" in out and "verdict: trusted (exit 0)" in out
    # the signer: subject, issuer, validity, fingerprint; the root's fingerprint
    cert = world["leaf"]
    assert "signing certificate: CN=test signer" in out and "issuer CN=test root A" in out
    assert f"valid {cert.not_valid_before_utc.isoformat()} to {cert.not_valid_after_utc.isoformat()}" in out
    assert f"SHA-256 {sha256(cert)}" in out
    assert "root (--trust): CN=test root A" in out and f"SHA-256 {sha256(world['root'].cert)}" in out
    as_json = json.loads(verify("--json", "--trust", world["base"] / "root.pem", world["signed"]).stdout)
    assert as_json["verdict"] == "trusted" and as_json["exit_code"] == 0
    assert as_json["signer"]["fingerprint"] == sha256(cert) and as_json["root"]["fingerprint"] == sha256(
        world["root"].cert
    )


def test_valid_but_not_judged_without_trust(world: dict[str, Any]) -> None:
    done = verify(world["signed"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "C2PA manifest Valid" in done.stdout and "verdict: valid (exit 0)" in done.stdout
    assert f"SHA-256 {sha256(world['leaf'])}" in done.stdout and "no --trust" in done.stdout


def test_signed_by_another_root(world: dict[str, Any]) -> None:
    done = verify("--trust", world["base"] / "other.pem", world["signed"])
    assert done.returncode == 20, done.stdout + done.stderr
    assert "verdict: untrusted (exit 20)" in done.stdout and "signingCredential.untrusted" in done.stdout
    assert f"SHA-256 {sha256(world['leaf'])}" in done.stdout  # whose signature it is, all the same


def test_an_expired_signing_certificate(world: dict[str, Any]) -> None:
    """c2pa refuses to sign with a certificate outside its dates (and verifies with the clock: no
    timestamp authority), so the certificate is valid for a few seconds, and verified once they passed."""
    root, base = world["root"], world["base"]
    for seconds in (3, 10, 30):  # a slow signing (a busy machine) outlives a short certificate: longer
        cert, key = leaf(root, seconds=seconds, cn="short-lived signer")
        try:
            signed = sign(signer_of(cert, key, root), world["two"], base / "expired.mp4")
            break
        except c2pa.C2paError as err:
            assert "not valid at time of signing" in str(err)
    while dt.datetime.now(dt.UTC) <= cert.not_valid_after_utc + dt.timedelta(seconds=1):
        time.sleep(0.2)
    done = verify("--trust", base / "root.pem", signed)
    assert done.returncode == 21, done.stdout + done.stderr
    assert "verdict: expired (exit 21)" in done.stdout and "c2pa: signingCredential.expired" in done.stdout


def test_an_expired_intermediate_ca(world: dict[str, Any]) -> None:
    root, base = world["root"], world["base"]
    lapsed = ca("lapsed CA", parent=root, days=(-30, -1))
    cert, key = leaf(lapsed, cn="signer under a lapsed CA")
    signed = sign(signer_of(cert, key, lapsed, root, checked=False), world["two"], base / "lapsed.mp4")
    done = verify("--trust", base / "root.pem", signed)
    assert done.returncode == 21, done.stdout + done.stderr
    assert "verdict: expired (exit 21)" in done.stdout and "CN=lapsed CA valid" in done.stdout


class _Revoking(http.server.BaseHTTPRequestHandler):
    """An OCSP responder (RFC 6960, GET) that answers *revoked* for every certificate it is asked about,
    signed by a delegated responder certificate the CA issued."""

    answer: bytes = b""

    def do_GET(self) -> None:
        request = ocsp.load_der_ocsp_request(base64.b64decode(urllib.parse.unquote(self.path.lstrip("/"))))
        assert request.serial_number is not None
        self.send_response(200)
        self.send_header("Content-Type", "application/ocsp-response")
        self.send_header("Content-Length", str(len(self.answer)))
        self.end_headers()
        self.wfile.write(self.answer)

    def log_message(self, *args: object) -> None:
        pass


def revoked_answer(cert: x509.Certificate, issuer: Issuer) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    responder = (
        x509.CertificateBuilder()
        .subject_name(_name("test OCSP responder"))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=5))
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
        )
        .sign(issuer.key, hashes.SHA256())
    )
    response = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=cert,
            issuer=issuer.cert,
            algorithm=hashes.SHA1(),
            cert_status=ocsp.OCSPCertStatus.REVOKED,
            this_update=now - dt.timedelta(minutes=1),
            next_update=now + dt.timedelta(days=1),
            revocation_time=now - dt.timedelta(hours=1),
            revocation_reason=x509.ReasonFlags.key_compromise,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, responder)
        .certificates([responder])
        .sign(key, hashes.SHA256())
    )
    return response.public_bytes(serialization.Encoding.DER)


def test_a_revoked_signing_certificate(world: dict[str, Any]) -> None:
    root, base = world["root"], world["base"]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Revoking)
    cert, key = leaf(root, ocsp_url=f"http://127.0.0.1:{server.server_address[1]}/", cn="revoked signer")
    _Revoking.answer = revoked_answer(cert, root)
    signed = sign(signer_of(cert, key, root), world["two"], base / "revoked.mp4")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        offline = verify("--trust", base / "root.pem", signed)
        done = verify("--ocsp", "--trust", base / "root.pem", signed)
    finally:
        server.shutdown()
        server.server_close()
    assert offline.returncode == 0, offline.stdout  # nothing in the file says revoked: offline, trusted
    assert done.returncode == 22, done.stdout + done.stderr
    assert "verdict: revoked (exit 22)" in done.stdout and "signingCredential.ocsp.revoked" in done.stdout


def test_a_credential_c2pa_does_not_accept(world: dict[str, Any]) -> None:
    """documentSigning alone: c2pa-python 0.38.1 signs it only with its own after-signing check off."""
    root, base = world["root"], world["base"]
    cert, key = leaf(root, usages=DOCUMENT_SIGNING, cn="document signer")
    chain = cert.public_bytes(PEM) + root.pem
    pkcs8 = key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    context = c2pa.Context(c2pa.Settings.from_dict({"verify": {"verify_after_sign": False}}))
    out = base / "refused.mp4"
    ingredient = {"title": "clip.mp4", "relationship": "parentOf", "label": "source_video"}
    with c2pa.Builder(dub_manifest(FACTS), context=context) as builder:
        add_source(builder, ingredient, world["two"])
        info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, pkcs8, None)
        with open(world["two"], "rb") as src, open(out, "w+b") as dst:
            builder.sign(c2pa.Signer.from_info(info), "video/mp4", src, dst)
    done = verify("--trust", base / "root.pem", out)
    assert done.returncode == 23, done.stdout + done.stderr
    assert (
        "verdict: credential refused (exit 23)" in done.stdout and "signingCredential.invalid" in done.stdout
    )


def test_a_stripped_manifest(world: dict[str, Any]) -> None:
    data = world["signed"].read_bytes()
    start, size = manifest_box(data)
    stripped = world["base"] / "stripped.mp4"
    stripped.write_bytes(data[:start] + data[start + size :])
    done = verify("--trust", world["base"] / "root.pem", stripped)
    assert done.returncode == 3 and "carries no C2PA manifest" in done.stderr


def test_a_manifest_moved_from_another_file(world: dict[str, Any]) -> None:
    base = world["base"]
    donor = world["signed"].read_bytes()
    start, size = manifest_box(donor)
    box = donor[start : start + size]
    target = world["signed_two"].read_bytes()  # another signed file: its manifest box swapped for ours
    t_start, t_size = manifest_box(target)
    assert t_size == size  # same signer, same manifest: same size, so every offset stays right
    swapped = base / "swapped.mp4"
    swapped.write_bytes(target[:t_start] + box + target[t_start + t_size :])
    plain = world["two"].read_bytes()  # an unsigned file: ours inserted after its ftyp
    f_start, f_size = next((p, s) for k, p, s in boxes(plain) if k == b"ftyp")
    inserted = base / "inserted.mp4"
    inserted.write_bytes(plain[: f_start + f_size] + box + plain[f_start + f_size :])
    for moved in (swapped, inserted):
        done = verify("--trust", base / "root.pem", moved)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "verdict: tampered (exit 1)" in done.stdout and "assertion.bmffHash.mismatch" in done.stdout


def test_one_flipped_media_byte(world: dict[str, Any]) -> None:
    data = bytearray(world["signed"].read_bytes())
    start, size = next((p, s) for k, p, s in boxes(bytes(data)) if k == b"mdat")
    data[start + size // 2] ^= 0x01
    flipped = world["base"] / "flipped.mp4"
    flipped.write_bytes(bytes(data))
    done = verify("--trust", world["base"] / "root.pem", flipped)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "C2PA manifest Invalid" in done.stdout and "verdict: tampered (exit 1)" in done.stdout


def test_a_bad_trust_file(world: dict[str, Any]) -> None:
    garbage = world["base"] / "garbage.pem"
    garbage.write_text("not a certificate\n")
    done = verify("--trust", garbage, world["signed"])
    assert (
        done.returncode == 2 and "configuration: --trust: garbage.pem is not a PEM certificate" in done.stderr
    )


def test_the_exit_codes_are_in_the_help_and_the_docs() -> None:
    done = subprocess.run([sys.executable, "-m", "dubbing_pipeline.cli", "verify", "--help"], cwd=ROOT,
                          capture_output=True, text=True, check=True)  # fmt: skip
    docs = (ROOT / "docs" / "provenance.md").read_text(encoding="utf-8")
    codes = ((0, "trusted"), (0, "valid"), (1, "tampered"), (2, "--trust"), (3, "no C2PA manifest"),
             (20, "untrusted"), (21, "expired"), (22, "revoked"), (23, "credential refused"))  # fmt: skip
    for code, name in codes:
        assert re.search(rf"^\s+({code}\s+)?{re.escape(name)}", done.stdout, re.MULTILINE), (code, name)
        assert f"| {code} | {name}" in docs, (code, name)
