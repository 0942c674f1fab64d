"""Every setting of the pipeline, in one table: the ``Settings`` dataclass below.

Each field is one row, declared with :func:`setting`: its type and default, its environment
variable, its help text, the *group* of Dagster resources that carries it, and whether it is a
secret. From that one declaration come ``Settings.from_env()``, ``dubbing-pipeline config``,
the README's configuration table (``config --markdown``) and the resources
(``orchestration/resources.py``): adding a setting is adding a row.

The environment is read only by ``Settings.from_env()``, called at the composition root
(``definitions.py``, the CLI); nothing reads it at import or inside a running op.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from dubbing_pipeline.errors import ConfigurationError

T = TypeVar("T", str, int, float)

GROUPS = (
    "common", "storage", "separator", "asr", "diarizer", "translator", "tts", "lipsync", "quality", "safety",
)  # fmt: skip


def setting(
    default: T,
    env: str,
    help: str,
    *,
    group: str | None = None,
    shown: str | None = None,
    computed: Callable[[], str] | None = None,
    secret: bool = False,
) -> T:
    """One row of the settings table (a dataclass field carrying its metadata).

    ``group``: the resources that carry it (``common``: every provider resource); ``shown``: the
    default as documented when it is computed at run time (``computed``); ``secret``: never
    printed, and passed to Dagster as an ``EnvVar``.
    """
    if group is not None and group not in GROUPS:
        raise ValueError(f"unknown settings group {group!r}")
    meta = {"env": env, "help": help, "group": group, "shown": shown, "computed": computed, "secret": secret}
    return field(default=default, metadata=meta, repr=not secret)  # type: ignore[no-any-return]


def dagster_home() -> Path:
    """``$DAGSTER_HOME`` or ``./dagster_home``."""
    return Path(os.environ.get("DAGSTER_HOME") or str(Path.cwd() / "dagster_home")).resolve()


def _home_media() -> str:
    return str(dagster_home() / "media")


def _home_inbox() -> str:
    return str(dagster_home() / "inbox")


def _user_model_cache() -> str:
    return str(Path.home() / ".cache" / "dubbing_pipeline")


def model_cache_dir(model_cache: str) -> Path:
    """The model cache a setting names (its computed default when unset, never the working folder)."""
    return Path(model_cache or _user_model_cache())


@dataclass(frozen=True)
class Settings:
    deployment: str = setting(
        "embedded",
        "DUBBING_DEPLOYMENT",
        "embedded (in-process executor) or production (k8s_job_executor)",
    )
    storage_url: str = setting(
        "",
        "DUBBING_STORAGE_URL",
        "media storage: a directory, file:// URL or s3://bucket/prefix",
        group="storage",
        shown="$DAGSTER_HOME/media",
        computed=_home_media,
    )
    s3_endpoint_url: str = setting(
        "",
        "DUBBING_S3_ENDPOINT_URL",
        "S3 endpoint override (MinIO, moto); empty = AWS",
        group="storage",
    )
    s3_region: str = setting(
        "",
        "DUBBING_S3_REGION",
        "S3 region; empty = boto3 default",
        group="storage",
    )
    work_dir: str = setting(
        "",
        "DUBBING_WORK_DIR",
        "scratch directory for per-step temporary files",
        group="storage",
        shown="system temp",
    )
    drop_bucket: str = setting(
        "",
        "DUBBING_DROP_BUCKET",
        "production: S3 bucket the drop sensor watches; empty = no sensor",
    )
    drop_prefix: str = setting(
        "",
        "DUBBING_DROP_PREFIX",
        "key prefix inside DUBBING_DROP_BUCKET (e.g. drops/)",
    )
    drop_suffixes: str = setting(
        ".mp4,.mov,.mkv,.webm,.m4v",
        "DUBBING_DROP_SUFFIXES",
        "object keys / inbox files with these suffixes are videos",
    )
    drop_queue_url: str = setting(
        "",
        "DUBBING_DROP_QUEUE_URL",
        "SQS queue of the drop bucket's S3 event notifications: the drop sensor consumes it instead of "
        "listing the bucket (a tick costs O(new objects); use it past ~100,000 objects)",
    )
    drop_lookback: int = setting(
        21600,
        "DUBBING_DROP_LOOKBACK",
        "listing mode: seconds an object may appear after its LastModified (a multipart upload is "
        "stamped when it started); objects stamped earlier than the newest seen minus this are ignored",
    )
    drop_list_budget_s: float = setting(
        8.0,
        "DUBBING_DROP_LIST_BUDGET_S",
        "listing mode: a tick lists the bucket for at most this many seconds (pages of 1,000 keys) and the "
        "next goes on after the last key listed, so a lap of a large bucket spans ticks",
    )
    target_languages: str = setting(
        "es",
        "DUBBING_TARGET_LANGUAGES",
        "languages a dropped video is dubbed into (comma list); per object: x-amz-meta-languages",
    )
    inbox_dir: str = setting(
        "",
        "DUBBING_INBOX_DIR",
        "embedded: folder the inbox sensor watches for new videos",
        shown="$DAGSTER_HOME/inbox",
        computed=_home_inbox,
    )
    catalog_url: str = setting(
        "",
        "DUBBING_CATALOG_URL",
        "catalog file (YAML/JSON), a path or s3:// URL; empty = no catalog sensor",
    )
    catalog_interval_s: int = setting(
        60,
        "DUBBING_CATALOG_INTERVAL_S",
        "seconds between two ticks of the catalog sensor (each plans what changed, and a slice of the rest)",
    )
    catalog_tick_budget_s: float = setting(
        40.0,
        "DUBBING_CATALOG_TICK_BUDGET_S",
        "a catalog tick stops planning before this many seconds (Dagster's limit is 60); the next tick "
        "goes on from its cursor",
    )
    catalog_sweep: int = setting(
        1000,
        "DUBBING_CATALOG_SWEEP",
        "videos the catalog's background sweep judges again per tick: every video at least once every "
        "ceil(videos / this) ticks, whatever the events say",
    )
    retry_backoff_s: float = setting(
        600.0,
        "DUBBING_RETRY_BACKOFF_S",
        "catalog: after k consecutive failed runs a partition waits this · 2^(k-1) seconds; 0 = no wait",
    )
    retry_backoff_max_s: float = setting(
        86400.0,
        "DUBBING_RETRY_BACKOFF_MAX_S",
        "catalog: the longest wait between automatic retries of a failed partition, seconds",
    )
    quarantine_after: int = setting(
        5,
        "DUBBING_QUARANTINE_AFTER",
        "catalog: consecutive failed runs that quarantine a partition (released by 'retry'); 0 = never",
    )
    gpu_node_selector: str = setting(
        "dubbing.io/pool=gpu",
        "DUBBING_GPU_NODE_SELECTOR",
        "production: node labels of the GPU pool (k=v,k=v)",
    )
    gpu_tolerations: str = setting(
        "nvidia.com/gpu:NoSchedule",
        "DUBBING_GPU_TOLERATIONS",
        "production: taints GPU steps tolerate (key[=value]:Effect, comma list)",
    )
    gpu_limit: int = setting(
        1,
        "DUBBING_GPU_LIMIT",
        "production: nvidia.com/gpu limit of one GPU step pod",
    )
    gpu_pool: str = setting(
        "gpu",
        "DUBBING_GPU_POOL",
        "production: concurrency pool of GPU steps (limit it in the instance)",
    )
    model_cache: str = setting(
        "",
        "DUBBING_MODEL_CACHE",
        "where packaged models are assembled (Whisper base)",
        group="common",
        shown="~/.cache/dubbing_pipeline",
        computed=_user_model_cache,
    )
    device: str = setting(
        "cpu",
        "DUBBING_DEVICE",
        "cpu or cuda, for every torch/CTranslate2 provider",
        group="common",
    )
    cpu_threads: int = setting(
        2,
        "DUBBING_CPU_THREADS",
        "threads per model on CPU (fixed for determinism)",
        group="common",
    )
    separator: str = setting(
        "spleeter",
        "DUBBING_SEPARATOR",
        "voice/background separation: spleeter (CPU, packaged) or demucs",
        group="separator",
    )
    demucs_repo: str = setting(
        "",
        "DUBBING_DEMUCS_REPO",
        "local Demucs model repository (directory with htdemucs.yaml and weights)",
        group="separator",
    )
    demucs_model: str = setting(
        "htdemucs",
        "DUBBING_DEMUCS_MODEL",
        "Demucs model name inside DUBBING_DEMUCS_REPO",
        group="separator",
    )
    asr: str = setting(
        "faster-whisper",
        "DUBBING_ASR",
        "speech recognition provider",
        group="asr",
    )
    whisper_model_dir: str = setting(
        "",
        "DUBBING_WHISPER_MODEL_DIR",
        "CTranslate2 Whisper directory (e.g. large-v3); empty = packaged base",
        group="asr",
    )
    whisper_compute_type: str = setting(
        "auto",
        "DUBBING_WHISPER_COMPUTE_TYPE",
        "CTranslate2 compute type; auto = int8 on CPU, float16 on CUDA",
        group="asr",
    )
    whisper_beam_size: int = setting(
        5,
        "DUBBING_WHISPER_BEAM_SIZE",
        "beam size for decoding",
        group="asr",
    )
    diarizer: str = setting(
        "voicefilter",
        "DUBBING_DIARIZER",
        "speaker embeddings: voicefilter (CPU ONNX, packaged), resemblyzer, pyannote",
        group="diarizer",
    )
    pyannote_dir: str = setting(
        "",
        "DUBBING_PYANNOTE_DIR",
        "local pyannote speaker-diarization-3.1 directory (config.yaml + models)",
        group="diarizer",
    )
    chunk_seconds: float = setting(
        300.0,
        "DUBBING_CHUNK_SECONDS",
        "longest chunk for ASR/diarization; memory is bounded by it",
        group="asr",
    )
    chunk_overlap: float = setting(
        2.0,
        "DUBBING_CHUNK_OVERLAP",
        "overlap at chunk joins, seconds",
        group="asr",
    )
    min_language_confidence: float = setting(
        0.5,
        "DUBBING_MIN_LANGUAGE_CONFIDENCE",
        "language-ID confidence below which a video is ineligible",
        group="asr",
    )
    speaker_merge_sim: float = setting(
        0.78,
        "DUBBING_SPEAKER_MERGE_SIM",
        "complete-linkage merge threshold (cosine similarity) inside a chunk",
        group="diarizer",
    )
    speaker_match_sim: float = setting(
        0.8,
        "DUBBING_SPEAKER_MATCH_SIM",
        "cross-chunk match threshold; below it a new global speaker is made",
        group="diarizer",
    )
    translator: str = setting(
        "auto",
        "DUBBING_TRANSLATOR",
        "auto (per pair, measured: combined for en->es/ca/gl, pivot for en->pt, apertium for its other "
        "pairs, else llm), apertium, llm, pivot (= pivot:pt: en->pt neural, then apertium pt->target) "
        "or combined",
        group="translator",
    )
    glossary: str = setting(
        "",
        "DUBBING_GLOSSARY",
        'JSON file of terms per target language, {"es": {"source term": "target term"}}; both translators '
        "keep them and flag a line that lacks one",
        group="translator",
    )
    llm_url: str = setting(
        "",
        "DUBBING_LLM_URL",
        "OpenAI-compatible server of the llm translator (vLLM, llama-server): http://host:port",
        group="translator",
    )
    llm_model: str = setting(
        "",
        "DUBBING_LLM_MODEL",
        "model name the llm server serves (required with the llm translator)",
        group="translator",
    )
    llm_api_key: str = setting(
        "",
        "DUBBING_LLM_API_KEY",
        "bearer token for the llm server; never logged",
        group="translator",
        secret=True,
    )
    llm_max_retries: int = setting(
        3,
        "DUBBING_LLM_MAX_RETRIES",
        "retries of a failed or malformed llm reply (exponential backoff)",
        group="translator",
    )
    llm_timeout: float = setting(
        120.0,
        "DUBBING_LLM_TIMEOUT",
        "seconds to wait for one llm reply",
        group="translator",
    )
    tts: str = setting(
        "auto",
        "DUBBING_TTS",
        "text-to-speech: auto (per-language table), espeak, piper, kokoro, chatterbox, or en=piper,es=espeak",
        group="tts",
    )
    tts_model_dir: str = setting(
        "",
        "DUBBING_TTS_MODEL_DIR",
        "local Chatterbox multilingual model directory (DUBBING_TTS=chatterbox)",
        group="tts",
    )
    tts_workers: int = setting(
        2,
        "DUBBING_TTS_WORKERS",
        "lines of a batch synthesised at once on CPU, each with cpu_threads / workers threads "
        "(fixed per line, so the bytes never depend on scheduling)",
        group="tts",
    )
    voice_match: str = setting(
        "on",
        "DUBBING_VOICE_MATCH",
        "on: shift each synthetic voice to its speaker's median pitch; off: don't",
        group="tts",
    )
    lipsync: str = setting(
        "none",
        "DUBBING_LIPSYNC",
        "lip-sync engine: none (CPU default: original frames kept), latentsync or musetalk (GPU)",
        group="lipsync",
    )
    latentsync_dir: str = setting(
        "",
        "DUBBING_LATENTSYNC_DIR",
        "LatentSync 1.5/1.6 checkpoints: latentsync_unet.pt, whisper/tiny.pt, the unet yaml, sd-vae-ft-mse/",
        group="lipsync",
    )
    latentsync_steps: int = setting(
        20,
        "DUBBING_LATENTSYNC_STEPS",
        "LatentSync denoising steps",
        group="lipsync",
    )
    latentsync_guidance: float = setting(
        1.5,
        "DUBBING_LATENTSYNC_GUIDANCE",
        "LatentSync classifier-free guidance scale",
        group="lipsync",
    )
    latentsync_seed: int = setting(
        1247,
        "DUBBING_LATENTSYNC_SEED",
        "LatentSync seed (fixed for deterministic output)",
        group="lipsync",
    )
    musetalk_dir: str = setting(
        "",
        "DUBBING_MUSETALK_DIR",
        "MuseTalk checkpoints directory (DUBBING_LIPSYNC=musetalk)",
        group="lipsync",
    )
    lipsync_max_window: float = setting(
        0.0,
        "DUBBING_LIPSYNC_MAX_WINDOW",
        "longest model window in seconds; 0 = the engine's own cap (30 LatentSync, 120 MuseTalk)",
        group="lipsync",
    )
    qc_max_line_cer: float = setting(
        0.6,
        "DUBBING_QC_MAX_LINE_CER",
        "round-trip CER above which a dubbed line is repaired (re-translated shorter, re-spoken once)",
        group="quality",
    )
    qc_max_mean_cer: float = setting(
        0.4,
        "DUBBING_QC_MAX_MEAN_CER",
        "intelligibility check: highest character-weighted mean CER",
        group="quality",
    )
    qc_max_start_offset: float = setting(
        0.05,
        "DUBBING_QC_MAX_START_OFFSET",
        "timing check: largest line start offset, seconds",
        group="quality",
    )
    qc_min_background_corr: float = setting(
        0.99,
        "DUBBING_QC_MIN_BACKGROUND_CORR",
        "background check: lowest correlation where nobody speaks",
        group="quality",
    )
    qc_max_failed_share: float = setting(
        0.2,
        "DUBBING_QC_MAX_FAILED_SHARE",
        "share of silent (failed) lines above which the dub fails (failed_lines check, partition gate)",
        group="quality",
    )

    watermark: str = setting(
        "on",
        "DUBBING_WATERMARK",
        "on or off: Perth's inaudible watermark in every dubbed line (never the background), read back "
        "from the final track by the watermark check",
        group="safety",
    )
    c2pa: str = setting(
        "on",
        "DUBBING_C2PA",
        "on or off: a signed C2PA manifest in the MP4 (AI-generated speech, the source as ingredient)",
        group="safety",
    )
    c2pa_cert: str = setting(
        "",
        "DUBBING_C2PA_CERT",
        "PEM certificate chain that signs the C2PA manifest (signing certificate first; production: a "
        "mounted Secret, e.g. /secrets/c2pa/chain.pem); empty = DUBBING_C2PA_LOCAL_DIR's signer, or in "
        "the embedded default a local, untrusted one made on first use in DUBBING_MODEL_CACHE/c2pa/local",
        group="safety",
    )
    c2pa_key: str = setting(
        "",
        "DUBBING_C2PA_KEY",
        "PEM private key of DUBBING_C2PA_CERT (never logged)",
        group="safety",
    )
    c2pa_local_dir: str = setting(
        "",
        "DUBBING_C2PA_LOCAL_DIR",
        "a local C2PA signer chosen explicitly: its folder (root.pem, chain.pem, key.pem), made once with "
        "python -m dubbing_pipeline.provenance.local_root DIR and shared by every pod (a Secret); "
        "production refuses to dub without it or DUBBING_C2PA_CERT/KEY",
        group="safety",
    )
    label: str = setting(
        "",
        "DUBBING_LABEL",
        'text drawn in a corner of the first seconds of the video (e.g. "AI-translated"); only the '
        "keyframe-aligned span it touches is re-encoded; empty = no label",
        group="safety",
    )
    label_seconds: float = setting(
        4.0,
        "DUBBING_LABEL_SECONDS",
        "how long DUBBING_LABEL is shown from the start, seconds",
        group="safety",
    )
    block_toxic: int = setting(
        0,
        "DUBBING_BLOCK_TOXIC",
        "1: a translation that brings in offensive terms its source line lacks fails the partition; "
        "0: the line is flagged (scorecard, review)",
        group="safety",
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings from the environment (empty values mean the default)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for row in rows():
            raw = env.get(row.metadata["env"])
            if raw not in (None, ""):
                values[row.name] = parse(row, str(raw))
            elif row.metadata["computed"] is not None:
                values[row.name] = row.metadata["computed"]()
        return cls(**values)

    def masked(self) -> dict[str, object]:
        """All settings, secrets masked (safe to print, log or put in metadata)."""
        return {
            row.name: "***" if row.metadata["secret"] and getattr(self, row.name) else getattr(self, row.name)
            for row in rows()
        }


def rows() -> Iterator[Field[Any]]:
    """The settings table, in declaration order."""
    yield from fields(Settings)


def parse(row: Field[Any], raw: str) -> Any:
    """An environment value as the row's type (that of its default: ``int``, ``float`` or ``str``)."""
    kind: type = type(row.default) if isinstance(row.default, int | float) else str
    try:
        return kind(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{row.metadata['env']} must be {kind.__name__}, got {raw!r}") from exc


def shown_default(row: Field[Any]) -> str:
    """The default as documented: ``—`` for empty, the computed default's description, numbers plainly."""
    if row.metadata["shown"]:
        return str(row.metadata["shown"])
    default = row.default if row.default is not MISSING else ""
    if isinstance(default, float):
        return f"{default:g}"
    return str(default) if default != "" else "—"


def markdown_table() -> str:
    """The README's configuration table."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for row in rows():
        default = shown_default(row)
        cell = default if default == "—" else f"`{default}`"
        lines.append(f"| `{row.metadata['env']}` | {cell} | {row.metadata['help']} |")
    return "\n".join(lines) + "\n"
