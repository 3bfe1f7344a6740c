"""The node agent's supervision: exit codes, and a rank that dies from a signal."""

from __future__ import annotations

import io
import subprocess
import sys
import time

from bevdepth.events import EventSink, parse_line
from bevdepth.runtime.agent import supervise
from bevdepth.runtime.environment import Topology

TOPOLOGY = Topology("node", 2, 2, 1, "m", 1)  # node 1 of 2: its local ranks are global 2 and 3


def _child(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code])


def _supervise(children):
    stream = io.StringIO()
    code = supervise(children, TOPOLOGY, EventSink(stream=stream), grace_s=0.5)
    return code, [parse_line(line) for line in stream.getvalue().splitlines()]


def test_all_ranks_succeeding_is_success():
    assert _supervise([_child("pass"), _child("pass")]) == (0, [])


def test_first_failure_code_is_the_exit_code():
    code, events = _supervise([_child("import time; time.sleep(5); exit(1)"), _child("exit(2)")])
    assert (code, events) == (2, [])  # the failing rank reports for itself


def test_killed_rank_is_named_and_the_survivors_are_stopped():
    survivor = _child("import time; time.sleep(60)")
    started = time.monotonic()
    code, events = _supervise([survivor, _child("import os, signal; os.kill(os.getpid(), 9)")])
    assert code == 1 and survivor.returncode is not None
    assert time.monotonic() - started < 30
    (event,) = events
    assert event.kind == "error"
    assert (event.fields["cause"], event.fields["rank"]) == ("rank_died", 3)
    assert "killed by signal SIGKILL" in event.fields["message"]
