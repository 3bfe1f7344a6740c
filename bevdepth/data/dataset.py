"""``NuScenesBEVDataset``: one BEVDepth training/evaluation sample per key frame.

A sample holds F = 1 + len(key_frame_offsets) frames (current key frame first, then previous key
frames, reference "2key": offsets (-1,)) of N = 6 cameras. Every camera gets one image
augmentation draw shared by all its frames; the sample gets one BEV augmentation draw.
Randomness comes from ``sample_rng(seed, epoch, index)``, so results do not depend on which
DataLoader worker loads a sample; call :meth:`NuScenesBEVDataset.set_epoch` before each epoch
(it reaches the workers when they are started for that epoch, i.e. without
``persistent_workers``).

The dataset keeps only the parsed info list and its configuration (no open files), so it pickles
into DataLoader workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from bevdepth.data import infos as info_files
from bevdepth.data.augment import (
    AugConfig,
    BevAugParams,
    ImageAugParams,
    Mode,
    sample_bev_aug,
    sample_image_aug,
    sample_rng,
)
from bevdepth.data.batch import CameraMats, Sample
from bevdepth.data.boxes import BOX_DIM, annotation_boxes, apply_bda_to_boxes, mean_ego_pose
from bevdepth.data.constants import CAMERAS, DETECTION_CLASSES
from bevdepth.data.depth_gt import depth_file
from bevdepth.data.depth_labels import depth_map, load_depth_points
from bevdepth.data.geometry import (
    bda_matrix,
    ida_matrix,
    intrinsics_matrix,
    key_sensor_to_sensor,
    sensor_to_key_ego,
)
from bevdepth.data.hints import prepare_command
from bevdepth.data.images import ImageMode, load_image
from bevdepth.data.infos import SPLITS, DatasetFileError, load_info_file


class NuScenesBEVDataset(Dataset):
    """nuScenes key frames as BEVDepth ``Sample`` s.

    Args:
        dataroot: nuScenes dataroot; image file names in the infos are relative to it.
        split: which ``nuscenes_infos_<split>.pkl`` to read; ignored when ``info_path`` is set.
        prepared_root: where the info pickles and ``depth_gt/`` are (default: ``dataroot``),
            as written by ``python -m bevdepth prepare ... --prepared-root``.
        info_path: an explicit info pickle.
        aug: augmentation configuration (reference 256x704 by default).
        mode: ``train`` draws random augmentations and returns GT boxes; ``test`` uses the fixed
            test transform and returns empty box tensors.
        key_frame_offsets: negative offsets of the extra key frames; (-1,) gives the reference
            frames [current, previous]. A frame outside the scene repeats the current one.
        return_depth: also return ``depth_labels`` (1, N, H, W) from ``<prepared_root>/depth_gt``.
        image_mode: ``exact`` (reference pixels) or ``fast`` (see ``bevdepth.data.images``).
        seed: base seed of the augmentation draws.
        cameras: camera order of the N axis.
        classes: detection classes; a label is the index in this sequence.
    """

    def __init__(
        self,
        dataroot: Path | str,
        split: str = "train",
        *,
        prepared_root: Path | str | None = None,
        info_path: Path | str | None = None,
        aug: AugConfig | None = None,
        mode: Mode | str = Mode.TRAIN,
        key_frame_offsets: Sequence[int] = (-1,),
        return_depth: bool = False,
        image_mode: ImageMode | str = ImageMode.EXACT,
        seed: int = 0,
        cameras: Sequence[str] = CAMERAS,
        classes: Sequence[str] = DETECTION_CLASSES,
    ) -> None:
        if any(offset >= 0 for offset in key_frame_offsets):
            raise ValueError(
                f"key_frame_offsets must be negative (previous key frames), got "
                f"{tuple(key_frame_offsets)!r}"
            )
        if info_path is None and split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        self.dataroot = Path(dataroot)
        self.prepared_root = Path(prepared_root) if prepared_root else self.dataroot
        self.info_path = (
            Path(info_path) if info_path else info_files.info_path(self.prepared_root, split)
        )
        self.aug = aug or AugConfig()
        self.mode = Mode(mode)
        self.key_frame_offsets = tuple(key_frame_offsets)
        self.return_depth = return_depth
        self.image_mode = ImageMode(image_mode)
        self.seed = seed
        self.cameras = tuple(cameras)
        self.classes = tuple(classes)
        self.epoch = 0
        self.infos = load_info_file(self.info_path, self._fix_command("infos"))

    def _fix_command(self, step: str) -> str:
        return prepare_command(step, self.dataroot, self.prepared_root)

    def __len__(self) -> int:
        return len(self.infos)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of ``epoch`` (same epoch and index -> same sample)."""
        self.epoch = epoch

    def frame_indices(self, index: int) -> list[int]:
        """Info indices of the frames of sample ``index``: itself, then one per offset."""
        scene = self.infos[index]["scene_token"]
        frames = [index]
        for offset in self.key_frame_offsets:
            other = index + offset
            in_scene = other >= 0 and self.infos[other]["scene_token"] == scene
            frames.append(other if in_scene else index)
        return frames

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < len(self.infos):
            raise IndexError(f"sample index {index} out of range for {len(self.infos)} samples")
        rng = sample_rng(self.seed, self.epoch, index)
        ida = [sample_image_aug(self.aug.image, rng, self.mode) for _ in self.cameras]
        bda = sample_bev_aug(self.aug.bev, rng, self.mode)
        key_info = self.infos[index]
        frames = [self.infos[i] for i in self.frame_indices(index)]
        ego_rotation, ego_translation = mean_ego_pose(key_info["cam_infos"], self.cameras)
        boxes, labels = self._gt_boxes(key_info, ego_rotation, ego_translation, bda)
        depth = self._depth(key_info, ida) if self.return_depth else None
        return Sample(
            imgs=torch.from_numpy(self._images(frames, ida)),
            mats=self._mats(key_info, frames, ida, bda),
            timestamps=torch.tensor(
                [[info["cam_infos"][cam]["timestamp"] for cam in self.cameras] for info in frames],
                dtype=torch.int64,
            ),
            img_metas={
                "token": key_info["sample_token"],
                "scene_token": key_info["scene_token"],
                "timestamp": key_info["timestamp"],
                "ego2global_translation": ego_translation,
                "ego2global_rotation": ego_rotation,
            },
            gt_boxes=torch.from_numpy(boxes),
            gt_labels=torch.from_numpy(labels),
            depth_labels=None if depth is None else torch.from_numpy(depth),
        )

    def _images(self, frames: list[dict[str, Any]], ida: list[ImageAugParams]) -> np.ndarray:
        """(F, N, 3, H, W) float32 normalized images."""
        width, height = ida[0].final_size
        imgs = np.empty((len(frames), len(self.cameras), 3, height, width), dtype=np.float32)
        for f, info in enumerate(frames):
            for n, cam in enumerate(self.cameras):
                path = self.dataroot / info["cam_infos"][cam]["filename"]
                imgs[f, n] = load_image(path, ida[n], self.image_mode)
        return imgs

    def _mats(
        self,
        key_info: dict[str, Any],
        frames: list[dict[str, Any]],
        ida: list[ImageAugParams],
        bda: BevAugParams,
    ) -> CameraMats:
        """Per frame and camera 4x4 matrices, (F, N, 4, 4), and the (4, 4) BDA matrix."""
        shape = (len(frames), len(self.cameras), 4, 4)
        sensor2ego, sensor2sensor, intrin = np.empty(shape), np.empty(shape), np.empty(shape)
        for f, info in enumerate(frames):
            for n, cam in enumerate(self.cameras):
                key_cam, cam_info = key_info["cam_infos"][cam], info["cam_infos"][cam]
                sensor2ego[f, n] = sensor_to_key_ego(key_cam, cam_info)
                sensor2sensor[f, n] = key_sensor_to_sensor(key_cam, cam_info)
                intrin[f, n] = intrinsics_matrix(cam_info["calibrated_sensor"]["camera_intrinsic"])
        ida_mats = np.broadcast_to(np.stack([ida_matrix(p) for p in ida]), shape)

        def as_tensor(mat: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(mat, dtype=np.float32))

        return CameraMats(
            sensor2ego_mats=as_tensor(sensor2ego),
            intrin_mats=as_tensor(intrin),
            ida_mats=as_tensor(ida_mats),
            sensor2sensor_mats=as_tensor(sensor2sensor),
            bda_mat=as_tensor(bda_matrix(bda)),
        )

    def _depth(self, key_info: dict[str, Any], ida: list[ImageAugParams]) -> np.ndarray:
        """(1, N, H, W) float32 depth labels of the key frame (reference: key frame only)."""
        fix = self._fix_command("depth")
        maps = [
            depth_map(
                load_depth_points(
                    depth_file(self.prepared_root, key_info["cam_infos"][cam]["filename"]), fix
                ),
                params,
            )
            for cam, params in zip(self.cameras, ida, strict=True)
        ]
        return np.stack(maps)[None]

    def _gt_boxes(
        self,
        key_info: dict[str, Any],
        ego_rotation: np.ndarray,
        ego_translation: np.ndarray,
        bda: BevAugParams,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(M, 9) float32 boxes and (M,) int64 labels; empty outside training (reference)."""
        if self.mode is not Mode.TRAIN:
            return np.zeros((0, BOX_DIM), dtype=np.float32), np.zeros((0,), dtype=np.int64)
        if "ann_infos" not in key_info:
            raise DatasetFileError(
                f"sample {key_info['sample_token']} in {self.info_path} has no ann_infos "
                "(a test split?); use mode='test' for unannotated splits"
            )
        boxes, labels = annotation_boxes(
            key_info["ann_infos"], ego_rotation, ego_translation, self.classes
        )
        return apply_bda_to_boxes(boxes, bda), labels
