"""The loss curve of a fine-tune as a PNG: train and validation loss by step (matplotlib,
Agg canvas: no display, no global pyplot state, safe in a worker thread)."""

from __future__ import annotations

import io
from collections.abc import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bot.services.job_follower import CurvePoint


def loss_curve_png(points: Sequence[CurvePoint], title: str = "Loss by step") -> bytes | None:
    """The PNG bytes, or ``None`` when there is no loss to draw."""
    train = [(p.step, p.train_loss) for p in points if p.train_loss is not None]
    valid = [(p.step, p.valid_loss) for p in points if p.valid_loss is not None]
    if not train and not valid:
        return None
    figure = Figure(figsize=(6.4, 3.6), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if train:
        axes.plot([s for s, _ in train], [v for _, v in train], label="train loss")
    if valid:
        axes.plot([s for s, _ in valid], [v for _, v in valid], label="validation loss",
                  marker="o" if len(valid) < 30 else None)
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.set_title(title[:80])
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()
