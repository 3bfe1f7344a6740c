"""Data pipeline throughput: reference (``exact``) vs ``fast`` image path, and depth-GT generation.

Measures train-pipeline samples/s of one process (what one DataLoader worker delivers, i.e.
``num_workers=0``): full resolution 256x704 from 1600x900, 2 frames x 6 cameras, depth labels,
GT boxes, reference train augmentation. Both image modes load the same samples with the same
augmentation draws, interleaved over several rounds so that load from other processes on the
machine hits both alike; the median round is reported. It also reports how far the fast pixels
are from the exact ones (mean absolute difference in grey levels of 255) and how fast
``create_depth_gt`` writes depth labels.

Without ``--dataroot`` a small synthetic dataset is generated first (about a minute).

    python benchmarks/data_pipeline.py
    python benchmarks/data_pipeline.py --dataroot /data/nuscenes --samples 24 --json
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from bevdepth.data.dataset import NuScenesBEVDataset
from bevdepth.data.images import IMG_STD, ImageMode


def generate(root: Path, scenes: int, samples_per_scene: int, seed: int, workers: int) -> float:
    """Write a synthetic dataset with infos and depth labels; returns depth-GT samples/s.

    ``workers`` is the number of depth-GT processes; the image generator uses its default.
    """
    from bevdepth.data.infos import create_infos
    from bevdepth.data.synthetic import SyntheticConfig, generate_dataset

    config = SyntheticConfig(
        train_scenes=scenes, val_scenes=0, samples_per_scene=samples_per_scene, seed=seed
    )
    generate_dataset(root, config)
    create_infos(root)
    return time_depth_gt(root, root, workers)


def time_depth_gt(dataroot: Path, prepared_root: Path, workers: int) -> float:
    """Samples/s of ``create_depth_gt`` for the train split written into ``prepared_root``."""
    from bevdepth.data.depth_gt import create_depth_gt

    start = time.perf_counter()
    summary = create_depth_gt(dataroot, prepared_root, workers=workers)
    return summary.samples / (time.perf_counter() - start)


def time_depth_gt_elsewhere(dataroot: Path, workers: int) -> float:
    """Time depth-GT generation for an existing dataroot without touching its files."""
    with tempfile.TemporaryDirectory(prefix="bench_depth_") as scratch:
        shutil.copy(dataroot / "nuscenes_infos_train.pkl", scratch)
        return time_depth_gt(dataroot, Path(scratch), workers)


def time_round(dataset: NuScenesBEVDataset, indices: list[tuple[int, int]]) -> float:
    """Seconds to load the given (epoch, index) samples."""
    start = time.perf_counter()
    for epoch, index in indices:
        dataset.set_epoch(epoch)
        dataset[index]
    return time.perf_counter() - start


def mean_abs_difference(
    exact: NuScenesBEVDataset, fast: NuScenesBEVDataset, indices: list[tuple[int, int]]
) -> float:
    """Mean |exact - fast| over all image pixels, in grey levels (0..255)."""
    std = torch.tensor(IMG_STD).view(3, 1, 1)
    total = 0.0
    for epoch, index in indices:
        exact.set_epoch(epoch)
        fast.set_epoch(epoch)
        total += float(((exact[index].imgs - fast[index].imgs).abs() * std).mean())
    return total / len(indices)


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(1)  # what a DataLoader worker gets
    with tempfile.TemporaryDirectory(prefix="bench_data_") as scratch:
        depth_rate = None
        if args.dataroot is None:
            root = Path(scratch)
            print("generating a synthetic dataset ...", file=sys.stderr)
            depth_rate = generate(
                root, args.scenes, args.samples_per_scene, args.seed, args.depth_workers
            )
        else:
            root = args.dataroot
            if args.time_depth_gt:
                depth_rate = time_depth_gt_elsewhere(root, args.depth_workers)
        datasets = {
            mode: NuScenesBEVDataset(root, "train", return_depth=True, image_mode=mode)
            for mode in ImageMode
        }
        count = len(datasets[ImageMode.EXACT])
        indices = [(i // count, i % count) for i in range(args.samples)]
        for dataset in datasets.values():
            time_round(dataset, indices[:1])  # warm-up: imports, page cache
        seconds: dict[ImageMode, list[float]] = {mode: [] for mode in ImageMode}
        print(f"timing {args.rounds} rounds of {args.samples} samples ...", file=sys.stderr)
        for _ in range(args.rounds):
            for mode, dataset in datasets.items():
                seconds[mode].append(time_round(dataset, indices))
        rates = {mode: args.samples / statistics.median(s) for mode, s in seconds.items()}
        difference = mean_abs_difference(
            datasets[ImageMode.EXACT], datasets[ImageMode.FAST], indices[: args.compare]
        )
    return {
        "dataroot": str(args.dataroot) if args.dataroot else "synthetic (generated)",
        "train_samples": count,
        "samples_per_round": args.samples,
        "rounds": args.rounds,
        "exact_samples_per_s": rates[ImageMode.EXACT],
        "fast_samples_per_s": rates[ImageMode.FAST],
        "speedup": rates[ImageMode.FAST] / rates[ImageMode.EXACT],
        "fast_vs_exact_mean_abs_diff_grey": difference,
        "depth_gt_samples_per_s": depth_rate,
        "depth_gt_workers": args.depth_workers,
    }


def render_table(result: dict) -> str:
    depth = result["depth_gt_samples_per_s"]
    rows = [
        ("exact (reference PIL) samples/s", f"{result['exact_samples_per_s']:.2f}"),
        ("fast samples/s", f"{result['fast_samples_per_s']:.2f}"),
        ("speedup fast / exact", f"{result['speedup']:.2f}x"),
        ("fast vs exact mean |diff| (grey)", f"{result['fast_vs_exact_mean_abs_diff_grey']:.3f}"),
        (
            f"depth GT samples/s ({result['depth_gt_workers']} worker(s))",
            "n/a" if depth is None else f"{depth:.2f}",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    header = (
        f"data pipeline, 1 process, 2 frames x 6 cams, 256x704 + depth "
        f"({result['dataroot']}, {result['train_samples']} train samples)"
    )
    return "\n".join([header, *(f"  {name:<{width}}  {value}" for name, value in rows)])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataroot", type=Path, help="prepared dataroot (default: generate one)")
    parser.add_argument("--samples", type=int, default=8, help="samples per timed round")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per image mode")
    parser.add_argument("--compare", type=int, default=2, help="samples for the pixel diff")
    parser.add_argument("--scenes", type=int, default=1, help="generated train scenes")
    parser.add_argument("--samples-per-scene", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--depth-workers", type=int, default=1, help="create_depth_gt workers")
    parser.add_argument(
        "--time-depth-gt",
        action="store_true",
        help="with --dataroot: also time depth-GT generation (written to a temporary folder)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    print(json.dumps(result, indent=2) if args.json else render_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
