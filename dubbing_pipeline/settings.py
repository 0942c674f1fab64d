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
    "DUBBING_DROP_BUCKET": ("", "production: S3 bucket the drop sensor watches; empty = no sensor"),
    "DUBBING_DROP_PREFIX": ("", "key prefix inside DUBBING_DROP_BUCKET (e.g. drops/)"),
    "DUBBING_DROP_SUFFIXES": (
        ".mp4,.mov,.mkv,.webm,.m4v",
        "object keys / inbox files with these suffixes are videos",
    ),
    "DUBBING_TARGET_LANGUAGES": (
        "es",
        "languages a dropped video is dubbed into (comma list); per object: x-amz-meta-languages",
    ),
    "DUBBING_INBOX_DIR": ("$DAGSTER_HOME/inbox", "embedded: folder the inbox sensor watches for new videos"),
    "DUBBING_CATALOG_URL": ("", "catalog file (YAML/JSON), a path or s3:// URL; empty = no schedules"),
    "DUBBING_CATALOG_CRON": ("@daily", "cron of the catalog schedules (missing or stale partitions)"),
    "DUBBING_GPU_NODE_SELECTOR": ("dubbing.io/pool=gpu", "production: node labels of the GPU pool (k=v,k=v)"),
    "DUBBING_GPU_TOLERATIONS": (
        "nvidia.com/gpu:NoSchedule",
        "production: taints GPU steps tolerate (key[=value]:Effect, comma list)",
    ),
    "DUBBING_GPU_LIMIT": ("1", "production: nvidia.com/gpu limit of one GPU step pod"),
    "DUBBING_GPU_POOL": ("gpu", "production: concurrency pool of GPU steps (limit it in the instance)"),
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
    "DUBBING_MIN_LANGUAGE_CONFIDENCE": ("0.5", "language-ID confidence below which a video is ineligible"),
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
    "DUBBING_LIPSYNC": (
        "none",
        "lip-sync engine: none (CPU default: original frames kept), latentsync or musetalk (GPU)",
    ),
    "DUBBING_LATENTSYNC_DIR": (
        "",
        "LatentSync 1.5/1.6 checkpoints: latentsync_unet.pt, whisper/tiny.pt, the unet yaml, sd-vae-ft-mse/",
    ),
    "DUBBING_LATENTSYNC_STEPS": ("20", "LatentSync denoising steps"),
    "DUBBING_LATENTSYNC_GUIDANCE": ("1.5", "LatentSync classifier-free guidance scale"),
    "DUBBING_LATENTSYNC_SEED": ("1247", "LatentSync seed (fixed for deterministic output)"),
    "DUBBING_MUSETALK_DIR": ("", "MuseTalk checkpoints directory (DUBBING_LIPSYNC=musetalk)"),
    "DUBBING_LIPSYNC_MAX_WINDOW": (
        "0",
        "longest model window in seconds; 0 = the engine's own cap (30 LatentSync, 120 MuseTalk)",
    ),
}


SECRET_FIELDS = frozenset({"llm_api_key"})


@dataclass(frozen=True)
class Settings:
    deployment: str = "embedded"
    storage_url: str = ""
    s3_endpoint_url: str = ""
    s3_region: str = ""
    work_dir: str = ""
    drop_bucket: str = ""
    drop_prefix: str = ""
    drop_suffixes: str = ".mp4,.mov,.mkv,.webm,.m4v"
    target_languages: str = "es"
    inbox_dir: str = ""
    catalog_url: str = ""
    catalog_cron: str = "@daily"
    gpu_node_selector: str = "dubbing.io/pool=gpu"
    gpu_tolerations: str = "nvidia.com/gpu:NoSchedule"
    gpu_limit: int = 1
    gpu_pool: str = "gpu"
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
    min_language_confidence: float = 0.5
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
    lipsync: str = "none"
    latentsync_dir: str = ""
    latentsync_steps: int = 20
    latentsync_guidance: float = 1.5
    latentsync_seed: int = 1247
    musetalk_dir: str = ""
    lipsync_max_window: float = 0.0
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
            drop_bucket=_env("DUBBING_DROP_BUCKET", ""),
            drop_prefix=_env("DUBBING_DROP_PREFIX", ""),
            drop_suffixes=_env("DUBBING_DROP_SUFFIXES", ".mp4,.mov,.mkv,.webm,.m4v"),
            target_languages=_env("DUBBING_TARGET_LANGUAGES", "es"),
            inbox_dir=_env("DUBBING_INBOX_DIR", str(home / "inbox")),
            catalog_url=_env("DUBBING_CATALOG_URL", ""),
            catalog_cron=_env("DUBBING_CATALOG_CRON", "@daily"),
            gpu_node_selector=_env("DUBBING_GPU_NODE_SELECTOR", "dubbing.io/pool=gpu"),
            gpu_tolerations=_env("DUBBING_GPU_TOLERATIONS", "nvidia.com/gpu:NoSchedule"),
            gpu_limit=_env_int("DUBBING_GPU_LIMIT", 1),
            gpu_pool=_env("DUBBING_GPU_POOL", "gpu"),
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
            min_language_confidence=_env_float("DUBBING_MIN_LANGUAGE_CONFIDENCE", 0.5),
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
            lipsync=_env("DUBBING_LIPSYNC", "none"),
            latentsync_dir=_env("DUBBING_LATENTSYNC_DIR", ""),
            latentsync_steps=_env_int("DUBBING_LATENTSYNC_STEPS", 20),
            latentsync_guidance=_env_float("DUBBING_LATENTSYNC_GUIDANCE", 1.5),
            latentsync_seed=_env_int("DUBBING_LATENTSYNC_SEED", 1247),
            musetalk_dir=_env("DUBBING_MUSETALK_DIR", ""),
            lipsync_max_window=_env_float("DUBBING_LIPSYNC_MAX_WINDOW", 0.0),
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
