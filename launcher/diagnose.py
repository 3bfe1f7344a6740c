"""Why a Kubernetes run is stuck or failed: one line and a hint. Pure: dicts and lines in.

:func:`diagnose` reads what the API server reports (the Job, its pods, their events and PVCs)
and the tails of the pods' logs, and names the first cause it finds, most specific first:
deadline, image pull, missing or pending volume, unschedulable pod, out of memory, crash loop,
then failed ranks (the first to die is the cause; HCCL / NCCL timeouts of the others are its
consequence).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bevlaunch.backends.k8s_state import (
    condition,
    container_status,
    parse_time,
    pod_phase,
    pods_by_rank,
)

IMAGE_PULL_REASONS = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
)
LAST_LINES = 5

# Collective-communication timeouts, as the libraries print them.
HCCL_TIMEOUT = re.compile(
    r"(HCCL|hccl).*(time ?out|timed out)|EI0006|get socket timeout|connect_timeout", re.IGNORECASE
)
NCCL_TIMEOUT = re.compile(
    r"NCCL.*(time ?out|timed out)|Watchdog caught collective operation timeout", re.IGNORECASE
)
RENDEZVOUS_TIMEOUT = re.compile(r"DistStoreError|client socket has timed out|Timed out.*store")
_INSUFFICIENT = re.compile(r"(\d+) Insufficient ([\w./-]+)")
_NODES = re.compile(r"0/(\d+) nodes are available")
_MISSING_PVC = re.compile(r'persistentvolumeclaim "([^"]+)" not found')


@dataclass(frozen=True)
class Diagnosis:
    """What went wrong (``line``), what to do (``hint``) and the relevant log lines."""

    line: str
    hint: str
    last_lines: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.line}; hint: {self.hint}"


def diagnose(
    job: Mapping[str, Any] | None,
    pods: Sequence[Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]] = (),
    log_tails: Mapping[str, Sequence[str]] | None = None,
    pvcs: Mapping[str, Mapping[str, Any] | None] | None = None,
) -> Diagnosis | None:
    """The first cause found, or None when nothing is wrong (yet).

    Args:
        job: the batch/v1 or Volcano Job (None once it is gone).
        pods: the run's pods.
        events: events of the pods (``FailedScheduling`` carries the scheduler's reason).
        log_tails: the last log lines of pods, by pod name (failed or crashing ones suffice).
        pvcs: the claims the pods mount, by name; None for a claim that does not exist.
    """
    tails = log_tails or {}
    by_rank = pods_by_rank([dict(p) for p in pods])
    checks = (
        _deadline(job),
        _image_pull(by_rank),
        _volumes(by_rank, pvcs or {}, events),
        _unschedulable(by_rank, events),
        _out_of_memory(by_rank),
        _crash_loop(by_rank, tails),
        _failed_ranks(by_rank, tails),
        _job_failed(job),
    )
    return next((d for d in checks if d is not None), None)


def _deadline(job: Mapping[str, Any] | None) -> Diagnosis | None:
    failed = condition(dict(job), "Failed") if job else None
    if failed is None or failed.get("reason") != "DeadlineExceeded":
        return None
    seconds = (job.get("spec") or {}).get("activeDeadlineSeconds")
    limit = f" of {seconds} s" if seconds else ""
    return Diagnosis(
        f"the run passed its deadline{limit} (activeDeadlineSeconds) and was stopped",
        "raise the deadline, or shorten the run (training.epochs / training.max_steps); "
        "the newest checkpoint on the output volume lets a resubmit resume",
    )


def _image_pull(by_rank: Mapping[int, dict[str, Any]]) -> Diagnosis | None:
    for rank, pod in by_rank.items():
        waiting = (container_status(pod).get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in IMAGE_PULL_REASONS:
            image = container_status(pod).get("image") or _image(pod)
            message = (waiting.get("message") or "").splitlines()[:1]
            detail = f": {message[0]}" if message else ""
            return Diagnosis(
                f"rank {rank} cannot pull image {image} ({waiting['reason']}){detail}",
                "check the image name and tag (`image:`), that the nodes can reach the "
                "registry, and kubernetes.image_pull_secrets for a private registry",
            )
    return None


def _volumes(
    by_rank: Mapping[int, dict[str, Any]],
    pvcs: Mapping[str, Mapping[str, Any] | None],
    events: Sequence[Mapping[str, Any]],
) -> Diagnosis | None:
    pending = [pod for pod in by_rank.values() if pod_phase(pod) == "Pending"]
    if not pending:
        return None
    claims = sorted({c for pod in pending for c in _claims(pod)})
    messages = " ".join(_event_messages(events, {_name(p) for p in pending}))
    for claim in claims:
        missing = claim in pvcs and pvcs[claim] is None
        if missing or claim in _MISSING_PVC.findall(messages):
            return Diagnosis(
                f"PersistentVolumeClaim {claim!r} does not exist in this namespace",
                "create it (see k8s/pvc-nuscenes.yaml and k8s/pvc-output.yaml) or fix "
                "data.pvc.claim / output.pvc.claim",
            )
        phase = ((pvcs.get(claim) or {}).get("status") or {}).get("phase")
        if phase == "Pending":
            return Diagnosis(
                f"PersistentVolumeClaim {claim!r} is Pending (not bound to a volume)",
                "check its storageClassName and access mode (the dataset needs ReadOnlyMany, "
                f"outputs ReadWriteMany on several nodes): kubectl describe pvc {claim}",
            )
    return None


def _unschedulable(
    by_rank: Mapping[int, dict[str, Any]], events: Sequence[Mapping[str, Any]]
) -> Diagnosis | None:
    for rank, pod in by_rank.items():
        scheduled = [
            c
            for c in (pod.get("status") or {}).get("conditions") or []
            if c.get("type") == "PodScheduled" and c.get("status") == "False"
        ]
        if not scheduled or scheduled[0].get("reason") != "Unschedulable":
            continue
        said = [
            m for m in _event_messages(events, {_name(pod)}, reason="FailedScheduling") if m.strip()
        ]
        message = said[-1] if said else scheduled[0].get("message") or ""
        short = [(int(n), resource) for n, resource in _INSUFFICIENT.findall(message)]
        nodes = _NODES.search(message)
        of_nodes = f" of {nodes.group(1)}" if nodes else ""
        if short:
            parts = []
            for count, resource in short:
                wanted = _request(pod, resource)
                asked = f" (the pod requests {wanted})" if wanted else ""
                parts.append(f"{count}{of_nodes} nodes lack free {resource}{asked}")
            return Diagnosis(
                f"rank {rank} cannot be scheduled: {'; '.join(parts)}",
                "free those resources (other jobs hold them) or ask for less "
                "(resources.devices_per_node, resources.cpu, resources.memory); "
                f"the scheduler said: {message.strip()}",
            )
        hint = "check kubernetes.node_selector and kubernetes.tolerations against the nodes"
        if re.search(r"gang|pod ?group", message, re.IGNORECASE):
            hint = "Volcano schedules all nodes at once: the queue needs room for every node"
        return Diagnosis(
            f"rank {rank} cannot be scheduled: {message.strip() or 'no reason given'}", hint
        )
    return None


def _out_of_memory(by_rank: Mapping[int, dict[str, Any]]) -> Diagnosis | None:
    for rank, pod in by_rank.items():
        status = container_status(pod)
        for state in ((status.get("state") or {}), (status.get("lastState") or {})):
            terminated = state.get("terminated") or {}
            if terminated.get("reason") == "OOMKilled":
                limit = _limit(pod, "memory")
                of = f" (memory limit {limit})" if limit else ""
                return Diagnosis(
                    f"rank {rank} was killed for using too much memory (OOMKilled){of}",
                    "raise resources.memory, or lower training.batch_per_device or "
                    "data.num_workers",
                )
    return None


def _crash_loop(
    by_rank: Mapping[int, dict[str, Any]], tails: Mapping[str, Sequence[str]]
) -> Diagnosis | None:
    for rank, pod in by_rank.items():
        status = container_status(pod)
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") != "CrashLoopBackOff":
            continue
        last = ((status.get("lastState") or {}).get("terminated") or {}).get("exitCode")
        lines = tuple(tails.get(_name(pod), ()))[-LAST_LINES:]
        said = f": {lines[-1]}" if lines else ""
        code = f", last exit code {last}" if last is not None else ""
        return Diagnosis(
            f"rank {rank} keeps crashing ({status.get('restartCount', 0)} restarts{code}){said}",
            f"read the whole log: bevlaunch logs {_run(pod)} --rank {rank}",
            lines,
        )
    return None


def _failed_ranks(
    by_rank: Mapping[int, dict[str, Any]], tails: Mapping[str, Sequence[str]]
) -> Diagnosis | None:
    failed = []
    for rank, pod in by_rank.items():
        terminated = (container_status(pod).get("state") or {}).get("terminated") or {}
        code = terminated.get("exitCode")
        if pod_phase(pod) == "Failed" or (code not in (None, 0)):
            finished = parse_time(terminated.get("finishedAt")) or float("inf")
            lines = tuple(tails.get(_name(pod), ()))[-LAST_LINES:]
            failed.append((finished, rank, pod, terminated, lines))
    if not failed:
        return None
    failed.sort(key=lambda item: (item[0], item[1]))
    # A rank that timed out in a collective waited for another: the first rank that failed
    # for a reason of its own is the cause.
    culprits = [f for f in failed if not _collective_timeout(f[4])]
    waiting = [r for r, p in by_rank.items() if pod_phase(p) == "Running"]
    if not culprits:
        _, rank, pod, terminated, lines = failed[0]
        timeout = _collective_timeout(lines)
        if len(by_rank) > 1 and not waiting:
            return Diagnosis(
                f"rank {rank} {_how(terminated)}: {timeout} connection timed out: {_last(lines)}",
                "the ranks could not reach each other: check that pods can connect on the pod "
                "network (NetworkPolicy), MASTER_ADDR / HCCL_IF_IP, and HCCL_CONNECT_TIMEOUT",
                lines,
            )
        return Diagnosis(
            f"rank {rank} {_how(terminated)}: {timeout} timed out: {_last(lines)}",
            "a collective never completed; read the log for the first error",
            lines,
        )
    _, rank, pod, terminated, lines = culprits[0]
    timed_out = [f[1] for f in failed if f[1] != rank and _collective_timeout(f[4])]
    others = ""
    if waiting:
        others = f"; ranks {_ranks(waiting)} are left waiting for it"
    elif timed_out:
        others = f"; ranks {_ranks(timed_out)} then timed out waiting for it"
    hint = f"read its log: bevlaunch logs {_run(pod)} --rank {rank}"
    if waiting:
        hint += "; the others stop at their collective timeout or when the Job fails"
    return Diagnosis(f"rank {rank} {_how(terminated)}: {_last(lines)}{others}", hint, lines)


def _how(terminated: Mapping[str, Any]) -> str:
    code = terminated.get("exitCode")
    how = f"exited with code {code}" if code is not None else "failed"
    if terminated.get("reason") not in (None, "Error", "Completed"):
        how += f" ({terminated['reason']})"
    return how


def _job_failed(job: Mapping[str, Any] | None) -> Diagnosis | None:
    if not job:
        return None
    for kind in ("Failed", "FailureTarget"):
        cond = condition(dict(job), kind)
        if cond is not None:
            return Diagnosis(
                f"the Job failed ({cond.get('reason') or 'no reason'}): "
                f"{cond.get('message') or 'no message'}",
                "kubectl describe job " + str((job.get("metadata") or {}).get("name", "")),
            )
    return None


# -- small helpers ------------------------------------------------------------------------------


def _collective_timeout(lines: Sequence[str]) -> str | None:
    for line in reversed(lines):
        if HCCL_TIMEOUT.search(line):
            return "HCCL"
        if NCCL_TIMEOUT.search(line):
            return "NCCL"
        if RENDEZVOUS_TIMEOUT.search(line):
            return "rendezvous"
    return None


def _last(lines: Sequence[str]) -> str:
    return lines[-1] if lines else "no log output"


def _ranks(ranks: Sequence[int]) -> str:
    return ", ".join(map(str, sorted(ranks)))


def _name(pod: Mapping[str, Any]) -> str:
    return (pod.get("metadata") or {}).get("name", "")


def _run(pod: Mapping[str, Any]) -> str:
    from bevlaunch.labels import LABEL_RUN

    return ((pod.get("metadata") or {}).get("labels") or {}).get(LABEL_RUN, "NAME")


def _container(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    from bevlaunch.render import CONTAINER_NAME

    for container in (pod.get("spec") or {}).get("containers") or []:
        if container.get("name") == CONTAINER_NAME:
            return container
    return {}


def _image(pod: Mapping[str, Any]) -> str:
    return _container(pod).get("image", "?")


def _request(pod: Mapping[str, Any], resource: str) -> str | None:
    value = ((_container(pod).get("resources") or {}).get("requests") or {}).get(resource)
    return None if value is None else f"{value} {resource}"


def _limit(pod: Mapping[str, Any], resource: str) -> str | None:
    return ((_container(pod).get("resources") or {}).get("limits") or {}).get(resource)


def _claims(pod: Mapping[str, Any]) -> list[str]:
    return [
        v["persistentVolumeClaim"]["claimName"]
        for v in (pod.get("spec") or {}).get("volumes") or []
        if (v.get("persistentVolumeClaim") or {}).get("claimName")
    ]


def _event_messages(
    events: Sequence[Mapping[str, Any]], names: set[str], reason: str | None = None
) -> list[str]:
    """Messages of the events about objects named ``names``, oldest first."""
    chosen = [
        e
        for e in events
        if (e.get("involvedObject") or {}).get("name") in names
        and (reason is None or e.get("reason") == reason)
    ]
    chosen.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    return [str(e.get("message") or "") for e in chosen]
