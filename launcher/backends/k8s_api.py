"""The one module that talks to the Kubernetes API (through the official ``kubernetes`` client).

Everything else in the Kubernetes backend works on plain dicts, so it is tested without a
cluster; and the calls listed here are exactly what ``k8s/role.yaml`` grants (a test checks it).
The client is imported lazily: ``bevlaunch --help`` never pays for it.

Objects come back as the JSON the server sent (``_preload_content=False``), not as the client's
models: the backend reads a few fields and must not fail on fields a newer server adds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bevlaunch.errors import ClusterError, SpecError

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

# The namespace of an in-cluster service account (what kubectl uses inside a pod).
IN_CLUSTER_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
DEFAULT_NAMESPACE = "default"
CONNECT_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Kind:
    """An API resource the backend uses: ``apiVersion``, ``kind`` and URL plural."""

    api_version: str
    kind: str
    plural: str

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]


CONFIG_MAP = Kind("v1", "ConfigMap", "configmaps")
SERVICE = Kind("v1", "Service", "services")
POD = Kind("v1", "Pod", "pods")
EVENT = Kind("v1", "Event", "events")
PVC = Kind("v1", "PersistentVolumeClaim", "persistentvolumeclaims")
JOB = Kind("batch/v1", "Job", "jobs")
VOLCANO_JOB = Kind("batch.volcano.sh/v1alpha1", "Job", "jobs")
KINDS = (CONFIG_MAP, SERVICE, POD, EVENT, PVC, JOB, VOLCANO_JOB)


def kind_of(obj: dict[str, Any]) -> Kind:
    """The :class:`Kind` of a manifest (by ``apiVersion`` and ``kind``)."""
    for kind in KINDS:
        if (kind.api_version, kind.kind) == (obj.get("apiVersion"), obj.get("kind")):
            return kind
    raise ValueError(f"bevlaunch does not create {obj.get('apiVersion')}/{obj.get('kind')}")


@dataclass(frozen=True)
class Target:
    """Where kubectl would send a request: kubeconfig file(s), context and namespace.

    Resolution follows kubectl: ``--kubeconfig``/``KUBECONFIG`` (a ``:``-separated list) else
    ``~/.kube/config``; without any kubeconfig but inside a pod, the in-cluster service account.
    The namespace is ``-n``, else the context's namespace, else ``default``.
    """

    kubeconfig: str | None
    context: str | None
    namespace: str
    in_cluster: bool = False


def resolve_target(
    *,
    context: str | None = None,
    namespace: str | None = None,
    environ: dict[str, str] | None = None,
) -> Target:
    """Where to connect, resolved as kubectl does (see :class:`Target`).

    Raises:
        ClusterError: the client is not installed, no kubeconfig and not in a pod, or an
            unknown context.
    """
    _require_client()
    from kubernetes import config as kube_config

    env = dict(os.environ) if environ is None else environ
    paths = env.get("KUBECONFIG") or "~/.kube/config"
    present = [p for p in paths.split(os.pathsep) if p and Path(p).expanduser().is_file()]
    if not present:
        if env.get("KUBERNETES_SERVICE_HOST"):
            ns = namespace or _in_cluster_namespace()
            return Target(kubeconfig=None, context=None, namespace=ns, in_cluster=True)
        raise ClusterError(
            f"no kubeconfig found (KUBECONFIG={env.get('KUBECONFIG', '') or 'unset'}, "
            "~/.kube/config missing) and not running in a pod; point KUBECONFIG at your "
            "cluster's kubeconfig"
        )
    kubeconfig = os.pathsep.join(present)
    try:
        contexts, current = kube_config.list_kube_config_contexts(config_file=kubeconfig)
    except kube_config.ConfigException as e:
        raise ClusterError(f"kubeconfig {kubeconfig}: {e}") from e
    chosen = current
    if context is not None:
        by_name = {c["name"]: c for c in contexts}
        if context not in by_name:
            names = ", ".join(sorted(by_name)) or "none"
            raise ClusterError(f"--context {context!r} is not in {kubeconfig} (contexts: {names})")
        chosen = by_name[context]
    ns = namespace or (chosen or {}).get("context", {}).get("namespace") or DEFAULT_NAMESPACE
    return Target(kubeconfig=kubeconfig, context=context, namespace=ns)


def _require_client() -> None:
    """The client is an extra (``k8s``): say how to get it instead of an ImportError."""
    try:
        import kubernetes  # noqa: F401
    except ImportError as e:
        raise ClusterError(
            "the Kubernetes backend needs the official client, which is not installed: "
            "pip install 'bevlaunch[k8s]'"
        ) from e


def _in_cluster_namespace() -> str:
    try:
        return IN_CLUSTER_NAMESPACE_FILE.read_text(encoding="utf-8").strip() or DEFAULT_NAMESPACE
    except OSError:
        return DEFAULT_NAMESPACE


def _api_client(target: Target) -> ApiClient:
    from kubernetes import client as kube_client
    from kubernetes import config as kube_config

    try:
        if target.in_cluster:
            configuration = kube_client.Configuration()
            kube_config.load_incluster_config(client_configuration=configuration)
            return kube_client.ApiClient(configuration)
        return kube_config.new_client_from_config(
            config_file=target.kubeconfig, context=target.context, persist_config=False
        )
    except kube_config.ConfigException as e:
        raise ClusterError(f"kubeconfig {target.kubeconfig or '(in-cluster)'}: {e}") from e


def _error_line(e: Any) -> str:
    """``403 Forbidden: jobs.batch is forbidden: ...`` from an ApiException."""
    body = getattr(e, "body", None) or getattr(getattr(e, "http_resp", None), "data", None)
    message = ""
    if body:
        try:
            message = json.loads(body).get("message", "")
        except (ValueError, AttributeError):
            message = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    return f"{e.status} {e.reason}" + (f": {message.splitlines()[0]}" if message else "")


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """Turn client and connection errors into one-line ClusterErrors that say what to do."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        yield
    except ApiException as e:
        hint = ""
        if e.status in (401, 403):
            hint = "; check your credentials, and that k8s/role.yaml is bound to you here"
        raise ClusterError(f"{what}: {_error_line(e)}{hint}") from e
    except (HTTPError, OSError) as e:
        raise ClusterError(f"{what}: cannot reach the cluster ({type(e).__name__}: {e})") from e


def _read(response: Any) -> Any:
    return json.loads(response.data or b"null")


class KubeApi:
    """The calls the backend makes, in one namespace. Objects in and out are plain dicts.

    Args:
        api_client: an official ``kubernetes.client.ApiClient``.
        namespace: where every namespaced call goes.
    """

    def __init__(self, api_client: ApiClient, namespace: str) -> None:
        from kubernetes import client as kube_client

        self.api_client = api_client
        self.namespace = namespace
        self.core = kube_client.CoreV1Api(api_client)
        self.batch = kube_client.BatchV1Api(api_client)
        self.custom = kube_client.CustomObjectsApi(api_client)
        self.version_api = kube_client.VersionApi(api_client)

    @classmethod
    def connect(cls, *, context: str | None = None, namespace: str | None = None) -> KubeApi:
        """Connect as kubectl would (see :func:`resolve_target`)."""
        target = resolve_target(context=context, namespace=namespace)
        return cls(_api_client(target), target.namespace)

    @property
    def server(self) -> str:
        """The API server's URL (for messages)."""
        return str(self.api_client.configuration.host)

    def server_version(self) -> tuple[int, int]:
        """``(major, minor)`` of the API server (``"31+"`` counts as 31)."""
        with _translated(f"reading the server version of {self.server}"):
            info = _read(self.version_api.get_code(_preload_content=False, **self._timeout()))
        try:
            major = int("".join(c for c in str(info["major"]) if c.isdigit()))
            minor = int("".join(c for c in str(info["minor"]) if c.isdigit()))
        except (KeyError, TypeError, ValueError) as e:
            raise ClusterError(f"{self.server} sent an unreadable version: {info!r}") from e
        return major, minor

    # -- objects ----------------------------------------------------------------------------------

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create ``obj`` in the namespace; returns the stored object (with its uid).

        Raises:
            ClusterError: the server refused it (``409`` when the name is taken).
        """
        kind = kind_of(obj)
        ns = self.namespace
        calls: dict[Kind, Callable[[], Any]] = {
            CONFIG_MAP: lambda: self.core.create_namespaced_config_map(ns, obj, **self._raw()),
            SERVICE: lambda: self.core.create_namespaced_service(ns, obj, **self._raw()),
            JOB: lambda: self.batch.create_namespaced_job(ns, obj, **self._raw()),
            VOLCANO_JOB: lambda: self.custom.create_namespaced_custom_object(
                kind.group, kind.version, ns, kind.plural, obj, **self._raw()
            ),
        }
        name = obj["metadata"]["name"]
        with _translated(f"creating {kind.kind} {ns}/{name}"):
            return _read(calls[kind]())

    def get(self, kind: Kind, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist (or its API is not installed)."""
        from kubernetes.client.exceptions import ApiException

        ns = self.namespace
        calls: dict[Kind, Callable[[], Any]] = {
            CONFIG_MAP: lambda: self.core.read_namespaced_config_map(name, ns, **self._raw()),
            POD: lambda: self.core.read_namespaced_pod(name, ns, **self._raw()),
            PVC: lambda: self.core.read_namespaced_persistent_volume_claim(name, ns, **self._raw()),
            JOB: lambda: self.batch.read_namespaced_job(name, ns, **self._raw()),
            VOLCANO_JOB: lambda: self.custom.get_namespaced_custom_object(
                kind.group, kind.version, ns, kind.plural, name, **self._raw()
            ),
        }
        with _translated(f"reading {kind.kind} {ns}/{name}"):
            try:
                return _read(calls[kind]())
            except ApiException as e:
                if e.status == 404:
                    return None
                raise

    def list(self, kind: Kind, *, label_selector: str = "", field_selector: str = "") -> list[dict]:
        """Objects of ``kind`` in the namespace matching the selectors (an absent API: [])."""
        from kubernetes.client.exceptions import ApiException

        ns = self.namespace
        selectors: dict[str, Any] = {}
        if label_selector:
            selectors["label_selector"] = label_selector
        if field_selector:
            selectors["field_selector"] = field_selector
        calls: dict[Kind, Callable[[], Any]] = {
            POD: lambda: self.core.list_namespaced_pod(ns, **selectors, **self._raw()),
            EVENT: lambda: self.core.list_namespaced_event(ns, **selectors, **self._raw()),
            JOB: lambda: self.batch.list_namespaced_job(ns, **selectors, **self._raw()),
            VOLCANO_JOB: lambda: self.custom.list_namespaced_custom_object(
                kind.group, kind.version, ns, kind.plural, **selectors, **self._raw()
            ),
        }
        with _translated(f"listing {kind.plural} in {ns}"):
            try:
                return list(_read(calls[kind]()).get("items") or [])
            except ApiException as e:
                if e.status == 404 and kind is VOLCANO_JOB:
                    return []  # Volcano is not installed: there are no Volcano runs
                raise

    def delete(self, kind: Kind, name: str) -> bool:
        """Delete an object and, in the foreground, what it owns. False when it was not there."""
        from kubernetes.client.exceptions import ApiException

        ns = self.namespace
        policy = {"propagation_policy": "Foreground"}
        calls: dict[Kind, Callable[[], Any]] = {
            CONFIG_MAP: lambda: self.core.delete_namespaced_config_map(
                name, ns, **policy, **self._raw()
            ),
            SERVICE: lambda: self.core.delete_namespaced_service(name, ns, **policy, **self._raw()),
            JOB: lambda: self.batch.delete_namespaced_job(name, ns, **policy, **self._raw()),
            VOLCANO_JOB: lambda: self.custom.delete_namespaced_custom_object(
                kind.group, kind.version, ns, kind.plural, name, **policy, **self._raw()
            ),
        }
        with _translated(f"deleting {kind.kind} {ns}/{name}"):
            try:
                calls[kind]()
            except ApiException as e:
                if e.status == 404:
                    return False
                raise
        return True

    # -- logs -------------------------------------------------------------------------------------

    def read_log(
        self,
        pod: str,
        container: str,
        *,
        previous: bool = False,
        tail_lines: int | None = None,
        since_seconds: int | None = None,
        timestamps: bool = False,
    ) -> str:
        """A container's log so far (``previous``: of the container before its last restart).

        An unavailable log (container not started yet, previous container gone) is "".
        """
        from kubernetes.client.exceptions import ApiException

        options: dict[str, Any] = {"container": container, "timestamps": timestamps}
        if previous:
            options["previous"] = True
        if tail_lines is not None:
            options["tail_lines"] = tail_lines
        if since_seconds is not None:
            options["since_seconds"] = since_seconds
        with _translated(f"reading the log of pod {self.namespace}/{pod}"):
            try:
                response = self.core.read_namespaced_pod_log(
                    pod, self.namespace, **options, **self._raw()
                )
            except ApiException as e:
                if e.status in (400, 404):  # "container ... is waiting to start", pod gone
                    return ""
                raise
        return response.data.decode("utf-8", errors="replace")

    def follow_log(
        self,
        pod: str,
        container: str,
        *,
        since_seconds: int | None,
        read_timeout_s: float,
    ) -> Iterator[str]:
        """Complete lines (timestamped) of a running container, as they come.

        Ends quietly when the stream ends for any reason (container exited, connection dropped,
        nothing received for ``read_timeout_s``, e.g. after a laptop slept): the caller looks at
        the pod to tell which, and reconnects. A trailing partial line is held back (the next
        read returns it whole).
        """
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        options: dict[str, Any] = {"container": container, "follow": True, "timestamps": True}
        if since_seconds is not None:
            options["since_seconds"] = since_seconds
        try:
            response = self.core.read_namespaced_pod_log(
                pod,
                self.namespace,
                **options,
                _preload_content=False,
                _request_timeout=(CONNECT_TIMEOUT_S, read_timeout_s),
            )
        except ApiException as e:
            if e.status in (400, 404):
                return
            raise ClusterError(f"following the log of pod {pod}: {_error_line(e)}") from e
        except (HTTPError, OSError):
            return
        pending = b""
        try:
            for chunk in response.stream(amt=64 * 1024, decode_content=True):
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    yield line.decode("utf-8", errors="replace")
        except (HTTPError, OSError):
            return
        finally:
            response.release_conn()

    # -- helpers ----------------------------------------------------------------------------------

    @staticmethod
    def _timeout() -> dict[str, Any]:
        return {"_request_timeout": (CONNECT_TIMEOUT_S, REQUEST_TIMEOUT_S)}

    def _raw(self) -> dict[str, Any]:
        return {"_preload_content": False, **self._timeout()}


def check_namespace(flag: str | None, spec_namespace: str | None) -> str | None:
    """The namespace a submit goes to: ``-n`` or the spec's; both given must agree (as kubectl).

    Raises:
        SpecError: they differ.
    """
    if flag and spec_namespace and flag != spec_namespace:
        raise SpecError(
            f"kubernetes.namespace: the spec says {spec_namespace!r} but -n says {flag!r}; "
            "drop one of them"
        )
    return flag or spec_namespace
