"""The preparation commands that error messages suggest, written in one place."""

from __future__ import annotations

from pathlib import Path


def prepare_command(
    step: str, dataroot: Path | str, prepared_root: Path | str | None = None
) -> str:
    """The ``python -m bevdepth prepare <step>`` command line that creates a missing file.

    Args:
        step: ``infos`` or ``depth``.
        dataroot: nuScenes dataroot (``--root``).
        prepared_root: where infos and depth files go, when not the dataroot.
    """
    command = f"python -m bevdepth prepare {step} --root {dataroot}"
    if prepared_root is not None and Path(prepared_root) != Path(dataroot):
        command += f" --prepared-root {prepared_root}"
    return command
