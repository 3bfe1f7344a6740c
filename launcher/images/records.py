"""The record of built and pushed images (``.bevlaunch/images.json``), one entry per target.

A job spec with ``image: auto`` gets the pushed image of its accelerator from it, pinned by
digest (``repo@sha256:...``), so a cluster runs exactly the bytes that were built.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bevlaunch.images import ImageError
from bevlaunch.rundir import write_json_atomic

if TYPE_CHECKING:
    from bevlaunch.spec import JobSpec

RECORDS_PATH = Path(".bevlaunch") / "images.json"
SCHEMA = 1


@dataclass(frozen=True)
class ImageRecord:
    """One target's newest build: local name, and where and as what it was pushed."""

    target: str
    tag: str
    image: str  # the local name, e.g. bevdepth:cpu-0123abcd...
    pushed: str | None = None  # repo:tag
    digest: str | None = None  # sha256:... of the pushed manifest

    @property
    def pinned(self) -> str | None:
        """``repo@sha256:...`` when pushed with a known digest, else None."""
        if self.pushed is None or self.digest is None:
            return None
        repo = self.pushed.rsplit(":", 1)[0] if _has_tag(self.pushed) else self.pushed
        return f"{repo}@{self.digest}"


def load_records(path: Path) -> dict[str, ImageRecord]:
    """The records by target; empty when the file does not exist."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        return {t: ImageRecord(**entry) for t, entry in data["images"].items()}
    except (ValueError, KeyError, TypeError) as e:
        raise ImageError(f"{path}: not an image record file ({e}); delete it and rebuild") from e


def save_record(path: Path, record: ImageRecord) -> None:
    """Add or replace ``record``'s target, atomically (a temporary file renamed over)."""
    records = load_records(path)
    records[record.target] = record
    payload = {"schema": SCHEMA, "images": {t: asdict(r) for t, r in sorted(records.items())}}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, payload)


def pinned_image(path: Path, target: str) -> str:
    """The digest-pinned reference of ``target``'s pushed image, or an error saying what to do."""
    record = load_records(path).get(target)
    hint = f"bevlaunch build-image --target {target} --push REGISTRY/REPO"
    if record is None:
        raise ImageError(f"no {target} image recorded in {path}; build and push one: {hint}")
    if record.pinned is None:
        raise ImageError(
            f"the {target} image {record.image} was built but not pushed; "
            f"a cluster cannot pull it: {hint}"
        )
    return record.pinned


def _has_tag(reference: str) -> bool:
    # A colon after the last slash is a tag; one before it is a registry port.
    return ":" in reference.rsplit("/", 1)[-1]


# `image: auto` in a job spec: the image build-image last pushed for the spec's accelerator.
IMAGE_AUTO = "auto"
TARGET_OF_ACCELERATOR = {"npu": "npu", "gpu": "cuda", "cpu": "cpu"}
# The reference workload runs the published recipe, baked into an image of its own.
REFERENCE_TARGET = "npu-reference"


def image_target(job: JobSpec) -> str:
    """The image target that runs ``job``: its workload's, else its accelerator's."""
    from bevlaunch.spec import Workload

    if job.workload is Workload.REFERENCE:
        return REFERENCE_TARGET
    return TARGET_OF_ACCELERATOR[job.resources.accelerator.value]


def with_built_image(job: JobSpec, path: Path) -> JobSpec:
    """``job`` with ``image: auto`` replaced by the pinned pushed image of its target."""
    if job.image != IMAGE_AUTO:
        return job
    try:
        pinned = pinned_image(path, image_target(job))
    except ImageError as e:
        raise ImageError(f"image: auto: {e}") from e
    return job.model_copy(update={"image": pinned})
