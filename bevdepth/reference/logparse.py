"""Log text of the published recipe → our events. Pure: lines in, ``(kind, fields)`` out.

The reference stack does not print events; it prints three kinds of lines that carry what the
launcher needs (formats in docs/REFERENCE.md):

* the per-step line of the patched Lightning loop, on every rank: ``id 12 step_time=  0.512``
  (0-based batch index in the epoch, seconds of that optimizer step);
* Lightning 1.6's tqdm progress bar, on rank 0, refreshed with carriage returns:
  ``Epoch 3:  45%|####5     | 198/439 [01:40<02:02,  1.97it/s, loss=7.21, v_num=0]``;
* the nuScenes devkit summary after evaluation: ``mAP: 0.3304`` ... ``NDS: 0.4355`` and the
  ``Per-class results:`` table.

:class:`LineSplitter` turns raw output chunks into lines (``\\n`` and ``\\r`` both end one, and
a partial line waits for the rest). :class:`TrainTranslator` and :class:`EvalTranslator` turn
lines into event payloads; the agent stamps and prints them. Nothing here reads a clock, a
file or the environment.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

EventPayload = tuple[str, dict[str, Any]]

# The recipe's samples are 2 key frames x 6 cameras (the published "images/sec" counts samples).
IMAGES_PER_SAMPLE = 12
FPS_METHOD = (
    "batch_per_device / step_time x world_size, with step_time the mean over epochs of the "
    "seconds per iteration on each epoch's final progress-bar line (as the published scripts)"
)

_STEP = re.compile(r"\bid (\d+) step_time=\s*([0-9.]+(?:[eE][-+]?\d+)?)")
_BAR = re.compile(
    r"(?P<desc>Epoch (?P<epoch>\d+)|Testing(?: DataLoader \d+)?|Predicting(?: DataLoader \d+)?):"
    r"\s*(?P<pct>\d+)%\|[^|]*\|\s*(?P<n>\d+)/(?P<total>\d+)\s*"
    r"\[(?P<elapsed>[\d:]+)<(?P<left>[\d:?]+),\s*(?:(?P<rate>[0-9.]+)|\?)(?P<unit>s/it|it/s)"
    r"(?:,\s*(?P<postfix>[^\]]*))?\]"
)
_POSTFIX_ITEM = re.compile(r"([A-Za-z_][\w/.]*)=([-+0-9.eE]+|nan|inf)")
# Printed by every process of a run as it starts (pl.seed_everything in the recipe's CLI).
_RUN_START = re.compile(r"Global seed set to \d+")
_TRACEBACK = "Traceback (most recent call last):"
_EXCEPTION = re.compile(r"^\s*([A-Za-z_][\w.]*(?:Error|Exception|Interrupt))(?::\s*(.*))?$")
_METRIC = re.compile(r"^(mAP|mATE|mASE|mAOE|mAVE|mAAE|NDS):\s*([0-9.]+|nan)\s*$")
_EVAL_TIME = re.compile(r"^Eval time:\s*([0-9.]+)s")
_CLASS_ROW = re.compile(r"^([a-z_]+)\s*\t\s*([0-9.]+|nan)\s*\t")


@dataclass(frozen=True)
class Diagnosis:
    """What a log says about a failure: the exception line, our cause and what to change."""

    message: str
    cause: str
    hint: str


# (pattern in the failing line, cause, hint): first match wins; causes are the events' causes.
_KNOWN_FAILURES: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (
        re.compile(r"taskset: failed to set pid|taskset: .*Invalid argument"),
        "config",
        "CPU pinning asked for cores outside the pod's cpuset: the image's Lightning must carry "
        "patches/pytorch-lightning-1.6.5 (cpuset-aware pinning); rebuild the npu-reference image",
    ),
    (
        re.compile(r"No such file or directory: .*(nuscenes_infos|depth_gt|nuScenes)"),
        "data",
        "run the prepare stage first (stages: [prepare, train, eval]) or check data.* in the spec",
    ),
    (
        re.compile(r"(ckpt|checkpoint).*(No such file|not found|Error\(s\) in loading)", re.I),
        "checkpoint",
        "point evaluation.checkpoint at a checkpoint of the reference recipe, or clear it to use "
        "the newest one of this run",
    ),
    (
        re.compile(r"out of memory|NPU out of memory|Memory allocation failed", re.I),
        "internal",
        "lower training.batch_per_device (the recipe's 8 needs a 64 GB Atlas 800T A2 NPU)",
    ),
    (
        re.compile(r"HCCL|hccl|EI000\d|Connection (reset|refused|closed)|timed out"),
        "distributed",
        "a rank or node failed or is unreachable: check the other pods' logs, MASTER_ADDR and "
        "HCCL_IF_IP; HCCL_CONNECT_TIMEOUT bounds the rendezvous",
    ),
    (
        re.compile(r"ModuleNotFoundError|ImportError"),
        "config",
        "the image lacks part of the reference stack: build the npu-reference target",
    ),
    (
        re.compile(r"KeyboardInterrupt|SIGTERM|Signals\.SIGTERM"),
        "interrupted",
        "rerun the same spec to resume from the newest checkpoint",
    ),
)
_DEFAULT_HINT = "see the traceback in this stage's log (logs/reference-<stage>.log)"


def diagnose(line: str) -> Diagnosis:
    """Cause and hint of a failure line (an exception line or a tool's error)."""
    for pattern, cause, hint in _KNOWN_FAILURES:
        if pattern.search(line):
            return Diagnosis(line.strip(), cause, hint)
    return Diagnosis(line.strip(), "internal", _DEFAULT_HINT)


class LineSplitter:
    """Raw output chunks → complete lines.

    ``\\n``, ``\\r\\n`` and a lone ``\\r`` (tqdm's refresh) each end a line; text after the last
    terminator waits for the next chunk (or :meth:`flush`).
    """

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, chunk: str) -> list[str]:
        text = self._pending + chunk
        # A trailing "\r" may be the first half of "\r\n": keep it until the next chunk.
        cut = len(text) - 1 if text.endswith("\r") else len(text)
        parts = re.split(r"\r\n|\r|\n", text[:cut])
        self._pending = parts.pop() + text[cut:]
        return [p for p in parts if p]

    def flush(self) -> list[str]:
        """The unterminated rest (at the end of the stream)."""
        rest, self._pending = self._pending.rstrip("\r"), ""
        return [rest] if rest else []


def seconds_per_iteration(rate: float, unit: str) -> float | None:
    """tqdm's rate as seconds per iteration (``it/s`` inverted), None for a zero rate."""
    if unit == "s/it":
        return rate
    return 1.0 / rate if rate > 0 else None


@dataclass
class _FailureWatch:
    """Remembers the first failure of a log: an exception after a traceback or a tool error."""

    in_traceback: bool = False
    first: Diagnosis | None = None

    def see(self, line: str) -> Diagnosis | None:
        """The diagnosis when ``line`` is the first failure seen, else None."""
        if _TRACEBACK in line:
            self.in_traceback = True
            return None
        found = None
        if self.in_traceback:
            match = _EXCEPTION.match(line)
            if match:
                self.in_traceback = False
                found = diagnose(line)
        elif line.startswith("taskset:"):
            found = diagnose(line)
        if found is None or self.first is not None:
            return None
        self.first = found
        return found


def finish_events(
    stage: str, failure: Diagnosis | None, exit_code: int, rank: int | None = None
) -> list[EventPayload]:
    """The ``error`` event of a stage process that ended with ``exit_code`` (none on success)."""
    if exit_code == 0:
        return []
    if failure is None:
        failure = Diagnosis(
            f"the reference {stage} process exited with code {exit_code} without a traceback",
            "rank_died" if exit_code < 0 or exit_code >= 128 else "internal",
            "a rank was killed (out of host memory is the usual cause) or crashed natively; "
            "see the node's log and logs/reference-<stage>.log",
        )
    return [
        (
            "error",
            {
                "message": failure.message,
                "hint": failure.hint,
                "cause": failure.cause,
                "exit_code": exit_code if exit_code > 0 else 1,
                "rank": rank,
                "stage": stage,
            },
        )
    ]


@dataclass
class TrainTranslator:
    """Lines of a training (or benchmark) run → ``progress`` events and a throughput summary.

    Args:
        stage: ``train`` or ``bench`` (named in the events).
        batch_per_device: the recipe's ``-b``.
        world_size: devices x nodes.
        epochs: the run's ``--max_epochs`` (for ``max_steps``).
        lr_at: the learning rate of an epoch (the recipe's schedule), or None when unknown.
    """

    stage: str
    batch_per_device: int
    world_size: int
    epochs: int
    lr_at: Callable[[int], float] | None = None
    epoch: int | None = None
    steps_per_epoch: int | None = None
    last_step: int = 0
    last_batch: int = -1
    loss: float | None = None
    losses: dict[str, float] = field(default_factory=dict)
    epoch_seconds_per_it: dict[int, float] = field(default_factory=dict)
    restarts: int = 0
    _last_key: tuple[int, int] = (-1, -1)  # (epoch, batch) of the newest step reported
    _failures: _FailureWatch = field(default_factory=_FailureWatch)

    @property
    def failure(self) -> Diagnosis | None:
        return self._failures.first

    def feed(self, line: str) -> list[EventPayload]:
        """Events carried by one line (usually none)."""
        self._failures.see(line)
        if _RUN_START.search(line):
            self._restart()
            return []
        bar = _BAR.search(line)
        if bar is not None and bar.group("epoch") is not None:
            self._bar(bar)
            return []
        step = _STEP.search(line)
        if step is not None:
            return self._step(int(step.group(1)), float(step.group(2)))
        return []

    def _restart(self) -> None:
        # A new attempt (a resumed or restarted run) counts its steps from its own start;
        # every rank prints the marker before the first step, so repeats are harmless.
        if self.last_step or self.epoch is not None:
            self.restarts += 1
        self.epoch, self.last_step, self.last_batch = None, 0, -1
        self._last_key = (-1, -1)

    def _bar(self, bar: re.Match[str]) -> None:
        epoch = int(bar.group("epoch"))
        if self.epoch is not None and epoch < self.epoch:
            self._restart()
        if epoch != self.epoch:
            self.last_batch = -1  # the next step is this epoch's, whatever its index
        self.epoch = epoch
        total = int(bar.group("total"))
        if total > 0:
            self.steps_per_epoch = total
        for key, value in _POSTFIX_ITEM.findall(bar.group("postfix") or ""):
            number = float(value)
            if not math.isfinite(number):
                continue
            if key == "loss":
                self.loss = number
            elif key.endswith("_loss"):
                self.losses[key[: -len("_loss")]] = number
        rate = bar.group("rate")
        if bar.group("pct") == "100" and rate is not None:
            seconds = seconds_per_iteration(float(rate), bar.group("unit"))
            if seconds is not None:
                self.epoch_seconds_per_it[epoch] = seconds

    def _step(self, batch: int, seconds: float) -> list[EventPayload]:
        if self.epoch is not None and batch < self.last_batch:
            self.epoch += 1  # the batch index wrapped and no progress bar announced the epoch
        epoch = self.epoch if self.epoch is not None else 0
        self.epoch = epoch
        if (epoch, batch) <= self._last_key:
            return []  # the same step reported by another rank
        self._last_key = (epoch, batch)
        self.last_batch = batch
        per_epoch = self.steps_per_epoch
        step = epoch * per_epoch + batch + 1 if per_epoch else self.last_step + 1
        self.last_step = step
        fields: dict[str, Any] = {
            "stage": self.stage,
            "epoch": epoch,
            "step": step,
            "steps_per_epoch": per_epoch,
            "max_steps": per_epoch * self.epochs if per_epoch else None,
            "loss": self.loss,
            "losses": dict(self.losses),
            "lr": self.lr_at(epoch) if self.lr_at is not None else None,
            "samples_per_s": (
                self.batch_per_device * self.world_size / seconds if seconds > 0 else None
            ),
        }
        return [("progress", fields)]

    def throughput(self) -> dict[str, Any] | None:
        """The published FPS of this log, or None before any epoch completed."""
        if not self.epoch_seconds_per_it:
            return None
        step_time = sum(self.epoch_seconds_per_it.values()) / len(self.epoch_seconds_per_it)
        samples_per_s = self.batch_per_device / step_time * self.world_size
        return {
            "step_time_s": step_time,
            "samples_per_s": samples_per_s,
            "images_per_s": samples_per_s * IMAGES_PER_SAMPLE,
            "epochs_measured": len(self.epoch_seconds_per_it),
            "steps_per_epoch": self.steps_per_epoch,
            "world_size": self.world_size,
            "batch_per_device": self.batch_per_device,
            "method": FPS_METHOD,
        }


@dataclass
class EvalTranslator:
    """Lines of an evaluation run → the devkit's summary metrics and per-class table."""

    batch_per_device: int
    world_size: int
    metrics: dict[str, float | None] = field(default_factory=dict)
    per_class: dict[str, dict[str, float | None]] = field(default_factory=dict)
    eval_seconds: float | None = None
    test_seconds_per_it: float | None = None
    _in_table: bool = False
    _failures: _FailureWatch = field(default_factory=_FailureWatch)

    @property
    def failure(self) -> Diagnosis | None:
        return self._failures.first

    def feed(self, line: str) -> list[EventPayload]:
        self._failures.see(line)
        stripped = line.strip()
        if _RUN_START.search(line):
            # A restarted evaluation: only its own numbers count.
            self.metrics, self.per_class, self._in_table = {}, {}, False
            return []
        bar = _BAR.search(line)
        if bar is not None and bar.group("desc").startswith("Testing"):
            if bar.group("pct") == "100" and bar.group("rate") is not None:
                self.test_seconds_per_it = seconds_per_iteration(
                    float(bar.group("rate")), bar.group("unit")
                )
            return []
        metric = _METRIC.match(stripped)
        if metric is not None:
            self.metrics[metric.group(1)] = _number(metric.group(2))
            return []
        timing = _EVAL_TIME.match(stripped)
        if timing is not None:
            self.eval_seconds = float(timing.group(1))
            return []
        if stripped.startswith("Object Class"):
            self._in_table = True
            return []
        if self._in_table:
            return self._table_row(line)
        return []

    def _table_row(self, line: str) -> list[EventPayload]:
        cells = [c.strip() for c in line.split("\t")]
        if len(cells) != 7 or not _CLASS_ROW.match(line):
            self._in_table = False
            return []
        name, *values = cells
        keys = ("AP", "ATE", "ASE", "AOE", "AVE", "AAE")
        try:
            self.per_class[name] = {k: _number(v) for k, v in zip(keys, values, strict=True)}
        except ValueError:
            self._in_table = False
        return []

    @property
    def complete(self) -> bool:
        """Whether every summary metric was printed."""
        return all(name in self.metrics for name in ("mAP", "mATE", "mASE", "NDS"))

    def metrics_fields(self) -> dict[str, Any]:
        """The ``metrics`` event fields (without ``stage`` / ``checkpoint`` / ``results``)."""
        fields: dict[str, Any] = {
            name: self.metrics.get(name)
            for name in ("mAP", "mATE", "mASE", "mAOE", "mAVE", "mAAE", "NDS")
        }
        fields["per_class_ap"] = {name: row["AP"] for name, row in self.per_class.items()}
        fields["per_class"] = self.per_class
        fields["eval_seconds"] = self.eval_seconds
        fields["samples_per_s"] = (
            self.batch_per_device * self.world_size / self.test_seconds_per_it
            if self.test_seconds_per_it
            else None
        )
        return fields


def _number(text: str) -> float | None:
    """A printed number; None for ``nan`` (events carry no NaN)."""
    value = float(text)
    return value if math.isfinite(value) else None
