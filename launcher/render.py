"""Job spec → Kubernetes objects (plain dicts). Pure and deterministic: no I/O, no clock.

One run is a ConfigMap (the resolved config), a headless Service (stable DNS for rank 0) and an
Indexed Job with one pod per node that requests all of the node's accelerators; or, with
``kubernetes.scheduler: volcano``, a Volcano Job (gang scheduled; Volcano's svc plugin makes the
headless Service). See ``docs/RUN_CONTRACT.md`` and ``shared/reference/ascend-k8s-facts.md``.

User strings only ever become data (object fields, env values, JSON in the ConfigMap): the
container command is a fixed argv and no shell runs.
"""

from __future__ import annotations

import json
from typing import Any

# The device defaults of the published recipe (its env_npu.sh); the workload's agent applies
# the same table, so a pod and a `reference` run cannot drift apart.
from bevdepth.reference.recipe import NPU_ENV
from bevlaunch.labels import (
    ANNOTATION_RANK,
    LABEL_APP_NAME,
    LABEL_COMPONENT,
    LABEL_KUEUE_QUEUE,
    LABEL_MANAGED_BY,
    LABEL_RUN,
)
from bevlaunch.plan import workload_argv
from bevlaunch.resolve import (
    CONFIG_DIR,
    CONFIG_PATH,
    DATA_MOUNT,
    OUTPUT_MOUNT,
    resolve_config,
)
from bevlaunch.spec import Accelerator, Backend, JobSpec, Scheduler

CONTAINER_NAME = "bevdepth"
VOLCANO_TASK = "worker"
MASTER_PORT = 29500
# podFailurePolicy is GA (on by default, stable fields) from Kubernetes 1.31.
POD_FAILURE_POLICY_SINCE = (1, 31)
# The pod runs every stage of the config (train then eval in the same pods).
COMMAND = tuple(workload_argv(CONFIG_PATH))

RESOURCE_NPU = "huawei.com/Ascend910"
RESOURCE_GPU = "nvidia.com/gpu"
# Atlas 800T A2 (8 x 910B per node); MindCluster's device plugin labels the nodes.
NPU_NODE_SELECTOR = {"accelerator-type": "module-910b-8"}

# Ascend driver files a pod needs when no Ascend Docker Runtime mounts them (all read-only).
ASCEND_HOST_PATHS = (
    ("ascend-driver", "/usr/local/Ascend/driver", "Directory"),
    ("ascend-dcmi", "/usr/local/dcmi", "Directory"),
    ("ascend-npu-smi", "/usr/local/bin/npu-smi", "File"),
    ("ascend-install-info", "/etc/ascend_install.info", "File"),
)


def labels(spec: JobSpec, component: str) -> dict[str, str]:
    """The labels of every object of a run (the pods' node rank is added by Kubernetes)."""
    return {
        LABEL_APP_NAME: "bevdepth",
        LABEL_MANAGED_BY: "bevlaunch",
        LABEL_RUN: spec.name,
        LABEL_COMPONENT: component,
    }


def config_map_name(spec: JobSpec) -> str:
    """The ConfigMap holding the resolved config."""
    return f"{spec.name}-config"


def master_addr(spec: JobSpec) -> str:
    """Rank 0's stable DNS name (pod hostname . headless Service)."""
    if spec.kubernetes.scheduler is Scheduler.VOLCANO:
        return f"{spec.name}-{VOLCANO_TASK}-0.{spec.name}"
    return f"{spec.name}-0.{spec.name}"


def _metadata(spec: JobSpec, name: str, component: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if spec.kubernetes.namespace:
        meta["namespace"] = spec.kubernetes.namespace
    meta["labels"] = labels(spec, component)
    return meta


def render_config_map(spec: JobSpec, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The resolved config as ``config.json``, mounted at ``/etc/bevlaunch`` in every pod."""
    config = resolve_config(spec) if config is None else config
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(spec, config_map_name(spec), "config"),
        "data": {"config.json": json.dumps(config, indent=2) + "\n"},
    }


def render_service(spec: JobSpec) -> dict[str, Any]:
    """Headless Service: pods resolve as ``<job>-<index>.<service>`` before they are ready."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(spec, spec.name, "rendezvous"),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {LABEL_RUN: spec.name, LABEL_COMPONENT: "worker"},
            "ports": [{"name": "rendezvous", "port": MASTER_PORT, "targetPort": MASTER_PORT}],
        },
    }


def _env(spec: JobSpec) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = []
    if spec.kubernetes.scheduler is Scheduler.DEFAULT:
        # The Job controller injects this same variable unless the container defines it
        # (pkg/controller/job/indexed_job_utils.go); defining it keeps the contract visible in
        # the rendered spec. Volcano's env plugin sets VC_TASK_INDEX instead.
        env.append(
            {
                "name": "JOB_COMPLETION_INDEX",
                "valueFrom": {
                    "fieldRef": {"fieldPath": f"metadata.annotations['{ANNOTATION_RANK}']"}
                },
            }
        )
    env += [
        {"name": "BEVLAUNCH_RUN", "value": spec.name},
        {"name": "BEVLAUNCH_NNODES", "value": str(spec.resources.nodes)},
        {"name": "BEVLAUNCH_DEVICES_PER_NODE", "value": str(spec.resources.devices_per_node)},
        {"name": "MASTER_ADDR", "value": master_addr(spec)},
        {"name": "MASTER_PORT", "value": str(MASTER_PORT)},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    user = dict(spec.env)
    if spec.resources.accelerator is Accelerator.NPU:
        env += [{"name": k, "value": v} for k, v in NPU_ENV if k not in user]
        if "HCCL_IF_IP" not in user:
            # Root-info exchange goes over the pod network (no hostNetwork).
            env.append(
                {"name": "HCCL_IF_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
            )
    env += [{"name": k, "value": v} for k, v in sorted(user.items())]
    return env


def _resources(spec: JobSpec) -> dict[str, Any]:
    amounts: dict[str, Any] = {}
    res = spec.resources
    if res.cpu is not None:
        amounts["cpu"] = res.cpu
    if res.memory is not None:
        amounts["memory"] = res.memory
    if res.accelerator is Accelerator.NPU:
        amounts[RESOURCE_NPU] = str(res.devices_per_node)
    elif res.accelerator is Accelerator.GPU:
        amounts[RESOURCE_GPU] = str(res.devices_per_node)
    # Extended resources (devices) must have requests == limits; cpu/memory too (Guaranteed).
    return {"requests": dict(amounts), "limits": dict(amounts)} if amounts else {}


def _volumes(spec: JobSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes: list[dict[str, Any]] = [
        {
            "name": "config",
            "configMap": {
                "name": config_map_name(spec),
                "items": [{"key": "config.json", "path": "config.json"}],
            },
        },
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": spec.resources.shm}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "dshm", "mountPath": "/dev/shm"},
    ]
    data = spec.data
    data_volume: dict[str, Any] | None = None
    data_mount: dict[str, Any] = {"name": "data", "mountPath": DATA_MOUNT, "readOnly": True}
    if data.pvc is not None:
        data_volume = {
            "name": "data",
            "persistentVolumeClaim": {"claimName": data.pvc.claim, "readOnly": True},
        }
        if data.pvc.sub_path:
            data_mount["subPath"] = data.pvc.sub_path
    elif data.host_path is not None:
        data_volume = {"name": "data", "hostPath": {"path": data.host_path, "type": "Directory"}}
    elif data.nfs is not None:
        data_volume = {
            "name": "data",
            "nfs": {"server": data.nfs.server, "path": data.nfs.path, "readOnly": True},
        }
    if data_volume is not None:
        volumes.append(data_volume)
        mounts.append(data_mount)
    output = spec.output.pvc
    if output is not None:
        volumes.append({"name": "output", "persistentVolumeClaim": {"claimName": output.claim}})
        out_mount: dict[str, Any] = {"name": "output", "mountPath": OUTPUT_MOUNT}
        if output.sub_path:
            out_mount["subPath"] = output.sub_path
        mounts.append(out_mount)
    if spec.resources.accelerator is Accelerator.NPU:
        for name, path, kind in ASCEND_HOST_PATHS:
            volumes.append({"name": name, "hostPath": {"path": path, "type": kind}})
            mounts.append({"name": name, "mountPath": path, "readOnly": True})
    return volumes, mounts


def render_pod_template(spec: JobSpec) -> dict[str, Any]:
    """The pod of one node: one container, all the node's devices, fixed argv."""
    volumes, mounts = _volumes(spec)
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "command": list(COMMAND),
        "env": _env(spec),
        "ports": [{"name": "rendezvous", "containerPort": MASTER_PORT}],
        "volumeMounts": mounts,
        "securityContext": {"privileged": False, "allowPrivilegeEscalation": False},
    }
    resources = _resources(spec)
    if resources:
        container["resources"] = resources
    k8s = spec.kubernetes
    pod: dict[str, Any] = {"restartPolicy": "Never"}
    if k8s.scheduler is Scheduler.DEFAULT:
        pod["subdomain"] = spec.name  # the headless Service: <job>-<index>.<name>
    # The workload keeps the newest complete checkpoint on SIGTERM before it exits.
    pod["terminationGracePeriodSeconds"] = 120
    node_selector = {}
    if spec.resources.accelerator is Accelerator.NPU:
        node_selector.update(NPU_NODE_SELECTOR)
    node_selector.update(k8s.node_selector)
    if node_selector:
        pod["nodeSelector"] = node_selector
    if k8s.tolerations:
        pod["tolerations"] = [_toleration(t) for t in k8s.tolerations]
    if k8s.priority_class:
        pod["priorityClassName"] = k8s.priority_class
    if k8s.service_account:
        pod["serviceAccountName"] = k8s.service_account
    if k8s.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": s} for s in k8s.image_pull_secrets]
    pod["containers"] = [container]
    pod["volumes"] = volumes
    return {"metadata": {"labels": labels(spec, "worker")}, "spec": pod}


def _toleration(t: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if t.key is not None:
        out["key"] = t.key
    out["operator"] = t.operator
    if t.value is not None:
        out["value"] = t.value
    if t.effect is not None:
        out["effect"] = t.effect
    if t.toleration_seconds is not None:
        out["tolerationSeconds"] = t.toleration_seconds
    return out


def render_pod_failure_policy(spec: JobSpec) -> dict[str, Any]:
    """A rank that exits non-zero fails the whole Job at once (``FailJob``).

    A pod disrupted by the cluster (eviction, preemption, node drain: condition
    ``DisruptionTarget``) is replaced without counting as a failure on one node (the workload
    resumes from its newest checkpoint); with several nodes it fails the Job too, since the
    other ranks could only wait in a collective for a replacement that never rejoins.
    """
    disrupted = "Ignore" if spec.resources.nodes == 1 else "FailJob"
    return {
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": CONTAINER_NAME,
                    "operator": "NotIn",
                    "values": [0],
                },
            },
            {
                "action": disrupted,
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
        ]
    }


def render_job(spec: JobSpec, kube_version: tuple[int, int] | None = None) -> dict[str, Any]:
    """Indexed Job: ``parallelism = completions = nodes``, pod index = node rank.

    Args:
        spec: the job spec.
        kube_version: the API server's ``(major, minor)``; None renders for a current one.
            From 1.31 (podFailurePolicy GA) the Job carries :func:`render_pod_failure_policy`.
    """
    nodes = spec.resources.nodes
    meta = _metadata(spec, spec.name, "job")
    job_spec: dict[str, Any] = {
        "completionMode": "Indexed",
        "completions": nodes,
        "parallelism": nodes,
        # A failed rank fails the run at once (the others would only hang in a collective).
        "backoffLimit": 0,
    }
    if kube_version is None or kube_version >= POD_FAILURE_POLICY_SINCE:
        job_spec["podFailurePolicy"] = render_pod_failure_policy(spec)
    if spec.kubernetes.queue:
        meta["labels"][LABEL_KUEUE_QUEUE] = spec.kubernetes.queue
        job_spec["suspend"] = True  # Kueue unsuspends the Job when it admits it
    job_spec["template"] = render_pod_template(spec)
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": job_spec}


def render_volcano_job(spec: JobSpec) -> dict[str, Any]:
    """Volcano Job: gang scheduled (``minAvailable = nodes``), svc/env plugins for DNS."""
    nodes = spec.resources.nodes
    vc_spec: dict[str, Any] = {
        "schedulerName": "volcano",
        "minAvailable": nodes,
        "queue": spec.kubernetes.queue or "default",
        "maxRetry": 1,
        "policies": [
            {"event": "PodEvicted", "action": "RestartJob"},
            {"event": "PodFailed", "action": "AbortJob"},
        ],
        "plugins": {"svc": ["--publish-not-ready-addresses"], "env": []},
        "tasks": [
            {
                "name": VOLCANO_TASK,
                "replicas": nodes,
                "template": render_pod_template(spec),
            }
        ],
    }
    if spec.kubernetes.priority_class:
        vc_spec["priorityClassName"] = spec.kubernetes.priority_class
    return {
        "apiVersion": "batch.volcano.sh/v1alpha1",
        "kind": "Job",
        "metadata": _metadata(spec, spec.name, "job"),
        "spec": vc_spec,
    }


def render_manifests(
    spec: JobSpec,
    config: dict[str, Any] | None = None,
    *,
    kube_version: tuple[int, int] | None = None,
) -> list[dict[str, Any]]:
    """Everything ``submit`` creates for a Kubernetes run (``submit`` creates the Job first and
    makes it the owner of the others). ``kube_version``: see :func:`render_job`."""
    if spec.backend is not Backend.KUBERNETES:
        raise ValueError("render_manifests needs backend: kubernetes")
    objects = [render_config_map(spec, config)]
    if spec.kubernetes.scheduler is Scheduler.VOLCANO:
        objects.append(render_volcano_job(spec))
    else:
        objects += [render_service(spec), render_job(spec, kube_version)]
    return objects
