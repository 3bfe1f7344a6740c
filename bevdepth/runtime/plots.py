"""PNG plots of a run: loss curves (from events.jsonl) and per-class AP (matplotlib, Agg)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from bevdepth.atomic import atomic_path
from bevdepth.events import read_events


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display in a container
    import matplotlib.pyplot as plt

    return plt


def plot_losses(events_path: str | os.PathLike, out: str | os.PathLike) -> Path | None:
    """Total, detection and depth loss per step of the ``train`` progress events.

    Returns:
        ``out``, or None when there is no training progress to plot.
    """
    progress = [
        e.fields
        for e in read_events(events_path)
        if e.kind == "progress" and e.fields.get("stage") == "train"
    ]
    if not progress:
        return None
    # A resumed run repeats nothing, but keep the last report of a step if it ever does.
    by_step = {p["step"]: p for p in progress}
    steps = sorted(by_step)
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 4))
    axis.plot(steps, [by_step[s]["loss"] for s in steps], label="total")
    for name in ("detection", "depth"):
        axis.plot(steps, [by_step[s]["losses"][name] for s in steps], label=name, alpha=0.7)
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("loss (rank 0 batch)")
    axis.set_yscale("log")
    axis.legend()
    axis.grid(alpha=0.3)
    return _save(figure, out, plt)


def plot_per_class_ap(per_class_ap: Mapping[str, float | None], out: str | os.PathLike) -> Path:
    """Bar chart of the AP of each class (mean over the distance thresholds)."""
    names = list(per_class_ap)
    values = [per_class_ap[name] or 0.0 for name in names]
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 4))
    axis.bar(names, values)
    axis.set_ylim(0, 1)
    axis.set_ylabel("AP")
    axis.tick_params(axis="x", labelrotation=45)
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return _save(figure, out, plt)


def _save(figure, out: str | os.PathLike, plt) -> Path:
    with atomic_path(out) as temporary:
        figure.savefig(temporary, format="png", dpi=100)
    plt.close(figure)
    return Path(out)
