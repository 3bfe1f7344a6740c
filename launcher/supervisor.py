"""The local backend's supervisor: runs a plan's stages, one process per rank, and records state.

Started detached by ``LocalBackend.submit`` as ``python -m bevlaunch.supervisor RUN_DIR`` (its
own session, stdio to ``logs/supervisor.log``), so a run survives the terminal that started it.
It reads ``plan.json``, runs the stages in order and keeps ``state.json`` current. When a rank
fails the others are stopped at once (they would only wait in a collective until its timeout)
and the run fails with a one-line diagnosis. SIGTERM (``bevlaunch cancel``), SIGINT or SIGHUP
stop every rank and end the run as cancelled.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bevlaunch.plan import RunPlan, StagePlan, rank_env
from bevlaunch.procs import free_port, signal_groups, stop_groups
from bevlaunch.rundir import (
    PLAN_FILE,
    STATE_FILE,
    new_state,
    rank_log,
    read_json,
    write_json_atomic,
)

GRACE_S_ENV = "BEVLAUNCH_GRACE_S"
DEFAULT_GRACE_S = 10.0
POLL_S = 0.1
TAIL_BYTES = 64 * 1024
LAST_LINES = 10


class Supervisor:
    """Runs one plan; ``state`` mirrors ``state.json``.

    Args:
        plan: what to run.
        run_dir: the run directory (``state.json`` and ``logs/`` live there).
        grace_s: how long ranks get between SIGTERM and SIGKILL.
    """

    def __init__(self, plan: RunPlan, run_dir: Path, grace_s: float = DEFAULT_GRACE_S) -> None:
        self.plan = plan
        self.run_dir = run_dir
        self.grace_s = grace_s
        self.cancel_signal: int | None = None
        self.state: dict[str, Any] = read_json(run_dir / STATE_FILE) or new_state(
            plan.name, [s.name for s in plan.stages], time.time()
        )

    def request_cancel(self, signum: int, _frame: Any = None) -> None:
        """Signal handler: the main loop stops the ranks (nothing else is safe in a handler)."""
        self.cancel_signal = signum

    def save(self, **changes: Any) -> None:
        """Update the state and write ``state.json`` atomically."""
        self.state.update(changes)
        write_json_atomic(self.run_dir / STATE_FILE, self.state)

    def run(self) -> int:
        """Run every stage; returns 0 when all succeeded, 1 otherwise."""
        self.save(state="running", started=time.time(), supervisor_pid=os.getpid())
        for stage in self.plan.stages:
            if self.cancel_signal is not None:
                break
            failure = self._run_stage(stage)
            if failure is not None:
                self.save(state="failed", ended=time.time(), process_groups=[], **failure)
                return 1
        if self.cancel_signal is not None:
            name = signal.Signals(self.cancel_signal).name
            self.save(
                state="cancelled",
                ended=time.time(),
                process_groups=[],
                diagnosis=f"cancelled ({name}) during stage {self.state['stage']}",
            )
            return 1
        self.save(state="succeeded", ended=time.time(), process_groups=[])
        return 0

    def _run_stage(self, stage: StagePlan) -> dict[str, Any] | None:
        """Run one stage's ranks to the end; returns the failure fields, or None on success."""
        port = free_port()
        procs: list[subprocess.Popen] = []

        def reap() -> None:
            for p in procs:
                p.poll()

        try:
            for rank in range(stage.processes):
                procs.append(self._start_rank(stage, rank, port))
        except OSError as e:  # e.g. the workload's interpreter is missing
            stop_groups([p.pid for p in procs], self.grace_s, reap=reap)
            return {"diagnosis": f"stage {stage.name}: cannot start rank {len(procs)}: {e}"}
        finally:
            # Recorded before anything else can fail, so `cancel` finds every group.
            self.save(
                stage=stage.name, ranks=stage.processes, process_groups=[p.pid for p in procs]
            )

        while True:
            if self.cancel_signal is not None:
                stop_groups([p.pid for p in procs], self.grace_s, reap=reap)
                return None
            codes = [p.poll() for p in procs]
            failed = [rank for rank, code in enumerate(codes) if code not in (None, 0)]
            if failed:
                rank = failed[0]
                stop_groups([p.pid for p in procs], self.grace_s, reap=reap)
                return diagnose(stage.name, rank, codes[rank], rank_log(self.run_dir, rank))
            if all(code == 0 for code in codes):
                # Leftovers of a finished rank (a stray worker) must not outlive the stage.
                signal_groups([p.pid for p in procs], signal.SIGKILL)
                return None
            time.sleep(POLL_S)

    def _start_rank(self, stage: StagePlan, rank: int, port: int) -> subprocess.Popen:
        env = {**os.environ, **stage.env, **rank_env(stage.processes, rank, port)}
        log = rank_log(self.run_dir, rank)
        with log.open("a", encoding="utf-8") as f:
            f.write(f"[bevlaunch] stage {stage.name}: rank {rank} of {stage.processes}\n")
            f.flush()
            # A new session: its own process group (stopped as one) and no controlling terminal.
            return subprocess.Popen(
                list(stage.argv),
                env=env,
                cwd=self.run_dir,
                stdin=subprocess.DEVNULL,
                stdout=f,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )


def describe_exit(code: int) -> str:
    """``exited with code 1`` or ``was killed by SIGKILL`` (a negative Popen return code)."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory?)" if -code == signal.SIGKILL else ""
        return f"was killed by {name}{hint}"
    return f"exited with code {code}"


def diagnose(stage: str, rank: int, code: int, log: Path) -> dict[str, Any]:
    """The failure fields of the state: a one-line ``diagnosis`` and the rank's ``last_lines``.

    The diagnosis names the stage, the rank and how it ended, then the cause: the last ``error``
    event the rank printed (message and hint), else its last log line.
    """
    from bevdepth.events import parse_line

    lines = _tail(log)
    error = None
    plain: list[str] = []
    for line in lines:
        event = parse_line(line)
        if event is None:
            plain.append(line)
        elif event.kind == "error":
            error = event.fields
    last = plain[-LAST_LINES:]
    head = f"stage {stage}: rank {rank} {describe_exit(code)}"
    if error is not None:
        cause = str(error.get("message") or "error")
        if error.get("hint"):
            cause += f" (hint: {error['hint']})"
    elif last:
        cause = f"last output: {last[-1].strip()}"
    else:
        cause = "no output"
    diagnosis = " ".join(f"{head}: {cause}".split())  # one line, whatever the message held
    return {"diagnosis": diagnosis, "last_lines": last, "exit_code": code, "failed_rank": rank}


def _tail(path: Path) -> list[str]:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - TAIL_BYTES))
            data = f.read()
    except FileNotFoundError:
        return []
    return [line for line in data.decode("utf-8", errors="replace").splitlines() if line.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bevlaunch.supervisor RUN_DIR``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m bevlaunch.supervisor RUN_DIR", file=sys.stderr)
        return 2
    run_dir = Path(args[0]).resolve()
    plan = RunPlan.from_dict(read_json(run_dir / PLAN_FILE))
    supervisor = Supervisor(plan, run_dir, float(os.environ.get(GRACE_S_ENV, DEFAULT_GRACE_S)))
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, supervisor.request_cancel)
    try:
        return supervisor.run()
    except Exception as e:
        # Whatever went wrong here, the ranks must not outlive the supervisor unobserved.
        traceback.print_exc()
        signal_groups(supervisor.state.get("process_groups", []), signal.SIGKILL)
        supervisor.save(
            state="failed",
            ended=time.time(),
            process_groups=[],
            diagnosis=f"supervisor error: {type(e).__name__}: {e}",
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
