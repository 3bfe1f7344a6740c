"""The local backend and its supervisor, with a fake workload that follows the run contract.

The fake (``fake_workload.py``) replaces ``python -m bevdepth`` through ``BEVLAUNCH_WORKLOAD``,
the test-only override of the local backend's program; its behaviour is set by ``FAKE_*``
variables, which the supervisor passes on to the ranks like any environment.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bevlaunch.backends.base import RunState
from bevlaunch.backends.local import WORKLOAD_ENV, LocalBackend, workload_program
from bevlaunch.errors import ClusterError, SpecError
from bevlaunch.procs import is_alive
from bevlaunch.spec import spec_from_dict

FAKE = Path(__file__).with_name("fake_workload.py")
SPEC = {
    "name": "fake",
    "backend": "local",
    "model": {"preset": "small"},
    "data": {"synthetic": {}},
    "resources": {"accelerator": "cpu", "devices_per_node": 2},
}


@pytest.fixture
def fake_env(tmp_path, monkeypatch):
    """Run in tmp_path with the fake workload; returns the folder where ranks leave pid files."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(WORKLOAD_ENV, json.dumps([sys.executable, str(FAKE)]))
    pids = tmp_path / "pids"
    pids.mkdir()
    monkeypatch.setenv("FAKE_PIDS", str(pids))
    for name in ("FAKE_FAIL", "FAKE_STEPS", "FAKE_STEP_S", "BEVLAUNCH_RUNS_ROOT"):
        monkeypatch.delenv(name, raising=False)
    return pids


@pytest.fixture
def backend(fake_env, tmp_path):
    backend = LocalBackend("runs", base_dir=tmp_path, grace_s=2.0)
    yield backend
    for run in backend.list():  # a failed test must not leave ranks behind
        if not run.state.finished:
            backend.cancel(run.name)


def wait_finished(backend: LocalBackend, name: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = backend.status(name)
        if status.state.finished:
            return status
        time.sleep(0.05)
    raise AssertionError(f"run {name} did not finish: {backend.status(name)}")


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def rank_pids(pids: Path, stage: str = "*") -> list[int]:
    return [int(p.read_text()) for p in pids.glob(f"{stage}-*.pid")]


def test_a_run_goes_through_its_stages_and_leaves_the_contract_files(backend, tmp_path):
    submitted = backend.submit(spec_from_dict(SPEC))
    assert submitted.name == "fake"
    run_dir = tmp_path / "runs" / "fake"
    assert submitted.location == str(run_dir)
    status = wait_finished(backend, "fake")
    assert status.state is RunState.SUCCEEDED, status
    assert status.stages == ("prepare", "train", "eval") and status.diagnosis is None
    config = json.loads((run_dir / "config.json").read_text())
    assert config["schema"] == 1 and config["run"]["dir"] == str(run_dir)
    assert config["data"]["root"] == str(tmp_path / "data" / "synthetic")
    assert {p.name for p in (run_dir / "logs").iterdir()} >= {"rank-0.log", "rank-1.log"}
    rank1 = (run_dir / "logs" / "rank-1.log").read_text()
    assert "fake train rank 1/2" in rank1 and "fake prepare" not in rank1  # prepare: rank 0 only
    assert backend.results("fake")["eval"]["metrics"]["NDS"] == 0.35
    assert [r.name for r in backend.list()] == ["fake"]


def test_logs_of_one_rank_all_ranks_and_follow(backend, monkeypatch):
    monkeypatch.setenv("FAKE_STEPS", "20")
    monkeypatch.setenv("FAKE_STEP_S", "0.05")
    backend.submit(spec_from_dict(SPEC))
    followed = [line.text for line in backend.logs("fake", rank=0, follow=True)]
    # follow ends by itself once the run has finished, with every line read
    assert backend.status("fake").state is RunState.SUCCEEDED
    assert followed == [line.text for line in backend.logs("fake", rank=0)]
    assert sum("progress" in text for text in followed) == 20
    everything = list(backend.logs("fake", rank=None))
    assert {line.rank for line in everything} == {0, 1}


def test_a_crashed_rank_fails_the_run_with_a_diagnosis_and_stops_the_others(
    backend, fake_env, monkeypatch
):
    monkeypatch.setenv("FAKE_FAIL", "train:1:3")
    monkeypatch.setenv("FAKE_STEPS", "1000")  # rank 0 would run for a minute
    monkeypatch.setenv("FAKE_STEP_S", "0.05")
    started = time.monotonic()
    backend.submit(spec_from_dict(SPEC))
    status = wait_finished(backend, "fake", timeout=30)
    assert time.monotonic() - started < 20
    assert status.state is RunState.FAILED
    assert status.stage == "train"
    assert status.diagnosis == (
        "stage train: rank 1 exited with code 3: loss became NaN at step 1 "
        "(hint: lower the learning rate)"
    )
    assert any("step 1 done" in line for line in status.last_lines)
    assert not any(is_alive(pid) for pid in rank_pids(fake_env))
    # eval never started
    assert not (fake_env / "eval-0.pid").exists()


def test_a_rank_killed_by_a_signal_is_named(backend, fake_env, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "train:0:hang")
    backend.submit(spec_from_dict(SPEC))
    wait_for(lambda: (fake_env / "train-0.pid").exists() and (fake_env / "train-1.pid").exists())
    time.sleep(0.2)
    os.kill(int((fake_env / "train-0.pid").read_text()), signal.SIGKILL)
    status = wait_finished(backend, "fake")
    assert status.state is RunState.FAILED
    assert status.diagnosis.startswith("stage train: rank 0 was killed by SIGKILL (out of memory?)")


def test_cancel_stops_every_process(backend, fake_env, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "train:1:hang")
    monkeypatch.setenv("FAKE_STEPS", "1000")
    backend.submit(spec_from_dict(SPEC))
    wait_for(lambda: len(list(fake_env.glob("train-*.pid"))) == 2)
    pids = rank_pids(fake_env, "train")
    assert all(is_alive(pid) for pid in pids)
    status = backend.cancel("fake")
    assert status.state is RunState.CANCELLED
    assert status.diagnosis == "cancelled (SIGTERM) during stage train"
    wait_for(lambda: not any(is_alive(pid) for pid in pids), timeout=10)
    # cancelling again is harmless
    assert backend.cancel("fake").state is RunState.CANCELLED


def test_cancel_kills_ranks_that_ignore_sigterm(backend, fake_env, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "train:1:hang")
    monkeypatch.setenv("FAKE_IGNORE_TERM", "1")
    backend.submit(spec_from_dict(SPEC))
    wait_for(lambda: len(list(fake_env.glob("train-*.pid"))) == 2)
    started = time.monotonic()
    assert backend.cancel("fake").state is RunState.CANCELLED
    assert 1.5 < time.monotonic() - started < 10  # the 2 s grace period, then SIGKILL
    wait_for(lambda: not any(is_alive(pid) for pid in rank_pids(fake_env)), timeout=5)


def test_the_run_survives_its_terminal_closing(fake_env, tmp_path):
    """Submit from a shell in a session of its own (the terminal), then hang that session up."""
    spec = tmp_path / "fake.yaml"
    spec.write_text(json.dumps(SPEC))
    env = {**os.environ, "FAKE_STEPS": "20", "FAKE_STEP_S": "0.1"}
    terminal = subprocess.Popen(
        ["/bin/sh", "-c", '"$0" -m bevlaunch submit "$1" && sleep 60', sys.executable, str(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    assert terminal.stdout.readline() == b"fake\n"
    wait_for(lambda: (fake_env / "train-0.pid").exists())
    os.killpg(terminal.pid, signal.SIGHUP)  # what closing the terminal does to its session
    terminal.wait(timeout=10)
    state = json.loads((tmp_path / "runs" / "fake" / "state.json").read_text())
    supervisor = state["supervisor_pid"]
    assert os.getsid(supervisor) == supervisor  # a session of its own, no terminal
    backend = LocalBackend("runs", base_dir=tmp_path)
    assert wait_finished(backend, "fake").state is RunState.SUCCEEDED


def test_submitting_an_active_run_again_is_refused(backend, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "train:1:hang")
    backend.submit(spec_from_dict(SPEC))
    with pytest.raises(ClusterError, match=r"'fake' is still (pending|running)"):
        backend.submit(spec_from_dict(SPEC))
    backend.cancel("fake")
    monkeypatch.delenv("FAKE_FAIL")
    backend.submit(spec_from_dict(SPEC))  # a finished run's name may be reused (it resumes)
    assert wait_finished(backend, "fake").state is RunState.SUCCEEDED


def test_unknown_runs_and_missing_results(backend, monkeypatch):
    with pytest.raises(ClusterError, match="no run named 'nope'"):
        backend.status("nope")
    with pytest.raises(ClusterError):
        backend.status("../etc")
    monkeypatch.setenv("FAKE_FAIL", "prepare:0:2")
    backend.submit(spec_from_dict(SPEC))
    wait_finished(backend, "fake")
    with pytest.raises(ClusterError, match="has no results yet"):
        backend.results("fake")


def test_a_vanished_supervisor_is_reported(backend, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "train:1:hang")
    backend.submit(spec_from_dict(SPEC))
    state_file = tmp_path / "runs" / "fake" / "state.json"
    wait_for(lambda: json.loads(state_file.read_text())["supervisor_pid"] is not None)
    pid = json.loads(state_file.read_text())["supervisor_pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: backend.status("fake").state is RunState.FAILED)
    assert "ended without recording an outcome" in backend.status("fake").diagnosis
    backend.cancel("fake")  # the ranks it left behind are stopped from here


def test_a_missing_workload_program_is_a_diagnosis(tmp_path, fake_env):
    backend = LocalBackend("runs", base_dir=tmp_path, program=["/nonexistent/python"])
    backend.submit(spec_from_dict(SPEC))
    status = wait_finished(backend, "fake")
    assert status.state is RunState.FAILED
    assert status.diagnosis.startswith("stage prepare: cannot start rank 0: ")


def test_workload_program_override():
    assert workload_program({}) == (sys.executable, "-m", "bevdepth")
    assert workload_program({WORKLOAD_ENV: '["/py", "w.py"]'}) == ("/py", "w.py")
    for bad in ("not json", "[]", '"x"', "[1]"):
        with pytest.raises(SpecError):
            workload_program({WORKLOAD_ENV: bad})


def test_kubernetes_specs_are_not_for_the_local_backend(backend):
    spec = spec_from_dict(
        {
            "name": "k",
            "image": "bevdepth:1",
            "backend": "kubernetes",
            "data": {"pvc": {"claim": "n"}},
            "output": {"pvc": {"claim": "o"}},
        }
    )
    with pytest.raises(SpecError):
        backend.submit(spec)


HOSTILE = 'it\'s "q" $(touch pwned) `touch pwned2`; touch pwned3 && echo ${HOME}'


def test_hostile_spec_strings_reach_the_ranks_only_as_data(backend, tmp_path):
    spec = spec_from_dict(
        {
            **SPEC,
            "env": {"USER_VALUE": HOSTILE},
            "model": {"preset": "small", "checkpoint": HOSTILE + "\nsecond line"},
        }
    )
    backend.submit(spec)
    assert wait_finished(backend, "fake").state is RunState.SUCCEEDED
    run_dir = tmp_path / "runs" / "fake"
    plan = json.loads((run_dir / "plan.json").read_text())
    for stage in plan["stages"]:
        assert all("pwned" not in part for part in stage["argv"])
        assert stage["env"]["USER_VALUE"] == HOSTILE
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model"]["checkpoint"] == HOSTILE + "\nsecond line"
    lines = [line.text for line in backend.logs("fake")]
    assert f"fake train rank 0/2 user={HOSTILE}" in lines
    assert not list(tmp_path.rglob("pwned*"))  # nothing was ever run by a shell
