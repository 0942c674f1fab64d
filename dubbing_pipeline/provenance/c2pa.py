"""C2PA provenance of the dubbed MP4: a signed manifest saying the speech is AI-generated.

The manifest (``c2pa-python``, the Content Authenticity Initiative's library) holds:

* ``c2pa.actions.v2``: ``c2pa.opened`` (the source video, as the *parentOf* ingredient),
  ``c2pa.dubbed`` and ``c2pa.translated``, both with the IPTC digital source type
  ``trainedAlgorithmicMedia``, with the languages, models and providers as parameters;
* the source video as ingredient: its title, format and SHA-256 (``instance_id``
  ``sha256:<hex>``; c2pa does not hash an unsigned ingredient itself). A source that carries its
  own manifest brings it along, so the chain of provenance continues;
* ``org.dubbing_pipeline.dub``: the same facts in this project's words, plus the audio watermark
  and the visible label;
* c2pa's own ``c2pa.hash.bmff.v3`` over the file's boxes: any change to the media after signing
  makes the manifest *Invalid*.

**Who signs** (:func:`make_signer`), one of:

* ``DUBBING_C2PA_CERT`` (a PEM chain, signing certificate first) and ``DUBBING_C2PA_KEY`` (its
  private key, PEM): a certificate from a CA, in production mounted from a Secret. They are checked
  before any work, with ``cryptography``: readable, the key matches the certificate, every
  certificate in its validity period, the certificate not self-signed, with the ``emailProtection``
  extended key usage c2pa's validator asks for. A failure is a ``configuration`` error naming the
  setting; the key's content never appears in a message or a log.
* ``DUBBING_C2PA_LOCAL_DIR``: a local signer chosen explicitly (``provenance.local_root``), one for
  the whole cluster, made once by the operator and mounted into every pod.
* neither, in the embedded default: a local signer made once in ``DUBBING_MODEL_CACHE/c2pa/local``.
  A production deployment (``DUBBING_DEPLOYMENT=production``) refuses to dub instead: each pod would
  make a root of its own, sign as someone else, and miss every other pod's ``mux`` cache.

A local signer's manifests read back *Valid* but *untrusted* (``signingCredential.untrusted``), and
the report says so; ``verify --trust ROOT.pem`` checks them against its root. No timestamp authority is
asked (the pipeline runs offline), so a manifest stays valid only while its certificate is.

What the manifest says is drawn up in ``provenance.manifest`` (no c2pa there: the mux holds it
and the signer this module makes, and imports nothing of c2pa itself); this module signs and reads;
``provenance.verdict`` judges what was read (``verify``).

**Determinism.** c2pa signs with deterministic ECDSA (RFC 6979), and the manifest's label and
instance ids are derived from the content here, but c2pa-rs salts every assertion hash with 16
random bytes it draws itself (no setting turns that off): two signings of the same dub differ in
about 290 bytes, all inside the manifest box, whose size and place stay the same. The cached
``mux`` step stores the signed file once; a re-run or a resumed run reuses it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dubbing_pipeline.errors import BadInputError, ConfigurationError
from dubbing_pipeline.provenance.local_root import LocalRoot, make_local_root, read_local_root
from dubbing_pipeline.provenance.manifest import ASSERTION, SignerInfo
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.settings import Settings, model_cache_dir

LOCAL_DIR = "c2pa/local"
MIME = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".m4a": "audio/mp4"}
NO_IDENTITY = (
    "DUBBING_C2PA_CERT and DUBBING_C2PA_KEY are not set: a production deployment signs with a mounted "
    "certificate (k8s/README.md, 'Signing identity'), or with a cluster-wide local signer chosen "
    "explicitly with DUBBING_C2PA_LOCAL_DIR; it never makes a signer of its own in each pod"
)


@dataclass(frozen=True)
class Signer:
    """Checked signing credentials: the PEM chain (signing certificate first) and the PKCS#8 key."""

    chain_pem: bytes = field(repr=False)
    key_pem: bytes = field(repr=False)
    local: bool
    name: str  # the signing certificate's common name
    subject: str
    issuer: str
    not_after: str
    fingerprint: str  # SHA-256 of the signing certificate (DER)
    root_pem: bytes | None = field(default=None, repr=False)  # the local root (trust anchor for verify)

    def describe(self) -> SignerInfo:
        return SignerInfo(
            name=self.name, subject=self.subject, issuer=self.issuer, not_after=self.not_after,
            fingerprint=self.fingerprint, local=self.local,
            trust="untrusted (local signer made by dubbing_pipeline)" if self.local else "as configured",
        )  # fmt: skip

    def sign_mp4(
        self, manifest: JsonObject, video: Path, source: Path, out: Path, *, title: str, source_sha256: str
    ) -> None:
        """``out``: ``video`` with ``manifest`` embedded and signed by this signer (:func:`sign_mp4`)."""
        sign_mp4(self, manifest, video, source, out, title=title, source_sha256=source_sha256)


def make_signer(settings: Settings) -> Signer | None:
    """The signer the settings ask for (``None`` with ``DUBBING_C2PA=off``), checked (see the module
    docstring: configured credentials, an explicit local signer, or the embedded default's own)."""
    mode = str(settings.c2pa)
    if mode not in ("on", "off"):
        raise ConfigurationError(f"DUBBING_C2PA must be on or off, got {mode!r}")
    if mode == "off":
        return None
    cert, key, local_dir = str(settings.c2pa_cert), str(settings.c2pa_key), str(settings.c2pa_local_dir)
    if (cert or key) and local_dir:
        raise ConfigurationError(
            "DUBBING_C2PA_LOCAL_DIR and DUBBING_C2PA_CERT/DUBBING_C2PA_KEY are both set: choose one signer"
        )
    if cert or key:
        if not (cert and key):
            missing = "DUBBING_C2PA_KEY" if cert else "DUBBING_C2PA_CERT"
            raise ConfigurationError(
                f"{missing} is not set (DUBBING_C2PA_CERT and DUBBING_C2PA_KEY go together)"
            )
        return load_signer(_read(cert, "DUBBING_C2PA_CERT"), _read(key, "DUBBING_C2PA_KEY"), local=False)
    if local_dir:
        return _local(read_local_root(Path(local_dir), "DUBBING_C2PA_LOCAL_DIR"), "DUBBING_C2PA_LOCAL_DIR")
    if settings.deployment == "production":
        raise ConfigurationError(NO_IDENTITY)
    return local_signer(model_cache_dir(str(settings.model_cache)) / LOCAL_DIR)


def _read(path: str, setting: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise ConfigurationError(f"{setting}: cannot read the file ({reason})") from exc


def load_signer(chain_pem: bytes, key_pem: bytes, *, local: bool, root_pem: bytes | None = None) -> Signer:
    """Checked credentials (see the module docstring); a ``ConfigurationError`` names what is wrong."""
    certs, key = _credentials(chain_pem, key_pem)
    leaf = certs[0]
    _check_chain(certs, key)
    text = serialization.Encoding.PEM
    pkcs8 = key.private_bytes(text, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    pem = b"".join(c.public_bytes(text) for c in certs)
    return Signer(
        chain_pem=pem,
        key_pem=pkcs8,
        local=local,
        name=_common_name(leaf),
        subject=leaf.subject.rfc4514_string(),
        issuer=leaf.issuer.rfc4514_string(),
        not_after=leaf.not_valid_after_utc.strftime("%Y-%m-%d"),
        fingerprint=leaf.fingerprint(hashes.SHA256()).hex(),
        root_pem=root_pem,
    )


def _credentials(
    chain_pem: bytes, key_pem: bytes
) -> tuple[list[x509.Certificate], ec.EllipticCurvePrivateKey]:
    """The certificate chain and the P-256 key, parsed (never the key's content in a message)."""
    try:
        certs = x509.load_pem_x509_certificates(chain_pem)
    except ValueError as exc:
        raise ConfigurationError("DUBBING_C2PA_CERT is not a PEM certificate chain") from exc
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:  # never the key's content in the message
        raise ConfigurationError("DUBBING_C2PA_KEY is not an unencrypted PEM private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ConfigurationError("DUBBING_C2PA_KEY must be an ECDSA P-256 key (C2PA ES256)")
    return certs, key


def _check_chain(certs: list[x509.Certificate], key: ec.EllipticCurvePrivateKey) -> None:
    """The key matches the signing certificate, every certificate is valid now, and the signing one
    is issued by a CA for email protection (what c2pa's verifier asks for)."""
    leaf = certs[0]
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if leaf.public_key().public_bytes(der, spki) != key.public_key().public_bytes(der, spki):
        raise ConfigurationError("DUBBING_C2PA_KEY does not match the certificate in DUBBING_C2PA_CERT")
    now = dt.datetime.now(dt.UTC)
    for cert in certs:
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise ConfigurationError(
                f"DUBBING_C2PA_CERT: certificate {cert.subject.rfc4514_string()!r} is not valid now "
                f"({cert.not_valid_before_utc:%Y-%m-%d} to {cert.not_valid_after_utc:%Y-%m-%d})"
            )
    if leaf.issuer == leaf.subject:
        raise ConfigurationError(
            "DUBBING_C2PA_CERT: the signing certificate is self-signed; C2PA needs one issued by a CA"
        )
    try:
        usages: x509.ExtendedKeyUsage | None = leaf.extensions.get_extension_for_class(
            x509.ExtendedKeyUsage
        ).value
    except x509.ExtensionNotFound:
        usages = None
    if usages is None or ExtendedKeyUsageOID.EMAIL_PROTECTION not in usages:
        raise ConfigurationError(
            "DUBBING_C2PA_CERT: the signing certificate lacks the emailProtection extended key usage "
            "(c2pa's validator refuses a signing certificate without it)"
        )


def _common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else cert.subject.rfc4514_string()


def local_signer(folder: Path) -> Signer:
    """The local signer in ``folder``, made on first use (``local_root.make_local_root``)."""
    return _local(read_local_root(make_local_root(folder), "DUBBING_MODEL_CACHE"), "DUBBING_MODEL_CACHE")


def _local(found: LocalRoot, setting: str) -> Signer:
    """A local signer's files, checked like configured credentials; a failure names ``setting``."""
    try:
        return load_signer(found.chain_pem, found.key_pem, local=True, root_pem=found.root_pem)
    except ConfigurationError as err:
        raise ConfigurationError(f"{setting}: the local signer there is not usable ({err.message})") from err


def sign_mp4(
    signer: Signer,
    manifest: JsonObject,
    video: Path,
    source: Path,
    out: Path,
    *,
    title: str,
    source_sha256: str,
) -> None:
    """``out``: ``video`` with ``manifest`` embedded and signed, ``source`` as its ingredient
    (``title``: its name as the user gave it, ``source_sha256``: its content hash, as the
    ``source_video`` record holds it; written under a temporary name and renamed: a failed signing
    leaves nothing)."""
    source_hash = source_sha256
    ingredient = {
        "title": title, "relationship": "parentOf", "label": "source_video",
        "instance_id": f"sha256:{source_hash}", "metadata": {"dubbing_pipeline:sha256": source_hash},
    }  # fmt: skip
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        with c2pa.Builder(manifest) as builder:
            add_source(builder, ingredient, source)
            with open(video, "rb") as src, open(tmp, "w+b") as dst:
                builder.sign(_c2pa_signer(signer), "video/mp4", src, dst)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def add_source(builder: c2pa.Builder, ingredient: JsonObject, source: Path) -> None:
    """The source video as ingredient. An MP4 or QuickTime file (by its bytes, not its name) is
    read by c2pa, so a manifest it carries comes along; any other container (WebM, Matroska…),
    or an MP4 whose own manifest c2pa cannot read, is recorded by its title and hash alone."""
    with open(source, "rb") as fh:
        head = fh.read(12)
    bmff = head[4:8] == b"ftyp"
    kind = (
        ("video/quicktime" if head[8:12] == b"qt  " else "video/mp4") if bmff else "application/octet-stream"
    )
    try:
        with open(source, "rb") as fh:
            builder.add_ingredient(ingredient, kind, fh)
            return
    except c2pa.C2paError:
        if not bmff:
            raise
    with open(source, "rb") as fh:
        builder.add_ingredient(ingredient, "application/octet-stream", fh)


def _c2pa_signer(signer: Signer) -> c2pa.Signer:
    info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, signer.chain_pem, signer.key_pem, None)
    return c2pa.Signer.from_info(info)


@dataclass(frozen=True)
class Verified:
    """What ``verify`` read: c2pa's validation state (``Trusted``, ``Valid`` or ``Invalid``), the
    status codes that are not successes (with c2pa's explanation of each), the informational ones,
    the active manifest (``None`` without one), its label and the serial number of the certificate
    c2pa checked its signature with (``certs.signing_chain`` finds that certificate in the file)."""

    state: str
    problems: list[str]
    manifest: JsonObject | None
    label: str | None = None
    serial: str | None = None
    informational: list[str] = field(default_factory=list)
    explanations: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.state in ("Valid", "Trusted")


def read_manifest(path: Path, trust_pem: bytes | None = None, *, ocsp: bool = False) -> Verified:
    """The C2PA manifest of ``path`` and its validation; ``BadInputError`` when the file has none
    or it cannot be parsed. ``trust_pem``: the roots to trust (PEM; c2pa trusts nothing else);
    ``ocsp``: ask the signing certificate's OCSP responder whether it was revoked (network)."""
    config: JsonObject = {"verify": {"ocsp_fetch": ocsp}}
    if trust_pem is not None:
        config["trust"] = {"trust_anchors": trust_pem.decode("ascii")}
    context = c2pa.Context(c2pa.Settings.from_dict(config))
    mime = MIME.get(path.suffix.lower(), "video/mp4")
    try:
        with open(path, "rb") as fh, c2pa.Reader(mime, fh, context=context) as reader:
            store = json.loads(reader.json())
            state = str(reader.get_validation_state())
            active = reader.get_active_manifest()
            results = reader.get_validation_results() or {}
    except c2pa.C2paError.ManifestNotFound as exc:
        raise BadInputError(f"{path.name} carries no C2PA manifest") from exc
    except c2pa.C2paError as exc:
        raise BadInputError(f"{path.name}: its C2PA manifest cannot be read ({exc})") from exc
    except OSError as exc:
        raise BadInputError(f"{path.name}: cannot read the file ({exc.strerror})") from exc
    statuses = store.get("validation_status") or []
    label = store.get("active_manifest")
    serial = ((active or {}).get("signature_info") or {}).get("cert_serial_number")
    informational = (results.get("activeManifest") or {}).get("informational") or []
    return Verified(
        state, [str(s.get("code")) for s in statuses], active,
        label=str(label) if label else None, serial=str(serial) if serial is not None else None,
        informational=[str(s.get("code")) for s in informational],
        explanations={str(s.get("code")): str(s.get("explanation", "")) for s in reversed(statuses)},
    )  # fmt: skip


def summary(verified: Verified) -> JsonObject:
    """The parts of a manifest a person checks: who signed, the actions, the ingredient, our assertion."""
    m: JsonObject = verified.manifest or {}
    assertions = {a["label"]: a.get("data") for a in m.get("assertions", [])}
    actions = (assertions.get("c2pa.actions.v2") or assertions.get("c2pa.actions") or {}).get("actions", [])
    return {
        "validation_state": verified.state,
        "validation_problems": verified.problems,
        "title": m.get("title"),
        "signed_by": (m.get("signature_info") or {}).get("common_name"),
        "issuer": (m.get("signature_info") or {}).get("issuer"),
        "actions": [
            {k: a[k] for k in ("action", "digitalSourceType", "description") if k in a} for a in actions
        ],
        "ingredients": [
            {k: i.get(k) for k in ("title", "relationship", "instance_id")} for i in m.get("ingredients", [])
        ],
        "dub": assertions.get(ASSERTION),
    }
