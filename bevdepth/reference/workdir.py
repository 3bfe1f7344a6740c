"""The working directory the upstream scripts run in (they use paths relative to it).

Upstream reads ``data/nuScenes/...`` and writes ``data/nuScenes/nuscenes_infos_*.pkl``,
``data/nuScenes/depth_gt/`` and ``outputs/<exp>/``, all relative to the current directory. The
dataroot is mounted read-only, so ``data/nuScenes`` here is a real directory of symbolic links to
the dataroot's entries; what the recipe writes lands next to them, in the run directory.
"""

from __future__ import annotations

from pathlib import Path

from bevdepth.reference.recipe import DATA_LINK, OUTPUTS_DIR


def workdir(run_dir: Path, purpose: str = "run") -> Path:
    """``<run.dir>/reference`` (train and eval) or ``<run.dir>/reference-bench``."""
    return run_dir / ("reference" if purpose == "run" else f"reference-{purpose}")


def outputs_dir(work: Path) -> Path:
    """Where Lightning writes ``lightning_logs/version_*/checkpoints``."""
    return work / OUTPUTS_DIR


def link_dataroot(work: Path, dataroot: Path) -> Path:
    """Create ``<work>/data/nuScenes`` with a link to each entry of ``dataroot``; idempotent.

    Raises:
        FileNotFoundError: ``dataroot`` is not a directory.
    """
    if not dataroot.is_dir():
        raise FileNotFoundError(f"data.root {dataroot} is not a directory (the nuScenes dataroot)")
    target = work / DATA_LINK
    target.mkdir(parents=True, exist_ok=True)
    for entry in sorted(dataroot.iterdir()):
        link = target / entry.name
        if not link.exists() and not link.is_symlink():
            link.symlink_to(entry.resolve())
    return target
