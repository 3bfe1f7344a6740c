"""`k8s/role.yaml` grants exactly what the backend uses: every request it sends is allowed by a
rule, and every rule's verb is used by some request (no grant nobody needs)."""

from __future__ import annotations

from pathlib import Path

import kmock
import pytest
import yaml
from k8s_emulator import NAMESPACE, VOLCANO

from bevdepth.events import format_event
from bevlaunch.backends.base import RunState
from bevlaunch.errors import ClusterError

ROLE = Path(__file__).resolve().parents[2] / "k8s" / "role.yaml"
# Open to every authenticated user (system:discovery), so not part of the Role.
DISCOVERY_PATHS = ("/version",)
VERBS = {
    kmock.action.LIST: "list",
    kmock.action.WATCH: "watch",
    kmock.action.FETCH: "get",
    kmock.action.CREATE: "create",
    kmock.action.DELETE: "delete",
}


def granted() -> set[tuple[str, str, str]]:
    role = yaml.safe_load(ROLE.read_text())
    assert role["kind"] == "Role"
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def needed(request: kmock.Request) -> tuple[str, str, str]:
    """The (apiGroup, resource[/subresource], verb) RBAC checks for ``request``."""
    assert request.resource is not None, f"unexpected request {request.method} {request.url}"
    resource = request.resource.plural
    if request.subresource:
        resource = f"{resource}/{request.subresource}"
    if request.action is kmock.action.UPDATE:
        verb = "patch" if request.method == "PATCH" else "update"
    elif request.action is kmock.action.DELETE and not request.name:
        verb = "deletecollection"
    else:
        verb = VERBS[request.action]
    return request.resource.group, resource, verb


def exercise_every_command(cluster, backend, make_spec) -> None:
    """Submit, replace, follow, diagnose, fetch results, list and cancel; native and Volcano;
    and a submit that the cluster refuses half-way (its objects are deleted again)."""
    backend.submit(make_spec())
    backend.submit(make_spec(), replace_existing=True)
    cluster.claim("nuscenes")
    cluster.claim("bevdepth-runs", phase="Pending")
    (pod,) = cluster.start_pods("demo", [0], phase="Pending")
    cluster.unschedulable(pod, "0/4 nodes are available: 4 Insufficient huawei.com/Ascend910.")
    assert backend.status("demo").diagnosis  # reads events and claims
    cluster.run_container(pod)
    metrics = format_event("metrics", stage="eval", mAP=0.3, NDS=0.4)
    cluster.log(pod, format_event("start", stage="eval"), metrics)
    cluster.exit(pod, 0)
    cluster.finish_job("demo", "Complete")
    assert [line.text for line in backend.logs("demo", follow=True)]
    assert backend.results("demo")["eval"]["metrics"]["mAP"] == 0.3
    assert [run.name for run in backend.list()] == ["demo"]
    backend.cancel("demo")

    cluster.emulator.resources[VOLCANO] = {}
    backend.submit(make_spec(name="gang", kubernetes={"scheduler": "volcano"}))
    backend.submit(
        make_spec(name="gang", kubernetes={"scheduler": "volcano"}), replace_existing=True
    )
    assert backend.status("gang").state is RunState.PENDING
    backend.cancel("gang")

    services = f"/api/v1/namespaces/{NAMESPACE}/services"
    cluster.emulator["post", services] << kmock.KubernetesError(status=403, reason="Forbidden")
    with pytest.raises(ClusterError, match="were deleted again"):
        backend.submit(make_spec(name="refused"))


def test_every_request_is_allowed_and_every_grant_is_used(cluster, backend, make_spec):
    exercise_every_command(cluster, backend, make_spec)
    requests = [r for r in cluster.requests() if r.url.path.rstrip("/") not in DISCOVERY_PATHS]
    used = {needed(r) for r in requests}
    assert used - granted() == set(), "the backend needs more than k8s/role.yaml grants"
    assert granted() - used == set(), "k8s/role.yaml grants what the backend never uses"


def test_the_role_binding_names_the_role():
    binding = yaml.safe_load((ROLE.parent / "rolebinding.yaml").read_text())
    role = yaml.safe_load(ROLE.read_text())
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["metadata"]["namespace"] == role["metadata"]["namespace"]
