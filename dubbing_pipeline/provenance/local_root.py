"""The local C2PA signer's files: a P-256 root and the signing certificate it issues, made once in a
folder (``root.pem``, ``chain.pem``: signing certificate then root, ``key.pem``: the signing key,
mode 0600), with ``cryptography`` only: ``freshness`` makes it when it first reads the signer's
identity, on runs that load no c2pa.

Every local root is told apart by name too: its common names end with an id drawn from the root's
own public key (``dubbing_pipeline local signer 3f2a9c01b7de5a61``), so two machines' local signers
never look alike, and ``verify`` prints the fingerprints besides.

Where it lives (``provenance.c2pa.make_signer``): the embedded default makes one on first use in
``DUBBING_MODEL_CACHE/c2pa/local``; a production deployment that signs locally names one explicitly,
``DUBBING_C2PA_LOCAL_DIR``: one root for the whole cluster, made once by the operator and mounted
from a Secret into every pod, so every pod signs as the same signer and the ``mux`` step's cache key
(which names the signer's fingerprint) is the same everywhere::

    python -m dubbing_pipeline.provenance.local_root DIR
    kubectl -n dubbing create secret generic dubbing-c2pa --from-file=DIR
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import sys
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from dubbing_pipeline.errors import ConfigurationError

CLAIM_SIGNING_OID = "1.3.6.1.4.1.62558.2.1"  # c2pa-kp-claimSigning
LOCAL_FILES = ("root.pem", "chain.pem", "key.pem")
ORGANIZATION = "dubbing_pipeline (local, untrusted)"
_LOCK = threading.Lock()


@dataclass(frozen=True)
class LocalRoot:
    """The three files of a local signer, read."""

    root_pem: bytes = field(repr=False)
    chain_pem: bytes = field(repr=False)
    key_pem: bytes = field(repr=False)


def is_local_root(folder: Path) -> bool:
    return all((folder / name).is_file() for name in LOCAL_FILES)


def make_local_root(folder: Path) -> Path:
    """``folder``, with a new local signer in it unless one is there. The three files are written
    into a fresh folder that is then renamed into place, so concurrent first uses (threads or
    processes) all end up with one signer; the key is readable by its owner only."""
    with _LOCK:
        if is_local_root(folder):
            return folder
        folder.parent.mkdir(parents=True, exist_ok=True)
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()  # an empty folder made for it (e.g. by the operator): fill it
        fresh = folder.parent / f".{folder.name}.{uuid.uuid4().hex[:8]}"
        fresh.mkdir(mode=0o700)
        for name, data in zip(LOCAL_FILES, new_local_chain(), strict=True):
            (fresh / name).write_bytes(data)
            os.chmod(fresh / name, 0o600 if name == "key.pem" else 0o644)
        try:
            os.rename(fresh, folder)
        except OSError:  # another process made it first (or a non-empty folder is there): theirs
            for name in LOCAL_FILES:
                (fresh / name).unlink(missing_ok=True)
            fresh.rmdir()
        if not is_local_root(folder):
            raise ConfigurationError(f"{folder.name}: a folder that is not a local signer is in the way")
        return folder


def read_local_root(folder: Path, setting: str) -> LocalRoot:
    """The local signer in ``folder``; a ``ConfigurationError`` naming ``setting`` when it is not
    there (an explicitly configured one is never made here: the operator makes it once)."""
    try:
        root, chain, key = ((folder / name).read_bytes() for name in LOCAL_FILES)
    except OSError as exc:
        raise ConfigurationError(
            f"{setting}: no local C2PA signer in {folder.name} (root.pem, chain.pem, key.pem; make one "
            f"with: python -m dubbing_pipeline.provenance.local_root DIR)"
        ) from exc
    return LocalRoot(root, chain, key)


def key_id(key: ec.EllipticCurvePublicKey) -> str:
    """16 hex digits of the SHA-256 of the public key's SubjectPublicKeyInfo: the local root's name."""
    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()[:16]


def _name(cn: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
    ])  # fmt: skip


def new_local_chain() -> tuple[bytes, bytes, bytes]:
    """A P-256 root CA (10 years) and a signing certificate it issues, with the key usages C2PA's
    certificate profile asks for: ``(root PEM, chain PEM, key PEM)``."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    root_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ident = key_id(root_key.public_key())
    root_name = _name(f"dubbing_pipeline local root {ident}")
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3660))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    usages = [ExtendedKeyUsageOID.EMAIL_PROTECTION, ObjectIdentifier(CLAIM_SIGNING_OID)]
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(f"dubbing_pipeline local signer {ident}"))
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False
        )
        .sign(root_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return root.public_bytes(pem), leaf.public_bytes(pem) + root.public_bytes(pem), key_pem


def main(argv: list[str] | None = None) -> int:
    """``python -m dubbing_pipeline.provenance.local_root DIR``: a cluster-wide local signer, made once."""
    parser = argparse.ArgumentParser(
        prog="python -m dubbing_pipeline.provenance.local_root",
        description="Make a local C2PA signer (root.pem, chain.pem, key.pem) in DIR, to be mounted into "
        "every pod from one Secret (DUBBING_C2PA_LOCAL_DIR). An existing signer in DIR is kept.",
    )
    parser.add_argument("dir", metavar="DIR", help="the folder to make it in (new or empty)")
    folder = Path(parser.parse_args(argv).dir)
    existed = is_local_root(folder)
    try:
        make_local_root(folder)
    except (ConfigurationError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    leaf, root = x509.load_pem_x509_certificates((folder / "chain.pem").read_bytes())[:2]
    print(f"{'kept the' if existed else 'made a'} local C2PA signer in {folder}")
    print(f"  signer {leaf.subject.rfc4514_string()}")
    print(f"  signer SHA-256 {leaf.fingerprint(hashes.SHA256()).hex()}")
    print(f"  root SHA-256   {root.fingerprint(hashes.SHA256()).hex()}  (verify --trust {folder}/root.pem)")
    print(f"kubectl -n dubbing create secret generic dubbing-c2pa --from-file={folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
