"""Checkpoints of the reference run: Lightning 1.6 names, the newest one, new complete ones.

Lightning writes ``outputs/<exp>/lightning_logs/version_<N>/checkpoints/epoch=<E>-step=<S>.ckpt``
(``N`` grows with every start, ``S`` = optimizer steps done). It writes the file in place, not
atomically, so a checkpoint counts as complete once its size and modification time are the same
at two looks in a row. The decisions are pure functions of directory listings; only
:func:`list_checkpoints` touches the file system.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

_NAME = re.compile(r"^epoch=(\d+)-step=(\d+)(?:-v\d+)?\.ckpt$")
_VERSION = re.compile(r"^version_(\d+)$")


@dataclass(frozen=True, order=True)
class CheckpointFile:
    """One checkpoint file; ordering is newest-last (step, then epoch, then version)."""

    step: int
    epoch: int
    version: int
    path: str = field(compare=False)
    size: int = field(default=0, compare=False)
    mtime_ns: int = field(default=0, compare=False)


def parse_checkpoint(path: str, size: int = 0, mtime_ns: int = 0) -> CheckpointFile | None:
    """A :class:`CheckpointFile` for a Lightning-named file, None for anything else."""
    p = Path(path)
    match = _NAME.match(p.name)
    if match is None:
        return None
    version = _VERSION.match(p.parent.parent.name) if p.parent.name == "checkpoints" else None
    return CheckpointFile(
        step=int(match.group(2)),
        epoch=int(match.group(1)),
        version=int(version.group(1)) if version else -1,
        path=str(p),
        size=size,
        mtime_ns=mtime_ns,
    )


def list_checkpoints(outputs: Path) -> list[CheckpointFile]:
    """Every Lightning checkpoint under ``outputs`` (``lightning_logs/version_*/checkpoints``)."""
    found = []
    for path in outputs.glob("lightning_logs/version_*/checkpoints/*.ckpt"):
        try:
            stat = path.stat()
        except FileNotFoundError:  # replaced by a newer one while we looked
            continue
        parsed = parse_checkpoint(str(path), stat.st_size, stat.st_mtime_ns)
        if parsed is not None:
            found.append(parsed)
    return sorted(found)


def newest(checkpoints: list[CheckpointFile]) -> CheckpointFile | None:
    """The checkpoint with the most steps (a later start wins a tie), or None."""
    return max(checkpoints) if checkpoints else None


@dataclass
class CheckpointWatch:
    """Reports each checkpoint once, when two looks in a row saw it unchanged."""

    reported: set[str] = field(default_factory=set)
    _last_look: dict[str, tuple[int, int]] = field(default_factory=dict)

    def look(self, listing: list[CheckpointFile]) -> list[CheckpointFile]:
        """Checkpoints that just became complete (in step order)."""
        seen = {c.path: (c.size, c.mtime_ns) for c in listing}
        complete = [
            c
            for c in listing
            if c.path not in self.reported
            and c.size > 0
            and self._last_look.get(c.path) == seen[c.path]
        ]
        self._last_look = seen
        self.reported.update(c.path for c in complete)
        return complete

    def settle(self, listing: list[CheckpointFile]) -> list[CheckpointFile]:
        """After the writer exited every file is complete: the ones not reported yet."""
        fresh = [c for c in listing if c.path not in self.reported and c.size > 0]
        self.reported.update(c.path for c in fresh)
        return fresh


def checkpoint_event(checkpoint: CheckpointFile) -> dict[str, object]:
    """The ``checkpoint`` event fields (Lightning 1.6 saves at the end of each epoch)."""
    return {
        "path": checkpoint.path,
        "epoch": checkpoint.epoch,
        "step": checkpoint.step,
        "reason": "epoch_end",
    }
