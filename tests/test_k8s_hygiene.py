"""Pool and pod hygiene of the production deployment (k8s/, dagster_home/production).

* Pool slots: run monitoring frees the ``gpu`` pool slots a cancelled or failed run still holds.
* One attempt per Kubernetes job (``backoffLimit: 0``): Dagster retries a lost step or run worker,
  Kubernetes never restarts one behind its back (dagster-io/dagster#33755).
* Every pod runs as the non-root user of ``k8s/Dockerfile`` with CPU/memory requests and limits.

Run-worker and step jobs are built by dagster-k8s' own code from the run launcher of both the
production instance file and the Helm values (rendered as the chart's ``_run-launcher.tpl`` does),
then validated against the Kubernetes schemas.
"""

from __future__ import annotations

import datetime
import logging
import re
import shlex
from pathlib import Path
from typing import Any
from unittest import mock

import dagster as dg
import kubernetes_validate
import pytest
import yaml
from kubernetes.utils.quantity import parse_quantity

from dubbing_pipeline.orchestration.placement import GPU_PROVIDERS, gpu_op_tags, gpu_pool
from dubbing_pipeline.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "k8s"
PROD_HOME = ROOT / "dagster_home" / "production"
K8S_VERSION = "1.30.0"
IMAGE = "registry.example/dubbing-pipeline:0.1.0"
UID = 10001  # the user k8s/Dockerfile creates; every pod's runAsUser/runAsGroup

PROD_GPU = Settings(
    deployment="production",
    device="cuda",
    separator="demucs",
    diarizer="pyannote",
    tts="en=piper,es=chatterbox",
    lipsync="latentsync",
)
POD_KINDS = {"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"}


def _validate(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def _as_dict(obj: Any) -> dict[str, Any]:
    from kubernetes.client import ApiClient

    data: dict[str, Any] = ApiClient().sanitize_for_serialization(obj)
    return data


def _values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((K8S / "values.yaml").read_text())
    return values


def _instance_yaml() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((PROD_HOME / "dagster.yaml").read_text())
    return config


# --- hygiene of one pod, in the Kubernetes API's own (camelCase) form ---------------------------


def _assert_non_root_pod(pod_security: dict[str, Any], where: str) -> None:
    assert pod_security.get("runAsNonRoot") is True, where
    assert pod_security.get("runAsUser") == UID and pod_security.get("runAsGroup") == UID, where
    assert pod_security.get("fsGroup") == UID, where
    assert pod_security.get("seccompProfile") == {"type": "RuntimeDefault"}, where


def _assert_locked_container(security: dict[str, Any], where: str) -> None:
    assert security.get("allowPrivilegeEscalation") is False, where
    assert security.get("capabilities", {}).get("drop") == ["ALL"], where
    assert not security.get("privileged"), where
    assert security.get("runAsUser", UID) != 0, where


def _assert_bounded(resources: dict[str, Any], where: str, *, gpu: bool = False) -> None:
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    for name in ("cpu", "memory"):
        assert name in requests and name in limits, f"{where}: {name} request and limit"
        assert parse_quantity(requests[name]) <= parse_quantity(limits[name]), f"{where}: {name}"
    if gpu:
        assert str(limits.get("nvidia.com/gpu")) == "1", where
    else:
        assert "nvidia.com/gpu" not in limits and "nvidia.com/gpu" not in requests, where


def _assert_hygienic_job(job: Any, *, gpu: bool) -> dict[str, Any]:
    doc = _as_dict(job)
    _validate(doc)
    assert doc["spec"]["backoffLimit"] == 0
    pod = doc["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    _assert_non_root_pod(pod["securityContext"], "job pod")
    for container in pod["containers"] + pod.get("initContainers", []):
        _assert_locked_container(container.get("securityContext", {}), container["name"])
        _assert_bounded(container.get("resources", {}), container["name"], gpu=gpu)
    return pod


# --- the run launcher: the instance file, and the Helm values as the chart renders them ---------


def _helm_launcher_config(values: dict[str, Any]) -> dict[str, Any]:
    """``run_launcher.config`` as the chart's ``dagsterYaml.runLauncher.k8s`` template writes it."""
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    run_k8s = launcher.get("runK8sConfig", {})
    keys = {
        "containerConfig": "container_config",
        "podSpecConfig": "pod_spec_config",
        "podTemplateSpecMetadata": "pod_template_spec_metadata",
        "jobSpecConfig": "job_spec_config",
        "jobMetadata": "job_metadata",
    }
    config: dict[str, Any] = {
        "load_incluster_config": launcher.get("loadInclusterConfig", True),
        "job_namespace": launcher.get("jobNamespace") or "dubbing",
        "image_pull_policy": launcher.get("imagePullPolicy", "Always"),
        "service_account_name": values["global"]["serviceAccountName"],
        "dagster_home": "/opt/dagster/dagster_home",
        "instance_config_map": "dagster-instance",
        "postgres_password_secret": "dagster-postgresql-secret",
        "env_config_maps": [m["name"] for m in launcher.get("envConfigMaps", [])],
        "env_secrets": [s["name"] for s in launcher.get("envSecrets", [])],
        "volume_mounts": launcher.get("volumeMounts", []),
        "volumes": launcher.get("volumes", []),
        "run_k8s_config": {keys[k]: v for k, v in run_k8s.items() if v},
    }
    if launcher.get("resources"):
        config["resources"] = launcher["resources"]
    if launcher.get("securityContext"):
        config["security_context"] = launcher["securityContext"]
    return config


def _launcher(raw_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    """A real ``K8sRunLauncher`` from its instance config (no cluster: kube config not loaded)."""
    from dagster._config import process_config
    from dagster_k8s import K8sRunLauncher

    monkeypatch.setenv("DAGSTER_K8S_NAMESPACE", "dubbing")
    processed = process_config(K8sRunLauncher.config_type(), raw_config)
    assert processed.success and processed.value is not None, processed.errors
    monkeypatch.setattr("dagster_k8s.launcher.load_kubernetes_config", lambda **_: None)
    return K8sRunLauncher(**processed.value)


@pytest.fixture(params=["instance", "helm"])
def launcher(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    if request.param == "instance":
        return _launcher(_instance_yaml()["run_launcher"]["config"], monkeypatch)
    return _launcher(_helm_launcher_config(_values()), monkeypatch)


def _run() -> dg.DagsterRun:
    return dg.DagsterRun(job_name="dub", run_id="0f2c7b1e-hygiene")


def _run_worker_job(launcher: Any) -> Any:
    """What ``K8sRunLauncher.launch_run`` creates for a run."""
    from dagster_k8s.job import construct_dagster_k8s_job

    context = launcher.get_container_context_for_run(_run())
    return construct_dagster_k8s_job(
        context.get_k8s_job_config(IMAGE, launcher),
        ["dagster", "api", "execute_run"],
        "dagster-run-0f2c7b1e",
        user_defined_k8s_config=context.run_k8s_config,
        component="run_worker",
    )


def _step_job(launcher: Any, op_tags: dict[str, str]) -> Any:
    """What ``k8s_job_executor`` creates for a step (``K8sStepHandler._get_container_context``).

    The project's executor carries no config of its own (asserted below), so a step pod is the run
    launcher's config with the op's ``dagster-k8s/config`` tag merged over it.
    """
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import construct_dagster_k8s_job, get_user_defined_k8s_config

    context = K8sContainerContext.create_for_run(_run(), launcher, include_run_tags=False).merge(
        K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(op_tags))
    )
    return construct_dagster_k8s_job(
        context.get_k8s_job_config(IMAGE, launcher),
        ["dagster", "api", "execute_step"],
        "dagster-step-0f2c7b1e",
        user_defined_k8s_config=context.run_k8s_config,
        component="step_worker",
    )


def test_the_executor_adds_no_step_config() -> None:
    """The premise of ``_step_job``: step pods are the launcher's config plus the op tags."""
    from dagster_k8s import k8s_job_executor

    from dubbing_pipeline.definitions import executor_for

    assert executor_for(PROD_GPU) is k8s_job_executor


def test_gpu_and_cpu_step_jobs_are_non_root_bounded_and_never_restarted(launcher: Any) -> None:
    for stage in GPU_PROVIDERS:
        assert gpu_pool(PROD_GPU, stage) == "gpu"
        pod = _assert_hygienic_job(_step_job(launcher, gpu_op_tags(PROD_GPU, stage)), gpu=True)
        assert pod["nodeSelector"] == {"dubbing.io/pool": "gpu"}, stage
        assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"]), stage
    for settings in (Settings(), Settings(deployment="production", device="cpu")):
        assert gpu_op_tags(settings, "stems") == {} and gpu_pool(settings, "stems") is None
    pod = _assert_hygienic_job(_step_job(launcher, {"stage": "mix"}), gpu=False)
    assert pod["nodeSelector"] == {"dubbing.io/pool": "cpu"} and not pod.get("tolerations")
    # the models volume read-only, the scratch volume writable by the pod's group
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["models"].get("readOnly") is True and not mounts["scratch"].get("readOnly")


def test_run_worker_jobs_are_non_root_bounded_and_never_restarted(launcher: Any) -> None:
    pod = _assert_hygienic_job(_run_worker_job(launcher), gpu=False)
    assert pod["nodeSelector"] == {"dubbing.io/pool": "cpu"}
    # stated, not inherited from dagster-k8s' default (which has been 0, but is not ours to rely on)
    job_spec = launcher.run_k8s_config["job_spec_config"]
    assert job_spec.get("backoff_limit", job_spec.get("backoffLimit")) == 0


def test_a_gpu_op_tag_merges_into_the_step_resources_instead_of_replacing_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The op tag adds the GPU: the launcher's CPU/memory requests and limits survive the merge."""
    launcher = _launcher(_instance_yaml()["run_launcher"]["config"], monkeypatch)
    cpu = _as_dict(_step_job(launcher, {}))["spec"]["template"]["spec"]["containers"][0]["resources"]
    tags = gpu_op_tags(PROD_GPU, "speech")
    gpu = _as_dict(_step_job(launcher, tags))["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert gpu["requests"] == cpu["requests"]
    assert gpu["limits"] == {**cpu["limits"], "nvidia.com/gpu": "1"}


def test_the_helm_values_and_the_instance_file_launch_the_same_pods(monkeypatch: pytest.MonkeyPatch) -> None:
    from_file = _launcher(_instance_yaml()["run_launcher"]["config"], monkeypatch)
    from_helm = _launcher(_helm_launcher_config(_values()), monkeypatch)
    for build in (_run_worker_job, lambda lc: _step_job(lc, gpu_op_tags(PROD_GPU, "transcript"))):
        file_job, helm_job = _as_dict(build(from_file)), _as_dict(build(from_helm))
        assert file_job["spec"]["backoffLimit"] == helm_job["spec"]["backoffLimit"] == 0
        file_pod, helm_pod = file_job["spec"]["template"]["spec"], helm_job["spec"]["template"]["spec"]
        for key in ("securityContext", "nodeSelector", "tolerations", "volumes"):
            assert file_pod.get(key) == helm_pod.get(key), key
        for key in ("securityContext", "resources", "volumeMounts", "envFrom", "imagePullPolicy"):
            assert file_pod["containers"][0].get(key) == helm_pod["containers"][0].get(key), key


# --- the chart's own pods ---------------------------------------------------------------------


def _chart_pods(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    pods = {"dagsterWebserver": values["dagsterWebserver"], "dagsterDaemon": values["dagsterDaemon"]}
    for deployment in values["dagster-user-deployments"]["deployments"]:
        pods[f"user deployment {deployment['name']}"] = deployment
    return pods


def test_the_charts_own_pods_are_non_root_and_bounded() -> None:
    for where, section in _chart_pods(_values()).items():
        _assert_non_root_pod(section["podSecurityContext"], where)
        _assert_locked_container(section["securityContext"], where)
        _assert_bounded(section["resources"], where)
        if where in ("dagsterWebserver", "dagsterDaemon"):  # their check-db-ready init container
            _assert_bounded(section["initContainerResources"], f"{where} init containers")
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "values-check"},
            "spec": {
                "securityContext": section["podSecurityContext"],
                "nodeSelector": section.get("nodeSelector", {}),
                "volumes": section.get("volumes", []),
                "containers": [
                    {
                        "name": "main",
                        "image": "x",
                        "securityContext": section["securityContext"],
                        "resources": section["resources"],
                        "volumeMounts": section.get("volumeMounts", []),
                    }
                ],
                "initContainers": [
                    {"name": "init", "image": "x", "securityContext": section["securityContext"],
                     "resources": section.get("initContainerResources", section["resources"])}
                ],
            },
        }  # fmt: skip
        _validate(pod)


def test_the_non_root_webserver_may_bind_its_port() -> None:
    """The chart serves the UI on ``service.port`` (80 by default) inside the container."""
    webserver = _values()["dagsterWebserver"]
    port = webserver.get("service", {}).get("port", 80)
    if port < 1024:
        sysctls = {s["name"]: int(s["value"]) for s in webserver["podSecurityContext"].get("sysctls", [])}
        assert sysctls.get("net.ipv4.ip_unprivileged_port_start", 1024) <= port


def test_code_server_config_does_not_leak_into_run_and_step_pods(monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``includeConfigInLaunchedRuns`` the chart hands the code server's resources to every
    run and step pod, over the run launcher's (dagster-io/dagster#22766): it must stay off."""
    from dagster_k8s.container_context import K8sContainerContext

    values = _values()
    launcher = _launcher(_helm_launcher_config(values), monkeypatch)
    for deployment in values["dagster-user-deployments"]["deployments"]:
        assert deployment["includeConfigInLaunchedRuns"] == {"enabled": False}
        # what it would do if on (the chart's dagsterUserDeployments.k8sContainerContext)
        leaked = K8sContainerContext.create_for_run(_run(), launcher, include_run_tags=False).merge(
            K8sContainerContext(resources=deployment["resources"])
        )
        merged = leaked.run_k8s_config.container_config["resources"]
        assert merged["limits"] != values["runLauncher"]["config"]["k8sRunLauncher"]["resources"]["limits"]


# --- manifests and the image --------------------------------------------------------------------


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    if doc["kind"] == "Pod":
        spec: dict[str, Any] = doc["spec"]
    elif doc["kind"] == "CronJob":
        spec = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    else:
        spec = doc["spec"]["template"]["spec"]
    return spec


def test_manifest_pods_are_non_root_and_bounded() -> None:
    pods = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "values.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] in POD_KINDS:
                pods.append((f"{path.name}:{doc['metadata']['name']}", _pod_spec(doc)))
    assert "vllm.yaml:vllm" in dict(pods)
    for where, pod in pods:
        _assert_non_root_pod(pod["securityContext"], where)
        mounts = set()
        for container in pod["containers"] + pod.get("initContainers", []):
            _assert_locked_container(container["securityContext"], f"{where} {container['name']}")
            gpu = "nvidia.com/gpu" in container["resources"].get("limits", {})
            _assert_bounded(container["resources"], f"{where} {container['name']}", gpu=gpu)
            mounts |= {m["mountPath"] for m in container.get("volumeMounts", [])}
            # a non-root user whose image has no home for it gets a writable one from a volume
            home = next((e["value"] for e in container.get("env", []) if e["name"] == "HOME"), None)
            assert home is None or home in mounts, f"{where}: HOME {home} is not a volume"


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", (K8S / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_the_image_runs_as_the_pods_non_root_user() -> None:
    instructions = _dockerfile_instructions()
    users = [i for i, (word, _) in enumerate(instructions) if word == "USER"]
    assert users, "the image must not run as root"
    user = instructions[users[-1]][1]
    uid, _, gid = user.partition(":")
    runs = [shlex.split(rest) for word, rest in instructions if word == "RUN"]
    created = {}
    for args in runs:
        for i, arg in enumerate(args):
            if arg == "useradd":
                cmd = args[i + 1 : args.index("&&", i) if "&&" in args[i:] else None]
                created[cmd[-1]] = int(cmd[cmd.index("--uid") + 1])
    numeric = int(uid) if uid.isdigit() else created[uid]
    assert numeric == UID != 0
    assert (int(gid) if gid else UID) == UID
    assert UID in created.values(), "the user exists in /etc/passwd (its home, getpass)"
    # what the pods write belongs to the user: $DAGSTER_HOME, /scratch and its home (caches)
    setup = " ".join(" ".join(a) for a in runs if "useradd" in a)
    chown = re.search(rf"chown (?:-R )?{UID}:{UID} ((?:[^&]+))", setup)
    assert chown and {"$DAGSTER_HOME", "/scratch"} <= set(chown.group(1).split())
    home = re.search(r"--create-home --home-dir (\S+)", setup)
    env = " ".join(rest for word, rest in instructions if word == "ENV")
    assert home and f"HOME={home.group(1)}" in env


# --- pool slots -----------------------------------------------------------------------------


def _helm_run_monitoring(values: dict[str, Any]) -> dict[str, Any]:
    """``run_monitoring`` as the chart's ``configmap-instance.yaml`` writes it."""
    rm = values["dagsterDaemon"]["runMonitoring"]
    keys = {
        "enabled": "enabled",
        "startTimeoutSeconds": "start_timeout_seconds",
        "cancelTimeoutSeconds": "cancel_timeout_seconds",
        "maxResumeRunAttempts": "max_resume_run_attempts",
        "pollIntervalSeconds": "poll_interval_seconds",
        "freeSlotsAfterRunEndSeconds": "free_slots_after_run_end_seconds",
    }
    return {keys[k]: v for k, v in rm.items() if k in keys}


def test_run_monitoring_is_on_with_timeouts_and_frees_slots(monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster._config import process_config
    from dagster._core.instance.config import dagster_instance_config, dagster_instance_config_schema

    for name in ("HOST", "PORT", "USER", "PASSWORD", "DB"):
        monkeypatch.setenv(f"DAGSTER_PG_{name}", "5432" if name == "PORT" else "unused")
    monkeypatch.setenv("DAGSTER_K8S_NAMESPACE", "dubbing")
    config, _ = dagster_instance_config(str(PROD_HOME))  # dagster's instance schema validates it
    monitoring = config["run_monitoring"]
    assert monitoring["enabled"] is True
    assert monitoring["start_timeout_seconds"] > 0 and monitoring["cancel_timeout_seconds"] > 0
    assert monitoring["max_resume_run_attempts"] >= 1
    assert 0 < monitoring["poll_interval_seconds"] <= monitoring["free_slots_after_run_end_seconds"]
    assert config["concurrency"]["pools"]["default_limit"] >= 1
    helm = _helm_run_monitoring(_values())
    schema = dagster_instance_config_schema()["run_monitoring"].config_type
    assert process_config(schema, helm).success
    assert helm == monitoring


def _slots_held_after(run_monitoring: dict[str, Any], seconds_after_cancel: int) -> set[str]:
    """A run holding a ``gpu`` slot is cancelled (its step pod killed before it released the slot);
    the monitoring daemon's slot pass runs ``seconds_after_cancel`` later."""
    from dagster._daemon.monitoring import concurrency as slots

    overrides = {
        # the default launcher cannot resume a run; the real one can (K8sRunLauncher)
        "run_monitoring": {**run_monitoring, "max_resume_run_attempts": 0},
        "concurrency": {"pools": {"granularity": "op", "default_limit": 1}},
    }
    with dg.instance_for_test(overrides=overrides) as instance:
        storage = instance.event_log_storage
        run = dg.DagsterRun(job_name="dub", run_id="5d9e0c2a-cancelled", status=dg.DagsterRunStatus.STARTED)
        instance.add_run(run)
        storage.set_concurrency_slots("gpu", 1)
        claim = storage.claim_concurrency_slot("gpu", run.run_id, "transcribe_chunk[0]")
        assert claim.is_claimed
        instance.report_run_canceled(run)
        later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds_after_cancel)
        context = mock.MagicMock(instance=instance)
        with mock.patch.object(slots, "get_current_datetime", return_value=later):
            list(slots.execute_concurrency_slots_iteration(context, logging.getLogger(__name__)))
        held: set[str] = storage.get_concurrency_run_ids()
        return held


def test_a_cancelled_runs_gpu_slot_is_freed_by_run_monitoring() -> None:
    monitoring = _instance_yaml()["run_monitoring"]
    grace = monitoring["free_slots_after_run_end_seconds"]
    assert _slots_held_after(monitoring, grace - 30) == {"5d9e0c2a-cancelled"}
    assert _slots_held_after(monitoring, grace + 30) == set()
    # without the setting the slot stays taken for good: the gpu pool would shrink with every cancel
    without = {k: v for k, v in monitoring.items() if k != "free_slots_after_run_end_seconds"}
    assert _slots_held_after(without, 7 * 24 * 3600) == {"5d9e0c2a-cancelled"}
