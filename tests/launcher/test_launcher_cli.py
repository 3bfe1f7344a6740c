"""The command line: exit codes, stdout for data, stderr for messages, light imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

typer_testing = pytest.importorskip("typer.testing")
yaml = pytest.importorskip("yaml")

from bevlaunch.backends.local import LocalBackend  # noqa: E402
from bevlaunch.cli import app  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@pytest.fixture
def runner():
    return typer_testing.CliRunner()


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "train.yaml"
    path.write_text(text)
    return path


def test_help_exits_0(runner):
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "render" in result.stdout and "validate" in result.stdout


def test_validate_ok_says_so_on_stderr(runner):
    result = runner.invoke(app, ["validate", str(EXAMPLES / "ascend-8npu.yaml")])
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr.startswith("ok: bevdepth-r50-8npu")


def test_render_prints_multi_document_yaml_on_stdout(runner):
    result = runner.invoke(app, ["render", str(EXAMPLES / "ascend-8npu.yaml")])
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    documents = list(yaml.safe_load_all(result.stdout))
    assert [d["kind"] for d in documents] == ["ConfigMap", "Service", "Job"]
    config = json.loads(documents[0]["data"]["config.json"])
    assert config["resources"]["devices_per_node"] == 8


def test_render_json(runner):
    result = runner.invoke(app, ["render", "-o", "json", str(EXAMPLES / "gpu-8.yaml")])
    assert result.exit_code == 0
    assert [d["kind"] for d in json.loads(result.stdout)] == ["ConfigMap", "Service", "Job"]


def test_render_local_prints_the_resolved_config(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["render", str(EXAMPLES / "quickstart.yaml")])
    assert result.exit_code == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert config["schema"] == 1
    assert config["run"]["dir"] == str(tmp_path / "runs" / "quickstart")
    assert config["resources"] == {"accelerator": "cpu", "nodes": 1, "devices_per_node": 2}


@pytest.mark.parametrize("command", ["validate", "render"])
def test_spec_errors_exit_2_with_one_line_per_problem(runner, tmp_path, command):
    path = _write(tmp_path, "name: Bad\ndata:\n  synthetic: {}\ntraning: {}\n")
    result = runner.invoke(app, [command, str(path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2
    assert any("name: 'Bad' is not a DNS-1123 label" in line for line in lines)
    assert any("traning: unknown field; did you mean 'training'?" in line for line in lines)
    assert all(line.startswith(f"error: {path}: ") for line in lines)
    assert "Traceback" not in result.stderr


def test_duplicate_key_exits_2(runner, tmp_path):
    path = _write(tmp_path, "name: a\nname: b\n")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert "name: duplicate key (lines 1 and 2)" in result.stderr


def test_missing_file_exits_2(runner, tmp_path):
    result = runner.invoke(app, ["validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "cannot read the spec" in result.stderr


def test_debug_shows_the_traceback(runner, tmp_path):
    path = _write(tmp_path, "name: Bad\ndata:\n  synthetic: {}\n")
    result = runner.invoke(app, ["--debug", "validate", str(path)])
    assert result.exit_code == 2
    assert "Traceback" in result.stderr


def test_usage_error_exits_2(runner):
    result = runner.invoke(app, ["render"])
    assert result.exit_code == 2


# What a command must not import: the workload's stack (never), the Kubernetes client (only
# its own backend module, later), and for --help the spec and YAML stacks too.
NEVER = ("torch", "numpy", "kubernetes", "bevdepth.runtime")
IMPORT_PROBE = """
import atexit, runpy, sys
watched = sys.argv[1].split(",")
sys.argv = ["bevlaunch", *sys.argv[2:]]
report = lambda: print("IMPORTED", *[m for m in watched if m in sys.modules], file=sys.stderr)
atexit.register(report)
runpy.run_module("bevlaunch", run_name="__main__")
"""


@pytest.mark.parametrize(
    ("argv", "forbidden"),
    [
        (["--help"], (*NEVER, "pydantic", "yaml")),
        (["render", str(EXAMPLES / "ascend-2x8npu.yaml")], NEVER),
        (["render", str(EXAMPLES / "quickstart.yaml")], NEVER),
    ],
)
def test_light_commands_do_not_import_heavy_modules(argv, forbidden):
    """Checked in sys.modules of a fresh ``python -m bevlaunch`` (timings: benchmarks/)."""
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE, ",".join(forbidden), *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout
    assert result.stderr.splitlines()[-1].split() == ["IMPORTED"]


def test_python_dash_m_bevlaunch(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "bevlaunch", "validate", str(tmp_path / "missing.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")


# -- runs on the local backend (fake workload; see test_local.py) ------------------------------

FAKE = Path(__file__).with_name("fake_workload.py")
QUICK = EXAMPLES / "quickstart.yaml"


@pytest.fixture
def fake_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BEVLAUNCH_WORKLOAD", json.dumps([sys.executable, str(FAKE)]))
    for name in ("FAKE_FAIL", "FAKE_STEPS", "FAKE_STEP_S", "FAKE_PIDS", "BEVLAUNCH_RUNS_ROOT"):
        monkeypatch.delenv(name, raising=False)
    yield tmp_path
    backend = LocalBackend("runs", base_dir=tmp_path, grace_s=2.0)
    for run in backend.list():  # a failed test must not leave ranks behind
        if not run.state.finished:
            backend.cancel(run.name)


def test_submit_prints_the_name_on_stdout_and_watch_exits_0(runner, fake_runs):
    result = runner.invoke(app, ["submit", str(QUICK)])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "quickstart\n"
    assert "bevlaunch watch quickstart" in result.stderr
    watched = runner.invoke(app, ["watch", "quickstart"])
    assert watched.exit_code == 0, watched.stderr
    assert "NDS" in watched.stdout and "0.3500" in watched.stdout  # the metrics table is data
    assert "succeeded" in watched.stderr and "NDS" not in watched.stderr


def test_submit_watch_of_a_failing_run_exits_1_with_the_diagnosis(runner, fake_runs, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "eval:1:2")
    result = runner.invoke(app, ["submit", "--watch", str(QUICK)])
    assert result.exit_code == 1
    assert result.stdout == "quickstart\n"
    assert "stage eval: rank 1 exited with code 2: loss became NaN" in result.stderr
    assert "Traceback" not in result.stderr


def test_status_logs_list_results_and_their_formats(runner, fake_runs):
    assert runner.invoke(app, ["submit", "-w", str(QUICK)]).exit_code == 0
    status = runner.invoke(app, ["status", "quickstart", "-o", "json"])
    assert status.exit_code == 0 and status.stderr == ""
    assert json.loads(status.stdout)["state"] == "succeeded"
    text = runner.invoke(app, ["status", "quickstart"]).stdout
    assert "state:    succeeded" in text
    logs = runner.invoke(app, ["logs", "quickstart", "--rank", "1"])
    assert logs.exit_code == 0 and "fake train rank 1/2" in logs.stdout
    everything = runner.invoke(app, ["logs", "quickstart", "--all-ranks", "-f"]).stdout
    assert "[rank 0] fake prepare rank 0/1" in everything and "[rank 1] step 1 done" in everything
    listed = runner.invoke(app, ["list", "-o", "yaml"])
    assert [r["name"] for r in yaml.safe_load(listed.stdout)] == ["quickstart"]
    assert "quickstart" in runner.invoke(app, ["list"]).stdout
    results = runner.invoke(app, ["results", "quickstart", "-o", "json"])
    assert json.loads(results.stdout)["eval"]["metrics"]["mAP"] == 0.25
    table = runner.invoke(app, ["results", "quickstart"]).stdout
    assert "mAP" in table and "0.2500" in table
    again = runner.invoke(app, ["cancel", "quickstart"])
    assert again.exit_code == 0 and "already succeeded" in again.stderr


def test_runs_root_from_the_environment(runner, fake_runs, monkeypatch):
    assert runner.invoke(app, ["submit", "-w", str(QUICK)]).exit_code == 0
    monkeypatch.setenv("BEVLAUNCH_RUNS_ROOT", str(fake_runs / "elsewhere"))
    assert runner.invoke(app, ["status", "quickstart"]).exit_code == 1
    monkeypatch.setenv("BEVLAUNCH_RUNS_ROOT", str(fake_runs / "runs"))
    assert runner.invoke(app, ["status", "quickstart"]).exit_code == 0


def test_cancel_from_the_cli(runner, fake_runs, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "train:0:hang")
    assert runner.invoke(app, ["submit", str(QUICK)]).exit_code == 0
    result = runner.invoke(app, ["cancel", "quickstart"])
    assert result.exit_code == 0 and result.stderr == "quickstart: cancelled\n"
    watched = runner.invoke(app, ["watch", "quickstart"])
    assert watched.exit_code == 1 and "cancelled (SIGTERM)" in watched.stderr


@pytest.mark.parametrize("command", ["status", "logs", "cancel", "results", "watch"])
def test_unknown_run_exits_1_with_one_line(runner, fake_runs, command):
    result = runner.invoke(app, [command, "nope"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: no run named 'nope'")
    assert len(result.stderr.strip().splitlines()) == 1


def test_results_of_a_run_without_results_exit_1(runner, fake_runs, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "train:0:1")
    assert runner.invoke(app, ["submit", "-w", str(QUICK)]).exit_code == 1
    result = runner.invoke(app, ["results", "quickstart"])
    assert result.exit_code == 1 and "has no results yet (it is failed)" in result.stderr


def test_submit_to_kubernetes_without_a_cluster_exits_1(runner, tmp_path, monkeypatch):
    # The Kubernetes backend's own tests (tests/kubernetes) cover a reachable cluster.
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    result = runner.invoke(app, ["submit", str(EXAMPLES / "ascend-8npu.yaml")])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no kubeconfig found") and result.stdout == ""


def test_submit_of_an_invalid_spec_exits_2(runner, tmp_path):
    path = _write(tmp_path, "name: x\ndata: {synthetic: {}}\nresources: {nodes: 2}\n")
    result = runner.invoke(app, ["submit", str(path)])
    assert result.exit_code == 2
    assert "resources.nodes: the local backend runs on 1 node (given 2)" in result.stderr
