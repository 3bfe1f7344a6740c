"""What a user sees: the CLI against the emulated cluster (stdout, stderr, exit codes)."""

from __future__ import annotations

import json
import threading
import time

import pytest
import yaml
from typer.testing import CliRunner

from bevdepth.events import format_event
from bevlaunch.cli import app

SPEC = {
    "name": "demo",
    "image": "registry.example.com/bevdepth:0.1.0",
    "backend": "kubernetes",
    "stages": ["train", "eval"],
    "data": {"pvc": {"claim": "nuscenes"}},
    "output": {"pvc": {"claim": "bevdepth-runs"}},
    "resources": {"nodes": 2, "memory": "512Gi"},
}
K8S = ["--backend", "kubernetes"]


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    return path


def _controller(cluster, script):
    """Play the cluster in the background: ``script(cluster)`` once the Job exists."""

    def run():
        for _ in range(500):
            if cluster.get("batch/v1/jobs", "demo") is not None:
                break
            time.sleep(0.01)
        script(cluster)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _succeed(cluster):
    pods = cluster.start_pods("demo", [0, 1])
    cluster.start_job("demo")
    cluster.log(pods[0], format_event("start", stage="train", epochs=1), "epoch 0 begins")
    cluster.log(pods[1], "rank 1 says hi")
    time.sleep(0.3)
    metrics = format_event("metrics", stage="eval", mAP=0.3253, NDS=0.4332)
    cluster.log(pods[0], format_event("start", stage="eval"), metrics, "all done")
    for pod in pods:
        cluster.exit(pod, 0)
    cluster.finish_job("demo", "Complete")


def test_submit_prints_the_name_and_how_to_follow(runner, cluster, spec_file):
    result = runner.invoke(app, ["submit", str(spec_file)])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "demo\n"
    assert "submitted demo: namespace team-a" in result.stderr
    assert "follow it with: bevlaunch watch demo --backend kubernetes -n team-a" in result.stderr
    again = runner.invoke(app, ["submit", str(spec_file)])
    assert again.exit_code == 1 and again.stdout == ""
    assert again.stderr.startswith("error: run 'demo' already exists in namespace team-a")
    assert runner.invoke(app, ["submit", "--replace", str(spec_file)]).exit_code == 0


def test_submit_watch_follows_to_success_and_prints_the_metrics(runner, cluster, spec_file):
    _controller(cluster, _succeed)
    result = runner.invoke(app, ["submit", "--watch", str(spec_file)])
    assert result.exit_code == 0, result.stderr
    assert "mAP" in result.stdout and "0.3253" in result.stdout
    assert "run demo succeeded" in result.stderr
    assert "all done" in result.stderr  # rank 0's lines in the live view
    assert "rank 1 says hi" not in result.stderr  # rank 0 by default


def test_watch_of_a_failed_run_exits_1_with_the_diagnosis(runner, cluster, spec_file):
    assert runner.invoke(app, ["submit", str(spec_file)]).exit_code == 0

    def fail(cluster):
        pods = cluster.start_pods("demo", [0, 1])
        cluster.log(pods[1], "Killed")
        cluster.exit(pods[1], 137, reason="OOMKilled")
        cluster.exit(pods[0], 143)
        cluster.finish_job("demo", "Failed", "PodFailurePolicy", "rank 1 failed")

    _controller(cluster, fail)
    result = runner.invoke(app, ["watch", "demo", *K8S, "--all-ranks"])
    assert result.exit_code == 1
    assert "run demo failed: rank 1 was killed for using too much memory (OOMKilled)" in (
        result.stderr
    )
    assert "[rank 1] Killed" in result.stderr


def test_logs_follow_all_ranks_prefixed(runner, cluster, spec_file):
    assert runner.invoke(app, ["submit", str(spec_file)]).exit_code == 0
    _controller(cluster, _succeed)
    result = runner.invoke(app, ["logs", "demo", "-f", "--all-ranks", "-n", "team-a"])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "[rank 1] rank 1 says hi" in lines and "[rank 0] all done" in lines
    assert len(lines) == len(set(lines))


def test_status_list_results_and_cancel(runner, cluster, spec_file):
    assert runner.invoke(app, ["submit", str(spec_file)]).exit_code == 0
    status = runner.invoke(app, ["status", "demo", *K8S])
    assert status.exit_code == 0
    assert "state:    pending" in status.stdout and "location: team-a/demo" in status.stdout
    listed = runner.invoke(app, ["list", *K8S, "-o", "json"])
    assert [r["name"] for r in json.loads(listed.stdout)] == ["demo"]
    no_results = runner.invoke(app, ["results", "demo", *K8S])
    assert no_results.exit_code == 1 and "no rank 0 pod" in no_results.stderr
    cancelled = runner.invoke(app, ["cancel", "demo", *K8S])
    assert cancelled.exit_code == 0 and "demo: cancelled" in cancelled.stderr
    assert cluster.names("batch/v1/jobs") == [] and cluster.names("v1/services") == []
    gone = runner.invoke(app, ["status", "demo", *K8S])
    assert gone.exit_code == 1 and gone.stderr.startswith("error: no run named 'demo'")


def test_results_after_success(runner, cluster, spec_file):
    assert runner.invoke(app, ["submit", str(spec_file)]).exit_code == 0
    _succeed(cluster)
    result = runner.invoke(app, ["results", "demo", *K8S, "-o", "json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["eval"]["metrics"] == {"mAP": 0.3253, "NDS": 0.4332}


def test_an_unknown_context_is_a_one_line_error(runner, cluster):
    result = runner.invoke(app, ["status", "demo", "--context", "nope"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: --context 'nope' is not in")
    assert len(result.stderr.splitlines()) == 1
