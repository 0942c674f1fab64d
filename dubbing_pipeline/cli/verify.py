"""``verify``: a dubbed file's C2PA manifest, whether it is valid, and its audio watermark."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dubbing_pipeline.errors import BadInputError
from dubbing_pipeline.provenance.c2pa import read_manifest, summary
from dubbing_pipeline.provenance.watermark import get_watermarker, read_file
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "verify",
        help="print a file's C2PA manifest and whether it is valid (exit 0 only then)",
        description="Read the C2PA manifest of FILE (a dubbed MP4): who signed it, its actions (AI-generated "
        "speech and translation), the source video it was made from, and its validation state. Exits 0 "
        "when the manifest is Valid or Trusted, 1 when it no longer matches the file's bytes, 3 for a "
        "file without one.",
    )
    p.add_argument("file", metavar="FILE", help="the MP4 to verify")
    p.add_argument(
        "--trust", metavar="PEM", help="a root certificate to trust (e.g. the local signer's root.pem)"
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument(
        "--no-watermark", action="store_true", help="do not read the audio watermark (it is read where the "
        "file's first subtitle track says the dub speaks; it does not change the exit code)",
    )  # fmt: skip
    p.set_defaults(func=cmd_verify)


def cmd_verify(args: argparse.Namespace) -> int:
    """Print a file's C2PA manifest and its validation state; non-zero unless it is valid."""
    try:
        trust = Path(args.trust).read_bytes() if args.trust else None
    except OSError as exc:
        raise BadInputError(f"--trust: cannot read {Path(args.trust).name}") from exc
    mark = None if args.no_watermark else file_watermark(Path(args.file))
    if not (args.no_watermark or args.json):
        print(watermark_line(mark))
    verified = read_manifest(Path(args.file), trust)
    found = summary(verified)
    if args.json:
        print(json.dumps({**found, "watermark": mark}, indent=1, ensure_ascii=False))
    else:
        print(f"{Path(args.file).name}: C2PA manifest {verified.state}")
        print(f"  signed by {found['signed_by']} ({found['issuer']})")
        for action in found["actions"]:
            source_type = str(action.get("digitalSourceType", "")).rsplit("/", 1)[-1]
            print(f"  action {action['action']}" + (f" [{source_type}]" if source_type else ""))
        for ingredient in found["ingredients"]:
            made_from = f"{ingredient['relationship']}, {ingredient['instance_id']}"
            print(f"  ingredient {ingredient['title']} ({made_from})")
        for problem in verified.problems:
            print(f"  problem: {problem}")
    if "signingCredential.untrusted" in verified.problems and verified.ok and not args.json:
        print("the signer is not trusted here (a local signer?): --trust ROOT.pem names a root to trust")
    return 0 if verified.ok else 1


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
