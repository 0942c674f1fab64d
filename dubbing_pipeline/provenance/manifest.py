"""What a dub's C2PA manifest says, drawn up without c2pa: the facts of the dub, the manifest
definition made from them, and the description of the signer that signs it (``provenance.c2pa``
signs and reads)."""

from __future__ import annotations

import hashlib
import json
import uuid

from dubbing_pipeline.records import JsonObject, Record

AI_SOURCE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
ASSERTION = "org.dubbing_pipeline.dub"


class SignerInfo(Record):
    """Who signs a dub's manifest: the signing certificate's names, expiry and fingerprint."""

    name: str  # the signing certificate's common name
    subject: str
    issuer: str
    not_after: str  # YYYY-MM-DD
    fingerprint: str  # SHA-256 of the signing certificate (DER)
    local: bool  # the local signer made by dubbing_pipeline (untrusted elsewhere)
    trust: str


class ManifestFacts(Record):
    """The facts a dub's manifest states."""

    title: str
    source_name: str  # the source video's file name as the user gave it
    source_sha256: str
    source_language: str
    target_language: str
    models: dict[str, str]  # stage → model
    providers: list[str]  # the models' names, sorted
    watermark: str | None  # the audio watermark's name
    label: str | None  # the visible label's text
    version: str  # dubbing_pipeline's


def dub_manifest(dub: ManifestFacts) -> JsonObject:
    """The manifest definition of a dub.

    Its label and instance id are drawn from its content, and the actions' own parameters sit in
    one nested object (c2pa-rs writes several unknown keys of one object in a random order): the
    same dub gives the same manifest, up to the random salts c2pa-rs adds to every assertion hash.
    """
    agent = {"name": "dubbing_pipeline", "version": dub.version}
    languages = {"sourceLanguage": dub.source_language, "targetLanguage": dub.target_language}
    ours = {"org.dubbing_pipeline": {"models": dub.models, "providers": dub.providers}}
    actions = [
        {"action": "c2pa.opened", "parameters": {"ingredientIds": ["source_video"]}},
        {
            "action": "c2pa.dubbed", "digitalSourceType": AI_SOURCE, "softwareAgent": agent,
            "description": f"the speech was replaced by AI-generated {dub.target_language} speech "
            f"translated from {dub.source_language}; the background is the source's",
            "parameters": {**languages, **ours},
        },
        {
            "action": "c2pa.translated", "digitalSourceType": AI_SOURCE, "softwareAgent": agent,
            "parameters": languages,
        },
    ]  # fmt: skip
    keys = ("source_language", "target_language", "models", "watermark", "label", "source_sha256")
    facts = dub.to_json()
    own = {k: facts[k] for k in keys}
    seed = _derived_uuid(facts)
    return {
        "claim_generator_info": [agent],
        "title": dub.title,
        "format": "video/mp4",
        "label": f"urn:c2pa:{seed}",
        "instance_id": f"xmp.iid:{seed}",
        "assertions": [
            {"label": "c2pa.actions.v2", "data": {"actions": actions}},
            {"label": ASSERTION, "data": {**own, "ai_generated": ["speech", "translation"]}},
        ],
    }


def _derived_uuid(value: JsonObject) -> uuid.UUID:
    """A version-4-shaped UUID drawn from the content, not at random (c2pa takes only v4 here)."""
    digest = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).digest()
    return uuid.UUID(bytes=digest[:16], version=4)
