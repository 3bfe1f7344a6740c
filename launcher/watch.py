"""``bevlaunch watch``: a live view of one run, from its log lines and the event contract only.

:class:`WatchModel` folds log lines (``bevdepth.events.parse_line`` for events, the rest as plain
text) into what the view shows; :func:`render_view` draws it; :func:`watch` drives both from any
:class:`~bevlaunch.backends.base.Backend` and returns the exit code (0 succeeded, 1 otherwise).
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bevlaunch.backends.base import LogLine, RunState, RunStatus
from bevlaunch.output import METRICS, duration

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from bevlaunch.backends.base import Backend

TAIL_LINES = 12
# The ETA follows the recent rate: the last RATE_WINDOW steps.
RATE_WINDOW = 20
STATUS_EVERY_S = 1.0
REFRESH_S = 0.25


@dataclass
class WatchModel:
    """What the view shows, updated one log line at a time (no clock, no I/O).

    Args:
        all_ranks: lines of every rank are shown (prefixed ``[rank N]``); else rank 0's only.
        tail_lines: how many plain log lines the view keeps.
    """

    all_ranks: bool = False
    tail_lines: int = TAIL_LINES
    stage: str | None = None
    start: dict[str, Any] = field(default_factory=dict)
    progress: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    last_checkpoint: str | None = None
    stage_done: bool = False
    tail: deque[str] = field(default_factory=deque)
    _step_times: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=RATE_WINDOW))

    def feed(self, line: LogLine) -> None:
        """Take one line: an event updates the state, anything else goes to the tail."""
        from bevdepth.events import parse_line

        event = parse_line(line.text)
        if event is None:
            text = f"[rank {line.rank}] {line.text}" if self.all_ranks else line.text
            self.tail.append(text)
            while len(self.tail) > self.tail_lines:
                self.tail.popleft()
            return
        fields = event.fields
        if event.kind == "start":
            self.stage = fields.get("stage", self.stage)
            self.start = fields
            self.stage_done = False
            self.progress = {}
            self._step_times.clear()
        elif event.kind == "progress":
            self.stage = fields.get("stage", self.stage)
            self.progress = fields
            if isinstance(fields.get("step"), int):
                self._step_times.append((fields["step"], event.time))
        elif event.kind == "checkpoint":
            self.last_checkpoint = fields.get("path")
        elif event.kind == "metrics":
            self.metrics[str(fields.get("stage"))] = fields
        elif event.kind == "done" and fields.get("stage") == self.stage:
            self.stage_done = True
        elif event.kind == "error":
            self.errors.append({"rank": line.rank, **fields})

    def eta_s(self) -> float | None:
        """Seconds left in the stage at the recent step rate (event times), or None."""
        step, target = self.progress.get("step"), self.progress.get("max_steps")
        if len(self._step_times) < 2 or not isinstance(target, int) or not isinstance(step, int):
            return None
        (first_step, first_t), (last_step, last_t) = self._step_times[0], self._step_times[-1]
        if last_step <= first_step or last_t <= first_t:
            return None
        rate = (last_step - first_step) / (last_t - first_t)
        return max(0, target - step) / rate

    def results(self, name: str) -> dict[str, Any]:
        """The metrics events in the shape of ``results.json`` (when that file is missing)."""
        results: dict[str, Any] = {"run": name}
        if "eval" in self.metrics:
            m = self.metrics["eval"]
            results["eval"] = {
                "metrics": {k: m[k] for k in METRICS if k in m},
                "per_class_ap": m.get("per_class_ap") or {},
                "samples_per_s": m.get("samples_per_s"),
            }
        if "bench" in self.metrics:
            results["bench"] = self.metrics["bench"]
        return results


def _fmt(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, int | float) else "-"


def progress_fields(model: WatchModel) -> list[str]:
    """Epoch, step and loss of the newest progress event: what the live view and a Kubernetes
    ``status`` show (``["epoch 2/24", "step 900/10536", "loss 7.2100"]``)."""
    p = model.progress
    epoch = p.get("epoch")
    return [
        f"epoch {_fmt(epoch + 1 if isinstance(epoch, int) else None, 'd')}/"
        f"{_fmt(model.start.get('epochs'), 'd')}",
        f"step {_fmt(p.get('step'), 'd')}/{_fmt(p.get('max_steps'), 'd')}",
        f"loss {_fmt(p.get('loss'), '.4f')}",
    ]


def render_view(model: WatchModel, status: RunStatus | None) -> RenderableType:
    """The live view: run and stage, a progress bar with epoch/step/loss/rate/ETA, the log tail."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    parts: list[RenderableType] = []
    if status is not None:
        stages = list(status.stages)
        position = (
            f" ({stages.index(status.stage) + 1}/{len(stages)})" if status.stage in stages else ""
        )
        parts.append(
            Text.assemble(
                (status.name, "bold"),
                f"  {status.state.value}",
                f"  stage {model.stage or status.stage or '-'}{position}",
            )
        )
    p = model.progress
    if p:
        steps_per_epoch = p.get("steps_per_epoch")
        epoch_text, step_text, loss_text = progress_fields(model)
        line = Table.grid(padding=(0, 2))
        line.add_row(
            ProgressBar(total=p.get("max_steps") or 1, completed=p.get("step") or 0, width=30),
            epoch_text,
            step_text + (f" ({steps_per_epoch}/epoch)" if steps_per_epoch else ""),
            loss_text,
            f"{_fmt(p.get('samples_per_s'), '.2f')} samples/s",
            f"ETA {duration(model.eta_s())}",
        )
        parts.append(line)
    elif model.stage:
        parts.append(
            Text(f"{model.stage}: {'done' if model.stage_done else 'running'}", style="dim")
        )
    if model.errors:
        error = model.errors[-1]
        parts.append(
            Text(f"error (rank {error.get('rank')}): {error.get('message', '')}", style="red")
        )
    if model.last_checkpoint:
        parts.append(Text(f"checkpoint: {model.last_checkpoint}", style="dim"))
    title = "log (all ranks)" if model.all_ranks else "log (rank 0)"
    parts.append(
        Panel(Text("\n".join(model.tail) or "(no output yet)"), title=title, title_align="left")
    )
    return Group(*parts)


def watch(
    backend: Backend,
    name: str,
    *,
    all_ranks: bool = False,
    view: Console,
    out: Console,
) -> int:
    """Follow run ``name`` until it ends; then print its metrics (or its diagnosis).

    Args:
        backend: where the run is.
        name: the run.
        all_ranks: show every rank's lines, not just rank 0's.
        view: where the live view goes (stderr: it is not data).
        out: where the final metrics table goes (stdout).

    Returns:
        0 when the run succeeded, 1 when it failed or was cancelled.
    """
    from rich.live import Live

    from bevlaunch.errors import BevlaunchError
    from bevlaunch.output import metrics_table

    model = WatchModel(all_ranks=all_ranks)
    status = backend.status(name)  # raises for an unknown run before anything is drawn
    lines: queue.Queue[LogLine | None] = queue.Queue()
    thread = threading.Thread(
        target=_pump, args=(backend, name, None if all_ranks else 0, lines), daemon=True
    )
    thread.start()
    ended = False
    last_status = 0.0
    with Live(render_view(model, status), console=view, refresh_per_second=4) as live:
        while not ended:
            try:
                item = lines.get(timeout=REFRESH_S)
                while True:
                    if item is None:
                        ended = True
                        break
                    model.feed(item)
                    item = lines.get_nowait()
            except queue.Empty:
                pass
            if ended or time.monotonic() - last_status > STATUS_EVERY_S:
                status = backend.status(name)
                last_status = time.monotonic()
            live.update(render_view(model, status))
    if not view.is_terminal:
        view.line()  # a terminal's Live ends its last frame with a newline; a file's does not
    status = backend.status(name)
    if status.state is RunState.SUCCEEDED:
        try:
            results = backend.results(name)
        except BevlaunchError:
            results = model.results(name)
        if results.get("eval") or results.get("bench"):
            out.print(metrics_table(results))
        view.print(f"run {name} succeeded", markup=False, highlight=False, soft_wrap=True)
        return 0
    view.print(
        f"run {name} {status.state.value}: {status.diagnosis or 'no diagnosis'}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    for text in status.last_lines[-5:]:
        view.print(f"  {text}", markup=False, highlight=False, soft_wrap=True)
    return 1


def _pump(backend: Backend, name: str, rank: int | None, lines: queue.Queue) -> None:
    """Feed the followed log lines into ``lines``; None marks the end (the run finished)."""
    from bevlaunch.errors import BevlaunchError

    try:
        for line in backend.logs(name, rank=rank, follow=True):
            lines.put(line)
    except BevlaunchError:
        pass  # e.g. the run directory went away: the main loop's status() reports it
    finally:
        lines.put(None)
