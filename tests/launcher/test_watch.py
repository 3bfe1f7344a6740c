"""The watch view: folding events and log lines, drawing them, and the exit code of a run."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from rich.console import Console

from bevdepth.events import format_event
from bevlaunch.backends.base import LogLine, RunState, RunStatus
from bevlaunch.errors import ClusterError
from bevlaunch.watch import WatchModel, render_view, watch


def _progress(step: int, when: float, **extra) -> str:
    fields = dict(stage="train", epoch=(step - 1) // 5, step=step, steps_per_epoch=5)
    fields.update(max_steps=10, loss=1.0 / step, lr=1e-4, samples_per_s=8.0)
    fields.update(extra)
    return format_event("progress", when, **fields)


def _text(renderable, width: int = 140) -> str:
    console = Console(record=True, width=width, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def test_events_update_the_model_and_plain_lines_make_the_tail():
    model = WatchModel(tail_lines=3)
    model.feed(LogLine(0, format_event("start", 100.0, stage="train", epochs=2)))
    for step in range(1, 5):
        model.feed(LogLine(0, _progress(step, 100.0 + 2 * step)))
        model.feed(LogLine(0, f"plain line {step}"))
    assert model.stage == "train"
    assert model.progress["step"] == 4 and model.progress["loss"] == 0.25
    assert list(model.tail) == ["plain line 2", "plain line 3", "plain line 4"]
    # 2 s per step from event times, 6 steps left
    assert model.eta_s() == pytest.approx(12.0)
    model.feed(LogLine(0, format_event("checkpoint", 111.0, path="/r/ck.ckpt", step=4)))
    model.feed(LogLine(1, format_event("error", 112.0, message="boom", rank=1)))
    assert model.last_checkpoint == "/r/ck.ckpt"
    assert model.errors[-1]["message"] == "boom" and model.errors[-1]["rank"] == 1


def test_damaged_events_are_plain_text_and_all_ranks_are_prefixed():
    model = WatchModel(all_ranks=True)
    model.feed(LogLine(1, "@@bevdepth-event {not json"))
    model.feed(LogLine(0, "hello"))
    assert list(model.tail) == ["[rank 1] @@bevdepth-event {not json", "[rank 0] hello"]
    assert model.eta_s() is None


def test_view_shows_stage_progress_loss_rate_eta_and_the_tail():
    model = WatchModel()
    model.feed(LogLine(0, format_event("start", 0.0, stage="train", epochs=2)))
    model.feed(LogLine(0, _progress(6, 10.0)))
    model.feed(LogLine(0, _progress(7, 11.0)))
    model.feed(LogLine(0, "Epoch 1: loading"))
    status = RunStatus("demo", RunState.RUNNING, "train", ("prepare", "train", "eval"), 2)
    text = _text(render_view(model, status))
    assert "demo  running  stage train (2/3)" in text
    for part in ("epoch 2/2", "step 7/10", "loss 0.1429", "8.00 samples/s", "ETA 3s"):
        assert part in text
    assert "Epoch 1: loading" in text and "log (rank 0)" in text


class FakeBackend:
    """An in-memory backend: the watch works through the protocol alone."""

    def __init__(self, lines: list[str], final: RunStatus, results: dict | None):
        self.lines, self.final, self._results = lines, final, results
        self.followed = False

    def status(self, name: str) -> RunStatus:
        if name != self.final.name:
            raise ClusterError(f"no run named {name!r}")
        return self.final if self.followed else RunStatus(name, RunState.RUNNING, "train")

    def logs(self, name: str, *, rank: int | None = 0, follow: bool = False) -> Iterator[LogLine]:
        assert follow and rank == 0
        for text in self.lines:
            yield LogLine(0, text)
        self.followed = True

    def results(self, name: str) -> dict:
        if self._results is None:
            raise ClusterError("no results")
        return self._results


def _consoles():
    view = Console(record=True, width=120, file=io.StringIO())
    out = Console(record=True, width=120, file=io.StringIO())
    return view, out


def test_watch_of_a_successful_run_prints_the_metrics_and_returns_0():
    metrics = dict(stage="eval", mAP=0.31, NDS=0.42, per_class_ap={"car": 0.5}, samples_per_s=3)
    lines = [_progress(1, 1.0), "log", format_event("metrics", 2.0, **metrics)]
    backend = FakeBackend(lines, RunStatus("r", RunState.SUCCEEDED, "eval"), results=None)
    view, out = _consoles()
    assert watch(backend, "r", view=view, out=out) == 0
    table = out.export_text()
    assert "mAP" in table and "0.3100" in table and "NDS" in table and "AP car" in table
    assert "run r succeeded" in view.export_text()


def test_watch_of_a_failed_run_prints_the_diagnosis_and_returns_1():
    final = RunStatus(
        "r",
        RunState.FAILED,
        "train",
        diagnosis="stage train: rank 1 exited with code 1: NaN loss",
        last_lines=("Traceback ...", "ValueError: x"),
    )
    view, out = _consoles()
    assert watch(FakeBackend(["a"], final, None), "r", view=view, out=out) == 1
    text = view.export_text()
    assert "run r failed: stage train: rank 1 exited with code 1: NaN loss" in text
    assert "ValueError: x" in text
    assert out.export_text() == ""


def test_watch_of_an_unknown_run_raises():
    view, out = _consoles()
    backend = FakeBackend([], RunStatus("r", RunState.SUCCEEDED), None)
    with pytest.raises(ClusterError):
        watch(backend, "other", view=view, out=out)
