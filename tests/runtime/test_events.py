"""The event sink: stdout lines the launcher parses, and the run's events.jsonl."""

from __future__ import annotations

import io

import pytest

from bevdepth.events import PREFIX, EventSink, parse_line, read_events


def test_sink_prints_prefixed_lines_and_appends_jsonl(tmp_path):
    stream = io.StringIO()
    sink = EventSink(tmp_path / "run" / "events.jsonl", stream)
    sink.emit("progress", stage="train", step=1, loss=2.5)
    sink.emit("done", stage="all", exit_code=0, seconds=1.0)
    lines = stream.getvalue().splitlines()
    assert all(line.startswith(PREFIX) for line in lines)
    printed = [parse_line(line) for line in lines]
    stored = read_events(tmp_path / "run" / "events.jsonl")
    assert [e.kind for e in stored] == ["progress", "done"]
    assert [e.fields for e in stored] == [e.fields for e in printed]
    assert stored[0].fields == {"stage": "train", "step": 1, "loss": 2.5}


def test_torn_last_line_is_skipped(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"kind":"start","time":1,"stage":"train"}\n{"kind":"progr')
    assert [e.kind for e in read_events(path)] == ["start"]


def test_nan_is_refused_rather_than_written():
    with pytest.raises(ValueError, match="JSON compliant"):
        EventSink(stream=io.StringIO()).emit("progress", loss=float("nan"))
