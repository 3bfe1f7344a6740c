"""A stand-in for ``python -m bevdepth`` that follows the run contract, for the launcher's tests.

Called as ``fake_workload.py run --config FILE --stages STAGE`` with the torchrun-style
environment. It prints events with ``bevdepth.events.format_event`` and plain lines, sleeps, and
exits as told by environment variables (the tests set them; the supervisor passes them on):

- ``FAKE_STEPS`` (default 3) progress steps per train stage, ``FAKE_STEP_S`` (default 0.05)
  seconds per step.
- ``FAKE_FAIL``: ``STAGE:RANK:CODE`` makes that rank of that stage print an error event and exit
  with CODE after its first step (``train:1:3``); ``STAGE:RANK:hang`` makes it sleep forever.
- ``FAKE_IGNORE_TERM``: ignore SIGTERM (only SIGKILL stops it).
- ``FAKE_PIDS``: a folder where every rank writes ``<stage>-<rank>.pid`` (to check for leftovers).

Standard library and ``bevdepth.events`` only, so it starts in a few milliseconds.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from bevdepth.events import format_event


def emit(kind: str, **fields) -> None:
    print(format_event(kind, **fields), flush=True)


def main(argv: list[str]) -> int:
    assert argv[0] == "run" and argv[1] == "--config" and argv[3] == "--stages", argv
    config = json.loads(Path(argv[2]).read_text())
    stage = argv[4]
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    assert os.environ["MASTER_ADDR"] == "127.0.0.1" and int(os.environ["MASTER_PORT"]) > 0
    assert os.environ["LOCAL_RANK"] == str(rank) and os.environ["NODE_RANK"] == "0"
    if os.environ.get("FAKE_PIDS"):
        Path(os.environ["FAKE_PIDS"], f"{stage}-{rank}.pid").write_text(str(os.getpid()))
    if os.environ.get("FAKE_IGNORE_TERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    steps = int(os.environ.get("FAKE_STEPS", "3"))
    step_s = float(os.environ.get("FAKE_STEP_S", "0.05"))
    fail_stage, fail_rank, fail_how = (os.environ.get("FAKE_FAIL") or "::").split(":")
    failing = fail_stage == stage and fail_rank == str(rank)
    print(f"fake {stage} rank {rank}/{world} user={os.environ.get('USER_VALUE', '')}", flush=True)
    if rank == 0:
        emit("start", stage=stage, run=config["run"]["name"], world_size=world, epochs=1)
    for step in range(1, steps + 1 if stage == "train" else 2):
        time.sleep(step_s)
        if rank == 0 and stage == "train":
            emit(
                "progress",
                stage=stage,
                epoch=0,
                step=step,
                steps_per_epoch=steps,
                max_steps=steps,
                loss=1.0 / step,
                lr=1e-4,
                samples_per_s=10.0 * world,
            )
        print(f"step {step} done", flush=True)
        if failing and fail_how == "hang":
            while True:
                time.sleep(1)
        if failing:
            emit(
                "error",
                message="loss became NaN at step 1",
                hint="lower the learning rate",
                cause="nan_loss",
                exit_code=int(fail_how),
                rank=rank,
                stage=stage,
            )
            return int(fail_how)
    if rank == 0 and stage == "eval":
        metrics = {
            "mAP": 0.25,
            "mATE": 0.7,
            "mASE": 0.3,
            "mAOE": 0.6,
            "mAVE": 0.9,
            "mAAE": 0.2,
            "NDS": 0.35,
        }
        emit("metrics", stage="eval", **metrics, per_class_ap={"car": 0.5}, samples_per_s=4.0)
        results = {
            "schema": 1,
            "run": config["run"]["name"],
            "config": config,
            "eval": {"metrics": metrics, "per_class_ap": {"car": 0.5}, "samples_per_s": 4.0},
        }
        Path(config["run"]["dir"], "results.json").write_text(json.dumps(results))
    if rank == 0:
        emit("done", stage=stage, exit_code=0, seconds=0.1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
