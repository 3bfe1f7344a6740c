"""Full-model training step: forward + losses + backward of the reference and small presets.

Random images and a nuScenes-like camera rig (``bevdepth.model.testing``), 2 frames x 6 cameras,
8 random boxes per sample and 5 % LiDAR-like depth pixels. Each preset runs in its own process on
the best available device (NPU, CUDA, else CPU); see ``_measure.py`` for how peak memory is
measured. The reference preset takes tens of seconds per step on a small CPU.

    python benchmarks/train_step.py
    python benchmarks/train_step.py --presets small --batch 2 --repeats 5 --json
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
from _measure import measure, run_isolated

from bevdepth import device as devices
from bevdepth.model import build_model
from bevdepth.model.testing import (
    make_camera_mats,
    random_boxes,
    random_depth_labels,
    random_images,
)

PRESETS = ("reference", "small")


def worker(preset_name: str, batch: int, device_name: str | None, repeats: int) -> dict:
    target = devices.pick_device(device_name)
    torch.manual_seed(0)
    model = build_model(preset_name).to(target).train()
    cfg = model.config
    gen = torch.Generator().manual_seed(0)
    imgs = random_images(cfg, batch, generator=gen).to(target)
    mats = make_camera_mats(cfg, batch, generator=gen)
    mats = type(mats)(**{k: v.to(target) for k, v in mats.as_dict().items()})
    boxes, labels = zip(*(random_boxes(cfg, 8, generator=gen) for _ in range(batch)), strict=True)
    boxes = [b.to(target) for b in boxes]
    labels = [lab.to(target) for lab in labels]
    depth = random_depth_labels(cfg, batch, generator=gen).to(target)

    def step() -> None:
        preds, depth_pred = model(imgs, mats)
        model.loss(preds, depth_pred, boxes, labels, depth).total.backward()
        model.zero_grad(set_to_none=True)

    result = measure(step, target, repeats)
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    height, width = cfg.grid.final_dim
    return {
        "preset": preset_name,
        "device": str(target),
        "batch": batch,
        "input": f"{batch}x2x6x3x{height}x{width}",
        "trainable_params": params,
        **result,
    }


def run(args: argparse.Namespace) -> dict:
    extra = ["--batch", str(args.batch), "--repeats", str(args.repeats)]
    if args.device:
        extra += ["--device", args.device]
    rows = [run_isolated(__file__, ["--preset", name, *extra]) for name in args.presets]
    return {"threads": torch.get_num_threads(), "repeats": args.repeats, "runs": rows}


def render_table(result: dict) -> str:
    lines = [
        f"train step (forward + loss + backward), {result['threads']} threads, "
        f"median of {result['repeats']} after a cold first step",
        f"  {'preset':<10} {'device':<7} {'input':<24} {'params':>11} {'first s':>8} "
        f"{'median s':>9} {'peak MiB':>9}",
    ]
    for row in result["runs"]:
        lines.append(
            f"  {row['preset']:<10} {row['device']:<7} {row['input']:<24} "
            f"{row['trainable_params']:>11,} {row['first_s']:>8.2f} {row['median_s']:>9.2f} "
            f"{row['peak_mib']:>9.0f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", choices=PRESETS, default=list(PRESETS))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2, help="timed steps after the first")
    parser.add_argument("--device", help="cpu, cuda, npu (default: best available)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--preset", choices=PRESETS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.preset, args.batch, args.device, args.repeats)))
        return
    result = run(args)
    print(json.dumps(result, indent=2) if args.json else render_table(result))


if __name__ == "__main__":
    sys.exit(main())
