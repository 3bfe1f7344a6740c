"""A Kubernetes API server for tests: kmock's emulator over HTTP, plus what it leaves out.

kmock's ``KubernetesEmulator`` stores objects and serves create/get/list/patch/delete over real
HTTP; the official client talks to it as to a cluster. This module adds, through kmock's own
extension points (a subclass and reactions), what an API server and its kubelets do that
kmock does not: uids and creation times, label and field selectors on lists, the garbage
collector (deleting a Job deletes what it owns), the server version, and pod logs (with
``follow``, ``timestamps``, ``sinceSeconds``, ``tailLines`` and ``previous``), whose streams a
test can drop or stall.

No controller runs: :class:`Cluster` lets a test play the Job controller and the kubelets
(create pods, set statuses, write log lines, add events).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import kmock
import yaml

NAMESPACE = "team-a"
RESOURCES = (
    "v1/configmaps",
    "v1/services",
    "v1/pods",
    "v1/events",
    "v1/persistentvolumeclaims",
    "batch/v1/jobs",
)
VOLCANO = "batch.volcano.sh/v1alpha1/jobs"


def now_rfc3339(offset_s: float = 0.0) -> str:
    moment = datetime.fromtimestamp(time.time() + offset_s, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


@dataclass
class ContainerLog:
    """One container's output (one per restart): timestamped lines, and whether it ended."""

    lines: list[tuple[float, str]] = field(default_factory=list)
    ended: bool = False


def _matches(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.split("=", 1)
            if labels.get(key) != value.lstrip("="):
                return False
        elif term not in labels:
            return False
    return True


def _field(obj: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        obj = (obj or {}).get(part) if isinstance(obj, dict) else None
    return obj


class Emulator(kmock.KubernetesEmulator):
    """kmock's emulator with an API server's bookkeeping, a garbage collector and pod logs."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.version = (1, 31)
        self.pod_logs: dict[str, list[ContainerLog]] = {}
        self.stream_generation: dict[str, int] = {}  # bump to drop a pod's open log streams
        self.stalled: set[str] = set()  # pods whose streams go silent (a sleeping laptop)
        self.log_lock = threading.Lock()
        self["get", "/version/"] << self._serve_version
        self[kmock.subresource("log")] << self._serve_log

    def _serve_version(self) -> dict[str, Any]:
        major, minor = self.version
        return {
            "major": str(major),
            "minor": f"{minor}+",
            "gitVersion": f"v{major}.{minor}.2",
            "gitCommit": "0" * 40,
            "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z",
            "goVersion": "go1.23",
            "compiler": "gc",
            "platform": "linux/amd64",
        }

    async def _handle(self, request: kmock.Request) -> Any:
        owner_uid = None
        if request.action == kmock.action.CREATE and isinstance(request.data, dict):
            meta = request.data.setdefault("metadata", {})
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", now_rfc3339())
            if request.namespace:
                meta.setdefault("namespace", request.namespace)
        if request.action == kmock.action.DELETE and request.name:
            key = (request.resource, request.namespace, request.name)
            if key in self.objects and not self.objects[key].deleted:
                owner_uid = self.objects[key].raw.get("metadata", {}).get("uid")
        response = await super()._handle(request)
        if owner_uid is not None:
            self._collect_garbage(owner_uid)
        return response

    def _collect_garbage(self, owner_uid: str) -> None:
        """Delete what the deleted object owned (the garbage collector's job), recursively."""
        for _, obj in list(self.objects.items()):
            if obj.deleted:
                continue
            meta = obj.raw.get("metadata", {})
            if any(ref.get("uid") == owner_uid for ref in meta.get("ownerReferences") or []):
                obj.delete()
                self._collect_garbage(meta.get("uid"))

    async def _serve_list(self, request: kmock.Request) -> Any:
        result = await super()._serve_list(request)
        labels = request.params.get("labelSelector", "")
        fields = request.params.get("fieldSelector", "")
        items = []
        for item in result["items"]:
            if labels and not _matches(item.get("metadata", {}).get("labels") or {}, labels):
                continue
            terms = [t.split("=", 1) for t in fields.split(",") if "=" in t]
            if any(str(_field(item, k)) != v for k, v in terms):
                continue
            items.append(item)
        return {"kind": "List", "apiVersion": "v1", **result, "items": items}

    # -- logs (the kubelet's part) ----------------------------------------------------------------

    def _serve_log(self, request: kmock.Request) -> Any:
        pod, params = request.name, request.params
        with self.log_lock:
            containers = list(self.pod_logs.get(pod or "", []))
        previous = params.get("previous") == "true"
        if not containers or (previous and len(containers) < 2):
            what = "previous terminated container" if previous else "container"
            raise kmock.KubernetesError(
                status=400,
                reason="BadRequest",
                message=f'{what} "bevdepth" in pod "{pod}" is not available',
            )
        log = containers[-2] if previous else containers[-1]
        stamps = params.get("timestamps") == "true"
        since = params.get("sinceSeconds")
        tail = params.get("tailLines")

        def render(start: int) -> tuple[list[bytes], int]:
            with self.log_lock:
                lines = list(log.lines[start:])
            cutoff = time.time() - int(since) if since else None
            chosen = [(t, text) for t, text in lines if cutoff is None or t >= cutoff]
            out = [((self._stamp(t) + " ") if stamps else "") + text + "\n" for t, text in chosen]
            return [o.encode() for o in out], start + len(lines)

        if params.get("follow") != "true":
            chunks, _ = render(0)
            if tail:
                chunks = chunks[-int(tail) :] if int(tail) else []
            return b"".join(chunks)
        generation = self.stream_generation.get(pod, 0)

        async def stream() -> Any:
            yield b""  # send the headers now, as an API server does
            chunks, offset = render(0)
            for chunk in chunks:
                yield chunk
            while True:
                await asyncio.sleep(0.01)
                if self.stream_generation.get(pod, 0) != generation:
                    return  # the connection "dropped"
                if pod in self.stalled:
                    continue  # nothing comes through, the connection stays open
                with self.log_lock:
                    new = list(log.lines[offset:])
                    ended = log.ended
                for t, text in new:
                    yield (((self._stamp(t) + " ") if stamps else "") + text + "\n").encode()
                offset += len(new)
                if ended and not new:
                    return

        return stream()

    @staticmethod
    def _stamp(t: float) -> str:
        moment = datetime.fromtimestamp(t, tz=timezone.utc)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(t * 1e9) % 1_000_000_000:09d}Z"


class Cluster:
    """The emulator on a background event loop, and the test's hands on it.

    Attributes:
        emulator: the kmock emulator (its requests, objects).
        url: the API server's address.
        kubeconfig: a kubeconfig file pointing at it (context ``test``, namespace ``team-a``).
    """

    def __init__(self, tmp_path: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the emulator did not start")
        self.kubeconfig = tmp_path / "kubeconfig"
        self.kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "emu", "cluster": {"server": self.url}}],
                    "users": [{"name": "dev", "user": {"token": "dev-token"}}],
                    "contexts": [
                        {
                            "name": "test",
                            "context": {"cluster": "emu", "user": "dev", "namespace": NAMESPACE},
                        },
                        {"name": "other", "context": {"cluster": "emu", "user": "dev"}},
                    ],
                    "current-context": "test",
                }
            )
        )

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with Emulator() as emulator, kmock.Server(emulator) as server:
            for resource in RESOURCES:
                emulator.resources[resource] = {}
            self.emulator = emulator
            self.url = str(server.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()

    def close(self) -> None:
        for pod in list(self.emulator.pod_logs):
            self.drop_streams(pod)  # open log streams would hold the server up
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(10)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the emulator's loop (objects change between requests, never during)."""

        async def wrapper() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(10)

    # -- reading --------------------------------------------------------------------------------

    def get(self, resource: str, name: str) -> dict[str, Any] | None:
        def read() -> dict[str, Any] | None:
            key = (kmock.resource(resource), NAMESPACE, name)
            if key not in self.emulator.objects or self.emulator.objects[key].deleted:
                return None
            return self.emulator.objects[key].raw

        return self.call(read)

    def names(self, resource: str) -> list[str]:
        def read() -> list[str]:
            wanted = kmock.resource(resource)
            return sorted(
                name
                for (res, _, name), obj in self.emulator.objects.items()
                if res == wanted and not obj.deleted
            )

        return self.call(read)

    def requests(self) -> list[kmock.Request]:
        """Every request sent to the server (the test changes objects directly, not by HTTP)."""
        return list(self.emulator)

    # -- playing the controllers ------------------------------------------------------------------

    def put(self, resource: str, obj: dict[str, Any]) -> None:
        def write() -> None:
            meta = obj.setdefault("metadata", {})
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", now_rfc3339())
            meta.setdefault("namespace", NAMESPACE)
            key = (kmock.resource(resource), NAMESPACE, meta["name"])
            if key in self.emulator.objects:
                self.emulator.objects[key].create(obj)
            else:
                self.emulator.objects[key] = obj

        self.call(write)

    def patch(self, resource: str, name: str, changes: dict[str, Any]) -> None:
        self.call(
            lambda: self.emulator.objects[kmock.resource(resource), NAMESPACE, name].patch(changes)
        )

    def start_pods(self, job_name: str, ranks: range | list[int], phase: str = "Running") -> list:
        """Create the Job's pods as the Job controller would, running (or as ``phase``)."""
        job = self.get("batch/v1/jobs", job_name)
        assert job is not None, f"no Job {job_name}"
        template = job["spec"]["template"]
        names = []
        for rank in ranks:
            name = f"{job_name}-{rank}-{uuid.uuid4().hex[:5]}"
            labels = {
                **template["metadata"]["labels"],
                "batch.kubernetes.io/job-completion-index": str(rank),
                "job-name": job_name,
            }
            self.put(
                "v1/pods",
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": name,
                        "labels": labels,
                        "annotations": {"batch.kubernetes.io/job-completion-index": str(rank)},
                        "ownerReferences": [
                            {
                                "apiVersion": "batch/v1",
                                "kind": "Job",
                                "name": job_name,
                                "uid": job["metadata"]["uid"],
                                "controller": True,
                            }
                        ],
                    },
                    "spec": template["spec"],
                    "status": {"phase": "Pending"},
                },
            )
            if phase == "Running":
                self.run_container(name)
            names.append(name)
        return names

    def run_container(self, pod: str) -> None:
        """The kubelet starts (or restarts) the workload container."""
        current = self.get("v1/pods", pod)
        old = _container_status(current)
        restarts = 0
        if old.get("state", {}).get("running") or old.get("state", {}).get("terminated"):
            restarts = int(old.get("restartCount", 0)) + 1
        with self.emulator.log_lock:
            self.emulator.pod_logs.setdefault(pod, []).append(ContainerLog())
        status = {
            "name": "bevdepth",
            "image": current["spec"]["containers"][0]["image"],
            "ready": True,
            "restartCount": restarts,
            "state": {"running": {"startedAt": now_rfc3339()}},
        }
        if restarts:
            status["lastState"] = old.get("state", {})
        self.patch("v1/pods", pod, {"status": {"phase": "Running", "containerStatuses": [status]}})

    def log(self, pod: str, *lines: str) -> None:
        """The container prints ``lines``."""
        with self.emulator.log_lock:
            container = self.emulator.pod_logs[pod][-1]
            for text in lines:
                container.lines.append((time.time(), text))

    def exit(self, pod: str, code: int, reason: str | None = None, restart: bool = False) -> None:
        """The container exits; without ``restart`` the pod ends (Succeeded or Failed)."""
        with self.emulator.log_lock:
            self.emulator.pod_logs[pod][-1].ended = True
        current = _container_status(self.get("v1/pods", pod))
        terminated = {
            "exitCode": code,
            "reason": reason or ("Completed" if code == 0 else "Error"),
            "finishedAt": now_rfc3339(),
        }
        status = {**current, "ready": False, "state": {"terminated": terminated}}
        phase = "Running" if restart else ("Succeeded" if code == 0 else "Failed")
        self.patch("v1/pods", pod, {"status": {"phase": phase, "containerStatuses": [status]}})

    def wait_container(self, pod: str, reason: str, message: str = "") -> None:
        """The container is waiting (image pull, crash loop back-off)."""
        current = _container_status(self.get("v1/pods", pod)) or {
            "name": "bevdepth",
            "image": self.get("v1/pods", pod)["spec"]["containers"][0]["image"],
            "restartCount": 0,
        }
        status = {**current, "ready": False, "state": {"waiting": {"reason": reason}}}
        if message:
            status["state"]["waiting"]["message"] = message
        self.patch("v1/pods", pod, {"status": {"containerStatuses": [status]}})

    def unschedulable(self, pod: str, message: str) -> None:
        """The scheduler cannot place the pod: condition and FailedScheduling event."""
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
        }
        self.patch("v1/pods", pod, {"status": {"phase": "Pending", "conditions": [condition]}})
        self.event(pod, "FailedScheduling", message)

    def claim(self, name: str, phase: str = "Bound") -> None:
        """A PersistentVolumeClaim the run mounts, bound to a volume or ``phase``."""
        self.put(
            "v1/persistentvolumeclaims",
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": name},
                "spec": {
                    "accessModes": ["ReadOnlyMany"],
                    "resources": {"requests": {"storage": "1Ti"}},
                },
                "status": {"phase": phase},
            },
        )

    def event(self, pod: str, reason: str, message: str) -> None:
        self.put(
            "v1/events",
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": f"{pod}.{uuid.uuid4().hex[:8]}"},
                "involvedObject": {"kind": "Pod", "name": pod, "namespace": NAMESPACE},
                "reason": reason,
                "message": message,
                "type": "Warning",
                "lastTimestamp": now_rfc3339(),
            },
        )

    def finish_job(self, name: str, kind: str, reason: str = "", message: str = "") -> None:
        """The Job controller records the outcome (``Complete`` or ``Failed``)."""
        condition = {
            "type": kind,
            "status": "True",
            "reason": reason,
            "message": message,
            "lastTransitionTime": now_rfc3339(),
        }
        status: dict[str, Any] = {"conditions": [condition]}
        if kind == "Complete":
            status["completionTime"] = now_rfc3339()
        self.patch("batch/v1/jobs", name, {"status": status})

    def start_job(self, name: str) -> None:
        self.patch("batch/v1/jobs", name, {"status": {"startTime": now_rfc3339(), "active": 1}})

    def drop_streams(self, pod: str) -> None:
        """Every open log stream of ``pod`` ends, as when a connection drops."""
        self.emulator.stream_generation[pod] = self.emulator.stream_generation.get(pod, 0) + 1


def _container_status(pod: dict[str, Any] | None) -> dict[str, Any]:
    statuses = ((pod or {}).get("status") or {}).get("containerStatuses") or []
    return dict(statuses[0]) if statuses else {}
