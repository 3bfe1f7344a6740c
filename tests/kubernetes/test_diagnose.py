"""Failure diagnosis: one line and a hint for each way a run gets stuck or fails.

Most cases go through the emulated cluster (what ``bevlaunch status`` shows); the pure
function is also checked on its own for the cases that need no cluster.
"""

from __future__ import annotations

import pytest
from k8s_emulator import now_rfc3339

from bevdepth.events import format_event
from bevlaunch.backends.base import RunState
from bevlaunch.backends.k8s_logs import LogCursor, split_timestamp
from bevlaunch.diagnose import diagnose

INSUFFICIENT = (
    "0/4 nodes are available: 3 Insufficient huawei.com/Ascend910, "
    "1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }. "
    "preemption: 0/4 nodes are available: 4 No preemption victims found."
)


@pytest.fixture
def run(cluster, backend, make_spec):
    """A submitted one-node run; returns its pod name once the test creates it."""
    backend.submit(make_spec())
    return "demo"


def _status(backend):
    return backend.status("demo")


def test_unschedulable_names_the_resource_and_the_request(cluster, backend, run):
    (pod,) = cluster.start_pods(run, [0], phase="Pending")
    cluster.unschedulable(pod, INSUFFICIENT)
    cluster.claim("nuscenes")
    cluster.claim("bevdepth-runs")
    status = _status(backend)
    assert status.state is RunState.PENDING
    assert status.diagnosis.startswith(
        "rank 0 cannot be scheduled: 3 of 4 nodes lack free huawei.com/Ascend910 "
        "(the pod requests 8 huawei.com/Ascend910); hint: "
    )
    assert "resources.devices_per_node" in status.diagnosis


def test_node_selector_mismatch(cluster, backend, run):
    (pod,) = cluster.start_pods(run, [0], phase="Pending")
    message = "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."
    cluster.unschedulable(pod, message)
    cluster.claim("nuscenes")
    cluster.claim("bevdepth-runs")
    assert "kubernetes.node_selector" in _status(backend).diagnosis


def test_missing_pvc(cluster, backend, run):
    (pod,) = cluster.start_pods(run, [0], phase="Pending")
    cluster.claim("bevdepth-runs")
    cluster.unschedulable(
        pod, '0/4 nodes are available: persistentvolumeclaim "nuscenes" not found.'
    )
    diagnosis = _status(backend).diagnosis
    assert diagnosis.startswith("PersistentVolumeClaim 'nuscenes' does not exist")
    assert "data.pvc.claim" in diagnosis


def test_pending_pvc(cluster, backend, run):
    cluster.start_pods(run, [0], phase="Pending")
    cluster.claim("nuscenes")
    cluster.claim("bevdepth-runs", phase="Pending")
    diagnosis = _status(backend).diagnosis
    assert diagnosis.startswith("PersistentVolumeClaim 'bevdepth-runs' is Pending")
    assert "kubectl describe pvc bevdepth-runs" in diagnosis


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff"])
def test_image_pull_errors(cluster, backend, run, reason):
    (pod,) = cluster.start_pods(run, [0], phase="Pending")
    cluster.wait_container(pod, reason, 'Back-off pulling image "registry.example.com/bevdepth"')
    diagnosis = _status(backend).diagnosis
    assert diagnosis.startswith(
        f"rank 0 cannot pull image registry.example.com/bevdepth:0.1.0 ({reason})"
    )
    assert "image_pull_secrets" in diagnosis


def test_out_of_memory(cluster, backend, run):
    (pod,) = cluster.start_pods(run, [0])
    cluster.exit(pod, 137, reason="OOMKilled")
    cluster.finish_job(run, "Failed", "PodFailurePolicy", "Container bevdepth failed")
    status = _status(backend)
    assert status.state is RunState.FAILED
    assert status.diagnosis.startswith(
        "rank 0 was killed for using too much memory (OOMKilled) (memory limit 512Gi); hint: "
        "raise resources.memory"
    )


def test_crash_loop_shows_the_last_lines(cluster, backend, run):
    (pod,) = cluster.start_pods(run, [0])
    cluster.log(pod, "starting", "ValueError: bad config")
    cluster.exit(pod, 1, restart=True)
    cluster.run_container(pod)
    cluster.log(
        pod, "starting again", "Traceback (most recent call last):", "ValueError: bad config"
    )
    cluster.exit(pod, 1, restart=True)
    cluster.wait_container(pod, "CrashLoopBackOff", "back-off 40s restarting failed container")
    status = _status(backend)
    assert status.state is RunState.RUNNING  # the pod's phase while it crash-loops
    assert status.diagnosis.startswith(
        "rank 0 keeps crashing (1 restarts, last exit code 1): ValueError: bad config; hint: "
    )
    assert status.last_lines[0] == "starting again"
    assert status.last_lines[-1] == "ValueError: bad config"
    assert "bevlaunch logs demo --rank 0" in status.diagnosis


def test_deadline_exceeded(cluster, backend, run):
    cluster.patch("batch/v1/jobs", run, {"spec": {"activeDeadlineSeconds": 86400}})
    (pod,) = cluster.start_pods(run, [0])
    cluster.exit(pod, 143)
    cluster.finish_job(run, "Failed", "DeadlineExceeded", "Job was active longer than allowed")
    diagnosis = _status(backend).diagnosis
    assert diagnosis.startswith("the run passed its deadline of 86400 s")
    assert "training.epochs" in diagnosis


def test_a_rank_that_died_while_the_others_wait(cluster, backend, make_spec):
    backend.submit(make_spec(name="multi", resources={"nodes": 3}))
    pods = cluster.start_pods("multi", [0, 1, 2])
    cluster.log(pods[2], "step 10", "RuntimeError: CUDA error: an illegal memory access")
    cluster.exit(pods[2], 1)
    status = backend.status("multi")
    assert status.state is RunState.RUNNING  # the Job controller has not failed it yet
    assert status.diagnosis.startswith(
        "rank 2 exited with code 1: RuntimeError: CUDA error: an illegal memory access; "
        "ranks 0, 1 are left waiting for it; hint: "
    )


def test_hccl_timeouts_of_the_others_point_at_the_rank_that_died_first(cluster, backend, make_spec):
    backend.submit(make_spec(name="multi", resources={"nodes": 2}))
    pods = cluster.start_pods("multi", [0, 1])
    cluster.log(pods[1], "Killed")
    cluster.exit(pods[1], 137)
    cluster.log(pods[0], "EI0006: Getting socket times out. HCCL connect timeout")
    cluster.exit(pods[0], 1)
    cluster.finish_job("multi", "Failed", "PodFailurePolicy", "Container bevdepth failed")
    diagnosis = backend.status("multi").diagnosis
    assert diagnosis.startswith(
        "rank 1 exited with code 137: Killed; ranks 0 then timed out waiting for it"
    )


def test_hccl_timeout_of_every_rank_is_a_network_problem(cluster, backend, make_spec):
    backend.submit(make_spec(name="multi", resources={"nodes": 2}))
    pods = cluster.start_pods("multi", [0, 1])
    for pod in pods:
        cluster.log(pod, "[ERROR] HCCL(1234): hcclCommInitRootInfo connect timed out")
        cluster.exit(pod, 1)
    cluster.finish_job("multi", "Failed", "PodFailurePolicy", "")
    diagnosis = backend.status("multi").diagnosis
    assert "HCCL connection timed out" in diagnosis and "NetworkPolicy" in diagnosis


def test_the_workload_error_event_reaches_the_line(cluster, backend, run):
    (pod,) = cluster.start_pods(run, [0])
    error = format_event("error", message="dataroot has no v1.0-trainval", hint="fix data.pvc")
    cluster.log(pod, "loading", error)
    cluster.exit(pod, 2)
    cluster.finish_job(run, "Failed", "BackoffLimitExceeded", "")
    status = _status(backend)
    assert status.diagnosis.startswith("rank 0 exited with code 2: ")
    assert "dataroot has no v1.0-trainval" in status.diagnosis


# -- the pure function alone --------------------------------------------------------------------


def _pod(rank: int, phase: str, state: dict, **status) -> dict:
    return {
        "metadata": {
            "name": f"p{rank}",
            "labels": {"batch.kubernetes.io/job-completion-index": str(rank)},
        },
        "spec": {"containers": [{"name": "bevdepth", "image": "img"}]},
        "status": {
            "phase": phase,
            "containerStatuses": [{"name": "bevdepth", "state": state, **status}],
        },
    }


def test_nccl_timeout_on_one_node():
    pod = _pod(0, "Failed", {"terminated": {"exitCode": 1, "finishedAt": now_rfc3339()}})
    tails = {"p0": ["[Rank 3] Watchdog caught collective operation timeout: WorkNCCL(...)"]}
    found = diagnose(None, [pod], log_tails=tails)
    assert found.line.startswith("rank 0 exited with code 1: NCCL timed out")


def test_volcano_gang_message():
    pod = _pod(0, "Pending", {})
    pod["status"]["conditions"] = [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "pod group is not ready, 2 minAvailable",
        },
    ]
    assert "Volcano schedules all nodes at once" in diagnose(None, [pod]).hint


def test_nothing_wrong_is_no_diagnosis():
    pod = _pod(0, "Running", {"running": {"startedAt": now_rfc3339()}})
    assert diagnose({"status": {}}, [pod]) is None


def test_the_log_cursor_drops_what_a_reconnect_repeats():
    lines = [
        "2026-01-01T00:00:01.000000001Z a",
        "2026-01-01T00:00:02.5Z b",
        "2026-01-01T00:00:02.5Z b-again-same-stamp",
    ]
    cursor = LogCursor()
    first = [text for stamp, text in map(split_timestamp, lines[:2]) if cursor.accept(stamp)]
    cursor.rewind()
    second = [text for stamp, text in map(split_timestamp, lines) if cursor.accept(stamp)]
    assert first == ["a", "b"] and second == ["b-again-same-stamp"]
    assert split_timestamp("no stamp here") == (None, "no stamp here")
