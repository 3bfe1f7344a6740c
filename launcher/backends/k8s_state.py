"""Kubernetes objects (plain dicts) → run state. Pure functions: no client, no clock.

The tables below say how a batch/v1 Job's conditions and a Volcano Job's phase map onto
:class:`~bevlaunch.backends.base.RunState`; pod helpers give a pod's node rank and the state of
its workload container.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from bevlaunch.backends.base import RunState
from bevlaunch.labels import ANNOTATION_RANK, LABEL_RANK
from bevlaunch.render import CONTAINER_NAME

# Volcano's env plugin numbers the pods of a task; the pod name ends in that index too.
VOLCANO_ANNOTATION_INDEX = "volcano.sh/task-index"
_TRAILING_INDEX = re.compile(r"-(\d+)$")

# batch/v1 Job conditions that end a run (status "True"), first match wins.
JOB_CONDITIONS: tuple[tuple[str, RunState], ...] = (
    ("Complete", RunState.SUCCEEDED),  # every index succeeded
    ("SuccessCriteriaMet", RunState.SUCCEEDED),  # successPolicy met (1.31+), pods terminating
    ("Failed", RunState.FAILED),  # backoff limit, deadline, pod failure policy
    ("FailureTarget", RunState.FAILED),  # decided to fail, pods still terminating (1.31+)
)

# Volcano Job phases (status.state.phase).
VOLCANO_PHASES: dict[str, RunState] = {
    "Pending": RunState.PENDING,  # waiting for the gang to be scheduled
    "Running": RunState.RUNNING,
    "Restarting": RunState.RUNNING,  # a policy restarts the job (e.g. a pod was evicted)
    "Completing": RunState.RUNNING,  # pods finishing
    "Completed": RunState.SUCCEEDED,
    "Aborting": RunState.CANCELLED,  # aborted by a user or a policy (PodFailed → AbortJob)
    "Aborted": RunState.FAILED,  # our PodFailed policy aborts: a rank failed
    "Terminating": RunState.FAILED,
    "Terminated": RunState.FAILED,
    "Failed": RunState.FAILED,  # maxRetry exhausted
}


def parse_time(value: Any) -> float | None:
    """RFC 3339 (``2026-01-02T03:04:05Z``, fractions allowed) → Unix time; None when absent."""
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    match = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$", text)
    if match is None:
        return None
    base, fraction, zone = match.groups()
    try:
        seconds = datetime.fromisoformat(base + (zone or "+00:00")).timestamp()
    except ValueError:
        return None
    return seconds + (float(fraction) if fraction else 0.0)


def pod_rank(pod: dict[str, Any]) -> int | None:
    """A pod's node rank: the Job completion index (label or annotation), Volcano's task index,
    else the number the pod name ends in."""
    meta = pod.get("metadata") or {}
    for source in (meta.get("labels") or {}, meta.get("annotations") or {}):
        for key in (LABEL_RANK, ANNOTATION_RANK, VOLCANO_ANNOTATION_INDEX):
            value = source.get(key)
            if isinstance(value, str) and value.isdigit():
                return int(value)
    name = meta.get("name", "")
    # Volcano names pods <job>-<task>-<index>; a Job's pods end in a random suffix instead.
    match = _TRAILING_INDEX.search(name)
    return int(match.group(1)) if match else None


def container_status(pod: dict[str, Any], name: str = CONTAINER_NAME) -> dict[str, Any]:
    """The status of the workload container ({} before the kubelet reports one)."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == name:
            return status
    return {}


def pod_phase(pod: dict[str, Any]) -> str:
    return (pod.get("status") or {}).get("phase") or "Pending"


def pods_by_rank(pods: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """The newest pod of each rank (a retried index has several)."""
    newest: dict[int, dict[str, Any]] = {}
    for pod in pods:
        rank = pod_rank(pod)
        if rank is None:
            continue
        created = (pod.get("metadata") or {}).get("creationTimestamp") or ""
        old = newest.get(rank)
        if old is None or created >= ((old.get("metadata") or {}).get("creationTimestamp") or ""):
            newest[rank] = pod
    return dict(sorted(newest.items()))


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """The condition of type ``kind`` whose status is "True", or None."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return cond
    return None


def is_volcano(job: dict[str, Any]) -> bool:
    return str(job.get("apiVersion", "")).startswith("batch.volcano.sh/")


def run_state(job: dict[str, Any], pods: list[dict[str, Any]]) -> RunState:
    """Where a run is, from its Job (batch/v1 or Volcano) and its pods."""
    if is_volcano(job):
        phase = ((job.get("status") or {}).get("state") or {}).get("phase")
        if phase is None:
            return RunState.PENDING
        return VOLCANO_PHASES.get(phase, RunState.UNKNOWN)
    for kind, state in JOB_CONDITIONS:
        if condition(job, kind) is not None:
            return state
    if condition(job, "Suspended") is not None or (job.get("spec") or {}).get("suspend"):
        return RunState.PENDING  # queued (Kueue admits it by unsuspending)
    if any(pod_phase(p) == "Running" for p in pods):
        return RunState.RUNNING
    return RunState.PENDING


def job_times(job: dict[str, Any]) -> tuple[float | None, float | None]:
    """(started, ended) Unix times of a Job, None where unknown."""
    status = job.get("status") or {}
    if is_volcano(job):
        started = parse_time((status.get("state") or {}).get("lastTransitionTime"))
        return parse_time(job.get("metadata", {}).get("creationTimestamp")) or started, None
    ended = parse_time(status.get("completionTime"))
    for kind in ("Failed", "FailureTarget"):
        cond = condition(job, kind)
        if ended is None and cond is not None:
            ended = parse_time(cond.get("lastTransitionTime"))
    return parse_time(status.get("startTime")), ended


def template_env(job: dict[str, Any]) -> dict[str, str]:
    """The plain env values of the workload container of a Job's pod template."""
    spec = job.get("spec") or {}
    template = spec.get("template") or next(iter(spec.get("tasks") or []), {}).get("template", {})
    for container in (template.get("spec") or {}).get("containers") or []:
        if container.get("name") == CONTAINER_NAME:
            return {e["name"]: e["value"] for e in container.get("env") or [] if "value" in e}
    return {}


def world_size(job: dict[str, Any]) -> int:
    """Ranks of the run: nodes x devices per node (from the pod template's env)."""
    env = template_env(job)
    try:
        return int(env.get("BEVLAUNCH_NNODES", "0")) * int(
            env.get("BEVLAUNCH_DEVICES_PER_NODE", "0")
        )
    except ValueError:
        return 0
