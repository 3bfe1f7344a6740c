"""The Kubernetes backend against the emulated API server: submit, follow, status, cancel.

The test plays the controllers and kubelets (pods appear, print, exit; the Job gets its
conditions) and checks what the backend makes of it.
"""

from __future__ import annotations

import sys
import threading
import time

import pytest
from k8s_emulator import NAMESPACE

from bevdepth.events import format_event
from bevlaunch.backends.base import RunState
from bevlaunch.backends.k8s_api import KubeApi, resolve_target
from bevlaunch.backends.kubernetes import KubernetesBackend
from bevlaunch.errors import ClusterError, SpecError
from bevlaunch.labels import LABEL_KUEUE_QUEUE, LABEL_RANK

kubernetes_validate = pytest.importorskip("kubernetes_validate")


def later(delay: float, *actions):
    """Run ``actions`` in order after ``delay`` seconds, in the background (a controller)."""

    def run():
        time.sleep(delay)
        for action in actions:
            action()
            time.sleep(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def posted(cluster) -> list[dict]:
    return [r.data for r in cluster.requests() if r.method == "POST"]


# -- submit --


def test_submit_creates_the_job_first_then_its_children_owned_by_it(cluster, backend, make_spec):
    submitted = backend.submit(make_spec())
    assert (submitted.name, submitted.location) == ("demo", f"{NAMESPACE}/demo")
    kinds = [body["kind"] for body in posted(cluster)]
    assert kinds == ["Job", "ConfigMap", "Service"]
    job = cluster.get("batch/v1/jobs", "demo")
    for resource, name in (("v1/configmaps", "demo-config"), ("v1/services", "demo")):
        (owner,) = cluster.get(resource, name)["metadata"]["ownerReferences"]
        assert owner == {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": "demo",
            "uid": job["metadata"]["uid"],
        }


@pytest.mark.parametrize("version", ["1.29.0", "1.31.0", "1.33.0"])
def test_every_object_sent_validates_strictly(cluster, backend, make_spec, version):
    backend.submit(make_spec(resources={"nodes": 2}))
    bodies = posted(cluster)
    assert len(bodies) == 3
    for body in bodies:
        kubernetes_validate.validate(body, version, strict=True)


def test_the_failure_policy_follows_the_server_version(cluster, backend, make_spec):
    cluster.emulator.version = (1, 30)
    backend.submit(make_spec(name="old"))
    assert "podFailurePolicy" not in cluster.get("batch/v1/jobs", "old")["spec"]
    cluster.emulator.version = (1, 31)
    backend.submit(make_spec(name="new", resources={"nodes": 2}))
    rules = cluster.get("batch/v1/jobs", "new")["spec"]["podFailurePolicy"]["rules"]
    assert [r["action"] for r in rules] == ["FailJob", "FailJob"]  # several nodes: no Ignore


def test_a_taken_name_is_refused_unless_replaced(cluster, backend, make_spec):
    backend.submit(make_spec())
    old_uid = cluster.get("batch/v1/jobs", "demo")["metadata"]["uid"]
    with pytest.raises(ClusterError, match=r"already exists in namespace team-a.*--replace"):
        backend.submit(make_spec())
    backend.submit(make_spec(), replace_existing=True)
    job = cluster.get("batch/v1/jobs", "demo")
    assert job["metadata"]["uid"] != old_uid
    owner = cluster.get("v1/configmaps", "demo-config")["metadata"]["ownerReferences"][0]
    assert owner["uid"] == job["metadata"]["uid"]


def test_a_refused_object_leaves_nothing_behind(cluster, backend, make_spec):
    import kmock

    cluster.emulator["post", f"/api/v1/namespaces/{NAMESPACE}/services"] << kmock.KubernetesError(
        status=403, reason="Forbidden", message='services is forbidden: User "dev" cannot create'
    )
    with pytest.raises(ClusterError) as error:
        backend.submit(make_spec())
    assert "403 Forbidden" in str(error.value)
    assert "k8s/role.yaml" in str(error.value)
    assert "were deleted again" in str(error.value)
    assert cluster.names("batch/v1/jobs") == []
    assert cluster.names("v1/configmaps") == []


def test_namespace_and_context_resolve_as_kubectl(cluster, backend, make_spec, monkeypatch):
    assert resolve_target().namespace == NAMESPACE  # the context's namespace
    assert resolve_target(context="other").namespace == "default"
    assert resolve_target(namespace="x").namespace == "x"
    with pytest.raises(ClusterError, match="--context 'nope' is not in"):
        resolve_target(context="nope")
    with pytest.raises(SpecError, match=r"kubernetes\.namespace"):
        KubernetesBackend(namespace="x").submit(make_spec(kubernetes={"namespace": "y"}))
    monkeypatch.setenv("KUBECONFIG", "/nonexistent")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    target = resolve_target()
    assert target.in_cluster and target.kubeconfig is None


def test_kueue_runs_are_created_suspended_and_pending(cluster, backend, make_spec):
    backend.submit(make_spec(kubernetes={"queue": "team-a-queue"}))
    job = cluster.get("batch/v1/jobs", "demo")
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["labels"][LABEL_KUEUE_QUEUE] == "team-a-queue"
    assert backend.status("demo").state is RunState.PENDING


def test_volcano_runs_are_gang_scheduled_and_own_their_config(cluster, backend, make_spec):
    from k8s_emulator import VOLCANO

    cluster.emulator.resources[VOLCANO] = {}
    spec = make_spec(resources={"nodes": 2}, kubernetes={"scheduler": "volcano"})
    backend.submit(spec)
    vcjob = cluster.get(VOLCANO, "demo")
    assert vcjob["spec"]["minAvailable"] == 2 and vcjob["spec"]["tasks"][0]["replicas"] == 2
    owner = cluster.get("v1/configmaps", "demo-config")["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"]) == ("Job", vcjob["metadata"]["uid"])
    assert backend.status("demo").state is RunState.PENDING
    cluster.patch(VOLCANO, "demo", {"status": {"state": {"phase": "Running"}}})
    assert backend.status("demo").state is RunState.RUNNING
    assert [r.name for r in backend.list()] == ["demo"]
    assert backend.cancel("demo").state is RunState.CANCELLED
    assert cluster.names(VOLCANO) == [] and cluster.names("v1/configmaps") == []


# -- status, logs, results --


def _progress(step: int) -> str:
    return format_event(
        "progress",
        stage="train",
        epoch=0,
        step=step,
        steps_per_epoch=10,
        max_steps=10,
        loss=1.5 - step / 10,
    )


def test_a_run_from_pending_to_succeeded(cluster, backend, make_spec):
    backend.submit(make_spec(stages=["train", "eval"]))
    status = backend.status("demo")
    assert (status.state, status.stages, status.ranks) == (RunState.PENDING, ("train", "eval"), 8)
    (pod,) = cluster.start_pods("demo", [0])
    cluster.start_job("demo")
    cluster.log(pod, format_event("start", stage="train", epochs=1), "loading", _progress(3))
    status = backend.status("demo")
    assert status.state is RunState.RUNNING and status.stage == "train"
    assert status.progress == "epoch 1/1, step 3/10, loss 1.2000"
    metrics = format_event(
        "metrics", stage="eval", mAP=0.3253, NDS=0.4332, results="/mnt/output/runs/demo/r.json"
    )
    cluster.log(pod, format_event("start", stage="eval"), metrics)
    cluster.exit(pod, 0)
    cluster.finish_job("demo", "Complete")
    status = backend.status("demo")
    assert status.state is RunState.SUCCEEDED and status.ended is not None
    assert status.stage == "eval" and status.progress is None
    results = backend.results("demo")
    assert results["eval"]["metrics"] == {"mAP": 0.3253, "NDS": 0.4332}
    assert results["results_file"] == "/mnt/output/runs/demo/r.json"


def test_results_before_any_metrics_are_an_error(cluster, backend, make_spec):
    backend.submit(make_spec())
    with pytest.raises(ClusterError, match="no rank 0 pod"):
        backend.results("demo")
    (pod,) = cluster.start_pods("demo", [0])
    cluster.log(pod, _progress(1))
    with pytest.raises(ClusterError, match=r"has no results yet \(it is running\)"):
        backend.results("demo")


def test_unknown_runs_are_an_error(cluster, backend):
    with pytest.raises(ClusterError, match="no run named 'ghost' in namespace team-a"):
        backend.status("ghost")
    with pytest.raises(ClusterError, match="no run named"):
        list(backend.logs("ghost", follow=True))


def test_logs_of_every_rank_and_follow_until_the_end(cluster, backend, make_spec):
    backend.submit(make_spec(resources={"nodes": 2}))
    pods = cluster.start_pods("demo", [0, 1])
    cluster.log(pods[0], "r0 a")
    cluster.log(pods[1], "r1 a")
    assert [(x.rank, x.text) for x in backend.logs("demo", rank=None)] == [
        (0, "r0 a"),
        (1, "r1 a"),
    ]
    with pytest.raises(ClusterError, match=r"no pod of rank 5 \(ranks: 0, 1\)"):
        list(backend.logs("demo", rank=5))
    later(
        0.3,
        lambda: cluster.log(pods[0], "r0 b"),
        lambda: cluster.log(pods[1], "r1 b"),
        lambda: cluster.exit(pods[0], 0),
        lambda: cluster.exit(pods[1], 0),
        lambda: cluster.finish_job("demo", "Complete"),
    )
    lines = [(x.rank, x.text) for x in backend.logs("demo", rank=None, follow=True)]
    assert sorted(lines) == [(0, "r0 a"), (0, "r0 b"), (1, "r1 a"), (1, "r1 b")]


def test_follow_reconnects_after_a_dropped_stream_without_repeating(cluster, backend, make_spec):
    backend.submit(make_spec())
    (pod,) = cluster.start_pods("demo", [0])
    cluster.log(pod, *[f"line {i}" for i in range(5)])
    later(
        0.3,
        lambda: cluster.drop_streams(pod),
        lambda: cluster.log(pod, "after drop 1"),
        lambda: cluster.drop_streams(pod),
        lambda: cluster.log(pod, "after drop 2"),
        lambda: cluster.exit(pod, 0),
        lambda: cluster.finish_job("demo", "Complete"),
    )
    lines = [x.text for x in backend.logs("demo", follow=True)]
    assert lines == [*(f"line {i}" for i in range(5)), "after drop 1", "after drop 2"]
    follows = [r for r in cluster.requests() if r.params.get("follow") == "true"]
    assert len(follows) >= 3  # reconnected after each drop
    assert all("sinceSeconds" in r.params for r in follows[1:])


def test_follow_survives_a_silent_stream_as_after_sleep(cluster, make_spec):
    backend = KubernetesBackend(poll_s=0.02, read_timeout_s=0.3)
    backend.submit(make_spec())
    (pod,) = cluster.start_pods("demo", [0])
    cluster.log(pod, "before sleep")
    cluster.emulator.stalled.add(pod)
    later(
        0.2,
        lambda: cluster.log(pod, "while asleep"),
        lambda: time.sleep(0.8),  # longer than the read timeout: the follower reconnects
        lambda: cluster.emulator.stalled.discard(pod),
        lambda: cluster.log(pod, "awake"),
        lambda: cluster.exit(pod, 0),
        lambda: cluster.finish_job("demo", "Complete"),
    )
    assert [x.text for x in backend.logs("demo", follow=True)] == [
        "before sleep",
        "while asleep",
        "awake",
    ]


def test_follow_continues_into_a_restarted_container(cluster, backend, make_spec):
    backend.submit(make_spec())
    (pod,) = cluster.start_pods("demo", [0])
    cluster.log(pod, "first life")
    later(
        0.3,
        lambda: cluster.log(pod, "last words"),
        lambda: cluster.exit(pod, 1, restart=True),
        lambda: cluster.run_container(pod),
        lambda: cluster.log(pod, "second life"),
        lambda: cluster.exit(pod, 0),
        lambda: cluster.finish_job("demo", "Complete"),
    )
    lines = [x.text for x in backend.logs("demo", follow=True)]
    assert lines[:2] == ["first life", "last words"]
    assert "container restarted (1 restarts)" in lines[2]
    assert lines[3:] == ["second life"]
    # Without -f: the container before the restart, then the current one.
    assert [x.text for x in backend.logs("demo")] == ["first life", "last words", "second life"]


def test_stopping_a_follow_stops_watching_not_the_run(cluster, backend, make_spec):
    backend.submit(make_spec())
    (pod,) = cluster.start_pods("demo", [0])
    cluster.log(pod, "one", "two")
    lines = backend.logs("demo", follow=True)
    assert next(lines).text == "one"
    lines.close()  # what Ctrl-C does to the generator
    assert backend.status("demo").state is RunState.RUNNING
    assert cluster.names("batch/v1/jobs") == ["demo"]


# -- cancel, list --


def test_cancel_deletes_the_job_and_everything_it_owns(cluster, backend, make_spec):
    backend.submit(make_spec(resources={"nodes": 2}))
    cluster.start_pods("demo", [0, 1])
    status = backend.cancel("demo")
    assert status.state is RunState.CANCELLED and "deleted" in status.diagnosis
    for resource in ("batch/v1/jobs", "v1/configmaps", "v1/services", "v1/pods"):
        assert cluster.names(resource) == [], resource
    delete = [r for r in cluster.requests() if r.method == "DELETE"]
    policy = delete[0].params.get("propagationPolicy") or (delete[0].data or {}).get(
        "propagationPolicy"
    )
    assert len(delete) == 1 and policy == "Foreground"


def test_cancel_of_a_finished_run_changes_nothing(cluster, backend, make_spec):
    backend.submit(make_spec())
    cluster.finish_job("demo", "Complete")
    assert backend.cancel("demo").state is RunState.SUCCEEDED
    assert cluster.names("batch/v1/jobs") == ["demo"]


def test_list_shows_the_namespace_runs_oldest_first(cluster, backend, make_spec):
    backend.submit(make_spec(name="first"))
    backend.submit(make_spec(name="second"))
    cluster.start_job("first")
    cluster.start_pods("first", [0])
    time.sleep(0.01)
    cluster.start_job("second")
    cluster.finish_job("second", "Failed", "BackoffLimitExceeded", "Job has reached the limit")
    runs = backend.list()
    assert [(r.name, r.state) for r in runs] == [
        ("first", RunState.RUNNING),
        ("second", RunState.FAILED),
    ]


# -- multi-node --


def test_multi_node_runs_are_indexed_jobs_with_rank_zero_behind_a_headless_service(
    cluster, backend, make_spec
):
    backend.submit(make_spec(resources={"nodes": 4}))
    job = cluster.get("batch/v1/jobs", "demo")["spec"]
    assert (job["completionMode"], job["completions"], job["parallelism"]) == ("Indexed", 4, 4)
    assert job["template"]["spec"]["subdomain"] == "demo"
    env = {e["name"]: e for e in job["template"]["spec"]["containers"][0]["env"]}
    assert env["MASTER_ADDR"]["value"] == "demo-0.demo"
    assert env["JOB_COMPLETION_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"].endswith(
        f"['{LABEL_RANK}']"
    )
    assert cluster.get("v1/services", "demo")["spec"]["clusterIP"] == "None"
    assert backend.status("demo").ranks == 32


def test_kube_api_reports_an_unreachable_server(tmp_path):
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = "http://127.0.0.1:9"  # discard port: nothing listens
    configuration.retries = 0
    api = KubeApi(client.ApiClient(configuration), "default")
    with pytest.raises(ClusterError, match="cannot reach the cluster"):
        api.server_version()


def test_a_missing_client_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "kubernetes", None)  # import kubernetes raises ImportError
    with pytest.raises(ClusterError, match=r"pip install 'bevlaunch\[k8s\]'"):
        resolve_target()
