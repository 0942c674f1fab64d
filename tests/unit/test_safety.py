"""Safety and provenance policies: the toxicity screen, the label, the watermark spans, the
signing credentials' checks (real certificates made with ``cryptography``)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from dubbing_pipeline.errors import ConfigurationError
from dubbing_pipeline.provenance.c2pa import load_signer, local_signer, make_signer
from dubbing_pipeline.provenance.label import Label, apply, make_label, render
from dubbing_pipeline.provenance.toxicity import screen_lines, term_list
from dubbing_pipeline.provenance.watermark import cut_spans, speech_spans, watermark_enabled
from dubbing_pipeline.quality.scorecard import toxicity_check

# --------------------------------------------------------------------------- toxicity screen


def line(i: str, source: str, target: str, flags: list[str] | None = None) -> dict[str, Any]:
    return {"id": i, "source_text": source, "target_text": target, "flags": flags or []}


def test_a_crafted_insult_brought_in_by_the_translation_is_flagged() -> None:
    lines = [
        line("s0001", "You did a great job today.", "Hiciste un gran trabajo hoy, gilipollas."),
        line("s0002", "The dog eats in the kitchen.", "El perro come en la cocina con su familia."),
    ]
    out, summary = screen_lines(lines, "en", "es")
    assert out[0]["flags"] == ["toxic"] and out[0]["toxic_terms"] == ["gilipollas"]
    assert out[1]["flags"] == [] and "toxic_terms" not in out[1]
    assert summary["available"] and summary["flagged"] == ["s0001"]
    assert summary["list"].startswith("glin-profanity 4.1.0")


def test_a_term_the_source_line_already_has_is_not_flagged() -> None:
    out, summary = screen_lines([line("s0001", "Shut up, you asshole!", "¡Cállate, gilipollas!")], "en", "es")
    assert out[0]["flags"] == [] and summary["flagged"] == []


def test_matching_is_whole_words_case_folded_multi_word_and_keeps_accents() -> None:
    spanish = term_list("es")
    assert spanish is not None
    assert spanish.found("Eres un CABRÓN.") == ["cabrón"]
    assert spanish.found("¡Hijo   de puta!") == ["hijo de puta", "puta"]
    assert spanish.found("La computadora está en la mesa.") == []  # "puta" inside a word
    # ordinary words the list carries are set aside: a faithful translation of "murder" or "hammer"
    assert spanish.found("Usa el martillo; el asesinato ocurrió en el infierno.") == []


def test_a_language_without_a_list_says_it_was_not_screened() -> None:
    out, summary = screen_lines([line("s0001", "Hello.", "Hola, gilipollas.")], "en", "ca")
    assert out[0]["flags"] == []
    assert summary["available"] is False and "'ca'" in summary["detail"]
    check = toxicity_check([{"id": "s0001", "flags": []}], summary)
    assert check["passed"] and check["screened"] is False


def test_the_screen_keeps_other_flags_and_is_idempotent() -> None:
    once, _ = screen_lines([line("s0001", "Good.", "Bien, imbécil.", ["glossary"])], "en", "es")
    twice, _ = screen_lines(once, "en", "es")
    assert once == twice and once[0]["flags"] == ["glossary", "toxic"]
    assert toxicity_check(once, {"available": True})["flagged_lines"] == ["s0001"]


# --------------------------------------------------------------------------- visible label


def test_label_settings() -> None:
    assert make_label(SimpleNamespace(label="  ", label_seconds=4.0)) is None
    assert make_label(SimpleNamespace(label=" AI  dub ", label_seconds=3.0)) == Label("AI dub", 3.0)
    with pytest.raises(ConfigurationError, match="DUBBING_LABEL_SECONDS"):
        make_label(SimpleNamespace(label="AI", label_seconds=0.0))
    with pytest.raises(ConfigurationError, match="longer than 80"):
        make_label(SimpleNamespace(label="x" * 81, label_seconds=3.0))


def test_label_frames_are_those_shown_before_its_end() -> None:
    assert Label("AI", 4.0).frames(25.0, 750) == 100  # frames 0..99 show at t < 4 s
    assert Label("AI", 4.0).frames(30000 / 1001, 1000) == 120  # frame 119 at 3.97 s, 120 at 4.004 s
    assert Label("AI", 60.0).frames(25.0, 50) == 50


def test_label_changes_only_its_box_in_every_plane() -> None:
    width, height = 320, 240
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, width * height * 3 // 2, dtype=np.uint8)
    stamp = render("AI-translated", width, height)
    out = np.frombuffer(apply(frame.tobytes(), width, height, "yuv420p", stamp), dtype=np.uint8)
    h, w = stamp.alpha.shape
    luma_in, luma_out = (
        frame[: width * height].reshape(height, width),
        out[: width * height].reshape(height, width),
    )
    changed = np.argwhere(luma_in != luma_out)
    assert len(changed) > 0.2 * h * w
    assert changed[:, 0].min() >= stamp.y and changed[:, 0].max() < stamp.y + h
    assert changed[:, 1].min() >= stamp.x and changed[:, 1].max() < stamp.x + w
    assert stamp.x + w <= width and stamp.y + h <= height and stamp.x > width // 2  # bottom-right
    chroma = slice(width * height, None)
    assert not np.array_equal(frame[chroma], out[chroma])  # the box greys its colour too
    assert np.array_equal(frame[: stamp.y * width], out[: stamp.y * width])  # rows above: untouched


# --------------------------------------------------------------------------- watermark


def test_watermark_setting() -> None:
    assert watermark_enabled("on") and not watermark_enabled("off")
    with pytest.raises(ConfigurationError, match="DUBBING_WATERMARK"):
        watermark_enabled("auto")


def test_the_mark_is_read_where_dubbed_speech_sounds() -> None:
    segments = [
        {"status": "fits", "dub_start": 2.0, "dub_end": 3.0},
        {"status": "failed", "dub_start": 4.0, "dub_end": 5.0},  # silent
        {"status": "original", "dub_start": 6.0, "dub_end": 7.0},  # the source's own speech
        {"status": "rate", "dub_start": 0.5, "dub_end": 1.0},
    ]
    spans = speech_spans(segments)
    assert spans == [(0.5, 1.0), (2.0, 3.0)]
    audio = np.arange(10 * 100, dtype=np.float32)
    cut = cut_spans(audio, 100, spans)
    assert len(cut) == 150 and cut[0] == 50 and cut[50] == 200


# --------------------------------------------------------------------------- signing credentials


def chain(
    tmp: Path, *, expired: bool = False, self_signed: bool = False, email: bool = True
) -> tuple[Path, Path]:
    """A CA and a signing certificate (PEM files), made here with ``cryptography``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test signer")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(1).not_valid_before(now - dt.timedelta(days=2))
        .not_valid_after(now + dt.timedelta(days=9))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    usage = [ExtendedKeyUsageOID.EMAIL_PROTECTION if email else ExtendedKeyUsageOID.CODE_SIGNING]
    end = now - dt.timedelta(days=1) if expired else now + dt.timedelta(days=5)
    leaf = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name if self_signed else ca_name)
        .public_key(key.public_key()).serial_number(2).not_valid_before(now - dt.timedelta(days=2))
        .not_valid_after(end).add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        .sign(key if self_signed else ca_key, hashes.SHA256())
    )  # fmt: skip
    pem = serialization.Encoding.PEM
    cert_file, key_file = tmp / "chain.pem", tmp / "key.pem"
    cert_file.write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    # SEC1 ("EC PRIVATE KEY"): load_signer hands c2pa the PKCS#8 form it needs
    key_file.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())
    )
    return cert_file, key_file


def settings(
    cert: Path | str = "",
    key: Path | str = "",
    cache: Path | str = "",
    c2pa: str = "on",
    local_dir: Path | str = "",
    deployment: str = "embedded",
) -> Any:
    return SimpleNamespace(
        c2pa=c2pa, c2pa_cert=str(cert), c2pa_key=str(key), model_cache=str(cache),
        c2pa_local_dir=str(local_dir), deployment=deployment,
    )  # fmt: skip


def test_configured_credentials_are_checked_and_converted(tmp_path: Path) -> None:
    cert, key = chain(tmp_path)
    signer = make_signer(settings(cert, key))
    assert signer is not None and not signer.local and signer.subject == "CN=test signer"
    assert signer.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert "BEGIN" not in repr(signer)  # the key never shows in a repr (logs, errors)
    assert make_signer(settings(cert, key, c2pa="off")) is None


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("expired", "DUBBING_C2PA_CERT: certificate 'CN=test signer' is not valid now"),
        ("mismatched", "DUBBING_C2PA_KEY does not match the certificate"),
        ("self_signed", "self-signed"),
        ("no_email_usage", "emailProtection"),
        ("missing_key", "DUBBING_C2PA_KEY is not set"),
        ("unreadable_cert", "DUBBING_C2PA_CERT: cannot read the file"),
        ("garbage_key", "DUBBING_C2PA_KEY is not an unencrypted PEM private key"),
    ],
)
def test_bad_credentials_are_configuration_errors_naming_the_setting(
    tmp_path: Path, case: str, message: str
) -> None:
    cert, key = chain(tmp_path, expired=case == "expired", self_signed=case == "self_signed",
                      email=case != "no_email_usage")  # fmt: skip
    if case == "mismatched":
        other = tmp_path / "other"
        other.mkdir()
        key = chain(other)[1]
    if case == "garbage_key":
        key.write_bytes(b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0IGtleSBieXRlcw==\n-----END PRIVATE KEY-----\n")
    chosen = {
        "missing_key": settings(cert, ""),
        "unreadable_cert": settings(tmp_path / "nowhere.pem", key),
    }.get(case, settings(cert, key))
    with pytest.raises(ConfigurationError) as err:
        make_signer(chosen)
    assert message in err.value.message
    assert "c2VjcmV0" not in err.value.message  # no key material in a message


def test_the_local_signer_is_made_once_and_reused(tmp_path: Path) -> None:
    first = make_signer(settings(cache=tmp_path))
    again = local_signer(tmp_path / "c2pa" / "local")
    assert first is not None and first.local and first.root_pem is not None
    assert again.fingerprint == first.fingerprint
    key = tmp_path / "c2pa" / "local" / "key.pem"
    assert key.stat().st_mode & 0o077 == 0  # the key is its owner's only
    assert first.describe()["trust"].startswith("untrusted")
    # the checks accept what they made
    assert load_signer(first.chain_pem, first.key_pem, local=True).fingerprint == first.fingerprint
