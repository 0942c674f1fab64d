"""Where a step runs on Kubernetes: GPU steps on the GPU node pool, everything else on the CPU pool.

Under ``k8s_job_executor`` every step is its own pod. A GPU step gets, through its op tags
(``dagster-k8s/config``; job-level tags do not reach step pods), an ``nvidia.com/gpu`` limit, the
GPU pool's node selector and tolerations of its taints, and joins the ``gpu`` concurrency pool so
the instance bounds how many GPU steps run at once across all runs. CPU steps carry none of it and
land where the run launcher's default pod config puts them (the CPU pool, see ``k8s/values.yaml``).

Placement applies only in production (``DUBBING_DEPLOYMENT=production``) and only to a stage whose
configured provider actually uses the GPU (``DUBBING_DEVICE=cuda`` and a GPU provider); the
embedded default never sees these tags.
"""

from __future__ import annotations

import json

from dubbing_pipeline.settings import Settings

K8S_CONFIG_TAG = "dagster-k8s/config"

# stage -> (Settings field naming its provider, providers that run on the GPU)
GPU_PROVIDERS: dict[str, tuple[str, frozenset[str]]] = {
    "stems": ("separator", frozenset({"demucs"})),
    "transcript": ("asr", frozenset({"faster-whisper"})),
    "speakers": ("diarizer", frozenset({"pyannote", "resemblyzer"})),
    "speech": ("tts", frozenset({"chatterbox"})),
    "lipsync": ("lipsync", frozenset({"latentsync", "musetalk"})),
}


def _pairs(spec: str) -> list[str]:
    return [p.strip() for p in spec.split(",") if p.strip()]


def node_selector(spec: str) -> dict[str, str]:
    """``"k=v,k2=v2"`` → ``{"k": "v", "k2": "v2"}``."""
    out: dict[str, str] = {}
    for pair in _pairs(spec):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"node selector entries are key=value, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def tolerations(spec: str) -> list[dict[str, str]]:
    """``"key[=value][:Effect]"`` entries → Kubernetes tolerations (``Exists`` when no value)."""
    out: list[dict[str, str]] = []
    for item in _pairs(spec):
        taint, _, effect = item.partition(":")
        key, sep, value = taint.partition("=")
        tol = {"key": key.strip(), "operator": "Equal" if sep else "Exists"}
        if sep:
            tol["value"] = value.strip()
        if effect.strip():
            if effect.strip() not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
                raise ValueError(f"unknown taint effect in {item!r}")
            tol["effect"] = effect.strip()
        out.append(tol)
    return out


def uses_gpu(settings: Settings, stage: str | None = None) -> bool:
    """True in production on CUDA, for ``stage`` only when its provider is a GPU one."""
    if settings.deployment != "production" or settings.device != "cuda":
        return False
    if stage is None:
        return True
    field, providers = GPU_PROVIDERS[stage]
    value = str(getattr(settings, field))
    # DUBBING_TTS may be a per-language table: "en=piper,es=chatterbox"
    names = {part.rpartition("=")[2].strip() for part in value.split(",")}
    return bool(names & providers)


def gpu_k8s_config(settings: Settings) -> dict[str, dict[str, object]]:
    """The ``dagster-k8s/config`` value of a GPU step."""
    return {
        "container_config": {"resources": {"limits": {"nvidia.com/gpu": str(settings.gpu_limit)}}},
        "pod_spec_config": {
            "node_selector": node_selector(settings.gpu_node_selector),
            "tolerations": tolerations(settings.gpu_tolerations),
        },
    }


def gpu_op_tags(settings: Settings, stage: str | None = None) -> dict[str, str]:
    """Op tags putting a step on the GPU pool; ``{}`` where the step does not use the GPU.

    The value is the JSON string dagster-k8s reads (``get_user_defined_k8s_config``).
    """
    if not uses_gpu(settings, stage):
        return {}
    return {K8S_CONFIG_TAG: json.dumps(gpu_k8s_config(settings), sort_keys=True)}


def gpu_pool(settings: Settings, stage: str | None = None) -> str | None:
    """The concurrency pool of a GPU step (``None``: no pool, as in the embedded default)."""
    return settings.gpu_pool if uses_gpu(settings, stage) else None
