"""Configuration from environment variables.

Every knob of the pipeline is an environment variable read here once; Dagster resources are
built from these values (see ``dubbing_pipeline/definitions.py``). The README lists them all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _env_int(name: str, default: int) -> int:
    return int(_env(name, str(default)))


def _env_float(name: str, default: float) -> float:
    return float(_env(name, str(default)))


def dagster_home() -> Path:
    """``$DAGSTER_HOME`` or ``./dagster_home``."""
    return Path(_env("DAGSTER_HOME", str(Path.cwd() / "dagster_home"))).resolve()


# name -> (default, help) for the README and ``dubbing-pipeline config``
ENV_DOC: dict[str, tuple[str, str]] = {
    "DUBBING_DEPLOYMENT": ("embedded", "embedded (in-process executor) or production (k8s_job_executor)"),
    "DUBBING_STORAGE_URL": (
        "$DAGSTER_HOME/media",
        "media storage: a directory, file:// URL or s3://bucket/prefix",
    ),
    "DUBBING_S3_ENDPOINT_URL": ("", "S3 endpoint override (MinIO, moto); empty = AWS"),
    "DUBBING_S3_REGION": ("", "S3 region; empty = boto3 default"),
    "DUBBING_WORK_DIR": ("system temp", "scratch directory for per-step temporary files"),
    "DUBBING_MODEL_CACHE": (
        "~/.cache/dubbing_pipeline",
        "where packaged models are assembled (Whisper base)",
    ),
    "DUBBING_DEVICE": ("cpu", "cpu or cuda, for every torch/CTranslate2 provider"),
    "DUBBING_CPU_THREADS": ("2", "threads per model on CPU (fixed for determinism)"),
    "DUBBING_SEPARATOR": ("spleeter", "voice/background separation: spleeter (CPU, packaged) or demucs"),
    "DUBBING_DEMUCS_REPO": ("", "local Demucs model repository (directory with htdemucs.yaml and weights)"),
    "DUBBING_DEMUCS_MODEL": ("htdemucs", "Demucs model name inside DUBBING_DEMUCS_REPO"),
    "DUBBING_ASR": ("faster-whisper", "speech recognition provider"),
    "DUBBING_WHISPER_MODEL_DIR": ("", "CTranslate2 Whisper directory (e.g. large-v3); empty = packaged base"),
    "DUBBING_WHISPER_COMPUTE_TYPE": ("int8", "CTranslate2 compute type: int8 on CPU, float16 on CUDA"),
    "DUBBING_WHISPER_BEAM_SIZE": ("5", "beam size for decoding"),
    "DUBBING_DIARIZER": (
        "voicefilter",
        "speaker embeddings: voicefilter (CPU ONNX, packaged), resemblyzer, pyannote",
    ),
    "DUBBING_PYANNOTE_DIR": ("", "local pyannote speaker-diarization-3.1 directory (config.yaml + models)"),
    "DUBBING_CHUNK_SECONDS": ("300", "longest chunk for ASR/diarization; memory is bounded by it"),
    "DUBBING_CHUNK_OVERLAP": ("2.0", "overlap at chunk joins, seconds"),
    "DUBBING_SPEAKER_MERGE_SIM": (
        "0.78",
        "complete-linkage merge threshold (cosine similarity) inside a chunk",
    ),
    "DUBBING_SPEAKER_MATCH_SIM": (
        "0.80",
        "cross-chunk match threshold; below it a new global speaker is made",
    ),
    "DUBBING_TRANSLATOR": ("auto", "auto (apertium for its pairs, e.g. en->es, else llm), apertium or llm"),
    "DUBBING_LLM_URL": (
        "",
        "OpenAI-compatible server of the llm translator (vLLM, llama-server): http://host:port",
    ),
    "DUBBING_LLM_MODEL": ("", "model name the llm server serves (required with the llm translator)"),
    "DUBBING_LLM_API_KEY": ("", "bearer token for the llm server; never logged"),
    "DUBBING_LLM_MAX_RETRIES": ("3", "retries of a failed or malformed llm reply (exponential backoff)"),
    "DUBBING_LLM_TIMEOUT": ("120", "seconds to wait for one llm reply"),
    "DUBBING_TTS": (
        "auto",
        "text-to-speech: auto (per-language table), espeak, piper, kokoro, chatterbox, or en=piper,es=espeak",
    ),
    "DUBBING_TTS_MODEL_DIR": ("", "local Chatterbox multilingual model directory (DUBBING_TTS=chatterbox)"),
    "DUBBING_VOICE_MATCH": ("on", "on: shift each synthetic voice to its speaker's median pitch; off: don't"),
}


SECRET_FIELDS = frozenset({"llm_api_key"})


@dataclass(frozen=True)
class Settings:
    deployment: str = "embedded"
    storage_url: str = ""
    s3_endpoint_url: str = ""
    s3_region: str = ""
    work_dir: str = ""
    model_cache: str = ""
    device: str = "cpu"
    cpu_threads: int = 2
    separator: str = "spleeter"
    demucs_repo: str = ""
    demucs_model: str = "htdemucs"
    asr: str = "faster-whisper"
    whisper_model_dir: str = ""
    whisper_compute_type: str = "int8"
    whisper_beam_size: int = 5
    diarizer: str = "voicefilter"
    pyannote_dir: str = ""
    chunk_seconds: float = 300.0
    chunk_overlap: float = 2.0
    speaker_merge_sim: float = 0.78
    speaker_match_sim: float = 0.80
    translator: str = "auto"
    llm_url: str = ""
    llm_model: str = ""
    llm_api_key: str = field(default="", repr=False)
    llm_max_retries: int = 3
    llm_timeout: float = 120.0
    tts: str = "auto"
    tts_model_dir: str = ""
    voice_match: str = "on"
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> Settings:
        home = dagster_home()
        return cls(
            deployment=_env("DUBBING_DEPLOYMENT", "embedded"),
            storage_url=_env("DUBBING_STORAGE_URL", str(home / "media")),
            s3_endpoint_url=_env("DUBBING_S3_ENDPOINT_URL", ""),
            s3_region=_env("DUBBING_S3_REGION", ""),
            work_dir=_env("DUBBING_WORK_DIR", ""),
            model_cache=_env("DUBBING_MODEL_CACHE", str(Path.home() / ".cache" / "dubbing_pipeline")),
            device=_env("DUBBING_DEVICE", "cpu"),
            cpu_threads=_env_int("DUBBING_CPU_THREADS", 2),
            separator=_env("DUBBING_SEPARATOR", "spleeter"),
            demucs_repo=_env("DUBBING_DEMUCS_REPO", ""),
            demucs_model=_env("DUBBING_DEMUCS_MODEL", "htdemucs"),
            asr=_env("DUBBING_ASR", "faster-whisper"),
            whisper_model_dir=_env("DUBBING_WHISPER_MODEL_DIR", ""),
            whisper_compute_type=_env("DUBBING_WHISPER_COMPUTE_TYPE", "int8"),
            whisper_beam_size=_env_int("DUBBING_WHISPER_BEAM_SIZE", 5),
            diarizer=_env("DUBBING_DIARIZER", "voicefilter"),
            pyannote_dir=_env("DUBBING_PYANNOTE_DIR", ""),
            chunk_seconds=_env_float("DUBBING_CHUNK_SECONDS", 300.0),
            chunk_overlap=_env_float("DUBBING_CHUNK_OVERLAP", 2.0),
            speaker_merge_sim=_env_float("DUBBING_SPEAKER_MERGE_SIM", 0.78),
            speaker_match_sim=_env_float("DUBBING_SPEAKER_MATCH_SIM", 0.80),
            translator=_env("DUBBING_TRANSLATOR", "auto"),
            llm_url=_env("DUBBING_LLM_URL", ""),
            llm_model=_env("DUBBING_LLM_MODEL", ""),
            llm_api_key=_env("DUBBING_LLM_API_KEY", ""),
            llm_max_retries=_env_int("DUBBING_LLM_MAX_RETRIES", 3),
            llm_timeout=_env_float("DUBBING_LLM_TIMEOUT", 120.0),
            tts=_env("DUBBING_TTS", "auto"),
            tts_model_dir=_env("DUBBING_TTS_MODEL_DIR", ""),
            voice_match=_env("DUBBING_VOICE_MATCH", "on"),
        )

    def as_dict(self) -> dict[str, object]:
        """All settings, secrets masked (safe to log or put in metadata)."""
        out: dict[str, object] = {}
        for f in fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            out[f.name] = "***" if f.name in SECRET_FIELDS and value else value
        return out
