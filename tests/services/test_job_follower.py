"""The job follower's pure parts: metrics summarised, loss curve points."""

from __future__ import annotations

from bot.client.loss_curve import loss_curve_png
from bot.providers import JobEvent
from bot.services.job_follower import CurvePoint, curve_points, metrics_line


def metrics(step: int, total: int = 100, valid: float | None = None) -> JobEvent:
    data: dict[str, object] = {"step": step, "total_steps": total, "train_loss": 2.0 / step}
    if valid is not None:
        data["valid_loss"] = valid
    return JobEvent(id=f"e{step}", created_at=step, level="info", message="", type="metrics",
                    data=data)


def test_a_metrics_line_names_step_and_losses():
    assert metrics_line(metrics(4, 10, valid=0.5).data) == (
        "step 4/10 · train loss 0.5000 · valid loss 0.5000"
    )
    assert metrics_line({"step": 3}) == "step 3"


def test_curve_points_keep_the_last_value_per_step_in_order():
    events = [metrics(2), metrics(1, valid=1.5), metrics(2, valid=0.9)]
    assert curve_points(events) == [CurvePoint(1, 2.0, 1.5), CurvePoint(2, 1.0, 0.9)]


def test_the_loss_curve_is_a_png_or_nothing():
    png = loss_curve_png([CurvePoint(1, 2.0, 1.5), CurvePoint(2, 1.0, None)])
    assert png is not None and png.startswith(b"\x89PNG\r\n\x1a\n")
    assert loss_curve_png([CurvePoint(1, None, None)]) is None
