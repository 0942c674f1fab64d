"""Chatterbox multilingual with random weights, in the directory layout ``VoiceCloningTTS`` loads.

``build_chatterbox_multilingual(dest)`` constructs chatterbox-tts's own classes, seeded, and
writes exactly what ``ChatterboxMultilingualTTS.from_local`` reads:

* ``ve.pt``: the ``VoiceEncoder`` state dict (torch pickle, tensors only);
* ``t3_mtl23ls_v2.safetensors``: the ``T3(T3Config.multilingual())`` state dict;
* ``s3gen.pt``: the ``S3Gen`` state dict, including its S3 speech tokenizer, CAMPPlus speaker
  encoder, flow-matching decoder and HiFT vocoder;
* ``grapheme_mtl_merged_expanded_v1.json``: a ``tokenizers`` JSON (see ``tokenizer_json``);
* ``conds.pt``: the built-in voice, ``Conditionals`` computed by the model itself from a
  synthetic reference clip.

Two things are not plain random initialisation, both documented where they are made:

* **Length prior.** A random T3 samples speech tokens almost uniformly and, its end-of-speech
  token being suppressed by chatterbox's alignment analyser, runs to the hard-coded 1000 tokens
  (40 s of audio) for any line. ``_plant_length_prior`` makes ``planted`` speech tokens
  dominate the logits. Chatterbox's repetition penalty (2.0) then walks through them without
  repeating, and once all are used the analyser's "same token twice in a row" rule forces
  end-of-speech: a line is about ``planted`` to ``2 * planted`` tokens (25 tokens/s).
* **Reduced T3** (``full_size=False``). The full T3 is a 30-layer, 520M-parameter Llama: it takes
  about a minute to build and save on a 2-core CPU and as long again for ``from_local`` to
  rebuild. ``from_local`` builds T3 from ``LLAMA_CONFIGS["Llama_520M"]``, so the reduced size is
  a variant of that table entry (14 layers, the minimum the alignment analyser's heads in layers
  9, 12 and 13 allow; a narrower MLP), applied by ``chatterbox_size`` both here and around the
  adapter's load. S3Gen and the voice encoder have their sizes written into their constructors
  and are always full size.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from chatterbox.models.s3gen import S3GEN_SR, S3Gen
from chatterbox.models.s3tokenizer import SPEECH_VOCAB_SIZE
from chatterbox.models.t3 import T3
from chatterbox.models.t3.llama_configs import LLAMA_CONFIGS
from chatterbox.models.t3.modules.t3_config import T3Config
from chatterbox.models.voice_encoder import VoiceEncoder
from chatterbox.mtl_tts import SUPPORTED_LANGUAGES, ChatterboxMultilingualTTS
from safetensors.torch import save_file
from tokenizers import AddedToken, Tokenizer
from tokenizers.models import BPE

from dubbing_pipeline.records import JsonObject

T3_FILE = "t3_mtl23ls_v2.safetensors"
S3GEN_FILE = "s3gen.pt"
VE_FILE = "ve.pt"
TOKENIZER_FILE = "grapheme_mtl_merged_expanded_v1.json"
CONDS_FILE = "conds.pt"
MANIFEST_FILE = "structural.json"
"""Not read by chatterbox or the adapter: how the directory was built (seed, sizes)."""

LLAMA_NAME = "Llama_520M"
REDUCED_LLAMA = {"num_hidden_layers": 14, "intermediate_size": 1024}
"""T3's backbone for CPU tests. Width and heads stay (the analyser spies on heads 2, 11 and 15
of layers 9, 12 and 13; ``head_dim`` 64 × 16 heads = 1024 = the conditioning encoder's width)."""
PLANTED_TOKENS = {False: 10, True: 100}
"""Speech tokens of the length prior: ~0.4–0.8 s of speech (CPU tests), ~4–8 s (GPU timing)."""
PRIOR_SCALE = 100.0

SPECIAL_TOKENS = ("[STOP]", "[UNK]", "[SPACE]", "[PAD]", "[SEP]", "[CLS]", "[MASK]")
"""Chatterbox's special tokens; ``[START]`` is added at id 255, T3's ``start_text_token``."""


def _language_codes() -> list[str]:
    return sorted(SUPPORTED_LANGUAGES)


def _graphemes() -> list[str]:
    """Single-character tokens for the scripts of chatterbox's 23 languages, after its NFKD.

    ``MTLTokenizer`` lowercases and NFKD-normalises text, so accents arrive as combining marks
    and Korean as conjoining jamo (``korean_normalize``); Chinese becomes ``[cj_*]`` Cangjie
    tokens when the Cangjie table is present, else its characters fall back to ``[UNK]``.
    """
    ranges = [
        (0x21, 0x7E),  # ASCII punctuation, digits, letters
        (0xA1, 0xFF),  # Latin-1
        (0x0300, 0x036F),  # combining diacritics (NFKD)
        (0x0370, 0x03FF),  # Greek
        (0x0400, 0x045F),  # Cyrillic
        (0x05D0, 0x05EA),  # Hebrew letters
        (0x0600, 0x06FF),  # Arabic
        (0x0900, 0x097F),  # Devanagari (Hindi)
        (0x1100, 0x1112),  # Hangul leading jamo
        (0x1161, 0x1175),  # Hangul vowels
        (0x11A8, 0x11C2),  # Hangul trailing jamo
        (0x3041, 0x3096),  # Hiragana
        (0x30A1, 0x30FA),  # Katakana
        (0x3000, 0x303F),  # CJK punctuation
    ]
    chars = [chr(code) for low, high in ranges for code in range(low, high + 1)]
    return [ch for ch in dict.fromkeys(chars) if not ch.isupper() and ch not in "[]"]


def tokenizer_json(vocab_size: int) -> JsonObject:
    """A character-level BPE tokenizer (no merges) in the ``tokenizers`` JSON format.

    The real ``grapheme_mtl_merged_expanded_v1.json`` is a grapheme vocabulary of 2454 entries
    with ``[STOP]`` = 0 and ``[START]`` = 255 (T3's stop/start text tokens) and the language
    tags ``[en]``… as added tokens, which ``MTLTokenizer.encode`` prepends. This one has the same
    special ids and tags and one token per grapheme of ``_graphemes``: every id stays below
    ``vocab_size`` (T3's text embedding), unknown characters map to ``[UNK]``.
    """
    vocab: dict[str, int] = {}
    for token in SPECIAL_TOKENS:
        vocab[token] = len(vocab)
    graphemes = iter(_graphemes())
    while len(vocab) < 255:
        vocab[next(graphemes)] = len(vocab)
    vocab["[START]"] = 255
    for code in _language_codes():
        vocab[f"[{code}]"] = len(vocab)
    for letter in "abcdefghijklmnopqrstuvwxyz.":
        vocab[f"[cj_{letter}]"] = len(vocab)
    for ch in graphemes:
        vocab[ch] = len(vocab)
    if len(vocab) > vocab_size:
        raise ValueError(f"tokenizer vocabulary ({len(vocab)}) exceeds T3's {vocab_size} text tokens")
    tokenizer = Tokenizer(BPE(vocab=vocab, merges=[], unk_token="[UNK]"))
    specials = ["[START]", *SPECIAL_TOKENS]
    tags = [f"[{code}]" for code in _language_codes()] + [f"[cj_{c}]" for c in "abcdefghijklmnopqrstuvwxyz."]
    tokenizer.add_special_tokens([AddedToken(token, special=True) for token in specials])
    tokenizer.add_tokens([AddedToken(token, special=False) for token in tags])
    loaded: JsonObject = json.loads(tokenizer.to_str())
    return loaded


@contextlib.contextmanager
def chatterbox_size(full_size: bool) -> Iterator[None]:
    """Within the block, chatterbox builds T3 at the size ``full_size`` asks for.

    Full size leaves chatterbox untouched. Reduced: ``LLAMA_CONFIGS["Llama_520M"]`` (the table
    ``T3.__init__`` reads) gets ``REDUCED_LLAMA``, restored on exit. Used around the build and
    around ``ChatterboxMultilingualTTS.from_local`` (the adapter's first synthesis) alike.
    """
    if full_size:
        yield
        return
    entry = LLAMA_CONFIGS[LLAMA_NAME]
    saved = {key: entry[key] for key in REDUCED_LLAMA}
    entry.update(REDUCED_LLAMA)
    try:
        yield
    finally:
        entry.update(saved)


def _plant_length_prior(t3: Any, planted: int, generator: Any) -> list[int]:
    """Make ``planted`` random valid speech tokens dominate T3's speech logits; returns them.

    T3's speech head has no bias, so the prior rides on one residual channel: every speech
    token embedding gets ``PRIOR_SCALE`` in channel 0, which survives the residual stream and
    the final RMSNorm (≈ 30 after it, against O(1) elsewhere), and the planted tokens' head rows
    get a weight on that channel worth ≈ 12 logits. After a planted token is sampled the
    repetition penalty halves its logit (≈ 6), still far above the unplanted ones (≲ 3), which
    min-p (0.05) then cuts: generation visits every planted token once, then repeats one and the
    alignment analyser forces end-of-speech. The text path and everything else stay random.
    """
    tokens = torch.randperm(SPEECH_VOCAB_SIZE, generator=generator)[:planted]
    with torch.no_grad():
        t3.speech_emb.weight[:, 0] = PRIOR_SCALE
        t3.speech_head.weight[tokens, 0] = 0.4
    return sorted(int(token) for token in tokens)


def _reference_clip(seed: int, sr: int, seconds: float = 3.0) -> np.ndarray:
    """A voiced-sounding synthetic clip (harmonics of a gliding 120–180 Hz pitch, syllable envelope)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 150.0 + 30.0 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.5 * (1 - np.cos(2 * np.pi * 4.0 * t)) * (t > 0.1)
    clip = 0.3 * voice * envelope + 0.003 * rng.standard_normal(t.size)
    return np.asarray(clip / np.max(np.abs(clip)) * 0.5, dtype=np.float32)


def build_chatterbox_multilingual(dest: Path, *, seed: int = 0, full_size: bool = False) -> Path:
    """Write a random-weight Chatterbox multilingual model directory at ``dest``; returns it.

    Everything is seeded by ``seed``: the same call gives the same weights and files. See the
    module docstring for the length prior and ``full_size``.
    """
    started = time.monotonic()
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    hp = T3Config.multilingual()
    with chatterbox_size(full_size):
        t3 = T3(hp).eval()
    planted = _plant_length_prior(t3, PLANTED_TOKENS[full_size], generator)
    s3gen = S3Gen().eval()
    ve = VoiceEncoder().eval()

    save_file({name: tensor.contiguous() for name, tensor in t3.state_dict().items()}, str(dest / T3_FILE))
    torch.save(s3gen.state_dict(), dest / S3GEN_FILE)
    torch.save(ve.state_dict(), dest / VE_FILE)
    (dest / TOKENIZER_FILE).write_text(json.dumps(tokenizer_json(hp.text_tokens_dict_size)), encoding="utf-8")

    # The built-in voice, computed the way chatterbox computes any speaker's conditionals.
    reference = dest / "builtin_reference.wav"
    sf.write(reference, _reference_clip(seed, S3GEN_SR), S3GEN_SR, subtype="FLOAT")
    # No tokenizer: conditionals do not use it, and MTLTokenizer would try the hub for the
    # Cangjie table (the adapter points that call at the model directory; nothing does here).
    model = ChatterboxMultilingualTTS(t3, s3gen, ve, None, "cpu")
    model.prepare_conditionals(str(reference))
    model.conds.save(dest / CONDS_FILE)
    reference.unlink()

    manifest = {
        "architecture": "chatterbox multilingual (t3_mtl23ls_v2 + s3gen + voice encoder)",
        "weights": "random",
        "seed": seed,
        "full_size": full_size,
        "t3_llama": {} if full_size else REDUCED_LLAMA,
        "planted_speech_tokens": planted,
        "build_seconds": round(time.monotonic() - started, 1),
    }
    (dest / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return dest
