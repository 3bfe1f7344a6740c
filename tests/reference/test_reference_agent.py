"""The reference agent end to end, with a stand-in for the upstream checkout.

The stand-in scripts print the hand-written log excerpts and write what upstream would write
(info files, a Lightning checkpoint), and record the argv and environment they were given; the
agent, the translation, the config dispatch and results.json are the real ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bevdepth.events import parse_line
from bevdepth.reference.recipe import EXPERIMENT_SCRIPT
from bevlaunch.resolve import resolve_config
from bevlaunch.spec import spec_from_dict

FIXTURES = Path(__file__).parent / "fixtures"

FAKE_EXPERIMENT = """
import json, os, sys
from pathlib import Path
record = Path(os.environ["FAKE_RECORD"])
calls = json.loads(record.read_text()) if record.exists() else []
calls.append({"argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)})
record.write_text(json.dumps(calls))
fixtures = Path(os.environ["FAKE_FIXTURES"])
if "-e" in sys.argv:
    sys.stdout.write((fixtures / "eval.log").read_text())
    sys.exit(0)
assert Path("data/nuScenes/nuscenes_infos_train.pkl").exists(), "prepare did not run"
if os.environ.get("FAKE_FAIL"):
    sys.stdout.write((fixtures / "train_oom.log").read_text())
    sys.exit(1)
sys.stdout.write((fixtures / "train_2p.log").read_text())
ckpt = Path("outputs/bev_depth_lss_r50_256x704_128x128_24e_2key/lightning_logs")
ckpt = ckpt / "version_0/checkpoints"
ckpt.mkdir(parents=True, exist_ok=True)
(ckpt / "epoch=1-step=6.ckpt").write_bytes(b"weights")
"""
FAKE_GEN_INFO = """
from pathlib import Path
assert Path("data/nuScenes/v1.0-trainval").is_dir()
Path("data/nuScenes/nuscenes_infos_train.pkl").write_bytes(b"infos")
print("gen_info done")
"""


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    root = tmp_path / "upstream"
    script = root / EXPERIMENT_SCRIPT
    script.parent.mkdir(parents=True)
    script.write_text(textwrap.dedent(FAKE_EXPERIMENT))
    (root / "scripts").mkdir()
    (root / "scripts/gen_info.py").write_text(textwrap.dedent(FAKE_GEN_INFO))
    (root / "scripts/gen_depth_gt.py").write_text("print('depth done')\n")
    return root


def _run(tmp_path: Path, upstream: Path, **env: str) -> tuple[int, list, list]:
    dataroot = tmp_path / "nuscenes"
    (dataroot / "v1.0-trainval").mkdir(parents=True, exist_ok=True)
    spec = spec_from_dict(
        {
            "name": "ref",
            "workload": "reference",
            "data": {"path": str(dataroot)},
            "output": {"path": str(tmp_path / "runs")},
            "resources": {"devices_per_node": 2},
            "training": {"epochs": 2},
        }
    )
    config = resolve_config(spec, base_dir=str(tmp_path))
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    record = tmp_path / "calls.json"
    child_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("RANK", "MASTER"))},
        "BEVDEPTH_UPSTREAM_DIR": str(upstream),
        "FAKE_RECORD": str(record),
        "FAKE_FIXTURES": str(FIXTURES),
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "40000",
        **env,
    }
    result = subprocess.run(
        [sys.executable, "-m", "bevdepth", "run", "--config", str(config_path)],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    events = [e for e in map(parse_line, result.stdout.splitlines()) if e is not None]
    calls = json.loads(record.read_text()) if record.exists() else []
    return result.returncode, events, calls


def test_prepare_train_eval_become_our_events_and_results(tmp_path, upstream):
    code, events, calls = _run(tmp_path, upstream)
    assert code == 0, [e.fields for e in events if e.kind == "error"]
    kinds = [(e.kind, e.fields.get("stage")) for e in events]
    assert kinds[0] == ("start", "prepare")
    assert [e.fields["step"] for e in events if e.kind == "progress"] == [1, 2, 3, 4, 5, 6]
    (ckpt,) = [e.fields for e in events if e.kind == "checkpoint"]
    assert ckpt["step"] == 6 and ckpt["epoch"] == 1
    train_metrics, eval_metrics = [e.fields for e in events if e.kind == "metrics"]
    assert train_metrics["stage"] == "train" and train_metrics["samples_per_s"] > 0
    assert eval_metrics["NDS"] == pytest.approx(0.4332)
    # The newest checkpoint of the run was evaluated, not a fixed path.
    assert eval_metrics["checkpoint"] == ckpt["path"]
    results = json.loads(Path(eval_metrics["results"]).read_text())
    assert results["eval"]["mAP"] == pytest.approx(0.3253)
    assert kinds[-1] == ("done", "all") and events[-1].fields["exit_code"] == 0

    train, evaluation = calls
    assert train["argv"][train["argv"].index("--gpus") + 1] == "2"
    assert train["argv"][train["argv"].index("--max_epochs") + 1] == "2"
    assert "-e" in evaluation["argv"]
    # Evaluated as the published script does: one device, one node.
    assert evaluation["argv"][evaluation["argv"].index("--gpus") + 1] == "1"
    assert evaluation["argv"][evaluation["argv"].index("--num_nodes") + 1] == "1"
    assert evaluation["argv"][evaluation["argv"].index("--ckpt_path") + 1] == ckpt["path"]
    # Upstream alone on the path, no torchrun-style variables: Lightning spawns the ranks.
    assert train["env"]["PYTHONPATH"] == str(upstream)
    assert not {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR"} & set(train["env"])
    assert train["env"]["TASK_QUEUE_ENABLE"] == "2"
    assert train["cwd"].endswith("runs/ref/reference")
    logs = tmp_path / "runs/ref/logs"
    assert "id 2 step_time" in (logs / "reference-train.log").read_text()


def test_a_failing_training_reports_the_diagnosed_error_and_resumes_next_time(tmp_path, upstream):
    code, events, _ = _run(tmp_path, upstream)
    assert code == 0
    code, events, calls = _run(tmp_path, upstream, FAKE_FAIL="1")
    assert code == 1
    (error,) = [e.fields for e in events if e.kind == "error"]
    assert error["stage"] == "train" and "NPU out of memory" in error["message"]
    assert events[-1].kind == "done" and events[-1].fields["exit_code"] == 1
    # The second run resumed from the first run's checkpoint.
    argv = calls[-1]["argv"]
    assert argv[argv.index("--resume_from_checkpoint") + 1].endswith("epoch=1-step=6.ckpt")


def test_missing_upstream_is_a_config_error(tmp_path):
    code, events, _ = _run(tmp_path, tmp_path / "nowhere")
    assert code == 2
    (error,) = [e.fields for e in events if e.kind == "error"]
    assert error["cause"] == "config" and "npu-reference" in error["hint"]
