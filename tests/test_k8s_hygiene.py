"""Pool and pod hygiene of the production deployment (k8s/, dagster_home/production).

* Pool slots: run monitoring frees the ``gpu`` pool slots a cancelled or failed run still holds.
* One attempt per Kubernetes job (``backoffLimit: 0``): Dagster retries a lost step or run worker,
  Kubernetes never restarts one behind its back (dagster-io/dagster#33755).
* Every pod runs as the non-root user of ``k8s/Dockerfile`` on a read-only root filesystem (what it
  writes goes to emptyDir volumes) with CPU/memory requests and limits.
* Least privilege: the run launcher's account may touch Jobs, pods and pod logs in its namespace and
  nothing more (``k8s/rbac.yaml``); step pods and vLLM run under accounts without API rights or
  tokens; a NetworkPolicy default-denies the namespace and opens only what each pod needs.
* vLLM is the release the request bodies are validated against, with arguments that release parses.

Run-worker and step jobs are built by dagster-k8s' own code (the run launcher, and the project's
``k8s_job_executor`` with its step handler) from the run launcher of both the production instance
file and the Helm values (rendered as the chart's ``_run-launcher.tpl`` does), then validated
against the Kubernetes schemas.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import logging
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
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
NAMESPACE = "dubbing"
DAGSTER_HOME = "/opt/dagster/dagster_home"
IMAGE_HOME = "/home/dubbing"  # the HOME of k8s/Dockerfile's user
LAUNCHER_ACCOUNT = "dagster"  # webserver, daemon, run workers: k8s/rbac.yaml's Role
STEP_ACCOUNT = "dubbing-step"  # step pods: no Kubernetes rights, no token

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
    assert security.get("readOnlyRootFilesystem") is True, f"{where}: a read-only root filesystem"
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


def _writable_mounts(pod: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
    """mountPath -> volume type of the container's writable mounts."""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    out = {}
    for mount in container.get("volumeMounts", []):
        if not mount.get("readOnly"):
            kinds = [k for k in volumes[mount["name"]] if k != "name"]
            out[mount["mountPath"]] = kinds[0]
    return out


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
        # the read-only root filesystem: what the image's code writes is on emptyDirs
        writable = _writable_mounts(pod, container)
        for path in ("/tmp", IMAGE_HOME, "/scratch", f"{DAGSTER_HOME}/storage"):
            assert writable.get(path) == "emptyDir", f"{container['name']}: {path} writable"
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
        # the chart's dagster.serviceAccountName: global.serviceAccountName, or serviceAccount.name
        "service_account_name": values.get("global", {}).get("serviceAccountName")
        or values["serviceAccount"]["name"],
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


def _executor_config() -> dict[str, Any]:
    """The project's production executor's config, as a run with no ``execution`` config gets it."""
    from dagster._config import process_config
    from dagster._core.definitions.definition_config_schema import ConfiguredDefinitionConfigSchema

    from dubbing_pipeline.definitions import executor_for

    schema = executor_for(PROD_GPU).config_schema
    if isinstance(schema, ConfiguredDefinitionConfigSchema):  # k8s_job_executor.configured(...)
        resolved = schema.resolve_config({})
        assert resolved.success, resolved.errors
        config: dict[str, Any] = resolved.value["config"]
        return config
    processed = process_config(schema.config_type, {})
    assert processed.success, processed.errors
    return dict(processed.value)


def _step_handler(launcher: Any) -> Any:
    """The project's executor as a run worker starts it: its ``K8sStepHandler`` (no cluster)."""
    from dubbing_pipeline.definitions import executor_for

    init = SimpleNamespace(
        instance=SimpleNamespace(run_launcher=launcher), executor_config=_executor_config()
    )
    with mock.patch("kubernetes.config.load_incluster_config"):
        executor = executor_for(PROD_GPU).executor_creation_fn(init)
    return executor._step_handler


def _step_job(launcher: Any, op_tags: dict[str, str]) -> Any:
    """What ``k8s_job_executor`` creates for a step: the step handler's own container context (the
    launcher's config, the executor's ``step_k8s_config``, the op's ``dagster-k8s/config`` tag)."""
    from dagster_k8s.job import construct_dagster_k8s_job

    handler = _step_handler(launcher)
    step = SimpleNamespace(
        execute_step_args=SimpleNamespace(step_keys_to_execute=["stage_op"]),
        dagster_run=_run(),
        instance=SimpleNamespace(run_launcher=launcher),
        step_tags={"stage_op": op_tags},
        get_step_context=lambda key: SimpleNamespace(step=SimpleNamespace(op_name="stage_op")),
    )
    context = handler._get_container_context(step)
    job_config = context.get_k8s_job_config(handler._executor_image, launcher)
    if not job_config.job_image:
        job_config = job_config.with_image(IMAGE)
    return construct_dagster_k8s_job(
        job_config,
        ["dagster", "api", "execute_step"],
        "dagster-step-0f2c7b1e",
        user_defined_k8s_config=context.run_k8s_config,
        component="step_worker",
    )


def test_steps_run_under_dagster_k8s_own_executor() -> None:
    """The premise of ``_step_job``: the production executor is ``k8s_job_executor`` (configured or not)."""
    from dagster_k8s import k8s_job_executor

    from dubbing_pipeline.definitions import executor_for

    executor = executor_for(PROD_GPU)
    assert executor.executor_creation_fn is k8s_job_executor.executor_creation_fn
    assert _executor_config().get("job_namespace") in (None, NAMESPACE)


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
        for key in (
            "securityContext", "nodeSelector", "tolerations", "volumes",
            "serviceAccountName", "automountServiceAccountToken",
        ):  # fmt: skip
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
        # the read-only root filesystem: temporary files and the instance's local storage on
        # emptyDirs; the code server (the project's image) writes its user's home too
        writable = _writable_mounts(pod["spec"], pod["spec"]["containers"][0])
        needed = ["/tmp", f"{DAGSTER_HOME}/storage"]
        if where.startswith("user deployment"):
            needed.append(IMAGE_HOME)
        for path in needed:
            assert writable.get(path) == "emptyDir", f"{where}: {path} writable"


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


def _manifests() -> list[tuple[str, dict[str, Any]]]:
    """Every object of the plain manifests in ``k8s/`` (not the Helm values), with its file name."""
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "values.yaml":
            continue
        docs += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def _manifest(kind: str, name: str) -> dict[str, Any]:
    found = [doc for _, doc in _manifests() if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(found) == 1, f"one {kind} {name} in k8s/"
    return found[0]


def test_manifest_pods_are_non_root_and_bounded() -> None:
    pods = [
        (f"{name}:{doc['metadata']['name']}", _pod_spec(doc))
        for name, doc in _manifests()
        if doc["kind"] in POD_KINDS
    ]
    assert "vllm.yaml:vllm" in dict(pods)
    for where, pod in pods:
        _assert_non_root_pod(pod["securityContext"], where)
        # an account of its own, without an API token (none of them talks to Kubernetes)
        assert pod.get("serviceAccountName", "default") != "default", where
        assert pod.get("automountServiceAccountToken") is False, where
        for container in pod["containers"] + pod.get("initContainers", []):
            _assert_locked_container(container["securityContext"], f"{where} {container['name']}")
            gpu = "nvidia.com/gpu" in container["resources"].get("limits", {})
            _assert_bounded(container["resources"], f"{where} {container['name']}", gpu=gpu)
            writable = _writable_mounts(pod, container)
            assert writable.get("/tmp") == "emptyDir", f"{where}: /tmp writable"
            # a non-root user whose image has no home for it gets a writable one from a volume
            home = next((e["value"] for e in container.get("env", []) if e["name"] == "HOME"), None)
            assert home is None or writable.get(home) == "emptyDir", f"{where}: HOME {home} is not a volume"


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


# --- service accounts and RBAC ----------------------------------------------------------------


def test_run_workers_run_as_the_launcher_account_with_its_token(launcher: Any) -> None:
    """Run workers launch the step jobs: the launcher's account, its API token mounted."""
    pod = _as_dict(_run_worker_job(launcher))["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == LAUNCHER_ACCOUNT
    assert pod.get("automountServiceAccountToken", True) is True
    assert launcher.get_container_context_for_run(_run()).namespace == NAMESPACE


def test_step_pods_run_under_their_own_account_without_a_token(launcher: Any) -> None:
    """Nothing set on the run launcher can tell step pods from run workers: the executor does it."""
    for tags in [gpu_op_tags(PROD_GPU, stage) for stage in GPU_PROVIDERS] + [{}]:
        pod = _as_dict(_step_job(launcher, tags))["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == STEP_ACCOUNT, tags
        assert pod["automountServiceAccountToken"] is False, tags


def test_the_launcher_role_is_namespaced_and_minimal() -> None:
    """Jobs (create, delete, read), pods (read, delete: terminating a job deletes its pods), pod
    logs (read): nothing else, nowhere else, and no wildcard."""
    kinds = {doc["kind"] for _, doc in _manifests()}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}
    role = _manifest("Role", "dagster-run-launcher")
    allowed = {
        ("batch", "jobs"): {"create", "delete", "get", "list", "watch"},
        ("batch", "jobs/status"): {"get"},
        ("", "pods"): {"get", "list", "watch", "delete"},
        ("", "pods/log"): {"get"},
    }
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert "resourceNames" not in rule or rule["resourceNames"]
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    assert granted == allowed
    binding = _manifest("RoleBinding", "dagster-run-launcher")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": LAUNCHER_ACCOUNT, "namespace": NAMESPACE}
    ]
    # the run launcher of both the instance file and the chart uses that account
    assert _instance_yaml()["run_launcher"]["config"]["service_account_name"] == LAUNCHER_ACCOUNT
    assert _helm_launcher_config(_values())["service_account_name"] == LAUNCHER_ACCOUNT
    # only it is bound to anything
    bound = [s for _, doc in _manifests() if doc["kind"] == "RoleBinding" for s in doc["subjects"]]
    assert {s["name"] for s in bound} == {LAUNCHER_ACCOUNT}


def test_the_charts_own_rbac_is_off_and_the_code_server_has_its_own_account() -> None:
    """The chart's Roles grant more (pod create/patch, events; the subchart every verb on jobs
    and pods): both off. The code server gets an account of its own, without a binding."""
    values = _values()
    assert values["rbacEnabled"] is False
    assert values["serviceAccount"]["create"] is True and values["serviceAccount"]["name"] == LAUNCHER_ACCOUNT
    assert not values.get("global", {}).get("serviceAccountName"), "it would override every account below"
    user = values["dagster-user-deployments"]
    assert user["rbacEnabled"] is False
    assert user["serviceAccount"]["create"] is True
    assert user["serviceAccount"]["name"] not in (LAUNCHER_ACCOUNT, STEP_ACCOUNT, "default")
    for deployment in user["deployments"]:
        assert "serviceAccount" not in deployment  # a per-deployment account would bypass this one


_ROLE_ARN = re.compile(r"^arn:aws:iam::[A-Z0-9_]+:role/[\w+=,.@-]+$")


def test_aws_access_comes_from_pod_identity_not_keys() -> None:
    """The accounts of pods that read S3 carry an IRSA role; no manifest or values file holds a key,
    and the pipeline's Secret is referenced by name only."""
    step = _manifest("ServiceAccount", STEP_ACCOUNT)
    assert step["automountServiceAccountToken"] is False
    code_server = _values()["dagster-user-deployments"]["serviceAccount"]
    for role in (step["metadata"]["annotations"], code_server["annotations"]):
        assert _ROLE_ARN.match(role["eks.amazonaws.com/role-arn"])
    # the launcher's account gets none: the webserver, daemon and run workers read no S3
    assert "eks.amazonaws.com/role-arn" not in (_values()["serviceAccount"].get("annotations") or {})
    vllm = _manifest("ServiceAccount", "vllm")
    assert vllm["automountServiceAccountToken"] is False and not vllm["metadata"].get("annotations")
    texts = [p.read_text() for p in sorted(K8S.glob("*.yaml"))] + [(PROD_HOME / "dagster.yaml").read_text()]
    for text in texts:
        assert not re.search(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b", text)
        assert not re.search(
            r"(?m)^\s*(AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY|DUBBING_LLM_API_KEY)\s*:", text
        )
    assert not [doc for _, doc in _manifests() if doc["kind"] == "Secret"]


# --- namespace --------------------------------------------------------------------------------


def test_every_manifest_names_the_dubbing_namespace() -> None:
    namespace = _manifest("Namespace", NAMESPACE)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for name, doc in _manifests():
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == NAMESPACE, (
                f"{name}: {doc['kind']} {doc['metadata']['name']}"
            )
        _validate(doc)


# --- network policy ---------------------------------------------------------------------------


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes label selector against a pod's labels."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if (op == "In" and labels.get(key) not in values) or (op == "NotIn" and labels.get(key) in values):
            return False
        if (op == "Exists" and key not in labels) or (op == "DoesNotExist" and key in labels):
            return False
    return True


def _policies() -> list[dict[str, Any]]:
    return [doc for _, doc in _manifests() if doc["kind"] == "NetworkPolicy"]


def _egress(labels: dict[str, str]) -> set[tuple[str, int, str]]:
    """(protocol, port, destination) the policies let a pod with ``labels`` reach."""
    out = set()
    for policy in _policies():
        if not _selects(policy["spec"]["podSelector"], labels):
            continue
        for rule in policy["spec"].get("egress") or []:
            assert rule.get("ports"), f"{policy['metadata']['name']}: an egress rule without ports"
            for peer in rule.get("to") or [{"ipBlock": {"cidr": "any"}}]:
                if "ipBlock" in peer:
                    where = peer["ipBlock"]["cidr"]
                    assert where == "any" or ipaddress.ip_network(where)
                else:
                    where = json.dumps(peer, sort_keys=True)
                for port in rule["ports"]:
                    out.add((port.get("protocol", "TCP"), port["port"], where))
    return out


def _ingress(labels: dict[str, str]) -> list[tuple[Any, int]]:
    out = []
    for policy in _policies():
        if _selects(policy["spec"]["podSelector"], labels) and "Ingress" in policy["spec"]["policyTypes"]:
            for rule in policy["spec"].get("ingress") or []:
                for port in rule["ports"]:
                    out.append((rule.get("from"), port["port"]))
    return out


def _pod_labels(job: Any) -> dict[str, str]:
    labels: dict[str, str] = _as_dict(job)["spec"]["template"]["metadata"]["labels"]
    return labels


DNS = {("UDP", 53, "kube-dns"), ("TCP", 53, "kube-dns")}
VLLM_LABELS = {"app.kubernetes.io/name": "vllm", "app.kubernetes.io/part-of": "dubbing-pipeline"}


def _named(egress: set[tuple[str, int, str]]) -> set[tuple[str, int, str]]:
    """Destinations by what they are: kube-dns, vllm, an address block."""
    out = set()
    for proto, port, where in egress:
        if "kube-dns" in where:
            where = "kube-dns"
        elif '"vllm"' in where:
            where = "vllm"
        out.add((proto, port, where))
    return out


def test_the_namespace_is_default_deny() -> None:
    deny = [
        p
        for p in _policies()
        if p["spec"]["podSelector"] == {} and not p["spec"].get("ingress") and not p["spec"].get("egress")
    ]
    assert deny and set(deny[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    for policy in _policies():
        _validate(policy)


def test_run_and_step_pods_reach_only_postgres_s3_vllm_and_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the labels dagster-k8s really puts on them; nothing may connect to them."""
    launcher = _launcher(_instance_yaml()["run_launcher"]["config"], monkeypatch)
    step = _pod_labels(_step_job(launcher, gpu_op_tags(PROD_GPU, "speech")))
    run = _pod_labels(_run_worker_job(launcher))
    assert (
        step["app.kubernetes.io/component"] == "step_worker"
        and run["app.kubernetes.io/component"] == "run_worker"
    )
    common = DNS | {
        ("TCP", 5432, "0.0.0.0/0"),  # PostgreSQL
        ("TCP", 443, "0.0.0.0/0"),  # S3 / its VPC endpoint, STS
        ("TCP", 80, "169.254.170.23/32"),  # the EKS Pod Identity agent (not the metadata service)
        ("TCP", 8000, "vllm"),
    }
    assert _named(_egress(step)) == common
    # run workers also reach the Kubernetes API (443 on EKS, 6443 elsewhere): they launch steps
    assert _named(_egress(run)) == common | {("TCP", 6443, "0.0.0.0/0")}
    assert _ingress(step) == [] and _ingress(run) == []


def test_vllm_is_reached_only_by_the_pipeline_pods_and_reaches_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    launcher = _launcher(_instance_yaml()["run_launcher"]["config"], monkeypatch)
    vllm_pod = _manifest("Deployment", "vllm")["spec"]["template"]["metadata"]["labels"]
    assert vllm_pod == VLLM_LABELS
    ingress = _ingress(vllm_pod)
    assert [port for _, port in ingress] == [8000]
    peers = ingress[0][0]
    assert peers and all(set(peer) == {"podSelector"} for peer in peers)  # this namespace's pods only
    step = _pod_labels(_step_job(launcher, {}))
    run = _pod_labels(_run_worker_job(launcher))
    chart = {
        "app.kubernetes.io/name": "dagster",
        "app.kubernetes.io/instance": "dagster",
        "component": "dagster-webserver",
    }
    admitted = lambda labels: any(_selects(peer["podSelector"], labels) for peer in peers)  # noqa: E731
    assert admitted(step) and admitted(run) and not admitted(chart) and not admitted(VLLM_LABELS)
    assert _named(_egress(vllm_pod)) == DNS


# --- vLLM ---------------------------------------------------------------------------------------


def _pinned_vllm() -> str:
    pins = re.findall(r"\bvllm==([0-9][\w.]*)", (ROOT / ".ci" / "install-providers").read_text())
    assert len(set(pins)) == 1, pins
    return pins[0]


def _vllm_container() -> dict[str, Any]:
    containers = _pod_spec(_manifest("Deployment", "vllm"))["containers"]
    container: dict[str, Any] = next(c for c in containers if c["name"] == "vllm")
    return container


def test_vllm_deploys_the_release_the_tests_validate() -> None:
    """tests/providers/test_vllm_schema.py checks request bodies against the pinned vLLM."""
    image = _vllm_container()["image"]
    repository, _, tag = image.rpartition(":")
    assert repository == "vllm/vllm-openai"
    assert tag == f"v{_pinned_vllm()}"


def test_vllm_requires_its_api_key_from_a_secret() -> None:
    env = {e["name"]: e for e in _vllm_container()["env"]}
    ref = env["VLLM_API_KEY"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "dubbing-pipeline-env", "key": "DUBBING_LLM_API_KEY"}  # not optional
    # the pipeline pods read the same Secret (DUBBING_LLM_API_KEY) as environment
    assert "dubbing-pipeline-env" in _instance_yaml()["run_launcher"]["config"]["env_secrets"]


_PARSE_VLLM_ARGS = """
import json, sys
import vllm
from vllm.entrypoints.common.cli_args import make_arg_parser, validate_parsed_serve_args
from vllm.utils.argparse_utils import FlexibleArgumentParser
parser = FlexibleArgumentParser()
make_arg_parser(parser.add_subparsers(dest="subparser").add_parser("serve"))
args = parser.parse_args(["serve", *json.loads(sys.argv[1])])
validate_parsed_serve_args(args)
print(json.dumps({"version": vllm.__version__, "model": args.model_tag, "name": args.served_model_name,
                  "host": args.host, "port": args.port}))
"""


def test_vllm_args_parse_with_that_release() -> None:
    """The image's entrypoint is ``vllm serve``: its arguments go through that release's own
    parser (installed by .ci/install-providers), in a subprocess (vLLM configures logging on import)."""
    container = _vllm_container()
    assert "command" not in container, "the image's entrypoint (vllm serve) is what the args are for"
    env = {**os.environ, "VLLM_TARGET_DEVICE": "cpu", "VLLM_LOGGING_LEVEL": "ERROR"}
    proc = subprocess.run(
        [sys.executable, "-c", _PARSE_VLLM_ARGS, json.dumps(container["args"])],
        capture_output=True, text=True, timeout=600, env=env, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    parsed = json.loads(proc.stdout.strip().splitlines()[-1])
    assert parsed["version"] == _pinned_vllm()
    assert parsed["model"] == "/models/llm/Qwen2.5-7B-Instruct-AWQ"
    config = yaml.safe_load((K8S / "config.yaml").read_text())["data"]
    assert parsed["name"] == [config["DUBBING_LLM_MODEL"]]
    assert config["DUBBING_LLM_URL"] == f"http://vllm.{NAMESPACE}.svc.cluster.local:{parsed['port']}"
    port = _manifest("Service", "vllm")["spec"]["ports"][0]
    assert port["port"] == parsed["port"] and container["ports"][0]["containerPort"] == parsed["port"]


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
