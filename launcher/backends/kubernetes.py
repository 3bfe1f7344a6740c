"""The Kubernetes backend: a run is a Job (or Volcano Job) that owns its ConfigMap and Service.

``submit`` renders the objects (``bevlaunch.render``, for the server's version), creates the Job
first and then the others with an owner reference to it, so deleting the Job removes the whole
run; if any creation fails, what was created is deleted again. Everything else reads the
cluster: the Job's conditions and the pods give the state (``k8s_state``), the pods' logs give
stage, progress and results (the workload's events), and ``bevlaunch.diagnose`` explains a run
that is stuck or failed. All API calls go through :class:`~bevlaunch.backends.k8s_api.KubeApi`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from bevlaunch.backends.base import LogLine, RunState, RunStatus, Submitted
from bevlaunch.backends.k8s_api import (
    CONFIG_MAP,
    EVENT,
    JOB,
    POD,
    PVC,
    VOLCANO_JOB,
    KubeApi,
    kind_of,
)
from bevlaunch.backends.k8s_logs import PodFollower
from bevlaunch.backends.k8s_state import (
    container_status,
    is_volcano,
    job_times,
    pod_phase,
    pods_by_rank,
    run_state,
    world_size,
)
from bevlaunch.errors import ClusterError, SpecError
from bevlaunch.labels import LABEL_MANAGED_BY, LABEL_RUN
from bevlaunch.render import CONTAINER_NAME, render_manifests
from bevlaunch.spec import Backend, JobSpec

# Lines of rank 0's log read for `status` (the newest progress event is among them).
STATUS_TAIL_LINES = 200
DIAGNOSIS_TAIL_LINES = 20
REPLACE_TIMEOUT_S = 120.0
# How often `watch` / `logs -f` look at the cluster (pods, Job) while following.
POLL_ENV = "BEVLAUNCH_K8S_POLL_S"
DEFAULT_POLL_S = 2.0
_BAD_WAITING = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CrashLoopBackOff"}
)


class KubernetesBackend:
    """Runs plans on a cluster. See the module docstring.

    Args:
        api: the cluster (default: connect as kubectl would, on first use).
        context: kubeconfig context (``--context``).
        namespace: ``-n``; else the spec's ``kubernetes.namespace``, else the context's.
        poll_s: pause between looks at the cluster while following (default: the environment
            variable ``BEVLAUNCH_K8S_POLL_S``, else 2 s).
        read_timeout_s: a log stream silent this long is reconnected.
        clock, sleep: injected for tests.
    """

    def __init__(
        self,
        api: KubeApi | None = None,
        *,
        context: str | None = None,
        namespace: str | None = None,
        poll_s: float | None = None,
        read_timeout_s: float = 60.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._api = api
        self.context = context
        self.namespace = namespace
        self.poll_s = poll_s if poll_s is not None else _poll_from_env()
        self.read_timeout_s = read_timeout_s
        self.clock = clock
        self.sleep = sleep

    @property
    def api(self) -> KubeApi:
        if self._api is None:
            self._api = KubeApi.connect(context=self.context, namespace=self.namespace)
        return self._api

    # -- submit -----------------------------------------------------------------------------------

    def submit(self, spec: JobSpec, *, replace_existing: bool = False) -> Submitted:
        """Create the run's objects; returns at once.

        Raises:
            SpecError: the spec is not for Kubernetes, or its namespace contradicts ``-n``.
            ClusterError: a run of that name exists (and ``replace_existing`` is not set), or
                the cluster refused an object (nothing is left behind).
        """
        from bevlaunch.backends.k8s_api import check_namespace
        from bevlaunch.resolve import resolve_config

        if spec.backend is not Backend.KUBERNETES:
            raise SpecError("backend: the Kubernetes backend runs only `backend: kubernetes` specs")
        if self._api is None:
            self.namespace = check_namespace(self.namespace, spec.kubernetes.namespace)
        elif spec.kubernetes.namespace and spec.kubernetes.namespace != self.api.namespace:
            check_namespace(self.api.namespace, spec.kubernetes.namespace)
        api = self.api
        manifests = render_manifests(spec, resolve_config(spec), kube_version=api.server_version())
        for obj in manifests:
            obj["metadata"]["namespace"] = api.namespace
        owner_manifest = next(o for o in manifests if o["kind"] == "Job")
        existing = self._job(spec.name)
        if existing is not None:
            if not replace_existing:
                state = run_state(existing, []).value
                raise ClusterError(
                    f"run {spec.name!r} already exists in namespace {api.namespace} ({state}); "
                    "submit with --replace to delete it and start again, or change `name`"
                )
            self._delete_and_wait(existing, manifests)
        created: list[dict[str, Any]] = []
        try:
            owner = api.create(owner_manifest)
            created.append(owner)
            reference = {
                "apiVersion": owner["apiVersion"],
                "kind": owner["kind"],
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
            }
            # No blockOwnerDeletion: setting it needs `update` on jobs/finalizers, and the
            # garbage collector deletes these children either way.
            for obj in manifests:
                if obj is not owner_manifest:
                    obj["metadata"]["ownerReferences"] = [reference]
                    created.append(api.create(obj))
        except (ClusterError, KeyError) as e:
            raise ClusterError(f"{e}; {self._undo(created)}") from e
        return Submitted(name=spec.name, location=f"{api.namespace}/{spec.name}")

    def _undo(self, created: list[dict[str, Any]]) -> str:
        """Delete what a failed submit created, newest first; say what happened."""
        if not created:
            return "nothing was created"
        left = []
        for obj in reversed(created):
            try:
                self.api.delete(kind_of(obj), obj["metadata"]["name"])
            except ClusterError:
                left.append(f"{obj['kind']} {obj['metadata']['name']}")
        if left:
            return f"could not delete {', '.join(left)}: delete them with kubectl"
        return "the objects already created were deleted again"

    def _delete_and_wait(self, job: dict[str, Any], manifests: list[dict[str, Any]]) -> None:
        """Delete a run (``--replace``) and wait until its objects are gone."""
        api = self.api
        api.delete(_kind(job), job["metadata"]["name"])
        deadline = self.clock() + REPLACE_TIMEOUT_S
        waiting = [(kind_of(o), o["metadata"]["name"]) for o in manifests]
        waiting = [(k, n) for k, n in waiting if k in (JOB, VOLCANO_JOB, CONFIG_MAP)]
        while waiting:
            waiting = [(k, n) for k, n in waiting if api.get(k, n) is not None]
            if not waiting:
                return
            if self.clock() > deadline:
                names = ", ".join(f"{k.kind} {n}" for k, n in waiting)
                raise ClusterError(
                    f"the old run's {names} still exist {REPLACE_TIMEOUT_S:.0f} s after "
                    "deleting it; try again later"
                )
            self.sleep(self.poll_s)

    # -- reading a run ----------------------------------------------------------------------------

    def _job(self, name: str) -> dict[str, Any] | None:
        return self.api.get(JOB, name) or self.api.get(VOLCANO_JOB, name)

    def _require_job(self, name: str) -> dict[str, Any]:
        job = self._job(name)
        if job is None:
            raise ClusterError(
                f"no run named {name!r} in namespace {self.api.namespace} "
                "(see `bevlaunch list`; -n and --context look elsewhere)"
            )
        return job

    def _pods(self, name: str) -> list[dict[str, Any]]:
        return self.api.list(POD, label_selector=f"{LABEL_RUN}={name}")

    def status(self, name: str) -> RunStatus:
        """State, stage and progress (from rank 0's log), and a diagnosis when stuck or failed."""
        from bevlaunch.diagnose import diagnose

        job = self._require_job(name)
        pods = self._pods(name)
        state = run_state(job, pods)
        status = self._summary(job, pods, state)
        stage, progress = self._stage(pods)
        diagnosis = None
        last_lines: tuple[str, ...] = ()
        if state in (RunState.FAILED, RunState.PENDING) or _troubled(pods):
            found = diagnose(
                job,
                pods,
                events=self._events(pods),
                log_tails=self._tails(pods),
                pvcs=self._claims(pods),
            )
            if found is not None:
                diagnosis, last_lines = str(found), found.last_lines
        return replace(
            status,
            stage=stage,
            progress=progress if not state.finished else None,
            diagnosis=diagnosis,
            last_lines=last_lines,
        )

    def _summary(self, job: dict[str, Any], pods: list[dict[str, Any]], state: RunState):
        name = job["metadata"]["name"]
        started, ended = job_times(job)
        return RunStatus(
            name=name,
            state=state,
            stages=self._stages(name),
            ranks=world_size(job),
            started=started,
            ended=ended if state.finished else None,
            location=f"{self.api.namespace}/{name}",
        )

    def _stages(self, name: str) -> tuple[str, ...]:
        import json

        config_map = self.api.get(CONFIG_MAP, f"{name}-config") or {}
        try:
            config = json.loads((config_map.get("data") or {}).get("config.json", "{}"))
        except ValueError:
            return ()
        return tuple(config.get("stages") or ())

    def _stage(self, pods: list[dict[str, Any]]) -> tuple[str | None, str | None]:
        """The stage and progress rank 0 last reported (its log's events)."""
        from bevlaunch.watch import WatchModel, progress_fields

        rank0 = pods_by_rank(pods).get(0)
        if rank0 is None or not container_status(rank0):
            return None, None
        model = WatchModel()
        text = self.api.read_log(
            rank0["metadata"]["name"], CONTAINER_NAME, tail_lines=STATUS_TAIL_LINES
        )
        for line in text.splitlines():
            model.feed(LogLine(0, line))
        if not model.progress:
            return model.stage, None
        return model.stage, ", ".join(progress_fields(model))

    def _events(self, pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        for pod in pods:
            if pod_phase(pod) == "Pending":
                selector = f"involvedObject.name={pod['metadata']['name']}"
                events += self.api.list(EVENT, field_selector=selector)
        return events

    def _tails(self, pods: list[dict[str, Any]]) -> dict[str, list[str]]:
        tails = {}
        for pod in pods:
            status = container_status(pod)
            if not status:
                continue
            crashing = ((status.get("state") or {}).get("waiting") or {}).get("reason") == (
                "CrashLoopBackOff"
            )
            if pod_phase(pod) == "Failed" or crashing:
                name = pod["metadata"]["name"]
                # In a crash loop the newest container is the one that crashed (the next one
                # has not started), so the plain log is the one to read.
                tails[name] = self.api.read_log(
                    name, CONTAINER_NAME, tail_lines=DIAGNOSIS_TAIL_LINES
                ).splitlines()
        return tails

    def _claims(self, pods: list[dict[str, Any]]) -> dict[str, dict[str, Any] | None]:
        claims: dict[str, dict[str, Any] | None] = {}
        for pod in pods:
            if pod_phase(pod) != "Pending":
                continue
            for volume in (pod.get("spec") or {}).get("volumes") or []:
                claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
                if claim and claim not in claims:
                    claims[claim] = self.api.get(PVC, claim)
        return claims

    def list(self) -> list[RunStatus]:
        """Every bevlaunch run in the namespace (state from Job and pods only), oldest first."""
        selector = f"{LABEL_MANAGED_BY}=bevlaunch"
        jobs = self.api.list(JOB, label_selector=selector)
        jobs += self.api.list(VOLCANO_JOB, label_selector=selector)
        pods: dict[str, list[dict[str, Any]]] = {}
        for pod in self.api.list(POD, label_selector=selector):
            run = ((pod.get("metadata") or {}).get("labels") or {}).get(LABEL_RUN, "")
            pods.setdefault(run, []).append(pod)
        runs = []
        for job in jobs:
            name = job["metadata"]["name"]
            state = run_state(job, pods.get(name, []))
            started, ended = job_times(job)
            runs.append(
                RunStatus(
                    name=name,
                    state=state,
                    ranks=world_size(job),
                    started=started,
                    ended=ended if state.finished else None,
                    location=f"{self.api.namespace}/{name}",
                )
            )
        return sorted(runs, key=lambda s: (s.started or float("inf"), s.name))

    def results(self, name: str) -> dict[str, Any]:
        """The metrics of the run, from the ``metrics`` events in rank 0's log.

        The events carry what ``results.json`` holds (detection metrics, per-class AP, FPS),
        and the log can be read with the same permission as ``logs``: no exec into a pod and
        no access to the output volume from the laptop. ``results_file`` says where the whole
        file is on the output volume.

        Raises:
            ClusterError: no such run, no rank 0 pod any more, or no metrics yet.
        """
        from bevlaunch.watch import WatchModel

        job = self._require_job(name)
        pods = self._pods(name)
        rank0 = pods_by_rank(pods).get(0)
        state = run_state(job, pods).value
        if rank0 is None:
            raise ClusterError(
                f"run {name!r} has no rank 0 pod (it is {state}); results.json is in the "
                "run directory on the output volume (see `bevlaunch status`)"
            )
        model = WatchModel()
        for line in self._pod_log(rank0):
            model.feed(LogLine(0, line))
        results = model.results(name)
        if not results.get("eval") and not results.get("bench"):
            raise ClusterError(f"run {name!r} has no results yet (it is {state})")
        for stage in ("eval", "bench"):
            path = model.metrics.get(stage, {}).get("results")
            if path:
                results["results_file"] = path
        return results

    def _pod_log(self, pod: dict[str, Any]) -> list[str]:
        """The whole log of a pod's workload container, the one before a restart first."""
        name = pod["metadata"]["name"]
        lines = []
        if int(container_status(pod).get("restartCount") or 0) > 0:
            lines += self.api.read_log(name, CONTAINER_NAME, previous=True).splitlines()
        return lines + self.api.read_log(name, CONTAINER_NAME).splitlines()

    # -- logs -------------------------------------------------------------------------------------

    def logs(self, name: str, *, rank: int | None = 0, follow: bool = False) -> Iterator[LogLine]:
        """Lines of rank ``rank`` (None: every rank); ``follow`` waits for more until the run
        has finished, across dropped streams and container restarts."""
        self._require_job(name)
        if follow:
            yield from self._follow(name, rank)
            return
        by_rank = pods_by_rank(self._pods(name))
        if rank is not None and rank not in by_rank:
            ranks = ", ".join(map(str, by_rank)) or "none yet"
            raise ClusterError(f"run {name!r} has no pod of rank {rank} (ranks: {ranks})")
        chosen = by_rank if rank is None else {rank: by_rank[rank]}
        for r, pod in chosen.items():
            for text in self._pod_log(pod):
                yield LogLine(r, text)

    def _follow(self, name: str, rank: int | None) -> Iterator[LogLine]:
        lines: queue.Queue[LogLine] = queue.Queue()
        stop = threading.Event()
        run_over = threading.Event()
        followers: dict[str, threading.Thread] = {}
        try:
            while True:
                job = self._job(name)
                pods = self._pods(name) if job is not None else []
                for r, pod in pods_by_rank(pods).items():
                    uid = pod["metadata"].get("uid") or pod["metadata"]["name"]
                    if (rank is None or r == rank) and uid not in followers:
                        follower = PodFollower(
                            self.api,
                            pod["metadata"]["name"],
                            r,
                            stop,
                            run_over=run_over,
                            read_timeout_s=self.read_timeout_s,
                            poll_s=self.poll_s,
                            clock=self.clock,
                            sleep=self.sleep,
                        )
                        thread = threading.Thread(target=_pump, args=(follower, lines), daemon=True)
                        thread.start()
                        followers[uid] = thread
                finished = job is None or run_state(job, pods).finished
                if finished:
                    run_over.set()  # pods that never started will not start now
                done = finished and not any(t.is_alive() for t in followers.values())
                yield from _drain(lines, timeout=0 if done else self.poll_s)
                if done:
                    yield from _drain(lines, timeout=0)
                    return
        finally:
            stop.set()

    # -- cancel -----------------------------------------------------------------------------------

    def cancel(self, name: str) -> RunStatus:
        """Delete the run's Job; the cluster deletes its pods, ConfigMap and Service with it."""
        status = self.status(name)
        if status.state.finished:
            return status
        self.api.delete(_kind(self._require_job(name)), name)
        return replace(
            status,
            state=RunState.CANCELLED,
            ended=self.clock(),
            progress=None,
            diagnosis="cancelled: its Job was deleted, and with it its pods, Service and ConfigMap",
        )


def _poll_from_env() -> float:
    import os

    value = os.environ.get(POLL_ENV, "")
    try:
        return float(value) if value else DEFAULT_POLL_S
    except ValueError as e:
        raise SpecError(f"{POLL_ENV}={value!r} is not a number of seconds") from e


def _kind(job: dict[str, Any]):
    return VOLCANO_JOB if is_volcano(job) else JOB


def _troubled(pods: list[dict[str, Any]]) -> bool:
    """A running run can still have a pod worth explaining (crash loop, image pull, failure)."""
    for pod in pods:
        waiting = (container_status(pod).get("state") or {}).get("waiting") or {}
        if pod_phase(pod) == "Failed" or waiting.get("reason") in _BAD_WAITING:
            return True
    return False


def _pump(follower: PodFollower, lines: queue.Queue[LogLine]) -> None:
    try:
        for line in follower.lines():
            lines.put(line)
    except ClusterError:
        pass  # the coordinator's own calls report a cluster that went away


def _drain(lines: queue.Queue[LogLine], timeout: float) -> Iterator[LogLine]:
    try:
        item = lines.get(timeout=timeout) if timeout > 0 else lines.get_nowait()
    except queue.Empty:
        return
    yield item
    while True:
        try:
            yield lines.get_nowait()
        except queue.Empty:
            return
