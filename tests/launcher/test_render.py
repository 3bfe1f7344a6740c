"""Rendered Kubernetes objects: shape, official schemas (1.29-1.33), hostile user strings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bevlaunch.labels import LABEL_KUEUE_QUEUE, LABEL_RUN
from bevlaunch.loader import load_spec
from bevlaunch.render import COMMAND, RESOURCE_GPU, RESOURCE_NPU, render_manifests
from bevlaunch.resolve import resolve_config
from bevlaunch.spec import spec_from_dict

kubernetes_validate = pytest.importorskip("kubernetes_validate")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
K8S_EXAMPLES = ["ascend-8npu", "ascend-2x8npu", "gpu-8", "eval-only"]
VERSIONS = ["1.29.0", "1.30.0", "1.31.0", "1.32.0", "1.33.0"]

BASE = {
    "name": "demo",
    "image": "registry.example.com/bevdepth:0.1.0",
    "backend": "kubernetes",
    "data": {"pvc": {"claim": "nuscenes"}},
    "output": {"pvc": {"claim": "runs"}},
}
HOSTILE = [
    'it\'s "quoted"',
    "$(rm -rf /)",
    "`reboot`; echo pwned",
    "a; b && c | d",
    "line1\nline2",
    "${HOME} $HOME %s {0}",
    "--config=/etc/passwd",
]


def _manifests(name: str) -> list[dict]:
    spec = load_spec(EXAMPLES / f"{name}.yaml")
    return render_manifests(spec, resolve_config(spec))


def _validatable(obj: dict) -> list[dict]:
    """Objects the official schemas know; a Volcano Job's pod templates go in a batch/v1 Job."""
    if obj["apiVersion"] != "batch.volcano.sh/v1alpha1":
        return [obj]
    return [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": f"{obj['metadata']['name']}-{task['name']}"},
            "spec": {"template": task["template"]},
        }
        for task in obj["spec"]["tasks"]
    ]


def _pod(obj: dict) -> dict:
    if obj["apiVersion"] == "batch.volcano.sh/v1alpha1":
        return obj["spec"]["tasks"][0]["template"]
    return obj["spec"]["template"]


def _jobs(objects: list[dict]) -> list[dict]:
    return [o for o in objects if o["kind"] == "Job"]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("example", K8S_EXAMPLES)
def test_every_rendered_object_validates_strictly(example, version):
    for obj in _manifests(example):
        for candidate in _validatable(obj):
            kubernetes_validate.validate(candidate, version, strict=True)


def test_strict_validation_catches_a_typo():
    job = _jobs(_manifests("ascend-8npu"))[0]
    job["spec"]["template"]["spec"]["containers"][0]["imagee"] = "x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, "1.31.0", strict=True)


def test_indexed_job_shape_for_ascend():
    objects = _manifests("ascend-8npu")
    assert [o["kind"] for o in objects] == ["ConfigMap", "Service", "Job"]
    config_map, service, job = objects
    assert service["spec"]["clusterIP"] == "None"
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["parallelism"] == spec["completions"] == 1
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["subdomain"] == service["metadata"]["name"]
    assert pod["nodeSelector"]["accelerator-type"] == "module-910b-8"
    (container,) = pod["containers"]
    assert container["command"] == list(COMMAND)
    assert container["command"] == [
        "python",
        "-m",
        "bevdepth",
        "run",
        "--config",
        "/etc/bevlaunch/config.json",
    ]
    assert "args" not in container
    res = container["resources"]
    assert res["requests"] == res["limits"]
    assert res["limits"][RESOURCE_NPU] == "8"
    assert container["securityContext"]["privileged"] is False
    assert not pod.get("hostNetwork")
    host_paths = {v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    assert "/usr/local/Ascend/driver" in host_paths
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["dshm"]["emptyDir"]["medium"] == "Memory"
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["dshm"]["mountPath"] == "/dev/shm"
    assert mounts["data"]["readOnly"] is True
    assert volumes["data"]["persistentVolumeClaim"]["readOnly"] is True
    assert not mounts["output"].get("readOnly")
    assert all(mounts[name]["readOnly"] for name in mounts if name.startswith("ascend-"))
    env = {e["name"]: e for e in container["env"]}
    assert env["JOB_COMPLETION_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    )
    assert env["BEVLAUNCH_NNODES"]["value"] == "1"
    assert env["BEVLAUNCH_DEVICES_PER_NODE"]["value"] == "8"
    assert env["MASTER_ADDR"]["value"] == "bevdepth-r50-8npu-0.bevdepth-r50-8npu"
    assert env["MASTER_PORT"]["value"] == "29500"
    assert env["HCCL_CONNECT_TIMEOUT"]["value"] == "1200"
    assert env["HCCL_WHITELIST_DISABLE"]["value"] == "1"
    for obj in objects:
        assert obj["metadata"]["labels"][LABEL_RUN] == "bevdepth-r50-8npu"
    config = json.loads(config_map["data"]["config.json"])
    assert config["schema"] == 1 and config["run"]["name"] == "bevdepth-r50-8npu"


def test_volcano_job_gang_schedules_all_nodes():
    objects = _manifests("ascend-2x8npu")
    assert [o["kind"] for o in objects] == ["ConfigMap", "Job"]
    vcjob = objects[1]
    assert vcjob["apiVersion"] == "batch.volcano.sh/v1alpha1"
    assert vcjob["spec"]["schedulerName"] == "volcano"
    assert vcjob["spec"]["minAvailable"] == 2
    assert vcjob["spec"]["tasks"][0]["replicas"] == 2
    env = {e["name"]: e for e in _pod(vcjob)["spec"]["containers"][0]["env"]}
    assert env["BEVLAUNCH_NNODES"]["value"] == "2"
    assert env["MASTER_ADDR"]["value"].startswith("bevdepth-r50-2x8npu-worker-0.")


def test_gpu_job_is_queued_by_kueue():
    job = _jobs(_manifests("gpu-8"))[0]
    assert job["metadata"]["labels"][LABEL_KUEUE_QUEUE] == "gpu-queue"
    assert job["spec"]["suspend"] is True
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"][RESOURCE_GPU] == "8"
    assert RESOURCE_NPU not in container["resources"]["limits"]
    assert "accelerator-type" not in pod["nodeSelector"]
    assert not any(e["name"].startswith("HCCL_") for e in container["env"])
    assert pod["imagePullSecrets"] == [{"name": "registry-credentials"}]


def test_multi_node_indexed_job():
    spec = spec_from_dict({**BASE, "resources": {"nodes": 4}})
    job = _jobs(render_manifests(spec))[0]
    assert job["spec"]["parallelism"] == job["spec"]["completions"] == 4
    assert "suspend" not in job["spec"]


def test_rendering_is_deterministic():
    assert _manifests("ascend-2x8npu") == _manifests("ascend-2x8npu")


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_strings_are_only_data(hostile):
    spec = spec_from_dict(
        {
            **BASE,
            "data": {"host_path": "/data/" + hostile},
            "model": {"checkpoint": hostile},
            "training": {"resume_from": hostile},
            "kubernetes": {
                "node_selector": {"pool": hostile},
                "tolerations": [{"key": "k", "value": hostile, "effect": "NoSchedule"}],
            },
            "env": {"USER_VALUE": hostile},
        }
    )
    objects = render_manifests(spec)
    for obj in objects:
        for candidate in _validatable(obj):
            kubernetes_validate.validate(candidate, "1.31.0", strict=True)
    job = _jobs(objects)[0]
    container = job["spec"]["template"]["spec"]["containers"][0]
    # The command is fixed; nothing runs a shell.
    assert container["command"] == list(COMMAND)
    assert "args" not in container
    shells = {"sh", "bash", "/bin/sh", "/bin/bash", "-c"}
    assert not shells & set(container["command"])
    assert all(hostile not in part for part in container["command"])
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["USER_VALUE"] == hostile
    config = json.loads(objects[0]["data"]["config.json"])
    assert config["model"]["checkpoint"] == hostile
    assert config["training"]["resume_from"] == hostile


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_strings_survive_the_yaml_round_trip(hostile):
    yaml = pytest.importorskip("yaml")
    from bevlaunch.output import dump_yaml

    spec = spec_from_dict(
        {**BASE, "env": {"USER_VALUE": hostile}, "model": {"checkpoint": hostile}}
    )
    objects = render_manifests(spec)
    assert list(yaml.safe_load_all(dump_yaml(objects))) == objects


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_strings_cannot_become_names(hostile):
    from bevlaunch.errors import SpecError

    for data in (
        {**BASE, "name": hostile},
        {**BASE, "image": hostile},
        {**BASE, "kubernetes": {"namespace": hostile}},
        {**BASE, "kubernetes": {"service_account": hostile}},
        {**BASE, "output": {"pvc": {"claim": hostile}}},
        {**BASE, "env": {hostile: "x"}},
    ):
        with pytest.raises(SpecError):
            spec_from_dict(data)


GOLDEN = Path(__file__).parent / "golden" / "ascend-8npu.yaml"


def test_golden_yaml_of_the_8_npu_example():
    """The whole rendering of one example, reviewed by eye once and pinned.

    After an intended change: BEVLAUNCH_UPDATE_GOLDEN=1 pytest tests/launcher/test_render.py,
    then review the diff of the golden file.
    """
    import os

    from bevlaunch.output import dump_yaml

    text = dump_yaml(_manifests("ascend-8npu"))
    if os.environ.get("BEVLAUNCH_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_volcano_pods_take_their_rank_from_the_env_plugin():
    vcjob = _manifests("ascend-2x8npu")[1]
    assert "env" in vcjob["spec"]["plugins"]
    env = {e["name"] for e in _pod(vcjob)["spec"]["containers"][0]["env"]}
    assert "JOB_COMPLETION_INDEX" not in env  # VC_TASK_INDEX comes from Volcano's env plugin
    assert "subdomain" not in _pod(vcjob)["spec"]  # the svc plugin sets it
