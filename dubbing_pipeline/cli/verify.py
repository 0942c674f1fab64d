"""``verify``: a dubbed file's C2PA manifest, who signed it, whether to trust it, and its audio watermark."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from dubbing_pipeline.errors import BadInputError, ConfigurationError
from dubbing_pipeline.provenance.c2pa import Verified, read_manifest, summary
from dubbing_pipeline.provenance.certs import CertInfo, signing_chain
from dubbing_pipeline.provenance.verdict import Judgement, judge
from dubbing_pipeline.provenance.watermark import get_watermarker, read_file
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.settings import Settings

EXIT_CODES = """exit codes (the worst that holds):
  0   trusted: with --trust ROOT, intact and the signing chain ends at ROOT;
      valid: without --trust, intact and validly signed (the signer is printed, not judged)
  1   tampered: the bytes are not the ones signed (media changed, or a manifest moved from another file)
  2   --trust is unreadable or not a PEM certificate
  3   no C2PA manifest (stripped or never signed), or an unreadable file
  20  untrusted: signed by a chain that does not end at the --trust root
  21  expired: a certificate of the chain (or ROOT) is outside its validity period now
  22  revoked: the issuer says the signing certificate is revoked (OCSP: stapled, or with --ocsp)
  23  credential refused: a signing certificate C2PA does not accept (signingCredential.invalid)"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "verify",
        help="print a file's C2PA manifest, its signer and whether to trust it (exit 0 only then)",
        description="Read the C2PA manifest of FILE (a dubbed MP4): who signed it (subject, issuer, validity "
        "and SHA-256 fingerprints of the signing certificate and its root), its actions (AI-generated speech "
        "and translation), the source video it was made from, and the verdict.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", metavar="FILE", help="the MP4 to verify")
    p.add_argument(
        "--trust", metavar="ROOT", help="the root certificate(s) to trust, PEM (e.g. the local signer's "
        "root.pem); exit 0 only when the signing chain ends at one of them",
    )  # fmt: skip
    p.add_argument(
        "--ocsp", action="store_true", help="ask the signing certificate's OCSP responder whether it was "
        "revoked (network); without it only a response stapled in the manifest counts",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument(
        "--no-watermark", action="store_true", help="do not read the audio watermark (it is read where the "
        "file's first subtitle track says the dub speaks; it does not change the exit code)",
    )  # fmt: skip
    p.set_defaults(func=cmd_verify)


def cmd_verify(args: argparse.Namespace) -> int:
    """Print a file's C2PA manifest, its signer and the verdict; the verdict's exit code."""
    path = Path(args.file)
    trust_pem, trust = trust_roots(args.trust)
    mark = None if args.no_watermark else file_watermark(path)
    if not (args.no_watermark or args.json):
        print(watermark_line(mark))
    verified = read_manifest(path, trust_pem, ocsp=args.ocsp)
    chain = signing_chain(path, verified.label, verified.serial) if verified.label else []
    judged = judge(verified.problems, verified.state, chain, trust, explanations=verified.explanations)
    if args.json:
        found = {**summary(verified), "validation_notes": verified.informational, **judgement_json(judged)}
        print(json.dumps({**found, "watermark": mark}, indent=1, ensure_ascii=False))
    else:
        print_manifest(path, verified, judged)
    return judged.verdict.exit_code


def trust_roots(option: str | None) -> tuple[bytes | None, list[x509.Certificate] | None]:
    """``--trust``: its PEM and its certificates (``None, None`` without it)."""
    if not option:
        return None, None
    try:
        roots = x509.load_pem_x509_certificates(Path(option).read_bytes())
        return b"".join(r.public_bytes(serialization.Encoding.PEM) for r in roots), roots
    except OSError as exc:
        raise ConfigurationError(f"--trust: cannot read {Path(option).name}") from exc
    except ValueError as exc:
        raise ConfigurationError(f"--trust: {Path(option).name} is not a PEM certificate") from exc


def judgement_json(judged: Judgement) -> JsonObject:
    return {
        "signer": judged.chain[0].to_json() if judged.chain else None,
        "chain": [c.to_json() for c in judged.chain],
        "root": judged.root.to_json() if judged.root else None,
        "root_from": judged.root_source or None,
        "verdict": judged.verdict.name,
        "exit_code": judged.verdict.exit_code,
        "reasons": judged.reasons,
    }


def print_manifest(path: Path, verified: Verified, judged: Judgement) -> None:
    found = summary(verified)
    print(f"{path.name}: C2PA manifest {verified.state}")
    issuer = found["issuer"]
    print(f"  signed by {found['signed_by']}" + (f" ({issuer})" if issuer else ""))
    if judged.chain:
        print_cert("signing certificate", judged.chain[0])
    else:
        print("  signing certificate: not found in the file")
    if judged.root is not None:
        print_cert(f"root ({judged.root_source})", judged.root)
    elif judged.chain:
        print(f"  root: not in the manifest (the chain ends at {judged.chain[-1].issuer})")
    for action in found["actions"]:
        source_type = str(action.get("digitalSourceType", "")).rsplit("/", 1)[-1]
        print(f"  action {action['action']}" + (f" [{source_type}]" if source_type else ""))
    for ingredient in found["ingredients"]:
        made_from = f"{ingredient['relationship']}, {ingredient['instance_id']}"
        print(f"  ingredient {ingredient['title']} ({made_from})")
    for problem in verified.problems:
        print(f"  problem: {problem}")
    for note in verified.informational:
        if note.startswith("signingCredential.ocsp."):  # whether revocation was asked, and answered
            print(f"  note: {note}")
    verdict = judged.verdict
    print(f"verdict: {verdict.name} (exit {verdict.exit_code}): {verdict.meaning}")
    for reason in judged.reasons:
        print(f"  {reason}")


def print_cert(role: str, cert: CertInfo) -> None:
    print(f"  {role}: {cert.subject}")
    print(f"    issuer {cert.issuer}" if not cert.self_signed else "    self-signed")
    print(f"    valid {cert.not_before} to {cert.not_after}")
    print(f"    SHA-256 {cert.fingerprint}")


def file_watermark(path: Path) -> JsonObject | None:
    """The audio watermark read from a dubbed file (see ``watermark.read_file``), or ``None``."""
    if not path.is_file():
        raise BadInputError(f"no such file: {path.name}")
    settings = Settings.from_env()
    return read_file(get_watermarker(settings.device, settings.cpu_threads), path)


def watermark_line(mark: JsonObject | None) -> str:
    if mark is None:
        return "audio watermark: not read (the file has no subtitle track to say where the dub speaks)"
    verdict = "found" if mark["detected"] else "NOT found"
    return (
        f"audio watermark: {verdict} ({mark['watermarker']} score {mark['confidence']:.2f} over "
        f"{mark['seconds']:.1f} s of dubbed speech; {mark['cues_detected']}/{mark['cues']} cues alone)"
    )
