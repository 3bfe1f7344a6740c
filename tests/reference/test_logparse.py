"""Log translation of the published recipe's output (hand-written excerpts in its formats)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bevdepth.reference.logparse import (
    EvalTranslator,
    LineSplitter,
    TrainTranslator,
    diagnose,
    finish_events,
)
from bevdepth.reference.recipe import RecipeArgs

FIXTURES = Path(__file__).parent / "fixtures"
ARGS = RecipeArgs(
    epochs=2,
    batch_per_device=8,
    lr_per_image=2e-4 / 64,
    seed=0,
    precision="16-mixed",
    devices_per_node=2,
    nodes=1,
)


def _lines(name: str, chunk: int | None = None) -> list[str]:
    """The fixture's lines, fed in ``chunk``-byte pieces (None: all at once)."""
    text = (FIXTURES / name).read_text(encoding="utf-8")
    splitter = LineSplitter()
    size = chunk or len(text)
    lines = []
    for start in range(0, len(text), size):
        lines += splitter.feed(text[start : start + size])
    return lines + splitter.flush()


def _translate(name: str, chunk: int | None = None) -> tuple[TrainTranslator, list]:
    translator = TrainTranslator("train", 8, 2, epochs=2, lr_at=ARGS.lr_at)
    events = [e for line in _lines(name, chunk) for e in translator.feed(line)]
    return translator, events


def test_splitter_ends_lines_at_newline_and_carriage_return_and_keeps_partial_lines():
    splitter = LineSplitter()
    assert splitter.feed("id 1 step_ti") == []
    assert splitter.feed("me=  0.5\nEpoch 0:  1%|") == ["id 1 step_time=  0.5"]
    # "\r" then "\n" in separate chunks is one line end, not an empty line.
    assert splitter.feed(" 1/3 [00:01<00:02, 1.0s/it]\r") == []
    assert splitter.feed("\nnext") == ["Epoch 0:  1%| 1/3 [00:01<00:02, 1.0s/it]"]
    assert splitter.flush() == ["next"]
    assert splitter.flush() == []


@pytest.mark.parametrize("chunk", [None, 1, 7, 64])
def test_training_log_gives_one_progress_event_per_optimizer_step(chunk):
    translator, events = _translate("train_2p.log", chunk)
    assert [kind for kind, _ in events] == ["progress"] * 6
    steps = [fields["step"] for _, fields in events]
    assert steps == [1, 2, 3, 4, 5, 6]  # each step once, though both ranks print it
    first, last = events[0][1], events[-1][1]
    assert first["epoch"] == 0 and last["epoch"] == 1
    assert last["steps_per_epoch"] == 3 and last["max_steps"] == 6
    # The bar's running loss of the latest refresh before the step line.
    assert events[1][1]["loss"] == pytest.approx(20.1)
    assert last["loss"] == pytest.approx(10.0)
    assert first["samples_per_s"] == pytest.approx(8 * 2 / 2.5)
    assert first["lr"] == pytest.approx(2e-4 / 64 * 8 * 2)
    assert translator.failure is None


def test_throughput_is_the_published_fps_formula():
    translator, _ = _translate("train_2p.log")
    summary = translator.throughput()
    # Final bar line of each epoch: 1.20 s/it (the last 100% refresh wins) and 2.50 it/s.
    step_time = (1.20 + 1 / 2.50) / 2
    assert summary["step_time_s"] == pytest.approx(step_time)
    assert summary["samples_per_s"] == pytest.approx(8 / step_time * 2)
    assert summary["images_per_s"] == pytest.approx(8 / step_time * 2 * 12)
    assert summary["epochs_measured"] == 2


def test_no_throughput_before_an_epoch_completed():
    translator = TrainTranslator("bench", 8, 8, epochs=1)
    translator.feed("Epoch 0:  50%|#####     | 2/4 [00:02<00:02,  1.00s/it, loss=20.0, v_num=0]")
    assert translator.throughput() is None


def test_restarted_attempt_in_the_same_log_counts_from_its_resume_point():
    translator, events = _translate("train_resumed.log", chunk=5)
    steps = [(f["epoch"], f["step"]) for _, f in events]
    # First attempt: epoch 0 steps 1-4, epoch 1 step 5; the second resumes at epoch 1 (step 5)
    # and reports step 5 again (it is redone), then step 6.
    assert steps == [(0, 1), (0, 2), (0, 3), (0, 4), (1, 5), (1, 5), (1, 6)]
    assert translator.restarts == 1


def test_epoch_follows_the_batch_index_when_no_progress_bar_is_printed():
    translator = TrainTranslator("train", 1, 1, epochs=3)
    lines = ["id 0 step_time= 1", "id 1 step_time= 1", "id 0 step_time= 1", "id 1 step_time= 1"]
    events = [e for line in lines for e in translator.feed(line)]
    assert [(f["epoch"], f["step"]) for _, f in events] == [(0, 1), (0, 2), (1, 3), (1, 4)]
    assert events[0][1]["steps_per_epoch"] is None and events[0][1]["lr"] is None


def test_failure_is_the_first_exception_and_is_diagnosed():
    translator, events = _translate("train_oom.log")
    assert [f["step"] for _, f in events] == [1]
    failure = translator.failure
    assert failure.message == "RuntimeError: NPU out of memory. Tried to allocate 1.50 GiB"
    assert "batch_per_device" in failure.hint
    (error,) = finish_events("train", failure, 1)
    assert error == (
        "error",
        {
            "message": failure.message,
            "hint": failure.hint,
            "cause": "internal",
            "exit_code": 1,
            "rank": None,
            "stage": "train",
        },
    )


def test_finish_without_traceback_and_success():
    assert finish_events("train", None, 0) == []
    ((kind, fields),) = finish_events("eval", None, 137)
    assert kind == "error" and fields["cause"] == "rank_died" and fields["exit_code"] == 137
    assert "without a traceback" in fields["message"]


@pytest.mark.parametrize(
    ("line", "cause"),
    [
        ("taskset: failed to set pid 77's affinity: Invalid argument", "config"),
        (
            "FileNotFoundError: [Errno 2] No such file or directory: "
            "'data/nuScenes/nuscenes_infos_train.pkl'",
            "data",
        ),
        ("RuntimeError: HCCL function error: hcclAllReduce, error code is 9", "distributed"),
        ("ModuleNotFoundError: No module named 'mx_driving'", "config"),
        ("ValueError: something else", "internal"),
    ],
)
def test_diagnosis_of_known_failures(line, cause):
    assert diagnose(line).cause == cause


def test_taskset_failure_without_traceback_is_caught():
    translator = TrainTranslator("train", 8, 8, epochs=1)
    translator.feed("taskset: failed to set pid 12's affinity: Invalid argument")
    assert translator.failure is not None and translator.failure.cause == "config"


@pytest.mark.parametrize("chunk", [None, 3])
def test_evaluation_log_gives_the_devkit_metrics(chunk):
    translator = EvalTranslator(batch_per_device=8, world_size=8)
    for line in _lines("eval.log", chunk):
        assert translator.feed(line) == []
    assert translator.complete
    fields = translator.metrics_fields()
    assert fields["mAP"] == pytest.approx(0.3253) and fields["NDS"] == pytest.approx(0.4332)
    assert fields["mAAE"] == pytest.approx(0.2301)
    assert fields["per_class_ap"] == pytest.approx(
        {"car": 0.495, "truck": 0.276, "traffic_cone": 0.460, "barrier": 0.510}
    )
    # nan in the table becomes null (events carry no NaN).
    assert fields["per_class"]["traffic_cone"]["AOE"] is None
    assert fields["eval_seconds"] == pytest.approx(168.4)
    # The last 100% Testing bar: 1.98 it/s x 8 per device x 8 devices.
    assert fields["samples_per_s"] == pytest.approx(1.98 * 64)


def test_truncated_evaluation_is_incomplete_and_a_restart_forgets_old_numbers():
    translator = EvalTranslator(8, 8)
    for line in ["mAP: 0.3", "mATE: 0.7", "Global seed set to 0", "mASE: 0.2"]:
        translator.feed(line)
    assert not translator.complete
    assert translator.metrics == {"mASE": 0.2}
