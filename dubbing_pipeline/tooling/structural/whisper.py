"""A CTranslate2 Whisper directory of the large-v3 *shape*, randomly initialised.

What sets large-v3 apart for the code that loads it is its 128 mel bins (every earlier Whisper has
80): faster-whisper sizes its feature extractor from ``preprocessor_config.json`` and falls back to
80 bins without it. This module builds a ``WhisperForConditionalGeneration`` with 128 mel bins from
``transformers`` (seeded), converts it with CTranslate2's own converter, and lays the directory out
as ``ct2-transformers-converter --copy_files tokenizer.json preprocessor_config.json`` does.

The tokenizer is the packaged base model's (the multilingual Whisper vocabulary of 51,865 tokens;
large-v3 adds one language, Cantonese, so its vocabulary is 51,866): the structure is large-v3's,
the vocabulary base's. ``full_size=True`` gives large-v3's dimensions (1280 wide, 32 + 32 layers,
20 heads: about 1.5 B parameters); the reduced build keeps the 128 mel bins and everything the
loader and decoder see, with a tiny transformer.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
import transformers
from ctranslate2.converters import TransformersConverter

N_MELS = 128
FULL: dict[str, int] = {
    "d_model": 1280,
    "encoder_layers": 32,
    "decoder_layers": 32,
    "encoder_attention_heads": 20,
    "decoder_attention_heads": 20,
    "encoder_ffn_dim": 5120,
    "decoder_ffn_dim": 5120,
}
REDUCED: dict[str, int] = {
    "d_model": 64,
    "encoder_layers": 2,
    "decoder_layers": 2,
    "encoder_attention_heads": 2,
    "decoder_attention_heads": 2,
    "encoder_ffn_dim": 128,
    "decoder_ffn_dim": 128,
}


def _special_ids(tokenizer_json: Path) -> dict[str, int]:
    added = json.loads(tokenizer_json.read_text(encoding="utf-8"))["added_tokens"]
    return {token["content"]: int(token["id"]) for token in added}


def build_whisper_large_v3_shape(
    dest: Path, tokenizer_json: Path, *, seed: int = 0, full_size: bool = False, preprocessor: bool = True
) -> Path:
    """Write the directory at ``dest``; ``preprocessor=False`` leaves out ``preprocessor_config.json``
    (the conversion mistake that gives large-v3 an 80-bin feature extractor)."""
    ids = _special_ids(tokenizer_json)
    sot, eot = ids["<|startoftranscript|>"], ids["<|endoftext|>"]
    languages = {k: v for k, v in ids.items() if sot < v < ids["<|translate|>"]}
    dims = FULL if full_size else REDUCED
    options: dict[str, Any] = dict(dims)
    config = transformers.WhisperConfig(
        vocab_size=51865,
        num_mel_bins=N_MELS,
        max_source_positions=1500,
        max_target_positions=448,
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        decoder_start_token_id=sot,
        **options,
    )
    torch.manual_seed(seed)
    model: Any = transformers.WhisperForConditionalGeneration(config)
    model.generation_config = transformers.GenerationConfig(
        decoder_start_token_id=sot,
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        is_multilingual=True,
        lang_to_id=languages,
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        no_timestamps_token_id=ids["<|notimestamps|>"],
        alignment_heads=[[dims["decoder_layers"] - 1, h] for h in range(dims["decoder_attention_heads"])],
        suppress_tokens=[],
        begin_suppress_tokens=[220, eot],
        max_length=448,
    )
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        transformers.WhisperTokenizerFast(tokenizer_file=str(tokenizer_json)).save_pretrained(tmp)  # type: ignore[attr-defined]
        if dest.exists():
            shutil.rmtree(dest)
        TransformersConverter(tmp).convert(str(dest), force=True)
    shutil.copyfile(tokenizer_json, dest / "tokenizer.json")
    if preprocessor:
        (dest / "preprocessor_config.json").write_text(
            json.dumps({"feature_size": N_MELS, "sampling_rate": 16000, "hop_length": 160, "n_fft": 400,
                        "chunk_length": 30, "n_samples": 480000, "nb_max_frames": 3000}, indent=1),
            encoding="utf-8",
        )  # fmt: skip
    return dest
