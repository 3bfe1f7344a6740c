"""Start-up time of the launcher CLI against a bare interpreter, measured in the same run.

Each command runs ``--repeats`` times in a fresh process (interleaved, so that background load
hits every command alike); the table gives the median and best wall time, and the median's
excess over ``python -c pass``. The launcher's rule: ``bevlaunch --help`` and ``bevlaunch
render`` answer in under 0.3 s (they never import torch; tests/launcher/test_launcher_cli.py
checks the imports themselves).

    python benchmarks/cli_startup.py
    python benchmarks/cli_startup.py --repeats 20 --json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT_S = 0.3


def commands() -> dict[str, list[str]]:
    """What is measured; the console script too when it is installed next to this Python."""
    python = sys.executable
    found = {
        "python -c pass": [python, "-c", "pass"],
        "python -m bevlaunch --help": [python, "-m", "bevlaunch", "--help"],
        "python -m bevlaunch render ascend-8npu": [
            python,
            "-m",
            "bevlaunch",
            "render",
            str(ROOT / "examples" / "ascend-8npu.yaml"),
        ],
        "python -m bevlaunch render quickstart": [
            python,
            "-m",
            "bevlaunch",
            "render",
            str(ROOT / "examples" / "quickstart.yaml"),
        ],
    }
    script = Path(python).with_name("bevlaunch")
    if script.exists():
        found["bevlaunch --help"] = [str(script), "--help"]
        found["bevlaunch render ascend-8npu"] = [
            str(script),
            "render",
            str(ROOT / "examples" / "ascend-8npu.yaml"),
        ]
    return found


def measure(repeats: int) -> dict[str, dict[str, float]]:
    """Median and best seconds per command, runs interleaved after one warm-up round."""
    todo = commands()
    times: dict[str, list[float]] = {name: [] for name in todo}
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    for round_ in range(repeats + 1):
        for name, argv in todo.items():
            start = time.perf_counter()
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env, cwd=ROOT)
            if round_:  # round 0 warms the file cache and the bytecode
                times[name].append(time.perf_counter() - start)
    return {name: {"median_s": statistics.median(t), "best_s": min(t)} for name, t in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    results = measure(args.repeats)
    base = results["python -c pass"]["median_s"]
    for row in results.values():
        row["over_python_s"] = row["median_s"] - base
        row["ratio_to_python"] = row["median_s"] / base
    if args.json:
        print(json.dumps({"repeats": args.repeats, "limit_s": LIMIT_S, "results": results}))
    else:
        print(f"{'command':42} {'median':>8} {'best':>8} {'- python':>9} {'x python':>9}")
        for name, row in results.items():
            print(
                f"{name:42} {row['median_s']:8.3f} {row['best_s']:8.3f} "
                f"{row['over_python_s']:9.3f} {row['ratio_to_python']:9.1f}"
            )
    slow = [n for n, r in results.items() if "bevlaunch" in n and r["median_s"] > LIMIT_S]
    if slow:
        print(f"over {LIMIT_S} s: {', '.join(slow)}", file=sys.stderr)
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
