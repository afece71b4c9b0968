"""Protected attributes and fair-lending metrics (docs/fairness.md): settings, group labels (with
bins for numbers such as age), per-group metrics with fairlearn's MetricFrame, proxies, the
metrics.json section and its Markdown."""

from zoo.fairness.metrics import GROUP_FIGURES, group_metrics, metric_frames
from zoo.fairness.section import add_fairness, fairness_section

__all__ = ["GROUP_FIGURES", "add_fairness", "fairness_section", "group_metrics", "metric_frames"]
