"""Training throughput of the whole runtime, one rank against two, through the launcher.

Runs the `bench` stage of the quick-start setup (small preset, synthetic data, CPU, fp32) twice
with the same global batch: 1 rank x batch 2 (the baseline), then 2 gloo ranks x batch 1. Each
run goes through `bevlaunch submit --watch`, so process start-up, data loading that the workers
do not hide, and gradient all-reduce all count. Reports samples/s of both and their ratio.

    python benchmarks/train_scaling.py
    python benchmarks/train_scaling.py --steps 40 --json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "examples" / "quickstart.yaml"


def bench_spec(name: str, ranks: int, batch: int, steps: int, runs_root: Path) -> dict:
    """The quick-start spec turned into a bench-only run of ``ranks`` x ``batch``."""
    spec = yaml.safe_load(QUICKSTART.read_text())
    spec["name"] = name
    spec["stages"] = ["prepare", "bench"]
    spec["resources"]["devices_per_node"] = ranks
    spec["training"]["batch_per_device"] = batch
    spec["bench"] = {"warmup_steps": 3, "steps": steps}
    spec["output"] = {"path": str(runs_root)}
    return spec


def run_bench(spec: dict, workdir: Path) -> dict:
    """Submit ``spec`` and wait; returns its ``results.json["bench"]``."""
    spec_path = workdir / f"{spec['name']}.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    # Run from the repository root so the spec's relative dataset path is shared and reused.
    command = [sys.executable, "-m", "bevlaunch", "submit", str(spec_path), "--watch"]
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    results = Path(spec["output"]["path"]) / spec["name"] / "results.json"
    return json.loads(results.read_text())["bench"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="measured steps per run")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        variants = {"1 rank x batch 2": (1, 2), "2 ranks x batch 1": (2, 1)}
        measured = {
            label: run_bench(
                bench_spec(f"scaling-{ranks}x{batch}", ranks, batch, args.steps, workdir),
                workdir,
            )
            for label, (ranks, batch) in variants.items()
        }
    baseline, distributed = measured.values()
    ratio = distributed["samples_per_s"] / baseline["samples_per_s"]
    if args.json:
        print(json.dumps({"runs": measured, "ratio": ratio}, indent=2))
        return
    print(f"{'variant':<20} {'step time s':>12} {'samples/s':>10}")
    for label, bench in measured.items():
        print(f"{label:<20} {bench['step_time_s']:>12.3f} {bench['samples_per_s']:>10.2f}")
    print(f"2 ranks / 1 rank: {ratio:.2f}x samples/s at the same global batch")


if __name__ == "__main__":
    main()
