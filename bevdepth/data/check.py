"""``python -m bevdepth check-data``: prove a prepared dataroot works end to end, without training.

It loads the tables in the devkit, the infos and depth files, builds one training sample through
the dataset, and scores the ground truth of the validation split against itself with the
devkit's detection evaluation (a dataset that evaluates cleanly gives mAP 1 and NDS 1).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bevdepth.data.constants import CAMERAS
from bevdepth.data.depth_gt import depth_file
from bevdepth.data.hints import prepare_command
from bevdepth.data.infos import DatasetFileError, find_versions, info_path, load_infos

# Devkit evaluation split of the validation scenes, per annotated version.
_EVAL_SPLITS = {"v1.0-trainval": "val", "v1.0-mini": "mini_val"}


@dataclass
class DataReport:
    """What was found; ``render()`` gives the lines printed to the user."""

    lines: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        self.lines.append(line)

    def render(self) -> str:
        return "\n".join(self.lines)


def check_dataset(
    root: str | os.PathLike, prepared_root: str | os.PathLike | None = None
) -> DataReport:
    """Run every check; raise DatasetFileError at the first missing piece."""
    prepared_root = Path(prepared_root or root)
    report = DataReport()
    versions = find_versions(root)
    if not versions:
        raise DatasetFileError(f"{root}: no nuScenes tables found")
    report.add(f"dataroot {root}: versions {', '.join(versions)}")
    for split in ("train", "val", "test"):
        if info_path(prepared_root, split).exists():
            infos = load_infos(prepared_root, split, root)
            boxes = sum(len(info.get("ann_infos", [])) for info in infos)
            report.add(f"infos {split}: {len(infos)} samples, {boxes} annotations")
    train = load_infos(prepared_root, "train", root)
    missing = [
        depth_file(prepared_root, info["cam_infos"][camera]["filename"])
        for info in train
        for camera in CAMERAS
        if not depth_file(prepared_root, info["cam_infos"][camera]["filename"]).exists()
    ]
    if missing:
        raise DatasetFileError(
            f"{missing[0]}: depth file missing ({len(missing)} in all); "
            f"run `{prepare_command('depth', root, prepared_root)}`"
        )
    report.add(f"depth_gt: {len(train) * len(CAMERAS)} files present for the train split")
    report.add(describe_training_sample(root, prepared_root))
    annotated = [version for version in versions if version in _EVAL_SPLITS]
    for version in annotated:
        metrics = score_ground_truth(root, version)
        present = {name: ap for name, ap in metrics["mean_dist_aps"].items() if ap > 0}
        report.add(
            f"devkit detection eval of {_EVAL_SPLITS[version]} GT against itself: "
            f"lowest AP {min(present.values(), default=0.0):.3f} over the "
            f"{len(present)} classes present ({', '.join(sorted(present))}); "
            f"mAP over all 10 classes {metrics['mean_ap']:.3f}"
        )
    return report


def describe_training_sample(root: str | os.PathLike, prepared_root: Path) -> str:
    """Build the first training sample (augmented, with depth labels) and describe it."""
    from bevdepth.data.dataset import NuScenesBEVDataset

    dataset = NuScenesBEVDataset(root, "train", prepared_root=prepared_root, return_depth=True)
    sample = dataset[0]
    depth = sample.depth_labels
    return (
        f"train sample 0: imgs {list(sample.imgs.shape)}, mats "
        f"{list(sample.mats.sensor2ego_mats.shape)}, {len(sample.gt_boxes)} GT boxes, "
        f"{int((depth > 0).sum())} depth pixels"
    )


def score_ground_truth(root: str | os.PathLike, version: str) -> dict:
    """Evaluate the validation GT as if it were a submission; returns the devkit's summary."""
    from nuscenes import NuScenes
    from nuscenes.eval.common.config import config_factory
    from nuscenes.eval.detection.evaluate import DetectionEval

    nusc = NuScenes(version=version, dataroot=str(root), verbose=False)
    eval_split = _EVAL_SPLITS[version]
    results = ground_truth_submission(nusc, eval_split)
    with tempfile.TemporaryDirectory() as workdir:
        result_path = Path(workdir) / "results_nusc.json"
        result_path.write_text(json.dumps(results))
        evaluation = DetectionEval(
            nusc,
            config=config_factory("detection_cvpr_2019"),
            result_path=str(result_path),
            eval_set=eval_split,
            output_dir=workdir,
            verbose=False,
        )
        metrics, _ = evaluation.evaluate()
    return metrics.serialize()


def ground_truth_submission(nusc, eval_split: str) -> dict:
    """The GT boxes of ``eval_split`` in the nuScenes detection submission format."""
    from nuscenes.eval.detection.utils import category_to_detection_name
    from nuscenes.utils.splits import create_splits_scenes

    scenes = set(create_splits_scenes()[eval_split])
    attributes = {record["token"]: record["name"] for record in nusc.attribute}
    results: dict[str, list[dict]] = {}
    for sample in nusc.sample:
        if nusc.get("scene", sample["scene_token"])["name"] not in scenes:
            continue
        boxes = results.setdefault(sample["token"], [])
        for token in sample["anns"]:
            annotation = nusc.get("sample_annotation", token)
            name = category_to_detection_name(annotation["category_name"])
            # The devkit drops GT boxes without points; submitting them would count as FPs.
            if name is None or annotation["num_lidar_pts"] + annotation["num_radar_pts"] == 0:
                continue
            velocity = nusc.box_velocity(token)[:2]
            boxes.append(
                {
                    "sample_token": sample["token"],
                    "translation": annotation["translation"],
                    "size": annotation["size"],
                    "rotation": annotation["rotation"],
                    "velocity": [0.0 if v != v else float(v) for v in velocity],
                    "detection_name": name,
                    "detection_score": 1.0,
                    "attribute_name": attributes[annotation["attribute_tokens"][0]]
                    if annotation["attribute_tokens"]
                    else "",
                }
            )
    meta = {
        "use_camera": True,
        "use_lidar": False,
        "use_radar": False,
        "use_map": False,
        "use_external": False,
    }
    return {"meta": meta, "results": results}
