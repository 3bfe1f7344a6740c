"""``python -m bevdepth``: the workload's command line.

Every failure a user can cause ends in one line on stderr naming what to change, and a non-zero
exit (2 for bad arguments or inputs, 1 for anything else). The run commands (``run``, ``train``,
``eval``, ``bench``, ``prepare all --config``) report through events instead (docs/RUNTIME.md)
and exit as the run contract says (0, 1, 2 or 130).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

EXIT_USAGE = 2
EXIT_FAILURE = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bevdepth", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    prepare = commands.add_parser("prepare", help="generate or prepare a nuScenes dataroot")
    steps = prepare.add_subparsers(dest="step", required=True, metavar="STEP")

    synthetic = steps.add_parser("synthetic", help="write a synthetic nuScenes-format dataset")
    _add_root(synthetic)
    _add_synthetic_options(synthetic)
    _add_workers(synthetic)

    infos = steps.add_parser("infos", help="write nuscenes_infos_{train,val,test}.pkl")
    _add_root(infos)
    _add_prepared_root(infos)
    infos.add_argument("--overwrite", action="store_true", help="rebuild existing info files")

    depth = steps.add_parser("depth", help="write depth_gt/*.bin from lidar (train split)")
    _add_root(depth)
    _add_prepared_root(depth)
    depth.add_argument("--splits", nargs="+", default=["train"], choices=["train", "val", "test"])
    _add_workers(depth)

    everything = steps.add_parser(
        "all",
        help="synthetic data (with --synthetic), then infos, then depth; or what --config says",
    )
    source = everything.add_mutually_exclusive_group(required=True)
    source.add_argument("--root", type=Path, help="nuScenes dataroot")
    source.add_argument("--config", type=Path, help="a resolved run config (its data section)")
    _add_prepared_root(everything)
    everything.add_argument(
        "--synthetic", action="store_true", help="generate a synthetic dataset first"
    )
    _add_synthetic_options(everything)
    _add_workers(everything)

    check = commands.add_parser(
        "check-data", help="load a prepared dataroot end to end and score its GT with the devkit"
    )
    _add_root(check)
    _add_prepared_root(check)

    run = commands.add_parser("run", help="run the config's stages in order")
    _add_config(run)
    run.add_argument(
        "--stages", default=None, help="comma-separated subset to run instead, e.g. train,eval"
    )
    for stage, text in RUN_STAGES.items():
        _add_config(commands.add_parser(stage, help=text))
    return parser


# Single-stage commands (the command name is the stage name).
RUN_STAGES = {
    "train": "train (resuming from the newest checkpoint of the run)",
    "eval": "evaluate a checkpoint with the nuScenes devkit",
    "bench": "measure training throughput",
}


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="the resolved run config")


def _add_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, required=True, help="nuScenes dataroot")


def _add_prepared_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prepared-root",
        type=Path,
        default=None,
        help="where infos and depth_gt go (default: --root; use it for a read-only dataroot)",
    )


def _add_workers(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: CPUs)"
    )


def _add_synthetic_options(parser: argparse.ArgumentParser) -> None:
    from bevdepth.data.synthetic import SyntheticConfig

    defaults = SyntheticConfig()
    parser.add_argument("--flavour", choices=["mini", "trainval"], default=defaults.flavour)
    parser.add_argument("--train-scenes", type=int, default=defaults.train_scenes)
    parser.add_argument("--val-scenes", type=int, default=defaults.val_scenes)
    parser.add_argument("--test-scenes", type=int, default=defaults.test_scenes)
    parser.add_argument("--samples-per-scene", type=int, default=defaults.samples_per_scene)
    parser.add_argument("--sweeps-per-sample", type=int, default=defaults.sweeps_per_sample)
    parser.add_argument("--seed", type=int, default=defaults.seed)


def _synthetic_config(args: argparse.Namespace):
    from bevdepth.data.synthetic import SyntheticConfig

    return SyntheticConfig(
        flavour=args.flavour,
        train_scenes=args.train_scenes,
        val_scenes=args.val_scenes,
        test_scenes=args.test_scenes,
        samples_per_scene=args.samples_per_scene,
        sweeps_per_sample=args.sweeps_per_sample,
        seed=args.seed,
    )


def run(args: argparse.Namespace) -> None:
    """Carry out a parsed command; progress goes to stdout."""
    if args.command == "check-data":
        from bevdepth.data.check import check_dataset

        print(check_dataset(args.root, args.prepared_root).render())
        return
    if args.step in ("synthetic", "all") and (args.step == "synthetic" or args.synthetic):
        from bevdepth.data.synthetic import generate_dataset

        generate_dataset(args.root, _synthetic_config(args), workers=args.workers)
        print(f"synthetic dataset ready in {args.root}")
    if args.step in ("infos", "all"):
        from bevdepth.data.infos import create_infos

        summary = create_infos(
            args.root, args.prepared_root, overwrite=getattr(args, "overwrite", False)
        )
        for split, count in summary.written.items():
            print(f"infos {split}: {count} samples written")
        for split in summary.skipped:
            print(f"infos {split}: already present, kept")
    if args.step in ("depth", "all"):
        from bevdepth.data.depth_gt import create_depth_gt

        depth = create_depth_gt(
            args.root, args.prepared_root, getattr(args, "splits", ["train"]), args.workers
        )
        print(
            f"depth_gt: {depth.written} of {depth.samples} samples written "
            f"({depth.samples_per_second:.1f} samples/s), {depth.samples - depth.written} "
            "already present"
        )


def run_stages(args: argparse.Namespace, argv: list[str]) -> int:
    """The run commands: stages of a run config, reported through events."""
    from bevdepth.runtime.runner import run_command

    if args.command == "run":
        stages = args.stages.split(",") if args.stages else None
    elif args.command == "prepare":
        stages = ["prepare"]
    else:
        stages = [args.command]
    if _workload(args.config) == "reference":
        from bevdepth.reference.agent import run_reference

        return run_reference(args.config, stages)
    return run_command(args.config, stages, argv)


def _workload(config_path: Path) -> str:
    """The config's optional ``workload`` (run contract section 1); ``native`` when absent.

    An unreadable config is left to the native runner, which reports it.
    """
    import json

    try:
        raw = json.loads(Path(config_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "native"
    return raw.get("workload", "native") if isinstance(raw, dict) else "native"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.command in ("run", *RUN_STAGES) or getattr(args, "config", None) is not None:
        return run_stages(args, argv)
    from bevdepth.data.infos import DatasetFileError

    try:
        run(args)
    except (ValueError, FileExistsError, DatasetFileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: finished files are kept, rerun to resume", file=sys.stderr)
        return 130
    return 0
