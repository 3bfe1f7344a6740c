"""The in-container agent of the ``reference`` workload: run each stage's upstream command, turn
its output into events, write ``results.json``.

One agent runs per node (pod). It starts upstream's script once per stage; Lightning inside
that script spawns one process per device and joins the nodes (``env.py``). Node 0's agent
emits the run's events; the others only report their failures. Every byte the script prints
goes to this process's stdout (so ``kubectl logs`` shows it) and to
``<run.dir>/logs/reference-<stage>[-node<k>].log``.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bevdepth.events import EventSink
from bevdepth.reference import recipe
from bevdepth.reference.checkpoints import (
    CheckpointWatch,
    checkpoint_event,
    list_checkpoints,
    newest,
)
from bevdepth.reference.env import env_for, topology_of
from bevdepth.reference.logparse import (
    Diagnosis,
    EvalTranslator,
    EventPayload,
    LineSplitter,
    TrainTranslator,
    finish_events,
)
from bevdepth.reference.workdir import link_dataroot, outputs_dir, workdir
from bevdepth.runtime.config import ConfigError, RunConfig, parse_config
from bevdepth.runtime.environment import TopologyError

WORKLOAD = "reference"
STAGES = ("prepare", "train", "eval", "bench")
# Where the npu-reference image keeps the patched upstream checkout.
DEFAULT_UPSTREAM_DIR = "/opt/bevdepth-upstream"
UPSTREAM_DIR_VARIABLE = "BEVDEPTH_UPSTREAM_DIR"
_TICK_S = 2.0  # how often checkpoints are looked for while a stage runs
_CAUSE_EXIT = {"config": 2, "data": 2, "checkpoint": 2, "interrupted": 130}


class ReferenceError(Exception):
    """A problem found before a stage starts; ``cause`` is the error event's cause."""

    def __init__(self, message: str, cause: str, hint: str):
        super().__init__(message)
        self.cause, self.hint = cause, hint


def load_reference_config(path: str | os.PathLike) -> RunConfig:
    """The run config of a reference run (the contract's fields, ``workload`` aside)."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the run config ({e.strerror})") from e
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from e
    if not isinstance(raw, dict) or raw.get("workload") != WORKLOAD:
        raise ConfigError(f"workload: expected {WORKLOAD!r} in {path}")
    rest = {k: v for k, v in raw.items() if k != "workload"}
    return parse_config(rest)


def recipe_args(config: RunConfig, nodes: int) -> recipe.RecipeArgs:
    training = config.training
    if training.precision not in recipe.PRECISION_ARG:
        raise ConfigError(
            f"training.precision: {training.precision} is not one of the recipe's "
            f"{sorted(recipe.PRECISION_ARG)}"
        )
    return recipe.RecipeArgs(
        epochs=training.epochs,
        batch_per_device=training.batch_per_device,
        lr_per_image=training.lr_per_image,
        seed=training.seed,
        precision=training.precision,
        devices_per_node=config.resources.devices_per_node,
        nodes=nodes,
        max_steps=training.max_steps,
    )


def run_reference(config_path: str | os.PathLike, stages: Sequence[str] | None) -> int:
    """``python -m bevdepth run --config FILE`` for a reference config: the exit code."""
    started = time.monotonic()
    try:
        config = load_reference_config(config_path)
        upstream = os.environ.get(UPSTREAM_DIR_VARIABLE, DEFAULT_UPSTREAM_DIR)
        resources = config.resources
        child_env = env_for(
            os.environ,
            nodes=resources.nodes,
            devices_per_node=resources.devices_per_node,
            upstream_dir=upstream,
            accelerator=resources.accelerator,
        )
        topology = topology_of(os.environ, resources.nodes, resources.devices_per_node)
        args = recipe_args(config, topology.num_nodes)
        chosen = list(stages or config.stages)
        unknown = [s for s in chosen if s not in STAGES]
        if unknown:
            raise ConfigError(f"stages: unknown {unknown}; the reference workload runs {STAGES}")
    except (ConfigError, TopologyError) as error:
        return _fail(EventSink(), Diagnosis(str(error), "config", _CONFIG_HINT), None)
    node = topology.node_rank
    sink = EventSink(config.run_dir / "events.jsonl" if node == 0 else None)
    stage_runner = _StageRunner(config, args, upstream, child_env, node, sink)
    code = 0
    for stage in chosen:
        stage_started = time.monotonic()
        try:
            code = stage_runner.run(stage)
        except ReferenceError as error:
            code = _fail(sink, Diagnosis(str(error), error.cause, error.hint), stage)
        if code:
            code = code if code in (1, 2, 130) else 1  # the run contract's exit codes
            break
        if node == 0:
            sink.emit("done", stage=stage, exit_code=0, seconds=time.monotonic() - stage_started)
    if node == 0:
        sink.emit("done", stage="all", exit_code=code, seconds=time.monotonic() - started)
    return code


_CONFIG_HINT = "fix the named field of the spec or run config (docs/REFERENCE.md)"


def _fail(sink: EventSink, failure: Diagnosis, stage: str | None) -> int:
    code = _CAUSE_EXIT.get(failure.cause, 1)
    for kind, fields in finish_events(stage or "setup", failure, code):
        fields["stage"] = stage
        sink.emit(kind, **fields)
    return code


class _StageRunner:
    """Runs one stage's upstream command(s) and translates them."""

    def __init__(
        self,
        config: RunConfig,
        args: recipe.RecipeArgs,
        upstream: str,
        env: dict[str, str],
        node: int,
        sink: EventSink,
    ):
        self.config, self.args, self.upstream = config, args, upstream
        self.env, self.node, self.sink = env, node, sink
        self.python = sys.executable

    # -- events ---------------------------------------------------------------------------
    def emit(self, payloads: list[EventPayload]) -> None:
        for kind, fields in payloads:
            if self.node == 0 or kind == "error":
                self.sink.emit(kind, **fields)

    def start(self, stage: str, **fields: Any) -> None:
        self.emit(
            [
                (
                    "start",
                    {
                        "stage": stage,
                        "run": self.config.run.name,
                        "workload": WORKLOAD,
                        "world_size": self.args.world_size,
                        "nodes": self.args.nodes,
                        "devices_per_node": self.args.devices_per_node,
                        "accelerator": self.config.resources.accelerator,
                        **fields,
                    },
                )
            ]
        )

    # -- stages ---------------------------------------------------------------------------
    def run(self, stage: str) -> int:
        self._check_upstream()
        return {
            "prepare": self.prepare,
            "train": self.train,
            "eval": self.evaluate,
            "bench": self.bench,
        }[stage]()

    def _check_upstream(self) -> None:
        script = Path(self.upstream) / recipe.EXPERIMENT_SCRIPT
        if not script.is_file():
            raise ReferenceError(
                f"upstream BEVDepth is not at {self.upstream} ({recipe.EXPERIMENT_SCRIPT} missing)",
                "config",
                f"run the npu-reference image, or set {UPSTREAM_DIR_VARIABLE} to the patched "
                "checkout",
            )

    def _work(self, purpose: str = "run") -> Path:
        work = workdir(self.config.run_dir, purpose)
        try:
            link_dataroot(work, Path(self.config.data.root))
        except FileNotFoundError as e:
            raise ReferenceError(str(e), "data", "mount the nuScenes dataroot (data.*)") from e
        return work

    def prepare(self) -> int:
        work = self._work()
        marker = work / ".prepared"
        self.start("prepare")
        if self.node != 0:
            return self._wait_for(marker)
        for argv in recipe.prepare_argvs(self.python, self.upstream):
            translator = TrainTranslator("prepare", 1, 1, 1)
            code = self._run_process("prepare", argv, work, translator.feed)
            if code:
                self.emit(finish_events("prepare", translator.failure, code))
                return code
        marker.write_text("done\n", encoding="utf-8")
        return 0

    def _wait_for(self, marker: Path) -> int:
        deadline = time.monotonic() + float(os.environ.get("BEVDEPTH_PREPARE_TIMEOUT_S", 86400))
        while not marker.exists():
            if time.monotonic() > deadline:
                raise ReferenceError(
                    f"node 0 did not finish prepare ({marker} missing)",
                    "distributed",
                    "look at node 0's log; BEVDEPTH_PREPARE_TIMEOUT_S bounds this wait",
                )
            time.sleep(_TICK_S)
        return 0

    def train(self, purpose: str = "run", epochs: int | None = None, stage: str = "train") -> int:
        work = self._work(purpose)
        outputs = outputs_dir(work)
        resume = self.config.training.resume_from
        if resume is None and stage == "train":
            found = newest(list_checkpoints(outputs))
            resume = found.path if found else None
        epochs = epochs or self.args.epochs
        self.start(
            stage,
            precision=self.config.training.precision,
            epochs=epochs,
            global_batch=self.args.batch_per_device * self.args.world_size,
            lr=self.args.lr_at(0),
            resume_from=resume,
        )
        argv = recipe.train_argv(
            self.python, self.upstream, self.args, epochs=epochs, resume_from=resume
        )
        translator = TrainTranslator(
            stage, self.args.batch_per_device, self.args.world_size, epochs, self.args.lr_at
        )
        watch = CheckpointWatch(reported={c.path for c in list_checkpoints(outputs)})

        def tick() -> None:
            found = watch.look(list_checkpoints(outputs))
            self.emit([("checkpoint", checkpoint_event(c)) for c in found])

        code = self._run_process(
            stage, argv, work, lambda line: self.emit(translator.feed(line)), tick
        )
        settled = watch.settle(list_checkpoints(outputs))
        self.emit([("checkpoint", checkpoint_event(c)) for c in settled])
        if code:
            self.emit(finish_events(stage, translator.failure, code))
            return code
        summary = translator.throughput()
        if summary is not None:
            self.emit([("metrics", {"stage": stage, **summary})])
            if stage == "bench" and self.node == 0:
                self._results("bench", summary)
        return 0

    def bench(self) -> int:
        # train_performance_8p.sh: one epoch, in its own directory so that its checkpoint is
        # never resumed from or evaluated.
        return self.train(purpose="bench", epochs=1, stage="bench")

    def evaluate(self) -> int:
        work = self._work()
        checkpoint = self.config.eval.checkpoint
        if checkpoint is None:
            found = newest(list_checkpoints(outputs_dir(work)))
            checkpoint = found.path if found else self.config.model.checkpoint
        if checkpoint is None:
            raise ReferenceError(
                f"no checkpoint to evaluate under {outputs_dir(work)}",
                "checkpoint",
                "run the train stage first, or set evaluation.checkpoint (or model.checkpoint)",
            )
        batch = self.config.eval.batch_per_device
        self.start("eval", checkpoint=checkpoint, samples=None)
        if self.node != 0:
            return 0  # the published recipe evaluates on one device of the first node
        argv = recipe.eval_argv(
            self.python, self.upstream, self.args, batch_per_device=batch, checkpoint=checkpoint
        )
        translator = EvalTranslator(batch, recipe.EVAL_DEVICES)
        code = self._run_process("eval", argv, work, translator.feed)
        if code:
            self.emit(finish_events("eval", translator.failure, code))
            return code
        if not translator.complete:
            raise ReferenceError(
                "the evaluation ended without the nuScenes summary (mAP ... NDS) in its output",
                "internal",
                "see logs/reference-eval.log",
            )
        fields = {"stage": "eval", **translator.metrics_fields()}
        fields.update(eval_set=self.config.eval.split, checkpoint=checkpoint, samples=None)
        fields["results"] = str(self._results("eval", fields))
        self.emit([("metrics", fields)])
        return 0

    def _results(self, section: str, payload: dict[str, Any]) -> Path:
        from bevdepth.runtime.results import update_results

        return update_results(self.config, section, {"workload": WORKLOAD, **payload})

    # -- processes ------------------------------------------------------------------------
    def _run_process(
        self,
        stage: str,
        argv: list[str],
        cwd: Path,
        on_line: Callable[[str], None],
        on_tick: Callable[[], None] | None = None,
    ) -> int:
        logs = self.config.run_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        suffix = "" if self.node == 0 else f"-node{self.node}"
        with (logs / f"reference-{stage}{suffix}.log").open("ab") as log:
            return run_translated(argv, self.env, cwd, log, on_line, on_tick)


def run_translated(
    argv: list[str],
    env: dict[str, str],
    cwd: Path,
    log,
    on_line: Callable[[str], None],
    on_tick: Callable[[], None] | None = None,
    tick_s: float = _TICK_S,
) -> int:
    """Run ``argv``; copy its output to stdout and ``log``; hand each line to ``on_line``.

    SIGINT/SIGTERM are forwarded to the child's process group (Lightning's ranks included).
    """
    child = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    chunks: queue.Queue[bytes] = queue.Queue()

    def pump() -> None:
        assert child.stdout is not None
        while data := os.read(child.stdout.fileno(), 65536):
            chunks.put(data)
        chunks.put(b"")

    def forward(signum: int, _frame) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signum)

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    splitter = LineSplitter()
    out = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else None
    try:
        while True:
            try:
                data = chunks.get(timeout=tick_s)
            except queue.Empty:
                if on_tick is not None:
                    on_tick()
                continue
            if not data:
                break
            log.write(data)
            if out is not None:
                out.write(data)
                out.flush()
            for line in splitter.feed(decoder.decode(data)):
                on_line(line)
        for line in splitter.feed(decoder.decode(b"", final=True)) + splitter.flush():
            on_line(line)
        code = child.wait()
        if code < 0:
            code = 128 - code  # killed by a signal: the shell's convention
        if on_tick is not None:
            on_tick()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return code
