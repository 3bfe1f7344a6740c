"""The local backend: a run is a supervisor process on this machine and one process per rank.

``submit`` writes the run directory (``config.json`` per the run contract, ``plan.json``,
``state.json``) and starts ``python -m bevlaunch.supervisor RUN_DIR`` detached; everything else
reads that directory, so any shell (or a later ``bevlaunch``) can follow, cancel or list runs.
Runs are looked up as ``<runs root>/<name>``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from bevlaunch.backends.base import LogLine, RunState, RunStatus, Submitted
from bevlaunch.errors import ClusterError, SpecError
from bevlaunch.plan import build_plan
from bevlaunch.procs import is_alive, stop_groups
from bevlaunch.rundir import (
    CONFIG_FILE,
    LOGS_DIR,
    PLAN_FILE,
    RESULTS_FILE,
    STATE_FILE,
    SUPERVISOR_LOG,
    new_state,
    rank_log,
    rank_logs,
    read_json,
    write_json_atomic,
)
from bevlaunch.spec import Backend, JobSpec
from bevlaunch.supervisor import GRACE_S_ENV

DEFAULT_RUNS_ROOT = "runs"
RUNS_ROOT_ENV = "BEVLAUNCH_RUNS_ROOT"
# For tests only: a JSON list that replaces `python -m bevdepth` as the workload's program, e.g.
# ["/usr/bin/python3", "tests/launcher/fake_workload.py"]; the contract's arguments follow it.
WORKLOAD_ENV = "BEVLAUNCH_WORKLOAD"
SUPERVISOR_MODULE = "bevlaunch.supervisor"
# A supervisor that has not recorded its start after this long is not coming.
START_TIMEOUT_S = 60.0
FOLLOW_POLL_S = 0.2


def workload_program(env: Mapping[str, str]) -> tuple[str, ...]:
    """How the local backend starts the workload: this interpreter, or the test override.

    Raises:
        SpecError: the override is not a non-empty JSON list of strings.
    """
    override = env.get(WORKLOAD_ENV)
    if not override:
        return (sys.executable, "-m", "bevdepth")
    try:
        program = json.loads(override)
    except json.JSONDecodeError as e:
        raise SpecError(f"{WORKLOAD_ENV} must be a JSON list of strings: {e}") from e
    if not program or not isinstance(program, list) or not all(isinstance(a, str) for a in program):
        raise SpecError(f"{WORKLOAD_ENV} must be a non-empty JSON list of strings")
    return tuple(program)


class LocalBackend:
    """Runs plans as processes on this machine.

    Args:
        runs_root: where ``status``/``logs``/``cancel``/``list``/``results`` look for runs.
        base_dir: the directory relative spec paths are resolved against (the current one).
        program: how to start the workload (default: :func:`workload_program` of the env).
        grace_s: seconds between SIGTERM and SIGKILL when stopping ranks.
    """

    def __init__(
        self,
        runs_root: str | Path,
        *,
        base_dir: str | Path | None = None,
        program: Sequence[str] | None = None,
        grace_s: float = 10.0,
    ) -> None:
        self.base_dir = Path(base_dir or os.getcwd()).resolve()
        self.runs_root = (self.base_dir / runs_root).resolve()
        self.program = tuple(program) if program is not None else workload_program(os.environ)
        self.grace_s = grace_s

    # -- submit ---------------------------------------------------------------------------------

    def submit(self, spec: JobSpec) -> Submitted:
        """Write the run directory and start the supervisor; returns at once.

        Submitting a run name again reuses its directory (the workload resumes from the newest
        checkpoint there); the old logs are replaced.

        Raises:
            SpecError: the spec is not for the local backend.
            ClusterError: a run of that name is still active.
        """
        from bevlaunch.resolve import resolve_config

        if spec.backend is not Backend.LOCAL:
            raise SpecError(f"backend: {spec.backend.value} specs are not run by the local backend")
        config = resolve_config(spec, base_dir=str(self.base_dir))
        run_dir = Path(config["run"]["dir"])
        if run_dir.exists():
            current = self._status_at(run_dir, spec.name)
            if current is not None and not current.state.finished:
                raise ClusterError(
                    f"run {spec.name!r} is still {current.state.value} in {run_dir}; "
                    f"cancel it first (bevlaunch cancel {spec.name}) or change its name"
                )
        logs = run_dir / LOGS_DIR
        logs.mkdir(parents=True, exist_ok=True)
        for old in rank_logs(run_dir).values():
            old.unlink()
        config_path = run_dir / CONFIG_FILE
        write_json_atomic(config_path, config)
        plan = build_plan(
            config,
            str(config_path),
            user_env=spec.env,
            program=self.program,
            cpu_count=os.cpu_count() or 1,
        )
        write_json_atomic(run_dir / PLAN_FILE, plan.to_dict())
        write_json_atomic(
            run_dir / STATE_FILE,
            new_state(spec.name, [s.name for s in plan.stages], time.time()),
        )
        env = {**os.environ, GRACE_S_ENV: str(self.grace_s)}
        with (logs / SUPERVISOR_LOG).open("a", encoding="utf-8") as out:
            # A new session: no controlling terminal, so closing the terminal (SIGHUP) or
            # Ctrl-C in it never reaches the run.
            subprocess.Popen(
                [sys.executable, "-m", SUPERVISOR_MODULE, str(run_dir)],
                cwd=run_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        return Submitted(name=spec.name, location=str(run_dir))

    # -- status -----------------------------------------------------------------------------------

    def run_dir(self, name: str) -> Path:
        """``<runs root>/<name>``, checked to hold a run.

        Raises:
            ClusterError: no run of that name.
        """
        path = self.runs_root / name
        if "/" in name or name in ("", ".", "..") or not (path / STATE_FILE).is_file():
            raise ClusterError(
                f"no run named {name!r} under {self.runs_root} (see `bevlaunch list`; "
                f"--runs-root or {RUNS_ROOT_ENV} look elsewhere)"
            )
        return path

    def status(self, name: str) -> RunStatus:
        """The run's state, from its state file and whether its supervisor still lives."""
        run_dir = self.run_dir(name)
        status = self._status_at(run_dir, name)
        if status is None:
            raise ClusterError(f"the state file of run {name!r} is unreadable ({run_dir})")
        return status

    def _status_at(self, run_dir: Path, name: str) -> RunStatus | None:
        state = read_json(run_dir / STATE_FILE)
        if not isinstance(state, dict):
            return None
        try:
            run_state = RunState(state.get("state"))
        except ValueError:
            run_state = RunState.UNKNOWN
        diagnosis = state.get("diagnosis")
        pid = state.get("supervisor_pid")
        if not run_state.finished:
            if pid is not None and not is_alive(pid, command_contains=SUPERVISOR_MODULE):
                run_state = RunState.FAILED
                diagnosis = (
                    f"the supervisor (pid {pid}) ended without recording an outcome; "
                    f"see {run_dir / LOGS_DIR / SUPERVISOR_LOG}"
                )
            elif pid is None and time.time() - state.get("submitted", 0) > START_TIMEOUT_S:
                run_state = RunState.FAILED
                diagnosis = (
                    f"the supervisor never started; see {run_dir / LOGS_DIR / SUPERVISOR_LOG}"
                )
        return RunStatus(
            name=state.get("name", name),
            state=run_state,
            stage=state.get("stage"),
            stages=tuple(state.get("stages", ())),
            ranks=int(state.get("ranks") or 0),
            started=state.get("started"),
            ended=state.get("ended"),
            diagnosis=diagnosis,
            last_lines=tuple(state.get("last_lines", ())),
            location=str(run_dir),
        )

    def list(self) -> list[RunStatus]:
        """Every run under the runs root, oldest first."""
        if not self.runs_root.is_dir():
            return []
        runs = []
        for path in self.runs_root.iterdir():
            status = self._status_at(path, path.name) if path.is_dir() else None
            if status is not None:
                runs.append(status)
        return sorted(runs, key=lambda s: (s.started or float("inf"), s.name))

    def results(self, name: str) -> dict[str, Any]:
        """The run's ``results.json``.

        Raises:
            ClusterError: no such run, or no results yet.
        """
        run_dir = self.run_dir(name)
        results = read_json(run_dir / RESULTS_FILE)
        if not isinstance(results, dict):
            state = self.status(name).state.value
            raise ClusterError(f"run {name!r} has no results yet (it is {state})")
        return results

    # -- logs -------------------------------------------------------------------------------------

    def logs(self, name: str, *, rank: int | None = 0, follow: bool = False) -> Iterator[LogLine]:
        """Lines of rank ``rank`` (None: every rank, rank by rank unless following).

        With ``follow``, waits for more lines (and for ranks that start later) until the run
        has finished and everything it wrote has been read.
        """
        run_dir = self.run_dir(name)
        if not follow:
            paths = rank_logs(run_dir)
            if rank is not None and rank not in paths:
                ranks = ", ".join(map(str, paths)) or "none yet"
                raise ClusterError(f"run {name!r} has no log of rank {rank} (ranks: {ranks})")
            chosen = paths if rank is None else {rank: paths[rank]}
            for r, path in chosen.items():
                for text in _read_lines(path):
                    yield LogLine(r, text)
            return
        yield from self._follow(name, run_dir, rank)

    def _follow(self, name: str, run_dir: Path, rank: int | None) -> Iterator[LogLine]:
        offsets: dict[int, int] = {}
        partial: dict[int, bytes] = {}
        while True:
            # Read the state first: whatever was written before it said "finished" is read below.
            finished = self.status(name).state.finished
            paths = rank_logs(run_dir) if rank is None else {rank: rank_log(run_dir, rank)}
            for r, path in paths.items():
                try:
                    with path.open("rb") as f:
                        f.seek(offsets.get(r, 0))
                        data = f.read()
                except FileNotFoundError:
                    continue
                offsets[r] = offsets.get(r, 0) + len(data)
                *lines, rest = (partial.pop(r, b"") + data).split(b"\n")
                partial[r] = rest
                for line in lines:
                    yield LogLine(r, line.decode("utf-8", errors="replace"))
            if finished:
                for r, rest in sorted(partial.items()):
                    if rest:
                        yield LogLine(r, rest.decode("utf-8", errors="replace"))
                return
            time.sleep(FOLLOW_POLL_S)

    # -- cancel -----------------------------------------------------------------------------------

    def cancel(self, name: str) -> RunStatus:
        """Stop every process of the run (SIGTERM, SIGKILL after the grace period).

        The supervisor is asked first (it stops the ranks and records the cancellation); if it
        is gone or does not finish in time, the rank process groups are stopped from here.
        """
        status = self.status(name)
        if status.state.finished:
            return status
        run_dir = self.run_dir(name)
        state = read_json(run_dir / STATE_FILE) or {}
        pid = state.get("supervisor_pid")
        if pid is None:
            # Submitted a moment ago: give the supervisor the time to record itself.
            deadline = time.monotonic() + 5.0
            while pid is None and time.monotonic() < deadline:
                time.sleep(0.05)
                pid = (read_json(run_dir / STATE_FILE) or {}).get("supervisor_pid")
        if pid is not None and is_alive(pid, command_contains=SUPERVISOR_MODULE):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + self.grace_s + 5.0
            while time.monotonic() < deadline:
                if self.status(name).state.finished:
                    return self.status(name)
                time.sleep(0.05)
            os.kill(pid, signal.SIGKILL)
        state = read_json(run_dir / STATE_FILE) or state
        stop_groups(state.get("process_groups", []), self.grace_s)
        state.update(
            state="cancelled",
            ended=time.time(),
            process_groups=[],
            diagnosis="cancelled; the supervisor did not respond, its ranks were stopped",
        )
        write_json_atomic(run_dir / STATE_FILE, state)
        return self.status(name)


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []
